"""The claims of Zucchet et al. (ICML 2024) on gated RNNs and attention: ``attention.construction_exact``
(the construction is exact, in float64 and in sympy) and ``attention.discovered`` (trained
bilinear hawks find it; training in :mod:`analyses.attention.study`).
"""
from __future__ import annotations

import numpy as np
import torch

from analyses.attention.construct import construct, neuron_counts, symbolic_check
from analyses.attention.layer import random_attention
from analyses.attention.study import settings, study
from probe.claims import Claim, claim, outcome


@claim("attention.construction_exact", source="Zucchet et al. 2024, §3 (construction)",
       quick_s=6, full_s=10, measured=("quick",),  # CPU s, one process, empty store; full: estimate
       statement="A gated linear RNN with bilinear gates and eigenvalue-1 neurons computes linear "
                 "self-attention exactly (d_v d_k neurons per head; d(d+1)/2 per output coordinate symmetric)")
def construction_exact(profile: str = "quick", store: str = "runs") -> Claim:
    """Both constructions of random layers (1-3 heads, several d, T in {1, 7, 33}) against attention
    in float64, and the polynomial identity for d = 2 in sympy. Nothing is trained (``store`` unused)."""
    rng = np.random.default_rng(8)
    dims = (2, 3, 4, 8) if profile == "quick" else (2, 3, 4, 6, 8, 12, 16)
    worst, counts = 0.0, {}
    for d in dims:
        for heads, d_out in ((1, None), (2, None), (3, 1)):
            layer = random_attention(d, heads=heads, d_out=d_out, seed=int(rng.integers(2**31)))
            for method in ("direct", "symmetric"):
                model = construct(layer, method)
                for T in (1, 7, 33):
                    x = rng.standard_normal((4, T, d))
                    with torch.no_grad():
                        y = model(torch.from_numpy(x)).numpy()
                    worst = max(worst, float(np.abs(y - layer(x)).max()))
            if d == 4:
                counts[f"d=4,H={heads},d_out={layer.d_out}"] = neuron_counts(layer)
    symbolic = all(symbolic_check(2, T, heads, method) for T, heads in ((3, 1), (2, 2))
                   for method in ("direct", "symmetric"))
    return outcome(measured={"max_abs_error": worst, "sympy_d2": symbolic, "dims": list(dims), "neurons": counts},
                   expected={"max_abs_error": "<= 1e-5 (float64)", "sympy_d2": True},
                   passed=worst <= 1e-5 and symbolic)


@claim("attention.discovered", source="Zucchet et al. 2024, §4 (teacher-student, in-context regression)",
       quick_s=50, full_s=3600, measured=("quick",),  # CPU seconds, one process, empty store; full: estimate
       statement="A gated linear RNN trained on in-context regression reaches the loss of one step of GD "
                 "(the linear self-attention solution) and its weights match the construction")
def discovered(profile: str = "quick", store: str = "runs") -> Claim:
    """Train bilinear hawks (8 neurons; the construction needs 4) on both ``icl_regression`` variants.

    Passes when, for each variant, the excess loss is <= 0.1 and the recovered tensor correlates
    >= 0.9 with the reference (on the median seed in the full profile). Excess: (loss - GD loss) /
    GD loss for regression, both on the same evaluation batch; for the teacher, whose linear
    self-attention solution has loss 0, (loss - 0) / zero-predictor loss. The loss against width
    (median over seeds) and the LSTMs are reported, not judged.
    """
    out = study(profile, store)
    b = settings(profile)
    measured, ok = {"setting": f"bilinear hawk{b.hidden}, {b.steps} steps, {b.members} seed(s), on "
                               f"{' and '.join(b.kinds)}; widths {', '.join(map(str, b.sweep))} on "
                               f"{' and '.join(b.sweep_kinds)}; LSTM{b.lstm_hidden} {b.lstm_steps} steps"}, True
    for kind, res in out["results"].items():
        s = res.summary
        keep = ("loss", "reference_loss", "zero_loss", "excess", "correlation", "scale", "attention_loss",
                "attention_loss_linear", "gd_loss_closed_form", "used_accumulators", "used_leaky", "construction_neurons")
        measured[kind] = {k: s[k] for k in keep if k in s}
        ok &= s["excess"] <= 0.1 and s["correlation"] >= 0.9
    by_size: dict[tuple, list] = {}
    for r in out["sweep"]:
        by_size.setdefault((r["task"], r["arch"], r["hidden"]), []).append(r["relative_loss"])
    measured["loss_vs_hidden"] = {f"{t}/{a}/h{h}": float(np.median(v)) for (t, a, h), v in sorted(by_size.items())}
    return outcome(measured=measured,
                   expected={"regression": "(loss - GD loss) / GD loss <= 0.1, same data",
                             "teacher": "(loss - 0) / zero-predictor loss <= 0.1 (the LSA solution's loss is 0)",
                             "correlation": ">= 0.9 (identifiable entries)"},
                   passed=bool(ok))
