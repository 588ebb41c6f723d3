"""Exporters to the architectures with exact arithmetic: ``linear``, ``elman`` (relu) and ``hawk``.

Each exporter turns one chain stage into one model layer and returns a :class:`LayerPlan`: the
layer's parameters (exact sympy matrices, named and shaped as in ``probe.models`` before padding)
and how to read the stage's channel values back from the layer's hidden units (``D h + d``). The
next layer composes its weights with that read-out, so a unit may carry a channel in any affine
code (two ReLU halves, an eigenbasis, ...).

    linear   h = W h + U x           lin units only; W = A. No bias: a constant-1 unit per layer,
                                      fed by an appended constant input channel (or by the one-hot
                                      token, whose entries sum to 1), carries every bias.
    elman    h = relu(W h + U x + b)  relu units as they are; a lin unit provably >= 0 as one unit,
                                      any other as the pair relu(s), relu(-s) (read s = h+ - h-);
                                      the initial state goes into the learned h0. No products.
    hawk     h = Λ h + (W_gx x + b_gx) (W_x x),  y = W_out((W_go x + b_go) h)   (gates="linear",
             normalize=False, decay="fixed")
                                      a lin block with real-diagonalisable A = V Λ V⁻¹ runs in its
                                      eigenbasis (read s = V h); a mul unit is the bilinear input
                                      (Λ = 0); the output gate is 1 and W_out = I. No ReLU.

What a target cannot express raises ``ValueError`` naming the block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import sympy
from sympy.matrices.exceptions import MatrixError

from analyses.lsrl.chain import Stage

SM = sympy.ImmutableSparseMatrix


@dataclass
class InputSpec:
    """How a layer's input h (m numbers) holds the previous stage's channels: ``D h + d``.

    ``one`` is the index of a component of h that is 1 at every step (or None); ``tokens`` says h
    is a one-hot token, whose entries sum to 1.
    """

    D: Any
    d: Any
    one: Optional[int] = None
    tokens: bool = False

    @property
    def m(self) -> int:
        return self.D.shape[1]


@dataclass
class LayerPlan:
    """One model layer: parameters by name, the read-out of its stage, unit labels."""

    params: dict[str, Any]
    gates: dict[str, dict] = field(default_factory=dict)   # gated layers: gate -> {"x", "h", "b"[, "bh"]}
    out: InputSpec = None
    labels: list[str] = field(default_factory=list)

    @property
    def hidden(self) -> int:
        return len(self.labels)


def unsupported(target: str, stage: Stage, r: int, why: str) -> ValueError:
    kind = {"lin": "LinState", "relu": "ReLU", "mul": "Multiplicative", "ind": "Indicator"}[stage.kind[r]]
    if stage.kind[r] == "relu" and stage.recurrent[r]:
        kind = "ReLUState"
    return ValueError(f"target {target!r} cannot take block '{stage.node[r]}' ({kind}): {why}")


def first_spec(d_input: int, tokens: bool, const: bool) -> InputSpec:
    """The model input: one-hot tokens, or vectors (with a constant 1 appended when ``const``)."""
    m = d_input + (1 if const and not tokens else 0)
    D = SM(d_input, m, {(i, i): 1 for i in range(d_input)})
    return InputSpec(D, SM.zeros(d_input, 1), one=d_input if m > d_input else None, tokens=tokens)


def lift(W: SM, b: SM, spec: InputSpec) -> tuple[SM, SM]:
    """pre = W x + b with x = D h + d, as U h + c."""
    return SM(W * spec.D), SM(W * spec.d + b)


def fold_bias(U: SM, c: SM, spec: InputSpec, what: str) -> SM:
    """U h + c as a bias-free U' h, through the constant unit (or the one-hot's sum)."""
    if not any(v != 0 for v in c.todok().values()):
        return U
    dok = dict(U.todok())
    for (i, _), v in c.todok().items():
        cols = range(spec.m) if spec.tokens else [spec.one] if spec.one is not None else None
        if cols is None:
            raise ValueError(f"{what}: needs a bias but the layer input has no constant channel")
        for j in cols:
            dok[(i, j)] = dok.get((i, j), 0) + v
    return SM(U.rows, U.cols, {k: v for k, v in dok.items() if v != 0})


def rows_of(M: SM) -> dict[int, dict[int, Any]]:
    out: dict[int, dict[int, Any]] = {}
    for (i, j), v in M.todok().items():
        if v != 0:
            out.setdefault(i, {})[j] = v
    return out


def const_row(spec: InputSpec) -> dict[int, Any]:
    """Input weights that read the constant 1."""
    if spec.tokens:
        return {j: 1 for j in range(spec.m)}
    if spec.one is None:
        raise ValueError("the layer input has no constant channel")
    return {spec.one: 1}


def _sm(rows: int, cols: int, dok: dict) -> SM:
    return SM(rows, cols, {k: v for k, v in dok.items() if v != 0})


# ---------------------------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------------------------

def linear_layer(stage: Stage, spec: InputSpec) -> LayerPlan:
    for r, k in enumerate(stage.kind):
        if k != "lin":
            raise unsupported("linear", stage, r, "a linear RNN has no nonlinearity and no product")
    n = stage.n
    U, c = lift(stage.W, stage.b, spec)
    U = fold_bias(U, c, spec, f"linear layer of '{stage.node[0]}'")
    Ud = dict(U.todok())
    Ud.update({(n, j): v for j, v in const_row(spec).items()})                    # the constant unit
    W = _sm(n + 1, n + 1, dict(stage.A.todok()))
    out = InputSpec(SM(n, n + 1, {(i, i): 1 for i in range(n)}), SM.zeros(n, 1), one=n)
    return LayerPlan({"W": W, "U": _sm(n + 1, spec.m, Ud)}, out=out, labels=stage.labels() + ["one"])


# ---------------------------------------------------------------------------------------------
# elman (relu)
# ---------------------------------------------------------------------------------------------

def elman_layer(stage: Stage, spec: InputSpec) -> LayerPlan:
    pos, labels = [], []                                       # stage unit -> [(hidden unit, sign)]
    names = stage.labels()
    for r, k in enumerate(stage.kind):
        if k == "ind":                                         # clamp(pre, 0, 1) = relu(pre) - relu(pre - 1)
            pos.append([(len(labels), 1), (len(labels) + 1, -1)])
            labels += [names[r] + " (on)", names[r] + " (over)"]
            continue
        if k == "mul":
            raise unsupported("elman", stage, r, "an Elman RNN has no multiplicative gate "
                                                 "(build the product with sugar.ifelse instead)")
        if k == "lin" and not stage.nonneg[r]:
            pos.append([(len(labels), 1), (len(labels) + 1, -1)])
            labels += [names[r] + " (+)", names[r] + " (-)"]
        else:
            pos.append([(len(labels), 1)])
            labels.append(names[r])
    H = len(labels)
    D = _sm(stage.n, H, {(r, h): s for r, hs in enumerate(pos) for h, s in hs})
    U0, c0 = lift(stage.W, stage.b, spec)
    R, U0r, c0d = rows_of(SM(stage.A * D)), rows_of(U0), c0.todok()
    Ud, Wd, bd, h0 = {}, {}, {}, {}
    for r, hs in enumerate(pos):
        ind = stage.kind[r] == "ind"
        for h, s in hs:
            w = 1 if ind else s                                 # a switch's second unit reads pre - 1
            Ud.update({(h, j): w * v for j, v in U0r.get(r, {}).items()})
            Wd.update({(h, j): w * v for j, v in R.get(r, {}).items()})
            bd[(h, 0)] = w * c0d.get((r, 0), 0) - (1 if ind and s < 0 else 0)
            h0[(h, 0)] = max(s * stage.init[r, 0], 0) if not ind else 0
    params = {"W": _sm(H, H, Wd), "U": _sm(H, spec.m, Ud), "b": _sm(H, 1, bd), "h0": _sm(H, 1, h0)}
    return LayerPlan(params, out=InputSpec(D, SM.zeros(stage.n, 1)), labels=labels)


# ---------------------------------------------------------------------------------------------
# hawk (bilinear gates, fixed decay, no normalisation)
# ---------------------------------------------------------------------------------------------

def _blocks(stage: Stage, units: list[int]) -> list[list[int]]:
    """Groups of lin units coupled by A (connected components)."""
    rows = rows_of(stage.A)
    parent = {u: u for u in units}

    def find(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u
    for i in units:
        for j in rows.get(i, {}):
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for u in units:
        groups.setdefault(find(u), []).append(u)
    return sorted(groups.values())


def _eigen(stage: Stage, idx: list[int]) -> tuple[sympy.Matrix, list]:
    """V and real eigenvalues with A = V diag(λ) V⁻¹ for one block, or ValueError naming it."""
    A = sympy.Matrix(stage.A.extract(idx, idx))
    if A.is_diagonal():
        return sympy.eye(len(idx)), [A[i, i] for i in range(len(idx))]
    try:
        V, Dg = A.diagonalize()
    except MatrixError:
        raise unsupported("hawk", stage, idx[0], f"its state matrix {A.tolist()} is not diagonalisable, and a "
                                                 "Hawk layer only has a per-unit constant decay") from None
    lam = [sympy.nsimplify(Dg[i, i]) for i in range(len(idx))]
    if any(v.is_real is not True for v in lam) or any(v.is_real is not True for v in V):
        raise unsupported("hawk", stage, idx[0], f"its state matrix has eigenvalues {lam}, not all real; "
                                                 "a Hawk decay is a real number per unit")
    return V, lam


def hawk_layer(stage: Stage, spec: InputSpec) -> LayerPlan:
    names = stage.labels()
    for r, k in enumerate(stage.kind):
        if k in ("relu", "ind"):
            raise unsupported("hawk", stage, r, "a Hawk layer has no ReLU (only bilinear gates and a linear "
                                                "recurrence); use sugar.ifelse_mul for conditionals")
    U0, c0 = lift(stage.W, stage.b, spec)
    Ug, cg = lift(stage.G, stage.g, spec)
    D, lam, Wx, Wgx, bgx, labels = {}, [], {}, {}, {}, []
    h = 0
    for idx in _blocks(stage, [r for r in range(stage.n) if stage.kind[r] == "lin"]):
        V, ev = _eigen(stage, idx)
        Vinv = V.inv()
        Ub = fold_bias(SM(Vinv * U0.extract(idx, list(range(U0.cols)))), SM(Vinv * c0.extract(idx, [0])),
                       spec, f"hawk block '{stage.node[idx[0]]}'")
        for k in range(len(idx)):
            Wx.update({(h + k, j): v for (i, j), v in Ub.todok().items() if i == k})
            bgx[(h + k, 0)] = 1
            lam.append(ev[k])
            labels.append(names[idx[k]] if V == sympy.eye(len(idx)) else f"{stage.node[idx[0]]}:eig{k}")
            for a, r in enumerate(idx):
                D[(r, h + k)] = V[a, k]
        h += len(idx)
    for r in (r for r in range(stage.n) if stage.kind[r] == "mul"):
        Wx.update({(h, j): v for (i, j), v in fold_bias(SM(U0.extract([r], list(range(U0.cols)))),
                                                         SM(c0.extract([r], [0])), spec, names[r]).todok().items()})
        Wgx.update({(h, j): v for (i, j), v in Ug.extract([r], list(range(Ug.cols))).todok().items()})
        bgx[(h, 0)] = cg[r, 0]
        lam.append(0)
        labels.append(names[r])
        D[(r, h)] = 1
        h += 1
    Wx.update({(h, j): v for j, v in const_row(spec).items()})                   # the constant unit
    bgx[(h, 0)] = 1
    lam.append(0)
    labels.append("one")
    H = h + 1
    params = {"W_x": _sm(H, spec.m, Wx), "W_gx": _sm(H, spec.m, Wgx), "b_gx": _sm(H, 1, bgx),
              "Lambda": SM(H, 1, lam), "W_go": SM.zeros(H, spec.m), "b_go": SM.ones(H, 1),
              "W_out": SM.eye(H)}
    return LayerPlan(params, out=InputSpec(_sm(stage.n, H, D), SM.zeros(stage.n, 1), one=h), labels=labels)


EXACT_BUILDERS = {"linear": linear_layer, "elman": elman_layer, "hawk": hawk_layer}

__all__ = ["EXACT_BUILDERS", "InputSpec", "LayerPlan", "const_row", "elman_layer", "first_spec", "fold_bias",
           "hawk_layer", "lift", "linear_layer", "rows_of", "unsupported"]
