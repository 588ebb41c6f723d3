"""Random deterministic finite automata for the in-context regular-language task (RegBench).

Recipe (Akyürek et al., ICML 2024, ``berlino/seq_icl``): 4-12 states, an alphabet of 4-18 of
the 18 letters a..r, every state 1-3 outgoing edges with distinct symbols to distinct *other*
states, start state 0, every state accepting; then trimmed (unreachable states dropped) and
minimised. Transitions are partial: a missing edge rejects.

``DFA.delta`` is the canonical form: states renumbered in breadth-first order from the start,
visiting symbols in order. Minimal DFAs of the same language are isomorphic, so two automata
accept the same language exactly when their canonical ``delta`` tuples are equal; pools are
deduplicated, and train and test pools kept disjoint, by that key.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

N_LETTERS = 18
LETTERS = "abcdefghijklmnopqr"
MIN_STATES, MAX_STATES = 4, 12
MIN_ALPHABET, MAX_ALPHABET = 4, 18
MIN_EDGES, MAX_EDGES = 1, 3


@dataclass(frozen=True)
class DFA:
    """A partial DFA over letters 0..17, start state 0, every state accepting.

    Attributes
    ----------
    delta : tuple of tuples (n_states, 18)
        ``delta[q][a]`` is the next state, or -1 where the edge is missing.
    """

    delta: tuple[tuple[int, ...], ...]

    @property
    def n_states(self) -> int:
        return len(self.delta)

    def legal(self, state: int) -> list[int]:
        """Letters with an edge out of ``state``."""
        return [a for a, q in enumerate(self.delta[state]) if q >= 0]

    def run(self, string: str | Sequence[int]) -> int:
        """The state after reading ``string`` from the start, -1 once an edge is missing."""
        q = 0
        for a in string:
            a = LETTERS.index(a) if isinstance(a, str) else int(a)
            q = self.delta[q][a]
            if q < 0:
                return -1
        return q

    def accepts(self, string: str | Sequence[int]) -> bool:
        """Whether the automaton accepts ``string`` (letters 'a'..'r' or ids 0..17); all states accept."""
        return self.run(string) >= 0

    def minimal(self) -> "DFA":
        """The trimmed, minimised automaton in canonical numbering."""
        return _canonical(_minimise(_canonical(self.delta)))

    def __str__(self) -> str:
        lines = [f"{q}: " + " ".join(f"{LETTERS[a]}->{t}" for a, t in enumerate(row) if t >= 0)
                 for q, row in enumerate(self.delta)]
        return "\n".join(lines)


def _canonical(delta: Sequence[Sequence[int]]) -> DFA:
    """Relabel reachable states in BFS order from state 0 (symbols in order); drops unreachable ones."""
    order, index = [0], {0: 0}
    for q in order:  # grows while iterating: a BFS
        for t in delta[q]:
            if t >= 0 and t not in index:
                index[t] = len(order)
                order.append(t)
    return DFA(tuple(tuple(index[t] if t >= 0 else -1 for t in delta[q]) for q in order))


def _minimise(dfa: DFA) -> list[list[int]]:
    """Moore partition refinement; all states accept, a missing edge goes to an implicit dead state."""
    block = [0] * dfa.n_states
    while True:
        signatures = [(block[q],) + tuple(block[t] if t >= 0 else -1 for t in dfa.delta[q])
                      for q in range(dfa.n_states)]
        ids: dict[tuple, int] = {}
        new = [ids.setdefault(s, len(ids)) for s in signatures]
        if len(ids) == len(set(block)):
            break
        block = new
    quotient = [[-1] * N_LETTERS for _ in range(len(ids))]
    for q in range(dfa.n_states):
        quotient[new[q]] = [new[t] if t >= 0 else -1 for t in dfa.delta[q]]
    return quotient


def random_dfa(rng: np.random.Generator) -> DFA:
    """One automaton drawn by the recipe above, before trimming and minimisation."""
    n = int(rng.integers(MIN_STATES, MAX_STATES + 1))
    alphabet = rng.choice(N_LETTERS, size=int(rng.integers(MIN_ALPHABET, MAX_ALPHABET + 1)), replace=False)
    delta = []
    for q in range(n):
        k = int(rng.integers(MIN_EDGES, MAX_EDGES + 1))
        symbols = rng.choice(alphabet, size=k, replace=False)
        others = np.delete(np.arange(n), q)
        targets = rng.choice(others, size=k, replace=False)  # distinct other states: no self-loops
        row = [-1] * N_LETTERS
        for a, t in zip(symbols, targets):
            row[int(a)] = int(t)
        delta.append(row)
    return DFA(tuple(tuple(r) for r in delta))


@lru_cache(maxsize=16)
def automaton_pool(seed: int, stream: int, count: int, exclude: frozenset = frozenset()) -> tuple[DFA, ...]:
    """``count`` distinct minimal automata from the seeded stream ``(seed, stream)``, none in ``exclude``.

    The pool of size N is a prefix of the pool of any larger size from the same stream.
    """
    rng = np.random.default_rng([seed, stream])
    seen, pool = set(exclude), []
    for _ in range(100 * count + 1000):
        dfa = random_dfa(rng).minimal()
        if dfa.delta not in seen:
            seen.add(dfa.delta)
            pool.append(dfa)
            if len(pool) == count:
                return tuple(pool)
    raise ValueError(f"could not draw {count} distinct automata from stream {stream} of seed {seed}")


@dataclass(frozen=True)
class PoolArrays:
    """A pool packed for vectorised random walks; P automata, S = MAX_STATES padded states.

    Attributes
    ----------
    delta : int64 (P, S, 18)      next state or -1
    out_degree : int64 (P, S)     number of letters with an edge (>= 1 for every real state)
    out_symbol : int64 (P, S, 3)  the letters with an edge, padded by repeating the first
    out_next : int64 (P, S, 3)    the state each of those letters leads to
    """

    delta: np.ndarray
    out_degree: np.ndarray
    out_symbol: np.ndarray
    out_next: np.ndarray


def pack(pool: Sequence[DFA]) -> PoolArrays:
    P, S = len(pool), MAX_STATES
    delta = np.full((P, S, N_LETTERS), -1, dtype=np.int64)
    for i, dfa in enumerate(pool):
        delta[i, : dfa.n_states] = dfa.delta
    has_edge = delta >= 0  # (P, S, 18)
    out_degree = has_edge.sum(-1)  # (P, S)
    # the letters with an edge first, in order (a stable sort of "no edge" keys)
    out_symbol = np.argsort(~has_edge, axis=-1, kind="stable")[..., :MAX_EDGES]  # (P, S, 3)
    first = out_symbol[..., :1]
    out_symbol = np.where(np.arange(MAX_EDGES) < out_degree[..., None], out_symbol, first)
    out_next = np.take_along_axis(delta, out_symbol, axis=-1)  # (P, S, 3)
    return PoolArrays(delta, out_degree, out_symbol, out_next)
