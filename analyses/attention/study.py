"""Training for the ``attention.discovered`` claim and the loss-against-size figure.

Bilinear hawks (and LSTMs, for comparison) are trained on the two ``icl_regression`` variants with
:func:`probe.train`, so a second call with the same profile and store reads the finished runs back.
Every model is scored on one evaluation batch per task, the one :func:`analyses.attention.analyze`
uses, so losses, the one-step-GD reference and the sweep are all on the same data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import probe
import tasks
from analyses.base import renamed
from analyses.attention.analysis import HAWK_OPTIONS, Kind, analyze, model_loss
from probe import sweep
from probe.settings import Settings, profiles, setting, settings_for
from probe.threads import single_thread

KINDS: tuple[Kind, ...] = ("teacher", "regression")
EVAL_SEED = 20240


@dataclass(frozen=True)
class AttentionSettings(Settings):
    """How much a profile trains. Hawk widths should reach the construction's count (4 here)."""

    steps: int = setting(ge=1, doc="hawk training steps (batch 256, AdamW, cosine to lr/10)")
    hidden: int = setting(ge=1, doc="width of the hawks the claim recovers")
    sweep: tuple[int, ...] = setting(doc="further widths for loss against size")
    sweep_kinds: tuple[Kind, ...] = setting(doc="which tasks get the sweep")
    lstm_hidden: int = setting(ge=1)
    lstm_steps: int = setting(ge=1)
    lstm_kinds: tuple[Kind, ...] = setting()
    members: int = setting(ge=1, doc="seeds, trained together as one ensemble")
    eval_n: int = setting(ge=1)
    lr: float = setting(3e-3, gt=0)
    kinds: tuple[Kind, ...] = setting(KINDS, doc="which tasks to train on at all")


SETTINGS = profiles(
    # quick: one seed; the sweep only on the teacher, where the threshold is; short LSTMs (slow on CPU)
    quick=AttentionSettings(steps=1500, hidden=8, sweep=(1, 2, 3, 4, 6), sweep_kinds=("teacher",),
                            lstm_hidden=16, lstm_steps=500, lstm_kinds=KINDS, members=1, eval_n=4096),
    full=AttentionSettings(steps=6000, hidden=8, sweep=(1, 2, 3, 4, 5, 6, 12, 16), sweep_kinds=KINDS,
                           lstm_hidden=64, lstm_steps=6000, lstm_kinds=KINDS, members=3, eval_n=16384),
)


def settings(profile: str) -> AttentionSettings:
    """The settings of ``profile`` ("quick" or "full")."""
    return settings_for(SETTINGS, profile)


__getattr__ = renamed(globals(), {"Budget": "AttentionSettings", "PROFILES": "SETTINGS"})


def make_task(kind: Kind, d_x: int = 4, d_y: int = 1, n_examples: int = 16):
    """The ``icl_regression`` task of the study (one query token after the context)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid choices: {', '.join(KINDS)}")
    return tasks.make("icl_regression", kind=kind, d_x=d_x, d_y=d_y, n_examples=n_examples)


_one_thread = single_thread


def point(kind: Kind, arch: str, hidden: int, steps: int, members: int = 1, seed: int = 0,
          lr: float = 3e-3) -> sweep.Point:
    """One run of the study as a :class:`probe.sweep.Point`: a bilinear hawk (``arch="hawk"``,
    :data:`HAWK_OPTIONS`) or any other architecture, on :func:`make_task` ``(kind)``; its run id
    is :func:`train`'s for the same arguments."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid choices: {', '.join(KINDS)}")
    options = HAWK_OPTIONS if arch == "hawk" else {}
    sets = ((("task.kind", kind), ("task.d_x", 4), ("task.d_y", 1), ("task.n_examples", 16))
            + tuple((f"model.{k}", v) for k, v in options.items())
            + (("train.batch_size", 256), ("train.lr", lr), ("train.schedule", "cosine"),
               ("train.eval_every", max(1, steps // 4)), ("train.eval_splits", ["train"]),
               ("train.n_checkpoints", 8)))
    return sweep.Point("icl_regression", arch, hidden, members=members, steps=steps, seed=seed, sets=sets)


def train(task, arch: str, hidden: int, steps: int, store: str, members: int = 1, seed: int = 0,
          lr: float = 3e-3):
    """Train (or read back) one run: a bilinear hawk (``arch="hawk"``) or any other architecture."""
    options = HAWK_OPTIONS if arch == "hawk" else {}
    model = probe.models.make(arch, task, hidden=hidden, members=members, seed=seed, **options)
    return probe.train(task, model, steps=steps, batch_size=256, lr=lr, schedule="cosine", store=store,
                       seed=seed, eval_every=max(1, steps // 4), eval_splits=["train"], n_checkpoints=8, progress=False)


def points(budget: AttentionSettings) -> list[tuple[Kind, str, str, int, sweep.Point]]:
    """Every run ``budget`` trains, in order: ``(kind, role, arch, hidden, point)`` with role
    ``"recovered"`` (the hawk the claim reads), ``"sweep"`` (further widths) or ``"lstm"``."""
    out = []
    for kind in budget.kinds:
        rows = [("recovered", "hawk", budget.hidden, budget.steps)]
        if kind in budget.sweep_kinds:
            rows += [("sweep", "hawk", h, budget.steps) for h in budget.sweep if h != budget.hidden]
        if kind in budget.lstm_kinds:
            rows.append(("lstm", "lstm", budget.lstm_hidden, budget.lstm_steps))
        out += [(kind, role, arch, h, point(kind, arch, h, n, budget.members, lr=budget.lr))
                for role, arch, h, n in rows]
    return out


def _pick_median(results: list) -> object:
    """The member whose excess loss is the median (the middle one of an odd number)."""
    order = np.argsort([r.summary["excess"] for r in results])
    chosen = results[int(order[(len(results) - 1) // 2])]
    if len(results) > 1:
        chosen.summary["members_excess"] = [r.summary["excess"] for r in results]
        chosen.summary["members_correlation"] = [r.summary["correlation"] for r in results]
    return chosen


def study(profile: str | AttentionSettings = "quick", store: str = "runs") -> dict:
    """Train what the claim needs (a profile name, or any :class:`AttentionSettings`) and score it.

    Returns
    -------
    dict with "results" {kind: AttentionResult of the recovered hawk}, "sweep" (rows {"task",
    "arch", "hidden", "member", "loss", "relative_loss"}), "construction" {kind: neuron count} and
    "references" {kind: relative loss of the LSA solution}. Every result carries the sweep too.
    """
    budget = profile if isinstance(profile, AttentionSettings) else settings(profile)
    with _one_thread():
        return _study(budget, store)


def _study(budget: AttentionSettings, store: str) -> dict:
    plan = points(budget)
    runs = sweep.train_points([p for *_, p in plan], store=store, name="attention.discovered")
    results, sweep_rows, construction, references = {}, [], {}, {}
    for kind in budget.kinds:
        task = make_task(kind)
        batch = task.sample(n=budget.eval_n, seed=EVAL_SEED)
        zero = float((batch.targets.double() ** 2).mean(-1)[batch.mask].mean())
        for (k, role, arch, h, _), run in zip(plan, runs):
            if k != kind:
                continue
            if role == "recovered":
                member_results = [analyze(run.model(m), task, n=budget.eval_n, seed=EVAL_SEED)
                                  for m in range(budget.members)]
                results[kind] = _pick_median(member_results)
                construction.update(results[kind].construction)
                references.update(results[kind].references)
                losses = [r.summary["loss"] for r in member_results]
            else:
                losses = [model_loss(run.model(m), batch) for m in range(budget.members)]
            sweep_rows += [{"task": kind, "arch": arch, "hidden": h, "member": m, "loss": loss,
                            "relative_loss": loss / zero} for m, loss in enumerate(losses)]
    for res in results.values():
        res.sweep, res.construction, res.references = sweep_rows, dict(construction), dict(references)
    return {"results": results, "sweep": sweep_rows, "construction": construction, "references": references}
