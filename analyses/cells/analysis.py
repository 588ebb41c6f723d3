"""Interpretable cells and gate saturation (Karpathy, Johnson & Fei-Fei 2015, arXiv 1506.02078).

    result = analyses.analyze("cells", run)              # nulls from the run's step-0 checkpoint
    result = analyses.cells.analyze(model, task)         # nulls from the same config re-initialised
    result.summary["in_string.best_score"], result.figures()["text_in_string"]

Every unit of every recurrent hook (``layers.{i}.hook_*``: the state ``h``, the LSTM cell ``c``
and every gate) is scored against every feature of the task at the mask-valid steps of a held-out
batch, after ``burn_in`` steps that only give the state context: AUC for binary features, Pearson
correlation for graded ones (``score`` is max(AUC, 1 - AUC) or |r|), and binned mutual
information for both. Units are ranked per feature by ``score``.

Two nulls say what a score means: the best score of the *untrained* network (same architecture
and seed, initial weights), and the best score of the trained network against *shuffled*
features (every sequence gets another sequence's whole feature track, so autocorrelation is
kept). A unit is **interpretable** for a feature when its score beats both nulls by ``margin``.

Beside the single units: the fraction of steps each sigmoid gate unit is left- (< 0.1) and
right-saturated (> 0.9), per layer (the paper's Fig. 4 scatter); a linear probe from the whole
state (h and c of every layer) on held-out sequences, on the same scale as a unit's score; and a
one-unit causal check — the top state unit for a feature is mean-ablated at every step through
:func:`probe.intervene`, and the change in the log-probability of the next character is measured
where the feature drops at the next step (for ``in_string``: the closing quote; for
``bracket_depth``: the closing bracket), beside the same for a random unit of the same hook.

The claims ``cells.charlm`` and ``cells.saturation`` are in :mod:`analyses.cells.claims`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

import probe
from analyses.base import Result
from analyses.cells import figures as cf
from analyses.cells import scores as sc

STATE_HOOKS = ("hook_h", "hook_c")
SIGMOID_GATES = ("hook_i", "hook_f", "hook_o", "hook_r", "hook_z")  # LSTM and GRU gates in [0, 1]
TOP_K = 5


# ---------------------------------------------------------------------------------------------
# activations at valid steps
# ---------------------------------------------------------------------------------------------

def _layer_hooks(model) -> list[str]:
    return [k for k in model.hook_dict if k.startswith("layers.")]


@torch.no_grad()
def collect(model, inputs: torch.Tensor) -> dict[str, np.ndarray]:
    """Every real-valued layer hook's whole trajectory: {hook: (B, T, D)}."""
    _, cache = model.run_with_cache(inputs, names_filter=lambda name: name.startswith("layers."))
    return {k: cache[k].double().numpy() for k in _layer_hooks(model) if not cache[k].is_complex()}


def _units(acts: dict[str, np.ndarray], mask: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Unit labels (U,) and activations at the valid steps (N, U) of {hook: (B, T, D)}."""
    labels = [f"{k}:{u}" for k, v in acts.items() for u in range(v.shape[-1])]
    return labels, np.concatenate([v[mask] for v in acts.values()], axis=1)  # (N, U)


def _batch(task, n: int, seed: int, split: str | None, overrides: dict | None):
    splits = task.splits()
    split = split or ("valid" if "valid" in splits else "train")
    if split not in splits:
        raise ValueError(f"unknown split {split!r} of task {task.name}; valid splits: {', '.join(splits)}")
    return task.sample(n=n, seed=seed, **{**splits[split], **(overrides or {})})


# ---------------------------------------------------------------------------------------------
# the causal check
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def _target_logprob(model, inputs, targets, edits=()) -> np.ndarray:
    logits = probe.intervene(model, inputs, list(edits), names_filter=lambda n: False)[0] if edits \
        else model(inputs)                                                   # (B, T, V)
    lp = torch.log_softmax(logits.double(), -1)
    return lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).numpy()          # (B, T)


def causal_check(model, batch, hook: str, unit: int, feature: str, base_lp: np.ndarray,
                 mean: float, control_unit: int, mask: np.ndarray | None = None) -> dict[str, Any]:
    """Mean-ablate ``unit`` of ``hook`` at every step; the change in target log-prob where ``feature`` drops.

    "Drops" means feature[t + 1] < feature[t], so the target at t is what ends the feature's
    span (a closing quote, a closing bracket). ``base_lp`` (B, T) is the unedited log-prob;
    ``mask`` (B, T) the steps measured (default ``batch.mask``).
    """

    T = batch.inputs.shape[1]
    f, m = batch.features[feature].numpy(), batch.mask.numpy() if mask is None else mask
    drops = np.zeros_like(m)
    drops[:, :-1] = (f[:, 1:] < f[:, :-1]) & m[:, :-1] & m[:, 1:]           # (B, T)
    rest = m & ~drops

    def delta(u: int) -> tuple[float, float]:
        edits = [probe.Edit(hook, t, probe.set_to(mean), units=[u]) for t in range(T)]
        lp = _target_logprob(model, batch.inputs, batch.targets, edits) - base_lp
        return (float(lp[drops].mean()) if drops.any() else float("nan")), float(lp[rest].mean())

    at, elsewhere = delta(unit)
    control_at, control_elsewhere = delta(control_unit)
    return {"unit": f"{hook}:{unit}", "n_steps": int(drops.sum()),
            "base_logprob": float(base_lp[drops].mean()) if drops.any() else float("nan"),
            "delta_logprob": at, "delta_logprob_elsewhere": elsewhere,
            "control_unit": f"{hook}:{control_unit}", "control_delta_logprob": control_at,
            "control_delta_logprob_elsewhere": control_elsewhere}


# ---------------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------------

@dataclass
class CellsResult(Result):
    """Unit scores, nulls, saturation, probes and causal checks; see the module docstring.

    ``scores[feature]`` holds (U,) lists ``score``, ``auc`` or ``corr``, ``mi`` in the order of
    ``units`` (labels ``"layers.0.hook_c:17"``); ``saturation[hook]`` holds (D,) ``left`` and
    ``right`` fractions for every sigmoid gate hook; ``text`` a display sequence with the top
    unit's activation per feature.
    """

    units: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    nulls: dict[str, dict[str, float]] = field(default_factory=dict)
    top: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    saturation: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    causal: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: dict[str, Any] = field(default_factory=dict)
    margin: float = 0.1

    def figures(self) -> dict[str, Any]:
        figs = {"scores": cf.score_heatmap(self), "saturation": cf.saturation_scatter(self.saturation),
                "probe": cf.probe_bars(self)}
        for f in self.text.get("values", {}):
            figs[f"text_{f}"] = cf.text_heatmap(self.text["tokens"], self.text["values"][f],
                                                title=f"{self.text['units'][f]} ({f})")
        return figs


def _check(n: int, margin: float, n_shuffles: int, causal: str, burn_in: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 4:
        raise ValueError(f"n must be an integer >= 4 (sequences; half train the probes); got {n!r}")
    if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 0:
        raise ValueError(f"burn_in must be a non-negative integer (steps); got {burn_in!r}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must lie in [0, 1); got {margin!r}")
    if isinstance(n_shuffles, bool) or not isinstance(n_shuffles, int) or n_shuffles < 1:
        raise ValueError(f"n_shuffles must be a positive integer; got {n_shuffles!r}")
    if causal not in ("mean", "none"):
        raise ValueError(f"causal must be one of mean, none; got {causal!r}")


def _nulls(init_model, full: dict, batch, feats: dict, mask: np.ndarray, n_shuffles: int, seed: int,
           ranks: np.ndarray) -> dict:
    """Best score per feature of the untrained model, and of the trained one (``full``) on shuffled features.

    ``ranks`` are the trained units' ranks at ``mask``, reused where a shuffle keeps every step.
    """
    out = {}
    init_acts = None if init_model is None else _units(collect(init_model, batch.inputs), mask)[1]
    init_ranks = None if init_acts is None else sc.unit_ranks(init_acts)
    for name, track in feats.items():
        best_shuffle = 0.0
        for s in range(n_shuffles):
            shuffled, ok = sc.shuffle_rows(track, mask, seed + 1 + s)
            y = shuffled[ok]
            if len(np.unique(y)) < 2:
                continue
            acts = _units(full, ok)[1]
            same = np.array_equal(ok, mask)  # then the units' ranks are those already computed
            best_shuffle = max(best_shuffle, float(sc.score_units(acts, y, False, ranks if same else None)["score"].max()))
        init = float("nan") if init_acts is None else \
            float(sc.score_units(init_acts, track[mask], False, init_ranks)["score"].max())
        out[name] = {"init": init, "shuffle": best_shuffle}
    return out


def _text(model, task, top: dict, seed: int, length: int, burn_in: int = 0) -> dict:
    """A display sequence and the top state unit's activation on it, per feature.

    For charlm, windows of ``burn_in + length`` characters are run and their last ``length`` shown,
    so the state has read the text before them, as when scoring.
    """
    charlm = "length" in task.params and task.name == "charlm"
    skip = burn_in if charlm else 0
    batch = _batch(task, 16, seed + 7, None, {"length": length + skip} if charlm else {})
    # show the candidate where the few-valued features change most often (strings, brackets, ...)
    changes = sum((np.diff(v.numpy()[:, skip:], axis=1) != 0).sum(1) for v in batch.features.values()
                  if len(np.unique(v.numpy())) <= 16)
    row = int(np.argmax(changes)) if not isinstance(changes, int) else 0
    with torch.no_grad():
        _, cache = model.run_with_cache(batch.inputs[row:row + 1])
    values, units = {}, {}
    for f, rows in top.items():
        state = [r for r in rows if r["unit"].split(":")[0].split(".")[-1] in STATE_HOOKS] or rows
        hook, u = state[0]["unit"].split(":")
        v = cache[hook][0, skip:, int(u)]
        values[f] = (torch.tanh(v) if hook.endswith("hook_c") else v).tolist()  # the paper shows tanh(c)
        units[f] = state[0]["unit"]
    return {"tokens": task.decode(batch.inputs[row, skip:]), "values": values, "units": units}


def analyze(model, task, n: int = 128, seed: int = 0, split: str | None = None,
            overrides: dict | None = None, init_model=None, margin: float = 0.1, n_shuffles: int = 2,
            causal: Literal["mean", "none"] = "mean", text_length: int = 400, burn_in: int = 0,
            causal_features: tuple[str, ...] | None = None) -> CellsResult:
    """Score every unit against every feature of ``task``; saturation, probes and causal checks.

    Parameters
    ----------
    model : a plain model (members=1) from :func:`probe.models.make`.
    task : its Task (must have features).
    n, seed : sequences and seed of the held-out batch.
    split : which of ``task.splits()`` to sample (default ``"valid"`` if the task has it, else ``"train"``).
    overrides : extra sampling overrides (e.g. ``{"length": 200}``).
    init_model : the untrained network for the init null (default: ``model.config`` re-initialised).
    margin : a unit is interpretable when its score beats both nulls by this much.
    n_shuffles : shuffles of the feature tracks for the shuffle null.
    causal : "mean" to run the one-unit causal check (mean ablation), "none" to skip it.
    causal_features : the features the causal check runs for (default: every feature); each
        costs two forward passes with an edit at every step.
    text_length : characters in the display sequence (charlm: shown after ``burn_in`` characters read).
    burn_in : steps at the start of every sequence that are run but not scored (scores, nulls,
        saturation, probes, causal check). A window of ``charlm`` starts anywhere in the corpus,
        with an empty state, possibly inside a string or a bracket the network never saw open;
        the paper's network carried its state across the whole text.

    Returns
    -------
    CellsResult
    """

    _check(n, margin, n_shuffles, causal, burn_in)
    if getattr(model, "is_ensemble", False):
        raise ValueError("cells analyses one network: pass model.member(i), not an ensemble")
    if not getattr(task, "feature_names", None) and not task.sample(1, seed=0).features:
        raise ValueError(f"task {task.name} has no features to score units against")
    model.eval()
    batch = _batch(task, n, seed, split, overrides)
    mask = batch.mask.numpy().copy()                                         # (B, T)
    if burn_in >= mask.shape[1] or not mask[:, burn_in:].any():
        raise ValueError(f"burn_in ({burn_in}) leaves no valid step of sequences of length {mask.shape[1]}")
    mask[:, :burn_in] = False
    feats = {k: v.numpy() for k, v in batch.features.items() if len(np.unique(v.numpy()[mask])) >= 2}
    full = collect(model, batch.inputs)                                      # {hook: (B, T, D)}
    acts = {k: v[mask] for k, v in full.items()}                             # {hook: (N, D)}
    labels, X = _units(full, mask)                                           # (N, U)
    if init_model is None:
        init_model = probe.models.from_config(model.config)
    ranks, binned = sc.unit_ranks(X), sc.quantile_bins(X)                    # (N, U) each, for every feature
    nulls = _nulls(init_model, full, batch, feats, mask, n_shuffles, seed, ranks)

    scores, top, kinds = {}, {}, {}
    for name, track in feats.items():
        s = sc.score_units(X, track[mask], ranks=ranks, binned=binned)
        kinds[name] = "binary" if "auc" in s else "graded"
        order = np.argsort(-s["score"], kind="stable")
        scores[name] = {k: v.tolist() for k, v in s.items()}
        top[name] = [{"unit": labels[i], **{k: float(v[i]) for k, v in s.items()}} for i in order[:TOP_K]]
        nulls[name]["best"] = float(s["score"][order[0]])
        nulls[name]["n_interpretable"] = int((s["score"] >= max(nulls[name]["init"] if not np.isnan(
            nulls[name]["init"]) else 0.0, nulls[name]["shuffle"]) + margin).sum())

    saturation = {}
    for hook, a in acts.items():
        if hook.split(".")[-1] in SIGMOID_GATES and a.min() >= 0 and a.max() <= 1:
            left, right = sc.saturation(a)
            saturation[hook] = {"left": left.tolist(), "right": right.tolist()}

    # linear probes from the whole state, trained on the first half of the sequences
    state = np.concatenate([a for k, a in acts.items() if k.split(".")[-1] in STATE_HOOKS], 1)  # (N, S)
    rows = np.broadcast_to(np.arange(mask.shape[0])[:, None], mask.shape)[mask]                 # (N,)
    train = rows < mask.shape[0] // 2
    probes = {name: {"probe": sc.probe_score(state, track[mask], train, seed),
                     "best_unit": nulls[name]["best"]} for name, track in feats.items()}

    checks = {}
    if causal == "mean":
        base_lp = _target_logprob(model, batch.inputs, batch.targets) if task.loss == "ce" else None
        rng = np.random.default_rng(seed)
        for name in feats if base_lp is not None else ():
            if causal_features is not None and name not in causal_features:
                continue
            pick = next((r for r in top[name] if r["unit"].split(":")[0].split(".")[-1] in STATE_HOOKS), None)
            if pick is None:
                continue
            hook, u = pick["unit"].split(":")
            width = acts[hook].shape[1]
            control = int(rng.choice([v for v in range(width) if v != int(u)])) if width > 1 else int(u)
            checks[name] = causal_check(model, batch, hook, int(u), name, base_lp,
                                        float(acts[hook][:, int(u)].mean()), control, mask)

    summary: dict[str, Any] = {"n_units": len(labels), "n_steps": int(mask.sum())}
    for name in feats:
        b = top[name][0]
        summary.update({f"{name}.best_unit": b["unit"], f"{name}.best_score": b["score"],
                        f"{name}.null_init": nulls[name]["init"], f"{name}.null_shuffle": nulls[name]["shuffle"],
                        f"{name}.n_interpretable": nulls[name]["n_interpretable"],
                        f"{name}.probe": probes[name]["probe"]})
        if name in checks:
            summary[f"{name}.causal_delta_logprob"] = checks[name]["delta_logprob"]
    for hook, s in saturation.items():
        summary[f"{hook}.left_mean"] = float(np.mean(s["left"]))
        summary[f"{hook}.right_mean"] = float(np.mean(s["right"]))
    text = _text(model, task, top, seed, text_length, burn_in) if task.input_kind == "tokens" else {}
    return CellsResult(summary=summary, units=labels, features=list(feats), kinds=kinds, scores=scores,
                       nulls=nulls, top=top, saturation=saturation, probes=probes, causal=checks, text=text,
                       margin=margin)


def analyze_run(run, member: int = 0, **params: Any) -> CellsResult:
    """:func:`analyze` on the last checkpoint, with the init null from the run's step-0 checkpoint."""
    init = run.model(member, step=0) if 0 in run.checkpoint_steps else None
    result = analyze(run.model(member), run.task(), init_model=init, **params)
    result.summary["step"] = run.checkpoint_steps[-1] if run.checkpoint_steps else None
    return result

