"""The program library: ground-truth programs with the inputs they are meant for.

    counter()            ones read so far                         LinState, A = B = 1
    majority()           1 while more ones than zeros so far       two counters and a ReLU step (paper's example)
    parity()             streaming parity                          the DFA simulator on the parity automaton
    mod_counter(n)       0, 1, ..., n-1, 0, ... (official phase)   a one-hot state turned by a cyclic shift
    dfa(delta)           the state of any automaton (one-hot)      ReLUState over (state, symbol) pairs
    lookup(K, V, gate)   values stored under the queried key        outer-product memory, read by a gate

and the official repository's programs at its defaults (scale 1000, big 1e10, rotation counters):
    official_counters    ones, steps from 0, f_modulo_counter(3)
    more_ones_or_zeros   the paper's notebook, f_larger at scale 1000
    official_ifelse      f_ifelse, f_ifeq, f_ifelse_step, f_ifelse_mul
    kv_lookup            the key -> value lookup of the universal-approximation notebook

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
    sampler: Optional[Callable] = None            # (rng, n, length) -> inputs, for structured inputs
    horizon: Optional[int] = None                 # the input length the program is meant for (None: any)

    def sample(self, rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        """n random strings of the given length: (n, length, d_input) float."""
        if self.sampler is not None:
            return self.sampler(rng, n, length)
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


# ---------------------------------------------------------------------------------------------
# the official repository's programs (Petrov et al., github.com/AleksandarPetrov/LSRL), at its
# defaults: step scale 1000, big 1e10, the rotation modulo counter
# ---------------------------------------------------------------------------------------------

def official_counters(n: int = 3) -> LibraryProgram:
    """The official counters: ones read (LinState, A = B = 1), the step counter from 0 (the
    universal-approximation notebook's GlobalCounter, init -1 fed a constant 1), and
    f_modulo_counter(n) (the rotation construction): (ones, t - 1, (t - 1) mod n)."""
    x = _bits()
    ones = LinState(x, 1, 1, name="ones")
    steps = LinState(S.const(x, 1), 1, 1, init=-1, name="global_counter")
    mod = S.mod_counter(x, n, method="rotation", name="mod")
    return LibraryProgram("official_counters", Program(x, {"ones": ones, "t-1": steps, f"(t-1) mod {n}": mod},
                                                       name="official_counters"), BITS,
                          f"the official counters: ones, steps from 0, f_modulo_counter({n})")


def more_ones_or_zeros() -> LibraryProgram:
    """The official more_ones_or_zeros notebook: f_larger(ones, zeros) at the default scale 1000."""
    x = _bits()
    ones = LinState(x, 1, 1, name="Counter1s")
    zeros = LinState(S.not_(x), 1, 1, name="Counter0s")
    return LibraryProgram("more_ones_or_zeros", Program(x, {"more": S.larger(ones, zeros)}, name="more_ones_or_zeros"),
                          BITS, "1 while more ones than zeros so far (official notebook, scale 1000)")


def official_ifelse() -> LibraryProgram:
    """The official if-else constructions on a selector k and a value v (integers 0..3), with s the
    running sum of v: f_ifelse(eq(k, 2), s, -s), f_ifeq(k, 1, v, s), f_ifelse_step(larger(k, 1), s, v),
    f_ifelse_mul(smaller(k, 2), v, s), all at scale 1000 and big 1e10."""
    x = Input(2, low=0, high=3, grid=1)
    k, v = x[0], x[1]
    s = LinState(v, 1, 1, name="sum")
    outs = {"ifelse": S.ifelse(S.eq(k, 2), s, -s), "ifeq": S.ifeq(k, 1, v, s),
            "ifelse_step": S.ifelse_step(S.larger(k, 1), s, v), "ifelse_mul": S.ifelse_mul(S.smaller(k, 2), v, s)}
    alphabet = np.array([[a, b] for a in range(4) for b in range(4)], dtype=float)
    return LibraryProgram("official_ifelse", Program(x, outs, name="official_ifelse"), alphabet,
                          "the official f_ifelse, f_ifeq, f_ifelse_step, f_ifelse_mul at scale 1000, big 1e10")


def kv_lookup(seq_len: int = 2, n_pairs: int = 3, vocab: int = 4, scale: int = 1000) -> LibraryProgram:
    """The key -> value lookup of the official discrete universal-approximation notebook.

    Input: a query of ``seq_len`` tokens, then ``n_pairs`` pairs (key, value), each ``seq_len``
    tokens in 1..vocab (keys distinct). Over the last ``seq_len`` steps the output is the value
    stored under the query. As in the notebook: a step counter from 0, modulo counters of
    period seq_len and 2 seq_len, the query copied into a register, a match buffer (a shift
    register) over compare phases, and output registers filled while copying the matched value.
    """
    T, sc = seq_len, scale
    x = Input(1, name="token", low=0, high=vocab, grid=1)
    half = sympy.Rational(1, 2)
    counter = LinState(S.const(x, 1), 1, 1, init=-1, name="global_counter")
    modT = S.mod_counter(x, T, method="rotation", name="modT")
    mod2T = S.mod_counter(x, 2 * T, method="rotation", name="mod2T")
    is_prompt = S.larger(counter, T - half, scale=sc)
    is_compare = S.larger(mod2T, T - half, scale=sc)
    is_copy = S.and_(is_prompt, S.not_(is_compare), scale=sc)
    first_of_copy = S.and_(is_copy, S.smaller(modT, half, scale=sc), scale=sc)
    at = [S.and_(S.larger(modT, i - half, scale=sc), S.smaller(modT, i + half, scale=sc), scale=sc) for i in range(T)]
    query_in = S.ifelse_mul(S.smaller(is_prompt, half, scale=sc), x, None)
    query = LinState(Concat([S.ifelse_mul(at[i], query_in, None) for i in range(T)]), 1, 1, name="query")
    expected = Linear(Concat([S.ifelse_mul(at[i], query[i], None) for i in range(T)]), [[1] * T], name="expected")
    matching = S.and_(S.and_(S.larger(x, expected - half, scale=sc), S.smaller(x, expected + half, scale=sc),
                             scale=sc), is_compare, scale=sc)
    shift = sympy.zeros(T + 1, T + 1)
    for i in range(T):
        shift[i, i + 1] = 1
    buffer = LinState(matching, shift, [[0]] * T + [[1]], name="buffer")
    all_match = S.larger(Linear(buffer, [[1] * T + [0]]), T - half, scale=sc)
    started_on = LinState(S.ifelse_mul(S.and_(all_match, first_of_copy, scale=sc), counter, None), 1, 1,
                          name="started_on")
    copying = S.smaller(counter, started_on + T, scale=sc)
    copy_on = S.and_(is_copy, copying, scale=sc)
    registers = [LinState(S.ifelse_mul(S.larger(S.and_(copy_on, at[i], scale=sc), half, scale=sc), x, None), 1, 1,
                          name=f"register{i}") for i in range(T)]
    out = Linear(Concat([S.ifelse_mul(S.larger(at[i], half, scale=sc), registers[i], None) for i in range(T)]),
                 [[1] * T], name="answer")
    length = T * (1 + 2 * n_pairs)

    def sampler(rng: np.random.Generator, n: int, L: int = length) -> np.ndarray:
        rows = []
        for _ in range(n):
            keys = set()
            while len(keys) < n_pairs:
                keys.add(tuple(rng.integers(1, vocab + 1, T)))
            keys = list(keys)
            values = [tuple(rng.integers(1, vocab + 1, T)) for _ in keys]
            q = keys[rng.integers(len(keys))]
            rows.append(list(q) + [t for k, v in zip(keys, values) for t in k + v])
        return np.asarray(rows, dtype=np.float64)[:, :L, None]

    return LibraryProgram("kv_lookup", Program(x, {"answer": out}, name="kv_lookup"),
                          np.arange(1, vocab + 1, dtype=float)[:, None],
                          f"key -> value lookup of the official universal-approximation notebook ({n_pairs} pairs "
                          f"of {T}-token keys and values over {vocab} tokens)", sampler=sampler, horizon=length)


OFFICIAL = ("official_counters", "more_ones_or_zeros", "official_ifelse", "kv_lookup")


def library(names: Optional[Sequence[str]] = None) -> dict[str, LibraryProgram]:
    """The library by name (a fresh copy each call)."""
    builders: dict[str, Callable[[], LibraryProgram]] = {
        "counter": counter, "majority": majority, "parity": parity, "mod_counter": mod_counter,
        "dfa": dfa, "lookup": lookup, "lookup_relu": lambda: lookup(gate="relu"),
        "official_counters": official_counters, "more_ones_or_zeros": more_ones_or_zeros,
        "official_ifelse": official_ifelse, "kv_lookup": kv_lookup}
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


__all__ = ["BITS", "EXAMPLE_DFA", "OFFICIAL", "PARITY", "LibraryProgram", "counter", "dfa", "dfa_state", "for_task",
           "kv_lookup", "library", "lookup", "majority", "mod_counter", "more_ones_or_zeros", "official_counters",
           "official_ifelse", "parity", "parity_task_program", "regular_task_program"]
