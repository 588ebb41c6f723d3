"""Finite automata read off recurrent states: greedy grouping, Moore minimisation, equivalence.

Pure numpy, no model in sight, so every step can be checked on hand-built states. The
extraction follows van Rossem & Saxe (ICML 2025, ``source/data_analysis/automata.py``):

1. the state after every prefix of every training string, plus the initial state (prefix ``()``);
2. prefixes visited shortest first; each joins the first group whose representative (its first
   member) lies within ``tolerance * ||std of the states||`` (the norm of the per-unit standard
   deviations over all recorded states), else founds a new group;
3. every group is a state; ``prefix -> prefix + (a,)`` gives a transition on symbol ``a``;
4. the automaton is *complete* when every state has a transition on every symbol, *consistent*
   when no (state, symbol) pair leads to two different states; the paper calls an automaton
   that is both *finite*.

The automata here are Moore machines: every state carries an output label (the argmax of the
model's readout, or the task's target). The initial state's output is never trained, so a group
holding only ``()`` has no label (``None``); :func:`minimise` treats such a start state as a
don't-care, so equivalence means "the same output on every non-empty string".

``tasks.dfa`` minimises acceptors whose states all accept; parity needs output labels, hence
the Moore versions below (same BFS canonical form, same partition refinement).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Mapping, Sequence

import numpy as np

Prefix = tuple  # a string as a tuple of symbols; () is the empty string (the initial state)


@dataclass(frozen=True)
class Automaton:
    """A deterministic Moore machine over symbols ``alphabet``.

    Attributes
    ----------
    delta : tuple of tuples (n_states, n_symbols)
        ``delta[q][i]`` is the state reached from ``q`` on ``alphabet[i]``, or -1 where the
        transition is missing.
    labels : tuple (n_states,)
        Output of each state (an int), or None where unknown.
    start : int
    alphabet : tuple (n_symbols,)
    """

    delta: tuple[tuple[int, ...], ...]
    labels: tuple[Hashable, ...]
    start: int = 0
    alphabet: tuple = (0, 1)

    @property
    def n_states(self) -> int:
        return len(self.delta)

    @property
    def complete(self) -> bool:
        """Every state has a transition on every symbol."""
        return all(t >= 0 for row in self.delta for t in row)

    def to_dict(self) -> dict:
        return {"delta": [list(r) for r in self.delta], "labels": list(self.labels),
                "start": self.start, "alphabet": list(self.alphabet)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Automaton":
        return cls(tuple(tuple(r) for r in d["delta"]), tuple(d["labels"]), int(d["start"]),
                   tuple(d["alphabet"]))


@dataclass(frozen=True)
class Extraction:
    """An automaton read off states, with what the grouping found on the way.

    Attributes
    ----------
    automaton : Automaton
        States numbered by group, in order of foundation (group 0 holds the initial state).
    prefixes : list of tuples (N,)
        Every prefix, shortest first then lexicographic: the order of the greedy grouping.
    group : int array (N,)
        The group (automaton state) of each prefix.
    threshold : float
        The absolute merge distance, ``tolerance * ||std||``.
    transition_conflicts : int
        (state, symbol) pairs whose prefixes lead to more than one state (the majority wins).
    label_conflicts : int
        States whose prefixes disagree on the output (the majority wins).
    """

    automaton: Automaton
    prefixes: list
    group: np.ndarray
    threshold: float
    transition_conflicts: int
    label_conflicts: int

    @property
    def n_states(self) -> int:
        return self.automaton.n_states

    @property
    def consistent(self) -> bool:
        return self.transition_conflicts == 0

    @property
    def finite(self) -> bool:
        """Complete and consistent: the paper's "finite automaton"."""
        return self.automaton.complete and self.consistent


def group_states(states: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy grouping: each row joins the first group whose representative is within ``threshold``.

    Parameters
    ----------
    states : array (N, H)
        In the order of visiting.
    threshold : float
        Absolute distance; a row joins a group when its distance to the representative is <= it.

    Returns
    -------
    int array (N,)
        Group index of each row; groups are numbered in order of foundation, and the
        representative of a group is its first row.
    """
    x = np.asarray(states, dtype=np.float64)  # (N, H)
    sq = (x * x).sum(1)  # (N,)
    reps, rep_sq = np.empty_like(x), np.empty(len(x))  # representatives, filled as groups are founded
    group = np.empty(len(x), dtype=np.int64)
    g = 0
    limit = threshold * threshold
    for i in range(len(x)):
        # squared distances to the representatives only: O(N * G * H) in all, never N^2 pairs
        d2 = rep_sq[:g] - 2 * (reps[:g] @ x[i]) + sq[i]  # (G,)
        close = np.flatnonzero(d2 <= limit + 1e-13 * (1.0 + sq[i]))  # the slack absorbs round-off
        if len(close):
            group[i] = close[0]
        else:
            reps[g], rep_sq[g], group[i] = x[i], sq[i], g
            g += 1
    return group


def _majority(votes: Counter):
    # Most common; ties go to the value seen first (Counter keeps insertion order).
    return max(votes.items(), key=lambda kv: kv[1])[0]


def extract(states_by_prefix: Mapping[Prefix, Sequence[float]], tolerance: float = 0.01,
            labels: Mapping[Prefix, Hashable] | None = None,
            alphabet: Sequence | None = None) -> Extraction:
    """Read a finite automaton off the states reached after each prefix.

    Parameters
    ----------
    states_by_prefix : dict tuple -> array (H,)
        The state after each prefix; must hold the initial state under ``()``. Transitions are
        read off every pair ``p``, ``p + (a,)`` present.
    tolerance : float
        Merge distance relative to the spread of the states, ``||std over prefixes||`` (0.01 in the
        paper); 0 groups exactly equal states only.
    labels : dict tuple -> label, optional
        Output after each prefix (e.g. the readout's argmax). A state's label is the majority of
        its prefixes' labels; a state none of whose prefixes has one gets ``None``.
    alphabet : sequence, optional
        The input symbols (default: the last symbols of the prefixes, sorted).

    Returns
    -------
    Extraction
    """
    if () not in states_by_prefix:
        raise ValueError("states_by_prefix must hold the initial state under the empty prefix ()")
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0; got {tolerance!r}")
    prefixes = sorted(states_by_prefix, key=lambda p: (len(p), p))
    states = np.stack([np.asarray(states_by_prefix[p], dtype=np.float64).reshape(-1) for p in prefixes])  # (N, H)
    symbols = tuple(sorted({p[-1] for p in prefixes if p})) if alphabet is None else tuple(alphabet)
    column = {a: i for i, a in enumerate(symbols)}
    threshold = float(tolerance * np.linalg.norm(states.std(0)))
    group = group_states(states, threshold)
    index = {p: i for i, p in enumerate(prefixes)}

    n = int(group.max()) + 1
    votes: dict[tuple[int, int], Counter] = {}
    for p in prefixes[1:]:
        if p[:-1] in index:
            if p[-1] not in column:
                raise ValueError(f"prefix {p} ends in symbol {p[-1]!r}, not in the alphabet {symbols}")
            key = (int(group[index[p[:-1]]]), column[p[-1]])
            votes.setdefault(key, Counter())[int(group[index[p]])] += 1
    delta = [[-1] * len(symbols) for _ in range(n)]
    for (q, a), v in votes.items():
        delta[q][a] = _majority(v)
    conflicts = sum(len(v) > 1 for v in votes.values())

    out: list[Counter] = [Counter() for _ in range(n)]
    for p, lab in (labels or {}).items():
        if p and p in index:
            out[int(group[index[p]])][lab] += 1
    state_labels = tuple(_majority(c) if c else None for c in out)
    label_conflicts = sum(len(c) > 1 for c in out)
    automaton = Automaton(tuple(map(tuple, delta)), state_labels, int(group[0]), symbols)
    return Extraction(automaton, prefixes, group, threshold, conflicts, label_conflicts)


def canonical(a: Automaton) -> Automaton:
    """Reachable states only, renumbered breadth-first from the start (symbols in order)."""
    order, index = [a.start], {a.start: 0}
    for q in order:  # grows while iterating: a BFS
        for t in a.delta[q]:
            if t >= 0 and t not in index:
                index[t] = len(order)
                order.append(t)
    delta = tuple(tuple(index[t] if t >= 0 else -1 for t in a.delta[q]) for q in order)
    return Automaton(delta, tuple(a.labels[q] for q in order), 0, a.alphabet)


def minimise(a: Automaton) -> Automaton:
    """The minimal equivalent Moore machine, in canonical numbering.

    Moore partition refinement, starting from the partition by label (``None`` is a label of its
    own; a missing transition leads to an implicit sink). Then an unlabelled start state that
    nothing leads back to, whose transitions equal those of another state, is merged into it:
    its own output is a don't-care, so both behave alike on every non-empty string.
    """
    a = canonical(a)
    ids: dict = {}
    block = [ids.setdefault(("label", lab), len(ids)) for lab in a.labels]
    while True:
        ids = {}
        new = [ids.setdefault((block[q],) + tuple(block[t] if t >= 0 else -1 for t in a.delta[q]), len(ids))
               for q in range(a.n_states)]
        if len(ids) == len(set(block)):
            break
        block = new
    k = len(ids)
    delta, labels = [None] * k, [None] * k
    for q in range(a.n_states):
        delta[new[q]] = tuple(new[t] if t >= 0 else -1 for t in a.delta[q])
        labels[new[q]] = a.labels[q]
    start = new[a.start]
    incoming = any(t == start for row in delta for t in row)
    if labels[start] is None and not incoming:
        twin = next((q for q in range(k) if q != start and delta[q] == delta[start]), None)
        if twin is not None:
            keep = [q for q in range(k) if q != start]
            renum = {q: i for i, q in enumerate(keep)}
            renum[start] = renum[twin]
            delta = [tuple(renum[t] if t >= 0 else -1 for t in delta[q]) for q in keep]
            labels, start = [labels[q] for q in keep], renum[twin]
    return canonical(Automaton(tuple(delta), tuple(labels), start, a.alphabet))


def equivalent(a: Automaton, b: Automaton) -> bool:
    """Whether two automata give the same output on every non-empty string.

    Both are minimised and compared in canonical form (minimal Moore machines of one behaviour
    are isomorphic). Different alphabets raise ``ValueError``.
    """
    if tuple(a.alphabet) != tuple(b.alphabet):
        raise ValueError(f"automata over different alphabets: {tuple(a.alphabet)} vs {tuple(b.alphabet)}")
    return minimise(a) == minimise(b)


def run(a: Automaton, strings: np.ndarray) -> np.ndarray:
    """Run the automaton as a program: its output after every prefix.

    Parameters
    ----------
    strings : int array (B, T)
        Symbols from ``a.alphabet``.

    Returns
    -------
    array (B, T)
        The label of the state after each step; -1 once a transition is missing (and for
        unlabelled states).
    """
    strings = np.asarray(strings)
    column = {s: i for i, s in enumerate(a.alphabet)}
    lookup = np.full(int(max(max(a.alphabet), strings.max(initial=0))) + 1, -1, dtype=np.int64)
    for s, i in column.items():
        lookup[s] = i
    cols = lookup[strings]  # (B, T)
    if (cols < 0).any():
        raise ValueError(f"strings hold symbols outside the alphabet {tuple(a.alphabet)}")
    S = a.n_states
    # state S is a sink for missing transitions: it stays there and outputs -1
    delta = np.array([[t if t >= 0 else S for t in row] for row in a.delta] + [[S] * len(a.alphabet)],
                     dtype=np.int64).reshape(S + 1, len(a.alphabet))  # (S + 1, A)
    out = np.array([-1 if lab is None else int(lab) for lab in a.labels] + [-1], dtype=np.int64)  # (S + 1,)
    q = np.full(len(strings), a.start, dtype=np.int64)  # (B,)
    labels = np.empty(strings.shape, dtype=np.int64)
    for t in range(strings.shape[1]):
        q = delta[q, cols[:, t]]
        labels[:, t] = out[q]
    return labels


def state_changes(before: np.ndarray, after: np.ndarray) -> tuple[int, int, float]:
    """States removed and added between two groupings of the same prefixes, and the mergers.

    A state is identified by the set of prefixes it holds. A merger of two states into one
    removes two and adds one; a split removes one and adds two; so, as in the paper,
    mergers = (2 removed - added) / 3 (exact when only pairwise mergers and splits happen).

    Parameters
    ----------
    before, after : int arrays (N,)
        Group of each prefix, in the same prefix order.
    """
    def sets(g):
        members: dict[int, list[int]] = {}
        for i, k in enumerate(np.asarray(g).tolist()):
            members.setdefault(k, []).append(i)
        return {frozenset(m) for m in members.values()}

    old, new = sets(before), sets(after)
    removed, added = len(old - new), len(new - old)
    return removed, added, (2 * removed - added) / 3


def merges_and_splits(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    """How many mergers and splits turn one grouping of the same prefixes into the other; both >= 0.

    Link each old state to each new state that shares a prefix with it. A new state linked to k
    old ones took k - 1 mergers to make; an old state linked to k new ones was split k - 1 times.
    When only pairwise mergers and splits happen, ``merges`` equals :func:`state_changes`'s
    (2 removed - added) / 3, which other changes (a three-way split, a prefix moving between
    two states) can make negative.
    """
    before, after = np.asarray(before), np.asarray(after)
    pairs = set(zip(before.tolist(), after.tolist()))
    merges = len(pairs) - len({b for _, b in pairs})  # sum over new states of (old ones linked - 1)
    splits = len(pairs) - len({a for a, _ in pairs})
    return merges, splits


def moore(delta: Sequence[Sequence[int]], labels: Sequence, start: int = 0, alphabet: Sequence = (0, 1)) -> Automaton:
    """Build an :class:`Automaton` from plain lists (e.g. ``moore([[0, 1], [1, 0]], [0, 1])`` is parity)."""
    delta = tuple(tuple(int(t) for t in row) for row in delta)
    if len(labels) != len(delta) or any(len(r) != len(alphabet) for r in delta):
        raise ValueError(f"delta {len(delta)}x{[len(r) for r in delta]} does not match "
                         f"{len(labels)} labels and {len(alphabet)} symbols")
    if any(not -1 <= t < len(delta) for r in delta for t in r):
        raise ValueError(f"transition targets must lie in -1..{len(delta) - 1}")
    return Automaton(delta, tuple(labels), int(start), tuple(alphabet))
