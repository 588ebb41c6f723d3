"""Exporters to ``lstm`` and ``gru``: saturated gates and small-signal tanh (the paper's appendix).

Neither cell has a linear path or a ReLU, so every channel travels as a small signal
h ≈ ε y (tanh(ε y) = ε y (1 - (ε y)²/3 + ...), relative error (ε y)²/3) and every switch as a
saturated gate. Three constants, all options of :func:`analyses.lsrl.compile`:

    eps      the small-signal scale ε (default 1e-7): error ~ (ε |y|)² |y| per step
    margin   every non-zero ReLU pre-activation has |pre| >= margin (default 1e-3); a ReLU gate is
             σ(K (pre - margin/2)) with K = 2000 / margin, so σ(±1000) is exactly 0 or 1 in float64
    sat      the bias that pins a constant gate: σ(±1000) is exactly 0 or 1 (float32 and float64)

LSTM (c = f c + i g, h = o tanh(c); o = 1 always):
    lin accumulator (A = e_r e_rᵀ, a counter)   f = 1, i = 1, g = tanh(ε pre_x)       c += ε Δ
    other lin (any A, incl. pass-through)       f = 0, i = 1, g = tanh(ε (pre_x + A y_{t-1}))
    relu (incl. ReLUState)                      f = 0, i = σ(K (pre - margin/2)), g = tanh(ε pre)
    switch (Indicator, binary ReLUState)        f = 0, i = 1, g = 1, o = σ(K' (pre - 1/2)): h = o tanh(1)
    mul with a binary gate                      f = 0, i = σ(K' (gate - 1/2)),    g = tanh(ε value)
GRU (h = (1 - z) n + z h_{t-1}, n = tanh(W_in x + b_in + r (W_hn h + b_hn)); z = 0 always):
    lin (any A)                                 r = 1, n = tanh(ε pre_x + A h_{t-1})
    binary ReLUState / ReLU                     one unit, n = tanh(C r) ∈ {0, 1}, r = σ(K' (pre - 1/2))
    relu, mul with a binary gate (no recurrence) two units sharing the reset gate r = [closed]:
                                                u: n = tanh(ε value - C r) (= -1 when closed)
                                                m: n = tanh(C r)           (=  1 when closed)
                                                read y = (h_u + h_m) / ε
A GRU cannot multiply two inputs of the same step except through r and a constant, hence the pair;
the read-out sums two ±1 terms scaled by 1/ε when closed, an error of about ulp(1/ε) (1e-9 at
ε = 1e-7). A non-binary ReLUState has its recurrence gated away by r: unsupported on gru.
"""
from __future__ import annotations

import numpy as np

from analyses.lsrl.backends import float_array
from analyses.lsrl.chain import Stage
from analyses.lsrl.export import InputSpec, LayerPlan, unsupported

GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n")}


def float_spec(spec: InputSpec) -> InputSpec:
    f = lambda M: M if isinstance(M, np.ndarray) else float_array(M)   # noqa: E731
    return InputSpec(f(spec.D), f(spec.d).reshape(-1), spec.one, spec.tokens)


def _lifted(stage: Stage, spec: InputSpec):
    """Value and gate pre-activations as U h + c (numpy), and the recurrence matrix A."""
    W, b, G, g, A = (float_array(M) for M in (stage.W, stage.b, stage.G, stage.g, stage.A))
    U0, c0 = W @ spec.D, W @ spec.d + b.reshape(-1)
    Ug, cg = G @ spec.D, G @ spec.d + g.reshape(-1)
    return U0, c0, Ug, cg, A


def _blank(H: int, m: int, names, hidden_bias: bool = False) -> dict:
    out = {k: {"x": np.zeros((H, m)), "h": np.zeros((H, H)), "b": np.zeros(H)} for k in names}
    if hidden_bias:
        for v in out.values():
            v["bh"] = np.zeros(H)
    return out


def _is_accumulator(A: np.ndarray, r: int) -> bool:
    row = A[r].copy()
    if row[r] != 1:
        return False
    row[r] = 0
    return not row.any()


def unit_eps(eps, n: int) -> np.ndarray:
    """ε per unit: a number for all units, or one per unit."""
    e = np.broadcast_to(np.asarray(eps, dtype=np.float64), (n,)).copy()
    if not (e > 0).all():
        raise ValueError(f"eps must be positive, got {eps!r}")
    return e


def lstm_layer(stage: Stage, spec: InputSpec, eps=1e-7, margin: float = 1e-3, sat: float = 1000.0
               ) -> LayerPlan:
    spec = float_spec(spec)
    U0, c0, Ug, cg, A = _lifted(stage, spec)
    n, K, Kb = stage.n, 2000.0 / margin, 2000.0
    ev = unit_eps(eps, n)
    switch = [k == "ind" or (k == "relu" and stage.binary[r]) for r, k in enumerate(stage.kind)]
    Dself = np.diag(np.where(switch, 1.0 / np.tanh(1.0), 1.0 / ev))   # y = h / ε; a switch: h = o tanh(1)
    R = A @ Dself                                                # A y_{t-1} from h_{t-1}
    p = _blank(n, spec.m, GATES["lstm"])
    for r, kind in enumerate(stage.kind):
        eps = ev[r]
        p["o"]["b"][r] = sat
        p["f"]["b"][r] = -sat
        p["g"]["x"][r], p["g"]["b"][r] = eps * U0[r], eps * c0[r]
        if switch[r]:                                            # c = tanh(sat) = 1, h = o tanh(1): o is the switch
            p["i"]["b"][r], p["g"]["x"][r], p["g"]["b"][r] = sat, 0.0, sat
            p["o"]["x"][r], p["o"]["h"][r], p["o"]["b"][r] = Kb * U0[r], Kb * R[r], Kb * (c0[r] - 0.5)
            continue
        if kind == "lin":
            p["i"]["b"][r] = sat
            if _is_accumulator(A, r):
                p["f"]["b"][r] = sat                             # the cell is the counter
            else:
                p["g"]["h"][r] = eps * R[r]
        elif kind == "relu":
            p["i"]["x"][r], p["i"]["h"][r], p["i"]["b"][r] = K * U0[r], K * R[r], K * (c0[r] - margin / 2)
            p["g"]["h"][r] = eps * R[r]
        else:                                                    # mul
            if not stage.binary[r]:
                raise unsupported("lstm", stage, r, "an LSTM multiplies by a sigmoid gate, so the gate half "
                                                    "must be promised 0/1 (Multiplicative(..., binary_gate=True))")
            p["i"]["x"][r], p["i"]["b"][r] = Kb * Ug[r], Kb * (cg[r] - 0.5)
    out = InputSpec(Dself, np.zeros(n))
    return LayerPlan({}, gates=p, out=out, labels=stage.labels())


def gru_layer(stage: Stage, spec: InputSpec, eps=1e-7, margin: float = 1e-3, sat: float = 1000.0,
              C: float = 40.0) -> LayerPlan:
    spec = float_spec(spec)
    U0, c0, Ug, cg, A = _lifted(stage, spec)
    names, rec = stage.labels(), stage.recurrent
    ev = unit_eps(eps, stage.n)
    units, labels = [], []                                       # stage unit -> hidden units, mode
    for r, kind in enumerate(stage.kind):
        if kind == "lin":
            units.append(("lin", [len(labels)])); labels.append(names[r])
        elif (kind == "relu" and stage.binary[r]) or kind == "ind":
            units.append(("bin", [len(labels)])); labels.append(names[r])
        elif kind == "relu" and rec[r]:
            raise unsupported("gru", stage, r, "a GRU gates its recurrent input with the reset gate that a ReLU "
                                               "needs; only a ReLUState promised binary (one-hot) compiles")
        elif kind == "mul" and not stage.binary[r]:
            raise unsupported("gru", stage, r, "a GRU multiplies only by a gate, so the gate half must be "
                                               "promised 0/1 (Multiplicative(..., binary_gate=True))")
        else:
            units.append(("pair", [len(labels), len(labels) + 1]))
            labels += [names[r] + " (value)", names[r] + " (closed)"]
    H = len(labels)
    D = np.zeros((stage.n, H))
    for r, (mode, hs) in enumerate(units):
        D[r, hs] = 1.0 if mode == "bin" else 1.0 / ev[r]
    R = A @ D                                                    # A y_{t-1} from h_{t-1}
    K, Kb = 2000.0 / margin, 2000.0
    p = _blank(H, spec.m, GATES["gru"], hidden_bias=True)
    for r, (mode, hs) in enumerate(units):
        eps = ev[r]
        for h in hs:
            p["z"]["b"][h] = -sat
        if mode == "lin":
            h = hs[0]
            p["r"]["b"][h] = sat
            p["n"]["x"][h], p["n"]["b"][h], p["n"]["h"][h] = eps * U0[r], eps * c0[r], eps * R[r]
        elif mode == "bin":
            h = hs[0]
            p["r"]["x"][h], p["r"]["h"][h], p["r"]["b"][h] = Kb * U0[r], Kb * R[r], Kb * (c0[r] - 0.5)
            p["n"]["bh"][h] = C
        else:
            u, m = hs
            if stage.kind[r] == "relu":
                gx, gb, k = U0[r], c0[r] - margin / 2, K
            else:
                gx, gb, k = Ug[r], cg[r] - 0.5, Kb
            for h in hs:                                          # r = σ(-k gate): 1 when closed
                p["r"]["x"][h], p["r"]["b"][h] = -k * gx, -k * gb
            p["n"]["x"][u], p["n"]["b"][u], p["n"]["bh"][u] = eps * U0[r], eps * c0[r], -C
            p["n"]["bh"][m] = C
    return LayerPlan({}, gates=p, out=InputSpec(D, np.zeros(stage.n)), labels=labels)


GATED_BUILDERS = {"lstm": lstm_layer, "gru": gru_layer}

__all__ = ["GATED_BUILDERS", "GATES", "float_spec", "gru_layer", "lstm_layer"]
