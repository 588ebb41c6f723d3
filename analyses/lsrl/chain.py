"""The compiled form: a single chain of layers, and the pass that builds it.

A :class:`Stage` is one layer of units. Unit u reads the previous stage's channels x_t and its own
stage's previous values y_{t-1}::

    pre_t  = W x_t + b + A y_{t-1}            (A non-zero only inside a LinState / ReLUState block)
    y_t    = pre_t                    kind "lin"  (LinState units, and pass-through units: A = 0)
           = relu(pre_t)              kind "relu" (ReLU units; ReLUState units when A != 0)
           = (G x_t + g) * pre_t      kind "mul"  (Multiplicative: G x + g is the gate half)
           = clamp(pre_t, 0, 1)       kind "ind"  (Indicator: a switch, pre_t never in (0, 1))

and the chain ends with an affine readout ``W_out y + b_out``. Mixing kinds inside a stage is what
lets one model layer hold everything at the same depth; each exporter realises each kind its own way.

:func:`linearise` schedules every op block of a simplified program at its depth (1 + the deepest
block it reads, the Input at 0) and routes each value that a later stage still needs through the
stages in between with *dedicated pass-through units*: a "lin" unit with W = e_i and A = 0, so
y_t = x_t exactly. (Not a LinState with A = I: that would accumulate.) Each target then pays its own
price for a pass unit (two ReLUs in elman for a value of either sign, one unit elsewhere).

:func:`zero_init` rewrites a chain so that every unit starts at 0, for the architectures whose
initial state is fixed at zero: a LinState block becomes u = s - s_0 (bias + (A - I) s_0, the offset
moved into its readers' biases); a ReLUState block gets a "started" unit (1 from the first step on)
and the first-step correction A s_0 (1 - started_{t-1}).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import sympy

from analyses.lsrl import graph as g
from analyses.lsrl.backends import backend as make_backend
from analyses.lsrl.backends import run_steps
from analyses.lsrl.passes import affine_expr, is_op, simplify
from analyses.lsrl.program import Program

SM = sympy.ImmutableSparseMatrix


@dataclass
class Stage:
    """One layer of n units reading d_in channels. Matrices are exact (sympy sparse)."""

    kind: list[str]            # (n,) "lin" | "relu" | "mul" | "ind"
    W: SM                      # (n, d_in) value pre-activation
    b: SM                      # (n, 1)
    G: SM                      # (n, d_in) gate pre-activation of mul units (zero rows elsewhere)
    g: SM                      # (n, 1)
    A: SM                      # (n, n) recurrence
    init: SM                   # (n, 1) y_0
    node: list[str]            # (n,) program block each unit computes or carries
    index: list[int]           # (n,) coordinate of that block
    is_pass: list[bool]        # (n,) a pass-through unit
    binary: list[bool]         # (n,) relu: output promised 0/1; mul: gate promised 0/1
    nonneg: list[bool]         # (n,) provably >= 0 at every step
    bounds: list = None        # (n,) (low, high) floats every value provably lies in
    offset: SM = None          # (n, 1) program value = unit value + offset
    started: Optional[int] = None   # index of the "started" unit added by zero_init

    @property
    def n(self) -> int:
        return len(self.kind)

    @property
    def recurrent(self) -> list[bool]:
        """(n,) whether a unit reads its own stage's previous values."""
        dok = self.A.todok()
        rows = {i for (i, _), v in dok.items() if v != 0}
        return [i in rows for i in range(self.n)]

    def labels(self) -> list[str]:
        dims = {}
        for name, i in zip(self.node, self.index):
            dims[name] = max(dims.get(name, 0), i + 1)
        return [(f"{m}[{i}]" if dims[m] > 1 else m) + (" (pass)" if p else "")
                for m, i, p in zip(self.node, self.index, self.is_pass)]


@dataclass
class Chain:
    """A linearised program: stages between the input (d_input channels) and an affine readout."""

    d_input: int
    stages: list[Stage]
    W_out: SM                  # (d_output, n_last)
    b_out: SM                  # (d_output, 1)
    output_labels: list[str]
    input_bounds: tuple = (-math.inf, math.inf)
    name: str = "program"

    @property
    def widths(self) -> list[int]:
        return [s.n for s in self.stages]

    def evaluator(self, backend: str = "numeric", **kw) -> "ChainEvaluator":
        return ChainEvaluator(self, backend, **kw)

    def run(self, inputs, backend: str = "numeric"):
        """Outputs (B, T, d_output), computed stage by stage."""
        return self.evaluator(backend).run(inputs)


class ChainEvaluator:
    """Step-by-step evaluation of a chain (same protocol as :class:`Interpreter`)."""

    def __init__(self, chain: Chain, backend: str = "numeric", **kw):
        self.chain, self.be = chain, make_backend(backend, **kw)
        self.idx = [{k: [i for i, kk in enumerate(s.kind) if kk == k] for k in ("relu", "mul", "ind")}
                    for s in chain.stages]

    def initial(self, B: int) -> list:
        return [self.be.const(s.init, B) for s in self.chain.stages]

    def repeat(self, state: list, k: int) -> list:
        return [self.be.repeat(v, k) for v in state]

    def step(self, state: list, x, record: bool = False):
        """Next state and output; with ``record`` also every stage's pre-activation (B, n)."""
        be, new, pres = self.be, [], []
        for s, y_prev, idx in zip(self.chain.stages, state, self.idx):
            pre = be.affine(x, s.W, s.b) + be.affine(y_prev, s.A)                   # (B, n)
            y = pre.clone() if hasattr(pre, "clone") else pre.copy()
            if idx["relu"]:
                y[:, idx["relu"]] = be.relu(pre[:, idx["relu"]])
            if idx["ind"]:
                p = pre[:, idx["ind"]]
                y[:, idx["ind"]] = be.relu(p) - be.relu(p - 1)
            if idx["mul"]:
                y[:, idx["mul"]] = be.mul(be.affine(x, s.G, s.g)[:, idx["mul"]], pre[:, idx["mul"]])
            new.append(y)
            pres.append(pre)
            x = y
        out = be.affine(x, self.chain.W_out, self.chain.b_out)
        return (new, out, pres) if record else (new, out)

    def run(self, inputs):
        return run_steps(self, inputs)                                              # (B, T, d_output)


# ---------------------------------------------------------------------------------------------
# linearise: program -> chain
# ---------------------------------------------------------------------------------------------

def _pre(op: g.Node, memo: dict):
    """Pre-activation of an op block as ({source: M}, c); for Multiplicative, gate and value halves."""
    terms, c = affine_expr(op.inputs[0], memo)
    if isinstance(op, g.LinState):
        terms, c = {u: op.B * M for u, M in terms.items()}, op.B * c + op.bias
    return terms, c


def _used_columns(M: SM) -> set[int]:
    return {j for (_, j), v in M.todok().items() if v != 0}


def linearise(program: Program) -> Chain:
    """Simplify ``program`` and schedule it as a chain of stages (see the module docstring)."""
    prog = simplify(program)
    memo: dict = {}
    ops = [n for n in prog.nodes if is_op(n) and not isinstance(n, g.Input)]
    pre = {op: _pre(op, memo) for op in ops}
    depth = {prog.input: 0}
    for op in ops:                                              # topological order
        used = [u for u, M in pre[op][0].items() if _used_columns(M)]
        depth[op] = 1 + max((depth[u] for u in used), default=0)
    out_terms, out_c = affine_expr(prog.output, memo)
    L = max([1] + [depth[op] for op in ops] + [depth[u] for u in out_terms])
    need: dict[tuple, int] = {}                                 # (block, coordinate) -> last stage reading it
    for op in ops:
        for u, M in pre[op][0].items():
            for j in _used_columns(M):
                need[(u, j)] = max(need.get((u, j), 0), depth[op] - 1)
    for u, M in out_terms.items():
        for j in _used_columns(M):
            need[(u, j)] = L
    if not ops and not need:                                    # a constant program: keep one unit anyway
        need[(prog.input, 0)] = L

    channels = {(prog.input, j): j for j in range(prog.input.dim)}   # (block, coord) -> channel of stage ℓ-1
    inp = (-math.inf if prog.input.low is None else float(prog.input.low),
           math.inf if prog.input.high is None else float(prog.input.high))
    bounds_prev = [inp] * prog.input.dim
    stages = []
    for ell in range(1, L + 1):
        rows: list[tuple] = []                                  # (op or None, coordinate, source key for pass)
        for op in ops:
            if depth[op] == ell:
                rows += [(op, i, None) for i in range(op.dim)]
        for key, last in sorted(need.items(), key=lambda kv: (depth[kv[0][0]], kv[0][0].name, kv[0][1])):
            if depth[key[0]] < ell <= last:
                rows.append((None, key[1], key))
        stage = _build_stage(rows, channels, pre, len(bounds_prev), bounds_prev)
        stages.append(stage)
        channels = {}
        for u, (op, i, key) in enumerate(rows):
            channels[key if op is None else (op, i)] = u
        bounds_prev = stage.bounds
    W_out = _gather(out_terms, channels, prog.output.dim, len(bounds_prev), "output")
    return Chain(prog.input.dim, stages, W_out, SM(out_c), list(program.output_labels),
                 input_bounds=inp, name=program.name)


def _gather(terms: dict, channels: dict, rows: int, cols: int, what: str) -> SM:
    """sum_k M_k u_k as one matrix over the previous stage's channels."""
    dok = {}
    for u, M in terms.items():
        for (i, j), v in M.todok().items():
            if v != 0:
                c = channels[(u, j)]
                dok[(i, c)] = dok.get((i, c), 0) + v
    return SM(rows, cols, dok)


def _build_stage(rows, channels, pre, d_in, bounds_in) -> Stage:
    n = len(rows)
    W, b, G, gg, A, init = {}, {}, {}, {}, {}, {}
    kind, node, index, is_pass, binary = [], [], [], [], []
    first: dict = {}                                            # op -> (its first unit, its pre by row)
    for r, (op, i, key) in enumerate(rows):
        if op is None:                                          # pass-through: y = x
            W[(r, channels[key])] = 1
            kind.append("lin"); node.append(key[0].name); index.append(key[1]); is_pass.append(True)
            binary.append(False)
            continue
        if op not in first:
            terms, c = pre[op]
            by_row: dict = {}
            for (ri, j), v in _gather(terms, channels, c.rows, d_in, op.name).todok().items():
                by_row.setdefault(ri, []).append((j, v))
            first[op] = (r, by_row, c)
        _, by_row, c = first[op]
        half = op.dim if isinstance(op, g.Multiplicative) else 0
        for j, v in by_row.get(half + i, []):
            W[(r, j)] = v
        for j, v in by_row.get(i, []) if half else []:
            G[(r, j)] = v
        b[(r, 0)] = c[half + i, 0]
        if half:
            gg[(r, 0)] = c[i, 0]
        if isinstance(op, g.LinState):
            init[(r, 0)] = op.init[i, 0]
            for (ri, j), v in op.A.todok().items():             # the recurrence, inside the block
                if ri == i and v != 0:
                    A[(r, first[op][0] + j)] = v
        kind.append("mul" if half else "relu" if isinstance(op, (g.ReLU, g.ReLUState)) else
                    "ind" if isinstance(op, g.Indicator) else "lin")
        node.append(op.name); index.append(i); is_pass.append(False)
        binary.append(bool(getattr(op, "binary", False) or getattr(op, "binary_gate", False)))
    mk = lambda d, c: SM(n, c, {k: v for k, v in d.items() if v != 0})  # noqa: E731
    stage = Stage(kind, mk(W, d_in), mk(b, 1), mk(G, d_in), mk(gg, 1), mk(A, n), mk(init, 1),
                  node, index, is_pass, binary, [False] * n, None, SM.zeros(n, 1))
    stage.bounds = _bounds(stage, bounds_in)
    stage.nonneg = [lo >= 0 for lo, _ in stage.bounds]
    return stage


def _mul(a: float, b: float) -> float:
    return 0.0 if a == 0 or b == 0 else a * b                  # 0 * inf is 0 here: a zero weight reads nothing


def _affine_bounds(M: SM, c: SM, bounds_in: list) -> list[tuple[float, float]]:
    """Interval arithmetic: the range of M x + c over x in the input boxes."""
    lo = [float(c[i, 0]) for i in range(M.rows)]
    hi = list(lo)
    for (i, j), v in M.todok().items():
        v = float(v)
        a, b = _mul(v, bounds_in[j][0]), _mul(v, bounds_in[j][1])
        lo[i] += min(a, b)
        hi[i] += max(a, b)
    return list(zip(lo, hi))


def _bounds(s: Stage, bounds_in: list) -> list[tuple[float, float]]:
    """A box every unit's value provably stays in (inf when unbounded)."""
    pre, gate = _affine_bounds(s.W, s.b, bounds_in), _affine_bounds(s.G, s.g, bounds_in)
    rec, out = s.recurrent, []
    for r, kind in enumerate(s.kind):
        lo, hi = pre[r]
        if kind == "mul":
            prods = [_mul(a, b) for a in gate[r] for b in pre[r]]
            out.append((min(prods), max(prods)))
        elif kind == "relu":
            out.append((0.0, 1.0) if s.binary[r] else (0.0, math.inf if rec[r] else max(hi, 0.0)))
        elif kind == "ind":
            out.append((0.0, 1.0))
        else:
            out.append((lo, hi) if not rec[r] else None)
    # recurrent lin units: >= 0 when the input part, the recurrence and the start are (a fixed point)
    ok = {r: out[r] is None and pre[r][0] >= 0 and float(s.init[r, 0]) >= 0 for r in range(s.n)}
    rows: dict[int, list] = {}
    for (i, j), v in s.A.todok().items():
        rows.setdefault(i, []).append((j, float(v)))
    changed = True
    while changed:
        changed = False
        for r in [r for r, v in ok.items() if v]:
            if any(v < 0 or not (ok.get(j) or (out[j] is not None and out[j][0] >= 0)) for j, v in rows.get(r, [])):
                ok[r], changed = False, True
    return [out[r] if out[r] is not None else ((0.0, math.inf) if ok[r] else (-math.inf, math.inf))
            for r in range(s.n)]


# ---------------------------------------------------------------------------------------------
# zero_init: every unit starts at 0
# ---------------------------------------------------------------------------------------------

def _widen(M: SM, cols: int) -> SM:
    return M if M.cols >= cols else SM(M.row_join(SM.zeros(M.rows, cols - M.cols)))


def _zero_stage(s: Stage) -> tuple[Stage, SM]:
    """One stage with y_0 = 0 everywhere, and the offsets its readers must add back."""
    As0 = s.A * s.init
    lin = [r for r in range(s.n) if s.kind[r] == "lin" and (s.init[r, 0] != 0 or As0[r, 0] != 0)]
    fix = [r for r in range(s.n) if s.kind[r] != "lin" and As0[r, 0] != 0]
    b = s.b.as_mutable()
    for r in lin:                                               # u = s - s0: bias + (A - I) s0
        b[r, 0] += As0[r, 0] - s.init[r, 0]
    off = {(r, 0): s.init[r, 0] for r in lin}
    if not fix:
        return replace(s, b=SM(b), init=SM.zeros(s.n, 1), offset=SM(s.n, 1, off)), SM(s.n, 1, off)
    n, A = s.n, s.A.as_mutable().row_join(sympy.zeros(s.n, 1)).col_join(sympy.zeros(1, s.n + 1))
    for r in fix:                                               # ReLUState with s0: pre += A s0 (1 - started)
        b[r, 0] += As0[r, 0]
        A[r, n] = -As0[r, 0]
    grow = lambda M: SM(M.col_join(SM.zeros(1, M.cols)))        # noqa: E731
    s = Stage(s.kind + ["lin"], grow(s.W), SM(b.col_join(sympy.Matrix([[1]]))), grow(s.G), grow(s.g), SM(A),
              SM.zeros(n + 1, 1), s.node + ["started"], s.index + [0], s.is_pass + [False],
              s.binary + [False], s.nonneg + [True], s.bounds + [(0.0, 1.0)], SM(n + 1, 1, off), started=n)
    return s, s.offset


def zero_init(chain: Chain) -> Chain:
    """An equivalent chain whose every unit has y_0 = 0 (see the module docstring)."""
    stages, carry = [], SM.zeros(chain.d_input, 1)             # offsets of the previous stage's channels
    for s in chain.stages:
        s = replace(s, W=_widen(s.W, carry.rows), G=_widen(s.G, carry.rows))
        s = replace(s, b=SM(s.b + s.W * carry), g=SM(s.g + s.G * carry))
        s, carry = _zero_stage(s)
        stages.append(s)
    W_out = _widen(chain.W_out, carry.rows)
    return replace(chain, stages=stages, W_out=W_out, b_out=SM(chain.b_out + W_out * carry))


__all__ = ["Chain", "ChainEvaluator", "Stage", "linearise", "zero_init"]
