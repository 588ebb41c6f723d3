"""What values a program's blocks take: intervals over a horizon, and the grid they lie on.

    info = analyse(prog, horizon=1000)        # {node: Range}
    info[node].lo, info[node].hi              # (dim,) floats: every value at steps 1..horizon lies in [lo, hi]
    info[node].q                              # (dim,) exact Fractions: every value is a multiple of q (None: unknown)

The inputs come from the Input's declared ``low`` / ``high`` (unbounded when not declared) and its
``grid`` (inputs are multiples of it, e.g. 1 for bits and tokens). Intervals are propagated
through one step of the graph at a time, ``horizon`` times (stopping early once the states stop
changing), so a counter's range is what it reaches in ``horizon`` steps; blocks that no state
reads are evaluated once, on the union of their inputs' ranges. The grid is time
invariant: a multiple of q stays one under integer combinations, so it is a fixed point over
the graph (a non-rational weight, or a state whose grid keeps shrinking, gives None).

Sugar blocks say what they compute, and the analysis uses it where composing the pieces would
lose it: a step ``clamp(s x, 0, 1)`` lies in [0, 1] and is 0 or 1 whenever x's grid is at least
1/s (its two ReLUs, taken apart, would only give [-(s - 1), s]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from analyses.lsrl import graph as g
from analyses.lsrl.backends import float_array

BIG = 1e300


@dataclass
class Range:
    """Every value of one block: lo <= v <= hi, and v a multiple of q (per coordinate)."""

    lo: np.ndarray
    hi: np.ndarray
    q: list

    def binary(self, i: int) -> bool:
        """Whether coordinate i only takes the values 0 and 1."""
        return self.q[i] is not None and self.q[i] in (0, 1) and self.lo[i] >= 0 and self.hi[i] <= 1

    @property
    def mag(self) -> np.ndarray:
        """max |v| per coordinate."""
        return np.maximum(np.abs(self.lo), np.abs(self.hi))


# ---------------------------------------------------------------------------------------------
# grids (exact)
# ---------------------------------------------------------------------------------------------

def _frac(v) -> Fraction | None:
    v = sympy.sympify(v)
    return Fraction(int(v.p), int(v.q)) if v.is_Rational else None


def qgcd(a: Fraction | None, b: Fraction | None) -> Fraction | None:
    """The largest q with a and b multiples of q (gcd(0, b) = |b|); None if either is unknown."""
    if a is None or b is None:
        return None
    a, b = abs(a), abs(b)
    if a == 0:
        return b
    if b == 0:
        return a
    return Fraction(math.gcd(a.numerator * b.denominator, b.numerator * a.denominator), a.denominator * b.denominator)


def _affine_q(M, qs: list, bias=None) -> list:
    """Grid of M x + bias for x on grids qs."""
    out = [Fraction(0)] * M.rows if bias is None else [_frac(bias[i, 0]) for i in range(M.rows)]
    for (i, j), v in M.todok().items():
        if v == 0:
            continue
        w = _frac(v)
        out[i] = qgcd(out[i], None if w is None or qs[j] is None else w * qs[j])
    return out


# ---------------------------------------------------------------------------------------------
# intervals (float)
# ---------------------------------------------------------------------------------------------

def nan_to_num(x: np.ndarray, nan: float = 0.0, posinf: float | None = None) -> np.ndarray:
    """``np.nan_to_num(x, nan=nan, posinf=posinf)``, but ``x`` itself when every entry is finite:
    the same values, without numpy's three masks and a copy on every small interval map."""
    if np.isfinite(x).all():
        return x
    return np.nan_to_num(x, nan=nan, posinf=posinf)


def _iaffine(W: np.ndarray, lo: np.ndarray, hi: np.ndarray, b=None) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.clip(lo, -BIG, BIG), np.clip(hi, -BIG, BIG)
    Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
    with np.errstate(over="ignore", invalid="ignore"):
        olo, ohi = Wp @ lo + Wn @ hi, Wp @ hi + Wn @ lo
    olo, ohi = nan_to_num(olo, nan=-np.inf), nan_to_num(ohi, nan=np.inf)
    if b is not None:
        olo, ohi = olo + b, ohi + b
    return olo, ohi


class _Floats:
    def __init__(self):
        self.store = {}

    def __call__(self, M):
        key = id(M)
        if key not in self.store:
            self.store[key] = (M, float_array(M))
        return self.store[key][1]


def _grids(program, nodes) -> dict:
    """Grid per node (time invariant), states by fixed-point iteration."""
    x = program.input
    grid = getattr(x, "grid", None)
    q_in = [None if grid is None else _frac(grid)] * x.dim
    states = [n for n in nodes if n.stateful]
    sq = {n: [_frac(n.init[i, 0]) for i in range(n.dim)] for n in states}
    for it in range(40):
        q = {}
        for n in nodes:
            ins = [q[s] for s in g.sources(n)]
            if isinstance(n, g.Input):
                q[n] = list(q_in)
            elif isinstance(n, g.Linear):
                q[n] = _affine_q(n.A, ins[0], n.b)
            elif isinstance(n, g.Affine):
                parts = [_affine_q(A, i) for A, i in zip(n.As, ins)]
                q[n] = [qgcd(_frac(n.b[r, 0]), _fold(p[r] for p in parts)) for r in range(n.dim)]
            elif isinstance(n, g.Concat):
                q[n] = [v for i in ins for v in i]
            elif isinstance(n, g.ReLU):
                q[n] = list(ins[0])
            elif isinstance(n, g.Indicator):
                q[n] = [_clamp_q(v, Fraction(1)) for v in ins[0]]
            elif isinstance(n, g.Multiplicative):
                gate, val = ins[0][:n.dim], ins[0][n.dim:]
                q[n] = list(val) if n.binary_gate else [None if a is None or b is None else a * b
                                                        for a, b in zip(gate, val)]
            elif isinstance(n, g.LinState):
                rec = _affine_q(n.A, sq[n])
                inp = _affine_q(n.B, ins[0], n.bias)
                q[n] = [qgcd(qgcd(a, b), c) for a, b, c in zip(sq[n], rec, inp)]
            else:
                raise TypeError(f"{n.name}: unknown block kind {type(n).__name__}")
            clamp = getattr(n, "clamp", None)
            if clamp is not None and clamp[0] in q:
                q[n] = [_clamp_q(qz, _frac(clamp[1])) for qz in q[clamp[0]]]
        new = {n: q[n] for n in states}
        if new == sq or it == 39:
            return q
        sq = new if it < 38 else {n: [None] * n.dim for n in states}   # no fixed point: grid unknown
    return q
    return q


def _fold(vals) -> Fraction | None:
    out = Fraction(0)
    for v in vals:
        out = qgcd(out, v)
    return out


def _clamp_q(qz, s) -> Fraction | None:
    if qz is None or s is None:
        return None
    if qz == 0:
        return Fraction(0)
    return Fraction(1) if s * qz >= 1 else qgcd(s * qz, Fraction(1))


def _op(n, fl, ins: list, index: dict):
    """One block's interval map, as a closure over the values list of the current step."""
    if isinstance(n, g.Input):
        f = lambda v, st, lo, hi: (lo, hi)
    elif isinstance(n, g.Linear):
        A, b, i = fl(n.A), fl(n.b).reshape(-1), ins[0]
        f = lambda v, st, lo, hi: _iaffine(A, *v[i], b)
    elif isinstance(n, g.Affine):
        mats, b = [fl(A) for A in n.As], fl(n.b).reshape(-1)

        def f(v, st, lo, hi):
            olo, ohi = b.copy(), b.copy()
            for A, i in zip(mats, ins):
                dl, dh = _iaffine(A, *v[i])
                olo, ohi = olo + dl, ohi + dh
            return olo, ohi
    elif isinstance(n, g.Concat):
        f = lambda v, st, lo, hi: (np.concatenate([v[i][0] for i in ins]),
                                   np.concatenate([v[i][1] for i in ins]))
    elif isinstance(n, g.ReLU):
        i = ins[0]
        f = lambda v, st, lo, hi: (np.maximum(v[i][0], 0), np.maximum(v[i][1], 0))
    elif isinstance(n, g.Indicator):
        i = ins[0]
        f = lambda v, st, lo, hi: (np.clip(v[i][0], 0, 1), np.clip(v[i][1], 0, 1))
    elif isinstance(n, g.Multiplicative):
        i, d, binary = ins[0], n.dim, n.binary_gate

        def f(v, st, lo, hi):
            a, b = v[i]
            glo, ghi, vlo, vhi = a[:d], b[:d], a[d:], b[d:]
            if binary:
                return np.minimum(vlo, 0), np.maximum(vhi, 0)
            with np.errstate(invalid="ignore"):
                c = nan_to_num(np.stack([glo * vlo, glo * vhi, ghi * vlo, ghi * vhi]), nan=0.0)
            return c.min(0), c.max(0)
    elif isinstance(n, g.LinState):
        A, B, bias, i, k = fl(n.A), fl(n.B), fl(n.bias).reshape(-1), ins[0], index[n]
        relu, binary = isinstance(n, g.ReLUState), getattr(n, "binary", False)

        def f(v, st, lo, hi):
            rlo, rhi = _iaffine(A, *st[k])
            ilo, ihi = _iaffine(B, *v[i], bias)
            olo, ohi = rlo + ilo, rhi + ihi
            if relu:
                olo, ohi = np.maximum(olo, 0), np.maximum(ohi, 0)
                if binary:
                    olo, ohi = np.clip(olo, 0, 1), np.clip(ohi, 0, 1)
            return olo, ohi
    else:
        raise TypeError(f"{n.name}: unknown block kind {type(n).__name__}")
    clamp = getattr(n, "clamp", None)
    if clamp is None or clamp[0] not in index:
        return f
    s, z = float(clamp[1]), index[clamp[0]]

    def tight(v, st, lo, hi):
        olo, ohi = f(v, st, lo, hi)
        zl, zh = v[z]
        return np.maximum(olo, np.clip(s * zl, 0, 1)), np.minimum(ohi, np.clip(s * zh, 0, 1))
    return tight


def analyse(program, horizon: int = 1000) -> dict:
    """{node: Range} for every block of ``program`` over steps 1..horizon (see the module docstring)."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer (the longest input analysed), got {horizon!r}")
    nodes = program.nodes
    fl = _Floats()
    x = program.input
    lo_in = np.full(x.dim, -np.inf if x.low is None else float(x.low))
    hi_in = np.full(x.dim, np.inf if x.high is None else float(x.high))
    index = {n: k for k, n in enumerate(nodes)}
    ops = [_op(n, fl, [index[s] for s in g.sources(n)], index) for n in nodes]
    states = [k for k, n in enumerate(nodes) if n.stateful]
    # blocks a state reads (and the states) are followed step by step; the rest, read by no state,
    # once at the end from the union of their inputs' ranges (interval maps are monotone: sound)
    loop, stack = set(states), [index[s] for k in states for s in g.sources(nodes[k])]
    while stack:
        k = stack.pop()
        if k not in loop:
            loop.add(k)
            stack += [index[s] for s in g.sources(nodes[k])]
    order = [k for k in range(len(nodes)) if k in loop]
    state = {k: (fl(nodes[k].init).reshape(-1), fl(nodes[k].init).reshape(-1)) for k in states}
    acc_lo: list = [None] * len(nodes)
    acc_hi: list = [None] * len(nodes)
    for t in range(horizon if states else 1):
        v: list = [None] * len(nodes)
        for k in order:
            v[k] = ops[k](v, state, lo_in, hi_in)
        for k in order:
            lo, hi = v[k]
            if acc_lo[k] is None:
                acc_lo[k], acc_hi[k] = lo.copy(), hi.copy()
            else:
                np.minimum(acc_lo[k], lo, out=acc_lo[k])
                np.maximum(acc_hi[k], hi, out=acc_hi[k])
        new = {k: v[k] for k in states}
        if t > 0 and all(np.array_equal(new[k][0], state[k][0]) and np.array_equal(new[k][1], state[k][1])
                         for k in states):
            break                                                       # stationary: later steps repeat this one
        state = new
    v = [(acc_lo[k], acc_hi[k]) if k in loop else None for k in range(len(nodes))]
    for k in range(len(nodes)):
        if k not in loop:
            v[k] = ops[k](v, state, lo_in, hi_in)
            acc_lo[k], acc_hi[k] = v[k]
    acc = {n: (acc_lo[k], acc_hi[k]) for k, n in enumerate(nodes)}
    grids = _grids(program, nodes)
    return {n: Range(acc[n][0], acc[n][1], grids[n]) for n in nodes}


__all__ = ["Range", "analyse", "qgcd"]
