"""The program library: ground-truth programs with the inputs they are meant for.

    counter()            ones read so far                         LinState, A = B = 1
    majority()           1 while more ones than zeros so far       two counters and a ReLU step (paper's example)
    parity()             streaming parity                          the DFA simulator on the parity automaton
    mod_counter(n)       0, 1, ..., n-1, 0, ... (official phase)   a one-hot state turned by a cyclic shift
    dfa(delta)           the state of any automaton (one-hot)      ReLUState over (state, symbol) pairs
    lookup(K, V, gate)   values stored under the queried key        outer-product memory, read by a gate

Every entry is a :class:`LibraryProgram`: the program, the alphabet of input vectors it is meant
for (all strings over it are valid inputs; bits for most), and a sampler. ``for_task`` builds the
exact ground-truth programs of the ``parity`` and ``regular`` tasks (token inputs, logits out).

The DFA simulator. A LinState's transition ignores its input, so no LSRL program tracks parity at
every length (see :mod:`graph`); the simulator uses the one nonlinear recurrence, ReLUState. Its
units are the pairs (q, a): p_t[q, a] = relu(s_{t-1}[q] + x_t[a] - 1) = [q_{t-1} = q and x_t = a],
and s_t = sum over pairs with δ(q, a) = q' of p_t — so the pair units alone are the recurrent state,
one-hot (or all zero once a missing transition kills the run). One extra unit holds the start
state at t = 0; a "reset" symbol (the ``|`` of ``regular``) has one unit relu(x[a]) that leads to
its target from any state, dead included.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence

import numpy as np
import sympy

from analyses.lsrl import sugar as S
from analyses.lsrl.graph import (
    Concat,
    Input,
    Linear,
    LinState,
    Multiplicative,
    Node,
    ReLU,
    ReLUState,
)
from analyses.lsrl.program import Program

PARITY = ((0, 1), (1, 0))                        # delta[state][bit]
EXAMPLE_DFA = ((1, 2, -1), (0, 3, 1), (2, 0, -1), (3, 3, 0))   # 4 states, 3 symbols, missing edges


@dataclass
class LibraryProgram:
    """A program, the input vectors it is meant for, and how to draw inputs."""

    name: str
    program: Program
    alphabet: np.ndarray                         # (k, d_input): every string over these is a valid input
    description: str
    input_kind: Literal["vectors", "tokens"] = "vectors"

    def sample(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """n random strings of the given length: (n, length, d_input) float."""
        return self.alphabet[rng.integers(0, len(self.alphabet), (n, length))].astype(np.float64)

    def strings(self, length: int) -> np.ndarray:
        """All strings of exactly ``length`` symbols (prefixes give every shorter one): (k^L, L, d)."""
        k = len(self.alphabet)
        idx = (np.arange(k ** length)[:, None] // k ** np.arange(length - 1, -1, -1)) % k
        return self.alphabet[idx].astype(np.float64)

    def max_exhaustive_len(self, budget: int = 4096, cap: int = 12) -> int:
        """The longest L with k^L <= budget (12 for bits)."""
        k, L = len(self.alphabet), 1
        while L < cap and k ** (L + 1) <= budget:
            L += 1
        return L


def _bits(name: str = "x") -> Input:
    return Input(1, name=name, low=0, high=1, grid=1)


def _onehot_alphabet(k: int) -> np.ndarray:
    return np.eye(k)


BITS = np.array([[0.0], [1.0]])


def counter() -> LibraryProgram:
    x = _bits()
    ones = LinState(x, 1, 1, name="ones")
    return LibraryProgram("counter", Program(x, {"ones": ones}, name="counter"), BITS, "ones read so far")


def majority() -> LibraryProgram:
    x = _bits()
    ones = LinState(x, 1, 1, name="ones")
    zeros = LinState(S.not_(x), 1, 1, name="zeros")
    more = S.larger(ones, zeros, scale=1)                  # counts are integers: a step of width 1 is exact
    return LibraryProgram("majority", Program(x, {"more": more}, name="majority"), BITS,
                          "1 while more ones than zeros so far (the paper's example)")


def mod_counter(n: int = 3) -> LibraryProgram:
    x = _bits()
    return LibraryProgram("mod_counter", Program(x, {f"(t-1) mod {n}": S.mod_counter(x, n)}, name="mod_counter"),
                          BITS, f"(t - 1) mod {n}, t the number of inputs read (0 at the first step, as official)")


def dfa_state(x: Node, delta: Sequence[Sequence[int]], start: int = 0, resets: Optional[dict] = None,
              name: str = "dfa") -> tuple[Node, Node]:
    """The DFA simulator on a one-hot symbol ``x``: (pair units, one-hot state (n,)).

    ``delta[q][a]`` is the next state or -1 (dead); ``resets`` maps a symbol to the state it leads
    to from anywhere (its row entries in ``delta`` are ignored).
    """
    n, k = len(delta), x.dim
    resets = dict(resets or {})
    if any(len(row) != k for row in delta):
        raise ValueError(f"{name}: every row of delta needs {k} entries (one per symbol of x)")
    if not 0 <= start < n or any(not -1 <= t < n for row in delta for t in row):
        raise ValueError(f"{name}: states must lie in 0..{n - 1} (-1 for a missing transition)")
    pairs = [(q, a) for q in range(n) for a in range(k) if a not in resets]
    N = len(pairs) + 1 + len(resets)             # pairs, the start unit, one unit per reset symbol
    D = sympy.zeros(n, N)                        # unit -> the state it leads to
    E = sympy.zeros(N, n)                        # pair (q, a) reads s[q]
    F = sympy.zeros(N, k)                        # and x[a]
    bias = sympy.zeros(N, 1)
    for u, (q, a) in enumerate(pairs):
        if delta[q][a] >= 0:
            D[delta[q][a], u] = 1
        E[u, q], F[u, a], bias[u] = 1, 1, -1
    D[start, len(pairs)] = 1
    bias[len(pairs)] = -1                        # the start unit fires only at t = 0 (its init)
    for i, (a, target) in enumerate(sorted(resets.items())):
        D[target, len(pairs) + 1 + i], F[len(pairs) + 1 + i, a] = 1, 1
    init = [0] * N
    init[len(pairs)] = 1
    units = ReLUState(x, E * D, F, bias, init, name=f"{name}_pairs", binary=True)
    return units, Linear(units, D, name=f"{name}_state")


def dfa(delta: Sequence[Sequence[int]] = EXAMPLE_DFA, start: int = 0, name: str = "dfa") -> LibraryProgram:
    k = len(delta[0])
    x = Input(k, low=0, high=1, grid=1)
    _, state = dfa_state(x, delta, start, name=name)
    return LibraryProgram(name, Program(x, {"state": state}, name=name), _onehot_alphabet(k),
                          f"one-hot state of a {len(delta)}-state automaton over {k} symbols (zero once dead)")


def parity() -> LibraryProgram:
    x = _bits()
    _, state = dfa_state(Concat([S.not_(x), x]), PARITY, name="parity")
    return LibraryProgram("parity", Program(x, {"parity": state[1]}, name="parity"), BITS,
                          "streaming parity: the DFA simulator on the 2-state parity automaton")


def lookup(n_keys: int = 2, n_values: int = 2, gate: Literal["mul", "relu"] = "mul",
           big: int = 10**6) -> LibraryProgram:
    """Associative memory: input [write key (K) | write value (V) | query key (K)], one-hot or 0.

    M_t = M_{t-1} + wk ⊗ wv (a LinState with A = I); the output is M_t^T q: how many times each
    value was stored under the queried key. ``gate="mul"`` writes and reads with the
    multiplicative gate; ``"relu"`` with an AND relu(k + v - 1) and a read relu(M - big (1 - q)).
    """
    K, V = n_keys, n_values
    x = Input(2 * K + V, low=0, high=1, grid=1)
    wk, wv, q = x[0:K], x[K:K + V], x[K + V:]
    rep = lambda v: Linear(v, sympy.Matrix(K * V, K, lambda i, j: int(i // V == j)))   # noqa: E731  v[k] at (k, ·)
    tile = lambda v: Linear(v, sympy.Matrix(K * V, V, lambda i, j: int(i % V == j)))  # noqa: E731  v[j] at (·, j)
    if gate == "mul":
        outer = Multiplicative(Concat([rep(wk), tile(wv)]), name="outer", binary_gate=True)
    elif gate == "relu":
        outer = ReLU(rep(wk) + tile(wv) - 1, name="outer")
    else:
        raise ValueError(f"lookup: gate must be mul or relu, got {gate!r}")
    memory = LinState(outer, 1, 1, name="memory")
    if gate == "mul":
        hits = Multiplicative(Concat([rep(q), memory]), name="read", binary_gate=True)
    else:
        hits = ReLU(memory - (1 - rep(q)) * big, name="read")
    out = Linear(hits, sympy.Matrix(V, K * V, lambda j, i: int(i % V == j)), name="values")
    events = [np.concatenate([np.eye(K)[k], np.eye(V)[v], np.zeros(K)]) for k in range(K) for v in range(V)]
    events += [np.concatenate([np.zeros(K + V), np.eye(K)[k]]) for k in range(K)]
    name = "lookup" if gate == "mul" else "lookup_relu"
    return LibraryProgram(name, Program(x, {"values": out}, name=name), np.array(events),
                          f"key-value memory ({K} keys, {V} values), written and read with {gate} gates")


def library(names: Optional[Sequence[str]] = None) -> dict[str, LibraryProgram]:
    """The library by name (a fresh copy each call)."""
    builders: dict[str, Callable[[], LibraryProgram]] = {
        "counter": counter, "majority": majority, "parity": parity, "mod_counter": mod_counter,
        "dfa": dfa, "lookup": lookup, "lookup_relu": lambda: lookup(gate="relu")}
    unknown = [n for n in names or [] if n not in builders]
    if unknown:
        raise ValueError(f"unknown library program {unknown[0]!r}; valid: {', '.join(builders)}")
    return {n: builders[n]() for n in (names or builders)}


# ---------------------------------------------------------------------------------------------
# ground truth for tasks
# ---------------------------------------------------------------------------------------------

def parity_task_program(scale: int = 1) -> Program:
    """Tokens 0, 1, pad (one-hot 3) -> logits (2): the prefix parity (pad leaves it unchanged)."""
    x = Input(3, name="token", low=0, high=1, grid=1)
    delta = [[q, 1 - q, q] for q in range(2)]
    _, state = dfa_state(x, delta, name="parity")
    return Program(x, {"logits": state * scale}, name="parity_task")


def regular_task_program(delta: Sequence[Sequence[int]], scale: int = 50) -> Program:
    """Tokens of ``regular`` (letters 0..17, ``|`` 18, pad 19) -> next-token logits for one automaton.

    The state after each token, reset to 0 by ``|``; logits ``scale`` on the legal next symbols
    (letters with an edge out of the state, plus ``|`` inside a string), 0 elsewhere, so the
    softmax is the task's uniform next-token distribution up to e^-scale.
    """
    n_letters, sep = 18, 18  # pad (19) gets no edges: its column of delta is -1 like the separator's
    delta = [list(row)[:n_letters] + [-1, -1] for row in delta]
    x = Input(n_letters + 2, name="token", low=0, high=1, grid=1)
    _, state = dfa_state(x, delta, resets={sep: 0}, name="regular")
    legal = sympy.zeros(n_letters + 2, len(delta))
    for q, row in enumerate(delta):
        for a in range(n_letters):
            legal[a, q] = int(row[a] >= 0)
    in_string = sympy.zeros(n_letters + 2, n_letters + 2)
    for a in range(n_letters):
        in_string[sep, a] = 1
    logits = Linear(state, legal * scale) + Linear(x, in_string * scale)
    return Program(x, {"logits": logits}, name="regular_task")


def for_task(task, automaton: int = 0) -> Program:
    """The exact ground-truth program of a task: ``parity``, or ``regular`` (one automaton of its pool)."""
    if task.name == "parity":
        return parity_task_program()
    if task.name == "regular":
        return regular_task_program(task.automaton(automaton).delta)
    raise ValueError(f"no ground-truth program for task {task.name!r}; available: parity, regular")


__all__ = ["BITS", "EXAMPLE_DFA", "LibraryProgram", "PARITY", "counter", "dfa", "dfa_state", "for_task",
           "library", "lookup", "majority", "mod_counter", "parity", "parity_task_program",
           "regular_task_program"]
