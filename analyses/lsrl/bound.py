"""A worst-case bound on a compiled model's output error, computed before the model is used.

For every unit of every stage the bound tracks e, the largest difference between the value the
model carries and the program's exact value, step by step over the horizon:

    e_pre = |W| e_in + |A| e_prev + rho              rho = (terms + 3) u (|W| M_in + |b| + |A| M)
    e     = local(target, kind, e_pre, ranges)

where u is the unit round-off of the model's dtype and M the largest magnitudes the analysis
(:mod:`analyses.lsrl.analysis`) proves for the channels. The weights carry every amplification:
a big of 1e10 multiplies the error of the condition it reads, a step of scale 1000 the error of
its input. The local terms per construction (see :mod:`analyses.lsrl.export_gated`):

    linear, hawk  lin: e_pre                   hawk product: G e_v + V e_g + e_v e_g
    elman         lin, relu: e_pre (0 for a ReLU whose input stays below -e_pre); switch: 2 e_pre;
                  no rounding at all where every term is a multiple of one power-of-two grid
                  (integer programs on integer inputs run exactly)
    lstm          small signal (2/3)(ε Y)² Y + 6 u Y on top of e_pre (Y the unit's largest value);
                  ReLU gate + margin; a switch or gate whose input error stays below 0.45 is exact
    gru           as lstm with (ε Y)² Y / 3; a ReLU or gate pair adds the read-out's cancellation
                  4 u / ε; a binary unit is exact while its input error stays below 0.45

A gate whose input error could reach 0.45 may flip: the bound then adds the whole value it gates.
The output bound is |W_out| e_last + the read-out's rounding, the largest over the horizon.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy

from analyses.lsrl import graph as g
from analyses.lsrl.analysis import _frac, nan_to_num, qgcd
from analyses.lsrl.backends import float_array
from analyses.lsrl.chain import Chain, Stage

FLIP = 0.45             # a saturated switch / gate is exact while its input's error stays below this


@dataclass
class UnitRanges:
    """Per unit of a stage: the magnitude it carries (Y), its pre-activation's largest value (pre_hi),
    and for products the gate's and value's magnitudes."""

    val: np.ndarray        # (n,) max |channel value|
    Y: np.ndarray          # (n,) max |what the unit carries| (unit value; the open pre for a ReLU)
    pre_hi: np.ndarray     # (n,) largest pre-activation (relu: closed when < -e_pre)
    gate: np.ndarray       # (n,) max |gate| (mul)
    q: list = None         # (n,) exact grid of the channel value (None: unknown)


def _r(info, node, i):
    r = info.get(node)
    if r is None:
        return -math.inf, math.inf
    return float(r.lo[i]), float(r.hi[i])


def stage_ranges(stage: Stage, prog, info: dict) -> UnitRanges:
    """Ranges of a stage's units from the program analysis (by block name and coordinate)."""
    names = {n.name: n for n in prog.nodes}
    n = stage.n
    val, Y, pre_hi, gate = (np.full(n, math.inf) for _ in range(4))
    qs: list = [None] * n
    for r in range(n):
        node, i = names.get(stage.node[r]), stage.index[r]
        off = float(stage.offset[r, 0]) if stage.offset is not None else 0.0
        if node is None:                                                  # the "started" unit
            val[r] = Y[r] = pre_hi[r] = 1.0
            gate[r] = 0.0
            qs[r] = Fraction(1)
            continue
        lo, hi = _r(info, node, i)
        if node in info:
            qs[r] = info[node].q[i]
        lo, hi = lo - (0.0 if stage.is_pass[r] else off), hi - (0.0 if stage.is_pass[r] else off)
        if not stage.is_pass[r] and stage.offset is not None and stage.offset[r, 0] != 0:
            qs[r] = qgcd(qs[r], _frac(stage.offset[r, 0]))
        val[r] = max(abs(lo), abs(hi))
        kind = stage.kind[r]
        if stage.is_pass[r] or kind == "lin":
            Y[r] = val[r]
            pre_hi[r] = hi
            gate[r] = 0.0
        elif kind in ("relu", "ind"):
            src = g.resolve(node.inputs[0])
            _plo, phi = _r(info, src, i) if not isinstance(node, g.LinState) else (lo, hi)
            pre_hi[r] = phi
            Y[r] = max(phi, 0.0) if kind == "relu" else 1.0
            gate[r] = 0.0
        else:                                                             # mul
            src = g.resolve(node.inputs[0])
            glo, ghi = _r(info, src, i)
            vlo, vhi = _r(info, src, node.dim + i)
            gate[r] = max(abs(glo), abs(ghi))
            Y[r] = max(abs(vlo), abs(vhi))
            pre_hi[r] = math.inf
    return UnitRanges(val, Y, pre_hi, gate, qs)


@dataclass
class Bound:
    """The compile-time error bound: per output, per unit, and where it first exceeds a tolerance."""

    output: np.ndarray                   # (d_output,) bound on |model - program| per output
    units: list                          # per stage (n,) bound on each unit's channel error
    labels: list                         # per stage unit labels
    horizon: int
    notes: list = field(default_factory=list)

    @property
    def value(self) -> float:
        return float(self.output.max()) if self.output.size else 0.0

    def culprit(self, tol: float) -> tuple[str, float]:
        """The first unit (in stage order) whose bound exceeds ``tol``, and that bound."""
        for s, (e, lab) in enumerate(zip(self.units, self.labels)):
            bad = np.flatnonzero(~(e <= tol))
            if bad.size:
                return f"{lab[bad[0]].split(' (')[0]}", float(e[bad[0]])
        return "output read-out", self.value


def _abs(M) -> np.ndarray:
    return np.abs(M if isinstance(M, np.ndarray) else float_array(M))


def _nnz(M: np.ndarray) -> np.ndarray:
    return (M != 0).sum(1)


def error_bound(chain: Chain, prog, info: dict, target: str, dtype_u: float, eps: list, margin: float,
                horizon: int, input_mag: np.ndarray) -> Bound:
    """Bound the output error of ``chain`` compiled to ``target`` (see the module docstring).

    ``eps``: per stage, the small-signal scale of each unit (lstm, gru; ignored otherwise);
    ``input_mag``: (d_input,) the largest |input| per channel.
    """
    u = dtype_u
    stages = []
    M_in = np.asarray(input_mag, dtype=np.float64)
    grid = getattr(prog.input, "grid", None)
    q_in = [None if grid is None else _frac(grid)] * chain.d_input
    for s, ev in zip(chain.stages, eps):
        ur = stage_ranges(s, prog, info)
        W, A, G = _abs(s.W), _abs(s.A), _abs(s.G)
        b, gb = _abs(s.b).reshape(-1), _abs(s.g).reshape(-1)
        with np.errstate(invalid="ignore", over="ignore"):
            size = _dot(W, M_in) + b + _dot(A, ur.val)
            rho = (_nnz(W) + _nnz(A) + 3) * u * size
            rho_g = (_nnz(G) + 3) * u * (_dot(G, M_in) + gb)
            if target == "lstm":                  # an accumulator's recurrence is c = c + i g: one rounding
                acc = _accumulators(s)
                rho[acc] = ((_nnz(W) + 3) * u * (_dot(W, M_in) + b))[acc]
            elif target == "gru":                 # n = tanh(ε pre_x + r (A' h + 0)): two roundings of A h
                rec = np.array([k == "lin" for k in s.kind]) & np.array(s.recurrent, dtype=bool)
                rho[rec] = ((_nnz(W) + 3) * u * (_dot(W, M_in) + b) + 2 * u * _dot(A, ur.val))[rec]
        if target in ("linear", "elman", "hawk"):                  # float sums of grid values are exact
            rows = _rows(s)
            for r in range(s.n):
                if s.kind[r] != "mul" and _exact_row(s, r, rows, q_in, ur.q, size[r], u):
                    rho[r] = 0.0
        stages.append((s, ur, W, A, G, rho, rho_g, np.broadcast_to(np.asarray(ev, dtype=float), (s.n,))))
        M_in, q_in = ur.val, ur.q
    W_out, b_out = _abs(chain.W_out), _abs(chain.b_out).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        rho_out = (_nnz(W_out) + 3) * u * (_dot(W_out, M_in) + b_out)
    if target in ("linear", "elman", "hawk"):
        from analyses.lsrl.chain import Stage as _S
        ro = _S(["lin"] * chain.W_out.rows, chain.W_out, chain.b_out, chain.W_out * 0, chain.b_out * 0,
                sympy.ImmutableSparseMatrix.zeros(chain.W_out.rows, chain.W_out.rows), chain.b_out * 0,
                [""] * chain.W_out.rows, [0] * chain.W_out.rows, [False] * chain.W_out.rows,
                [False] * chain.W_out.rows, [False] * chain.W_out.rows)
        rows = _rows(ro)
        for r in range(ro.n):
            if _exact_row(ro, r, rows, q_in, [None] * ro.n, rho_out[r] / u, u):
                rho_out[r] = 0.0
    prev = [np.zeros(s.n) for s in chain.stages]
    worst = [np.zeros(s.n) for s in chain.stages]
    out_worst = np.zeros(chain.W_out.rows)
    for _t in range(horizon):
        x_err = np.zeros(chain.d_input)
        new, outs = [], []
        for (s, ur, W, A, G, rho, rho_g, ev), ep in zip(stages, prev):
            with np.errstate(invalid="ignore", over="ignore"):
                e_pre = _dot(W, x_err) + _dot(A, ep) + rho
                e_gate = _dot(G, x_err) + rho_g
            e, e_state = _local(target, s, ur, e_pre, e_gate, ev, margin, u)
            new.append(e_state)
            outs.append(e)
            x_err = e
        with np.errstate(invalid="ignore", over="ignore"):
            out = _dot(W_out, x_err) + rho_out
        out_worst = np.maximum(out_worst, nan_to_num(out, nan=np.inf))
        worst = [np.maximum(w, nan_to_num(e, nan=np.inf)) for w, e in zip(worst, outs)]
        if all(np.array_equal(a, b) for a, b in zip(new, prev)):
            break                                                         # stationary
        prev = new
    return Bound(out_worst, worst, [s.labels() for s in chain.stages], horizon)


def _accumulators(s: Stage) -> np.ndarray:
    """(n,) lin units whose recurrence is y_t = y_{t-1} + input (the lstm keeps them in its cell)."""
    rows: dict = {}
    for (i, j), v in s.A.todok().items():
        if v != 0:
            rows.setdefault(i, []).append((j, v))
    return np.array([k == "lin" and rows.get(r) == [(r, 1)] for r, k in enumerate(s.kind)], dtype=bool)


def _dyadic(q) -> bool:
    return q is not None and q.denominator & (q.denominator - 1) == 0


def _rows(s: Stage) -> dict:
    out: dict = {}
    for key, M in (("W", s.W), ("A", s.A)):
        for (i, j), v in M.todok().items():
            if v != 0:
                out.setdefault((key, i), []).append((j, v))
    return out


def _exact_row(s: Stage, r: int, rows: dict, q_in: list, q_self: list, size: float, u: float) -> bool:
    """Whether unit r's pre-activation is computed exactly in floating point: every term is a
    multiple of one power-of-two grid q and every partial sum stays below q / u."""
    q = _frac(s.b[r, 0])
    if q is None or not _dyadic(abs(q)):
        return False
    q = abs(q)
    for key, qs in (("W", q_in), ("A", q_self)):
        for j, v in rows.get((key, r), []):
            w = _frac(v)
            if w is None or qs[j] is None or not _dyadic(abs(w)):
                return False
            q = qgcd(q, w * qs[j])
    return q is not None and (q == 0 or (_dyadic(q) and math.isfinite(size) and size < float(q) / u / 4))


def _dot(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """M @ v with 0 * inf = 0."""
    if not M.size:
        return np.zeros(M.shape[0])
    v = np.where(M.any(0), v, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        return nan_to_num(M @ np.clip(v, 0, 1e300), nan=np.inf, posinf=np.inf)


def _local(target: str, s: Stage, ur: UnitRanges, e_pre, e_gate, ev, margin: float, u: float):
    """(error of each unit's output, error of the state it carries to the next step)."""
    e = np.array(e_pre, dtype=np.float64)
    state = e.copy()
    rec = s.recurrent
    acc = _accumulators(s) if target == "lstm" else np.zeros(s.n, dtype=bool)
    for r, kind in enumerate(s.kind):
        if acc[r]:
            eps = ev[r]                                    # accumulator: c += tanh(ε Δ), read h = tanh(c)
            state[r] = e_pre[r] + u * ur.Y[r]
            e[r] = state[r] + (eps * ur.Y[r]) ** 2 * ur.Y[r] / 3 + 2 * u * ur.Y[r]
            continue
        if target == "gru" and kind == "lin" and rec[r]:   # h = tanh(h + ε pre): the state is the read
            Y, eps = ur.Y[r], ev[r]
            e[r] = state[r] = e_pre[r] + (eps * Y) ** 2 * Y / 3 + 2 * u * Y
            continue
        Y, eps = ur.Y[r], ev[r]
        closed = kind == "relu" and ur.pre_hi[r] + e_pre[r] <= 0
        if closed:
            e[r] = state[r] = 0.0
            continue
        if target in ("linear", "hawk"):
            if kind == "mul":
                e[r] = state[r] = ur.gate[r] * e_pre[r] + Y * e_gate[r] + e_pre[r] * e_gate[r] + 2 * u * ur.gate[r] * Y
            continue
        if target == "elman":
            if kind == "ind":
                e[r] = state[r] = 2 * e_pre[r]
            elif kind == "lin" and not s.nonneg[r] and e_pre[r] > 0:
                e[r] = e_pre[r] + u * Y                    # read h+ - h-; the state is the pair itself
            continue
        small = (2 / 3 if target == "lstm" else 1 / 3) * (eps * Y) ** 2 * Y + 4 * u * Y
        if kind == "ind" or (kind == "relu" and s.binary[r]):      # a saturated switch, read exactly
            e[r] = (0.0 if target == "gru" else 2 * u) if e_pre[r] < FLIP else 1.0
        elif kind == "lin":
            e[r] = e_pre[r] + small
        elif kind == "relu":
            e[r] = e_pre[r] + margin + small + (4 * u / eps if target == "gru" else 0.0)
        else:                                                              # mul with a 0/1 gate
            flip = e_gate[r] >= FLIP
            e[r] = e_pre[r] + small + (Y if flip else 0.0) + (4 * u / eps if target == "gru" else 0.0)
        state[r] = e[r]
    return e, state


def unit_roundoff(dtype) -> float:
    """u = 2^-53 for float64, 2^-24 for float32."""
    import torch
    return float(torch.finfo(dtype).eps) / 2


def input_magnitude(prog) -> np.ndarray:
    """max |input| per channel from the Input's declared range (inf when undeclared)."""
    x = prog.input
    lo = math.inf if x.low is None else abs(float(sympy.sympify(x.low)))
    hi = math.inf if x.high is None else abs(float(sympy.sympify(x.high)))
    return np.full(x.dim, max(lo, hi))


__all__ = ["FLIP", "Bound", "UnitRanges", "error_bound", "input_magnitude", "stage_ranges", "unit_roundoff"]
