"""The claims of Karpathy, Johnson & Fei-Fei (2015) on char-level LSTMs: ``cells.charlm`` and ``cells.saturation``.

Both train (or load from the store) the same character LM on :mod:`tasks.charlm` and run
:func:`analyses.cells.analyze_run` on it. Imported by :mod:`analyses.cells`, so the claims
register when that module is imported.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from probe.claims import claim, for_profile
from probe.threads import single_thread

WIDE_MARGIN = 0.15  # "beats the null by a wide margin": the best unit clears the best null by this much


@dataclass(frozen=True)
class _Setup:
    """How a profile trains its char-level models and where it scores them."""

    hidden: int
    layers: int
    steps: int
    lr: float  # AdamW (no weight decay), gradients clipped at norm grad_clip
    batch_size: int
    length: int  # training window (characters): the truncated-BPTT length when stateful
    n: int  # held-out windows the analysis scores, each score_length long ...
    score_length: int
    burn_in: int  # ... of which the first burn_in characters are read but not scored
    report_steps: int  # parity / repetition runs (report only)
    schedule: str = "constant"
    warmup: int = 0
    grad_clip: float = 5.0
    # char-rnn's training: every batch row continues the text where it stopped and starts from
    # its last state, so cells see (and learn to carry) context far beyond one window
    stateful: bool = True


# Training is char-rnn's (Karpathy et al.): truncated BPTT over 32 contiguous streams of the
# training text, windows of 100, every row starting from its state at the end of the last batch
# (probe.train(stateful=True)); Adam lr 2e-3, clip 5. Scoring: held-out windows of 1000
# characters, scored after a 500-character burn-in, so the state has read far more context than
# the units being scored need (the paper's network read the test text without a break).
#
# Measured (2026-11-26, CPU, one thread):
# quick (LSTM-128 and GRU-128, 2400 steps of 32 x 100; LSTM training 125 s, GRU 86 s, the
#   whole claim 265 s wall): LSTM in_string: best unit AUC 0.81 (nulls: init 0.61, shuffled 0.59;
#   whole-state probe 0.89) FAILS; bracket_depth: best |r| 0.79 (nulls 0.26 / 0.08; probe 0.80)
#   passes. GRU: AUC 0.76, |r| 0.82. Saturation: forget gates right 0.41 > left 0.25.
#   (bits/char on valid reads ~2.05: the evaluation windows start from a zero state, which a
#   stateful network never sees in training.)
# full (LSTM-128 and GRU-128, 4800 steps, lr cosine to a tenth; scored on 96 windows; LSTM
#   training 283 s, GRU 144 s, the whole claim 640 s wall, 471 s of CPU): LSTM in_string AUC 0.78
#   (nulls 0.60 / 0.56; probe 0.90) FAILS; bracket_depth |r| 0.74 (nulls 0.23 / 0.05; probe 0.76)
#   passes. GRU: AUC 0.76, |r| 0.78. Saturation: right 0.38 > left 0.25.
# The in_string unit is a "prose" cell: it is on in strings and in comments alike (AUC 0.54-0.59
# between the two), and off inside docstrings' code examples (the held-out text is mostly
# typing.py, whose docstrings are full of them). A linear probe of the whole state reads it at
# only 0.82-0.90 there, so a unit at 0.9 would have to match the population: the network does
# not encode "inside a string literal" apart from "reading prose". Tried (the same training in a
# loop outside probe.train, so another batch stream; one seed each; in_string / bracket on the
# 1000/500 scoring): LSTM-128 2400 steps 0.84 / 0.81; 6000 steps (constant lr) 0.85 / 0.76;
# lr 4e-3 cosine 0.85 / 0.75; 64 streams 0.81 / 0.76; LSTM-256 0.84 / 0.70; 2-layer LSTM-128
# 0.81 / 0.70; LSTM-256, 10 000 steps, lr 2e-3 cosine (probe.train, 14 min at one thread;
# train loss 0.73 nats/char, so it overfits the 1.2 MB text) 0.86 / 0.66 (probe 0.90); LSTM-512,
# 4000 steps, lr 2e-3 cosine (21 min) 0.835 / 0.70 (probe 0.91), with a unit of its own for
# comments (in_comment AUC 0.91, probe 0.99): comments separate, strings still do not.
# Why a string cell is hard on this text (2026-11-27): 26 % of the characters are inside strings
# and 80 % of those inside triple-quoted ones (docstrings: prose, plus code examples), while
# comments (prose too) are 13 %; a unit must tell a docstring from a comment by a quote read
# hundreds of characters back, which next-character prediction hardly rewards. It is not the
# held-out split: the quick LSTM's best unit scores no better on the training text (AUC 0.77,
# probe 0.81) than on the held-out tail (0.81, 0.89). Nor is it strings opened before a scored
# window began (14 % of the held-out string characters scored at offsets 500-1000, 0.1 % at
# 2000-3000): windows of 3000 after a 2000-character burn-in score 0.74 (the quick LSTM-128)
# and 0.79 (the LSTM-256 above). The
# earlier non-stateful setup (random windows of 200 from a zero state, scored 200/100) gave
# 0.86 / 0.49 (LSTM-128), 0.77 / 0.55 (LSTM-256, 2500 steps) and 0.82 / 0.71 (GRU): its bracket
# unit could not know the depth at which a window started.
# Where the LSTM-256's best in_string unit (AUC 0.86) stands (2026-11-27, same scoring): docstring
# characters against code 0.93, one-line strings against code 0.83, strings against comments 0.53
# (docstrings) and 0.47 (one-line), comments against code 0.96; the best unit for one-line strings
# against code alone reaches 0.86. So not even the paper's kind of string (its quote cell was on
# War and Peace's dialogue) has a unit at 0.9 here.
# Nor is it too little text: with 3.55 MB of further CPython 3.11.7 stdlib modules (the top-level
# ones not in the corpus) put before the training region, 4.9 MB in all as in the paper's Linux
# set, an LSTM-128 trained 6000 steps (lr 2e-3 cosine) scores 0.81 on the same held-out text
# (probe 0.85; its best in_string unit is also its best in_comment unit, 0.89) and bracket 0.72.
_SETUPS = {
    "quick": _Setup(hidden=128, layers=1, steps=2400, lr=2e-3, batch_size=32, length=100,
                    n=32, score_length=1000, burn_in=500, report_steps=300),
    "full": _Setup(hidden=128, layers=1, steps=4800, lr=2e-3, schedule="cosine", batch_size=32, length=100,
                   n=96, score_length=1000, burn_in=500, report_steps=2000),
}


def _setup(profile: str) -> _Setup:
    return for_profile(_SETUPS, profile)


def train_charlm(profile: str = "quick", store: str = "runs", arch: str = "lstm"):
    """Train (or load) the char-level model a claim needs; returns the Run."""
    import probe
    import tasks

    s = _setup(profile)
    task = tasks.make("charlm", length=s.length)
    model = probe.models.make(arch, task, hidden=s.hidden, layers=s.layers, seed=0)
    with single_thread():
        return probe.train(task, model, steps=s.steps, batch_size=s.batch_size, lr=s.lr, schedule=s.schedule,
                           warmup=s.warmup, grad_clip=s.grad_clip, stateful=s.stateful, n_checkpoints=4,
                           eval_splits=["valid"], store=store, progress=False)


def charlm_result(profile: str = "quick", store: str = "runs", arch: str = "lstm"):
    import analyses

    s = _setup(profile)
    run = train_charlm(profile, store, arch)
    with single_thread():
        return analyses.analyze("cells", run, n=s.n, overrides={"length": s.score_length}, burn_in=s.burn_in)


def _headline(result, feature: str) -> dict:
    n = result.nulls[feature]
    best_null = max(n["shuffle"], 0.0 if math.isnan(n["init"]) else n["init"])
    top = result.top[feature][0]
    key = "auc" if "auc" in top else "corr"
    return {"unit": top["unit"], key: round(top[key], 4), "score": round(top["score"], 4),
            "null_init": round(n["init"], 4), "null_shuffle": round(n["shuffle"], 4),
            "beats_null_by": round(top["score"] - best_null, 4), "probe": round(result.probes[feature]["probe"], 4),
            "causal_delta_logprob": round(result.causal.get(feature, {}).get("delta_logprob", float("nan")), 4),
            "control_delta_logprob": round(result.causal.get(feature, {}).get("control_delta_logprob", float("nan")), 4)}


def _cells_ok(result) -> tuple[dict, bool]:
    q, b = _headline(result, "in_string"), _headline(result, "bracket_depth")
    ok = (q["score"] >= 0.9 and q["beats_null_by"] >= WIDE_MARGIN
          and b["score"] >= 0.7 and b["beats_null_by"] >= WIDE_MARGIN)
    return {"in_string": q, "bracket_depth": b}, ok


def _report(profile: str, store: str) -> dict:
    """Top cells on parity (running parity) and repetition (position): report only."""
    import analyses
    import probe
    import tasks

    s = _setup(profile)
    out = {}
    for name, feature, arch in (("parity", "parity", "lstm"), ("repetition", "position", "lstm")):
        task = tasks.make(name)
        model = probe.models.make(arch, task, hidden=32, seed=0)
        with single_thread():
            run = probe.train(task, model, steps=s.report_steps, batch_size=64, lr=1e-2, n_checkpoints=2,
                              eval_splits=["train"], store=store, progress=False)
            r = analyses.analyze("cells", run, n=64, causal="none", n_shuffles=1)
        if feature in r.top:
            out[name] = {feature: _headline(r, feature)}
    return out


@claim("cells.charlm", source="Karpathy, Johnson & Fei-Fei 2015 (arXiv 1506.02078), Fig. 3",
       statement="A char-level LSTM on Python source has a single cell tracking 'inside a string literal' "
                 "(AUC >= 0.9) and one tracking bracket depth (|r| >= 0.7), both far above the untrained "
                 "and shuffled-feature nulls")
def charlm_cells(profile: str = "quick", store: str = "runs") -> dict:
    measured, ok = _cells_ok(charlm_result(profile, store, "lstm"))
    gru, gru_ok = _cells_ok(charlm_result(profile, store, "gru"))
    measured["report_only"] = {"gru": {**gru, "passes": gru_ok}, **_report(profile, store)}
    return {"measured": measured,
            "expected": f"LSTM: in_string AUC >= 0.9 and bracket_depth |r| >= 0.7, each >= {WIDE_MARGIN} "
                        "above the best null (init, shuffled)",
            "passed": ok}


@claim("cells.saturation", source="Karpathy, Johnson & Fei-Fei 2015 (arXiv 1506.02078), Fig. 4",
       statement="In a char-level LSTM the forget gates are right-saturated (> 0.9) on a larger fraction "
                 "of steps than left-saturated (< 0.1)")
def charlm_saturation(profile: str = "quick", store: str = "runs") -> dict:
    r = charlm_result(profile, store, "lstm")
    forget = {h: {"left": round(r.summary[f"{h}.left_mean"], 4), "right": round(r.summary[f"{h}.right_mean"], 4)}
              for h in r.saturation if h.endswith("hook_f")}
    others = {h: {"left": round(r.summary[f"{h}.left_mean"], 4), "right": round(r.summary[f"{h}.right_mean"], 4)}
              for h in r.saturation if not h.endswith("hook_f")}
    left = sum(v["left"] for v in forget.values()) / max(1, len(forget))
    right = sum(v["right"] for v in forget.values()) / max(1, len(forget))
    return {"measured": {"forget_left_mean": round(left, 4), "forget_right_mean": round(right, 4),
                         "per_layer": forget, "report_only": {"other_gates": others}},
            "expected": "forget gates: mean right-saturated fraction > mean left-saturated fraction",
            "passed": bool(forget) and right > left}
