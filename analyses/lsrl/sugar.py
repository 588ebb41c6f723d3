"""Sugar: the usual derived blocks, each built only from the primitives of :mod:`graph`.

Each function states its defining equation; the tests check it on random inputs in both
backends. ``scale`` is the steepness of the ReLU step: ``step(x) = clamp(scale * x, 0, 1)``, so a
comparison is exact whenever its operands differ by 0 or by at least ``1 / scale`` (``scale=1``
suffices for integers). ``big`` bounds the values an if-else by ReLU can pass (paper: 1e10).

    step(x)          = clamp(scale x, 0, 1)                    relu(s x) - s relu(x - 1/s)
    bump(x, lo, hi)  = step(x - lo) - step(x - hi)
    eq(x, y)         = step(1 - step(x - y) - step(y - x))    1 iff x == y
    neq(x, y)        = step(step(x - y) + step(y - x))
    larger(x, y)     = step(x - y)         smaller(x, y) = step(y - x)
    not_(c)          = 1 - c               and_(a, b) = relu(step(a) + step(b) - 1)
    or_(a, b)        = step(a + b)
    ifelse(c, t, f)  = c t + (1 - c) f     by four ReLUs and the constant big (c in {0, 1}, |t|, |f| <= big)
    ifelse_mul(c, t, f) = c t + (1 - c) f  by one Multiplicative gate
    ifelse_step(c, t, f) = ifelse(step(c - 1/2), t, f)      the official f_ifelse_step: c thresholded at 1/2 first
    ifeq(x, y, t, f) = ifelse(eq(x, y), t, f)                   the official f_ifeq
    relu_identity(x) = relu(x) - relu(-x) = x
    mod_counter(x, n) = (t - 1) mod n      t = inputs read so far: 0, 1, ..., n-1, 0, ... (the official
                                           f_modulo_counter's phase; ``first=1`` gives t mod n)

Defaults are the official repository's (Petrov et al., github.com/AleksandarPetrov/LSRL, sugar_blocks.py):
step scale 1000 and ``big`` (its ``large_constant``) 1e10.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

import sympy

from analyses.lsrl.graph import (
    Concat,
    Linear,
    LinState,
    Multiplicative,
    Node,
    ReLU,
    exact,
)

Operand = Union[Node, int, float, sympy.Basic]


def const(x: Node, value) -> Linear:
    """A constant vector (x is read only to anchor the block in the graph)."""
    vals = list(value) if isinstance(value, (list, tuple)) else [value]
    return Linear(x, sympy.zeros(len(vals), x.dim), [[exact(v)] for v in vals], name=None)


def _node(v: Operand, like: Node) -> Node:
    return v if isinstance(v, Node) else const(like, [v] * like.dim)


def _broadcast(c: Node, dim: int) -> Node:
    """A 1-dimensional condition repeated ``dim`` times."""
    if c.dim == dim:
        return c
    if c.dim != 1:
        raise ValueError(f"'{c.name}': condition of dimension {c.dim} cannot broadcast to {dim}")
    return Linear(c, sympy.ones(dim, 1))


def step(x: Node, scale=1000) -> Node:
    """clamp(scale x, 0, 1): 0 for x <= 0, 1 for x >= 1/scale."""
    s = exact(scale)
    if not s > 0:
        raise ValueError(f"step of '{x.name}': scale must be positive, got {scale!r}")
    out = ReLU(x * s) - ReLU(x - 1 / s) * s
    out.clamp = (x, s)                  # what it computes, for the compiler's analysis (harden.py)
    return out


def bump(x: Node, lo: Operand, hi: Operand, scale=1000) -> Node:
    """step(x - lo) - step(x - hi): 1 on [lo + 1/scale, hi], 0 outside (lo, hi + 1/scale)."""
    return step(x - _node(lo, x), scale) - step(x - _node(hi, x), scale)


def larger(x: Operand, y: Operand, scale=1000) -> Node:
    """1 where x > y (by at least 1/scale), 0 where x <= y."""
    x = x if isinstance(x, Node) else _node(x, y)
    return step(x - _node(y, x), scale)


def smaller(x: Operand, y: Operand, scale=1000) -> Node:
    """1 where x < y (by at least 1/scale), 0 where x >= y."""
    x = x if isinstance(x, Node) else _node(x, y)
    return step(_node(y, x) - x, scale)


def eq(x: Operand, y: Operand, scale=1000) -> Node:
    """1 where x == y, 0 where they differ by at least 1/scale."""
    x = x if isinstance(x, Node) else _node(x, y)
    y = _node(y, x)
    return step(1 - step(x - y, scale) - step(y - x, scale), scale)


def neq(x: Operand, y: Operand, scale=1000) -> Node:
    """1 - eq(x, y)."""
    x = x if isinstance(x, Node) else _node(x, y)
    y = _node(y, x)
    return step(step(x - y, scale) + step(y - x, scale), scale)


def not_(c: Node) -> Node:
    """1 - c (c in {0, 1})."""
    return 1 - c


def and_(a: Node, b: Node, scale=1000) -> Node:
    """1 where both a and b are positive (at least 1/scale)."""
    z = step(a, scale) + step(b, scale) - 1
    out = ReLU(z)
    out.clamp = (z, exact(1))           # relu(z) = clamp(z, 0, 1) since z <= 1
    return out


def or_(a: Node, b: Node, scale=1000) -> Node:
    """1 where a + b is positive (a, b >= 0)."""
    return step(a + b, scale)


def ifelse(cond: Node, t: Optional[Operand], f: Optional[Operand], big=10**10) -> Node:
    """c t + (1 - c) f by ReLUs: relu(f - big c) - relu(-f - big c) + relu(t - big (1-c)) - relu(-t - big (1-c)).

    Exact for c in {0, 1} and |t|, |f| <= big; t or f None means 0.
    """
    if t is None and f is None:
        raise ValueError(f"ifelse on '{cond.name}': give t, f or both")
    like = t if isinstance(t, Node) else f if isinstance(f, Node) else cond
    c = _broadcast(cond, like.dim)
    L = exact(big)
    out, vals = None, {}
    for key, val, off in (("f", f, c), ("t", t, not_(c))):
        if val is None:
            continue
        v = vals[key] = _node(val, c)
        part = ReLU(v - off * L) - ReLU(-v - off * L)
        out = part if out is None else out + part
    out.ifelse = {"cond": c, "t": vals.get("t"), "f": vals.get("f"), "big": L}   # for harden.py
    return out


def ifelse_mul(cond: Node, t: Optional[Operand], f: Optional[Operand]) -> Node:
    """c t + (1 - c) f with the multiplicative gate: Multiplicative([c, 1 - c, t, f]) then a sum."""
    if t is None and f is None:
        raise ValueError(f"ifelse_mul on '{cond.name}': give t, f or both")
    like = t if isinstance(t, Node) else f if isinstance(f, Node) else cond
    c = _broadcast(cond, like.dim)
    if f is None:
        tv = _node(t, c)
        out = Multiplicative(Concat([c, tv]), binary_gate=True)
        out.ifelse = {"cond": c, "t": tv, "f": None, "big": None, "gate": True}
        return out
    if t is None:
        fv = _node(f, c)
        out = Multiplicative(Concat([not_(c), fv]), binary_gate=True)
        out.ifelse = {"cond": c, "t": None, "f": fv, "big": None, "gate": True}
        return out
    n = c.dim
    tv, fv = _node(t, c), _node(f, c)
    m = Multiplicative(Concat([c, not_(c), tv, fv]), binary_gate=True)
    out = Linear(m, sympy.ImmutableMatrix.hstack(sympy.eye(n), sympy.eye(n)))
    out.ifelse = {"cond": c, "t": tv, "f": fv, "big": None, "gate": True}      # for harden.py
    return out


def ifelse_step(cond: Node, t: Optional[Operand], f: Optional[Operand], big=10**10, scale=1000) -> Node:
    """The official ``f_ifelse_step``: t where cond > 1/2, f where cond < 1/2 (within 1/scale).

    relu(-big + big step(c - 1/2) + t) - relu(-big + big step(c - 1/2) - t)
    + relu(-big + big step(1/2 - c) + f) - relu(-big + big step(1/2 - c) - f).
    The condition is thresholded first, so a condition near 0 or 1 selects cleanly.
    """
    if t is None and f is None:
        raise ValueError(f"ifelse_step on '{cond.name}': give t, f or both")
    like = t if isinstance(t, Node) else f if isinstance(f, Node) else cond
    c = _broadcast(cond, like.dim)
    L, half = exact(big), sympy.Rational(1, 2)
    out, vals, on_t = None, {}, None
    for key, val, on in (("t", t, step(c - half, scale)), ("f", f, step(half - c, scale))):
        on_t = on if key == "t" else on_t
        if val is None:
            continue
        v = vals[key] = _node(val, c)
        part = ReLU(on * L - L + v) - ReLU(on * L - L - v)
        out = part if out is None else out + part
    out.ifelse = {"cond": on_t, "t": vals.get("t"), "f": vals.get("f"), "big": L, "step_of": c}
    return out


def ifeq(x: Operand, y: Operand, t: Optional[Operand], f: Optional[Operand], scale=1000, big=10**10) -> Node:
    """The official ``f_ifeq``: ifelse(eq(x, y, scale), t, f, big)."""
    return ifelse(eq(x, y, scale), t, f, big)


def relu_identity(x: Node) -> Node:
    """relu(x) - relu(-x) = x: how a value passes a ReLU layer unchanged."""
    return ReLU(x) - ReLU(-x)


def mod_counter(x: Node, n: int, method: Literal["shift", "rotation"] = "shift", onehot: bool = False,
                name: str = "mod", first: int = 0) -> Node:
    """The official ``f_modulo_counter``: 0, 1, ..., n-1, 0, ... (x is read only to anchor the block).

    At step t (1 for the first input) the value is (t - 1 + first) mod n; ``first=1`` gives t mod n,
    this module's phase before it matched the official one. n = 1 is accepted (always 0).
    ``shift``: a one-hot LinState rotated by the cyclic permutation (exact in rationals, linear: no
    ReLU). ``rotation`` (the official construction): a unit vector turned by 2π/n per step, read out
    by n dot products thresholded at cos(π/n) with ReLU steps (steep enough for any n, where the
    official's fixed scale 1000 stops separating neighbours for n > ~70).
    ``onehot=True`` returns the one-hot phase (n,) instead of the value.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"mod_counter: n must be an integer >= 1, got {n!r}")
    if isinstance(first, bool) or not isinstance(first, int):
        raise ValueError(f"mod_counter: first must be an integer (the value at the first step), got {first!r}")
    k0 = (first - 1) % n                                   # the phase before the first step
    if method == "shift":
        P = sympy.zeros(n, n)
        for k in range(n):
            P[(k + 1) % n, k] = 1
        init = [0] * n
        init[k0] = 1
        phase = LinState(x, P, sympy.zeros(n, x.dim), init=init, name=f"{name}_phase")
    elif method == "rotation":
        a = 2 * sympy.pi / n
        R = sympy.Matrix([[sympy.cos(a), -sympy.sin(a)], [sympy.sin(a), sympy.cos(a)]])
        turn = LinState(x, R, sympy.zeros(2, x.dim), init=[sympy.cos(k0 * a), sympy.sin(k0 * a)],
                        name=f"{name}_angle")
        readout = sympy.Matrix([[sympy.cos(k * a), sympy.sin(k * a)] for k in range(n)])   # rows (R^k u)^T
        margin = 1 - sympy.cos(a / 2)              # the closest non-matching dot product sits below cos(a/2) too
        phase = larger(Linear(turn, readout), sympy.cos(a / 2), scale=sympy.ceiling(2 / margin)) if n > 1 else \
            Linear(turn, [[0, 0]], [1])             # n = 1: one phase, always on (official: cos(π) = -1 threshold)
    else:
        raise ValueError(f"mod_counter: unknown method {method!r}; valid choices: shift, rotation")
    out = phase if onehot else Linear(phase, [list(range(n))], name=name)
    out.modcounter = {"anchor": x, "n": n, "method": method, "onehot": onehot, "first": first}   # for harden.py
    return out


__all__ = ["and_", "bump", "const", "eq", "ifelse", "ifelse_mul", "ifelse_step", "ifeq", "larger", "mod_counter", "neq", "not_",
           "or_", "relu_identity", "smaller", "step"]
