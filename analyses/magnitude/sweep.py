"""The hidden-size sweep behind the repetition claims: per-profile settings, training, the size figure.

One run per hidden size (the trainer trains ``members`` seeds of one size at once), each member
analysed through ``analyses.analyze("magnitude", run, member)``, so results are cached in the run
folder and a second claim, figure or notebook reading the same run and parameters does not fit
the interventions again.

``full`` is the paper's setup: 40k steps of AdamW (lr 1e-3, weight decay 0.1, batch 256, no
clipping) on the paper's task (30 symbols, lengths 2-9), sizes 48 to 1024, three seeds,
interventions trained for 4000 steps (the paper: 60k); many CPU hours. ``quick`` runs in a few
CPU minutes: the same symbols, architecture, optimiser and interventions, but sequences of
lengths 2-5 at lr 1e-2 (cosine, batch 128), with fewer steps for the larger (faster-learning)
sizes. NOTES.md says why, and what was measured.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, Sequence

import analyses
import tasks
from analyses import base
from analyses.base import renamed
from analyses.magnitude import figures as figs
from probe.settings import Settings, profiles, setting, settings_for
from probe.sweep import Point, train_points
from probe.threads import single_thread


@dataclass(frozen=True)
class MagnitudeSettings(Settings):
    """How to train and analyse the models of one profile."""

    sizes: tuple[int, ...]
    task: dict = setting(factory=dict, doc="repetition params (the paper's defaults when empty)")
    steps: int = setting(40_000, ge=1)
    steps_by_size: dict = setting(factory=dict, doc="{hidden: steps} where a size trains for a different count")
    batch_size: int = setting(256, ge=1)
    lr: float = setting(1e-3, gt=0)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup: int = setting(0, ge=0)
    weight_decay: float = setting(0.1, ge=0)
    members: int = setting(1, ge=1, doc="seeds per size, trained together")
    intervention_steps: int = setting(4000, ge=1, doc="each linear (DAS) intervention")
    onion_steps: int = setting(4000, ge=1)
    intervention_batch: int = setting(256, ge=1)
    n_eval: int = setting(4096, ge=1)

    def steps_for(self, hidden: int) -> int:
        return int(self.steps_by_size.get(hidden, self.steps))

    def analysis_params(self) -> dict:
        return {"steps": self.intervention_steps, "onion_steps": self.onion_steps,
                "batch_size": self.intervention_batch, "n_eval": self.n_eval}


SETTINGS = profiles(
    # lengths 2-5; larger GRUs learn the task in fewer steps (every size reaches >= 0.99 sequence
    # accuracy at length 5), so they get fewer: the budget goes where a step is cheap
    quick=MagnitudeSettings(sizes=(48, 64, 128, 256), task={"max_len": 5}, steps=8000,
                            steps_by_size={64: 3000, 128: 2000, 256: 1000}, batch_size=128, lr=1e-2,
                            schedule="cosine", warmup=100, intervention_steps=200, onion_steps=1500,
                            intervention_batch=128, n_eval=1024),
    full=MagnitudeSettings(sizes=(48, 64, 128, 256, 512, 1024), members=3),
)


def settings(profile: str) -> MagnitudeSettings:
    """The settings of ``profile`` ("quick" or "full")."""
    return settings_for(SETTINGS, profile)


__getattr__ = renamed(globals(), {"Plan": "MagnitudeSettings", "PLANS": "SETTINGS", "plan": "settings"})


def task_for(p: MagnitudeSettings):
    return tasks.make("repetition", **p.task)


def point(arch: str, hidden: int, p: MagnitudeSettings, seed: int = 0) -> Point:
    """The sweep point of one size: ``p.members`` seeds of ``arch`` with ``hidden`` units, as
    ``probe train --set`` keys (its run id is the one ``probe train`` gives these settings)."""
    sets = (*((f"task.{k}", v) for k, v in p.task.items()),
            ("train.batch_size", p.batch_size), ("train.lr", p.lr), ("train.schedule", p.schedule),
            ("train.warmup", p.warmup), ("train.weight_decay", p.weight_decay), ("train.grad_clip", None),
            ("train.eval_splits", ["train"]))
    return Point("repetition", arch, hidden, members=p.members, steps=p.steps_for(hidden), seed=seed, sets=sets)


def train_runs(arch: str, sizes: Sequence[int], p: MagnitudeSettings, store: str = "runs", seed: int = 0,
               name: str = "repetition") -> list:
    """Train (or load, if the store has them) one run per size through the sweep engine
    (:func:`probe.sweep.train_points`: here, or on ``probe verify``'s ``--workers`` / ``--engine``)."""
    return train_points([point(arch, h, p, seed) for h in sizes], store=store, name=name)


def train_run(arch: str, hidden: int, p: MagnitudeSettings, store: str = "runs", seed: int = 0):
    """Train (or load, if the store has it) the ensemble of ``p.members`` models of one size."""
    return train_runs(arch, (hidden,), p, store, seed)[0]


def sweep(arch: str = "gru", profile: str = "quick", store: str = "runs", sizes: Sequence[int] | None = None,
          kinds: Sequence[str] = ("unigram", "bigram", "onion"), steps: int | None = None, seed: int = 0,
          name: str = "repetition") -> list[dict]:
    """Train every size (one sweep, ``name``d in the store's sweep index) and analyse every member;
    one row per (size, member).

    ``steps`` overrides the plan's training steps of the linear interventions.

    Rows hold ``arch``, ``hidden``, ``member``, ``accuracy`` {kind: accuracy},
    ``model_accuracy``, ``rate`` (the contributions' geometric rate) and ``run`` (its id).
    """
    p = settings(profile)
    sizes = tuple(sizes or p.sizes)
    rows = []
    with single_thread():
        runs = train_runs(arch, sizes, p, store, seed, name)
        for hidden, run in zip(sizes, runs):
            for m in range(p.members):
                params = {**p.analysis_params(), **({"steps": steps} if steps else {})}
                r = analyses.analyze("magnitude", run, member=m, kinds=list(kinds), seed=seed, **params)
                rows.append({"arch": arch, "hidden": hidden, "member": m, "accuracy": dict(r.accuracy),
                             "model_accuracy": r.model_accuracy, "rate": r.fit.get("rate"), "run": run.id})
    return rows


def setting_text(p: MagnitudeSettings, sizes: Sequence[int] | None = None, arch: str = "gru",
                 intervention_steps: int | None = None) -> str:
    """The setting a claim ran, in words (for its ``measured`` output): sizes, sequence lengths,
    seeds, training and intervention steps."""
    cfg = task_for(p).config
    sizes = tuple(sizes or p.sizes)
    return (f"{arch.upper()} N={'/'.join(map(str, sizes))}, lengths {cfg.min_len}-{cfg.max_len}, "
            f"{p.members} seed{'s' if p.members > 1 else ''}, "
            f"{'/'.join(dict.fromkeys(str(p.steps_for(h)) for h in sizes))} training steps, "
            f"interventions {intervention_steps or p.intervention_steps} steps")


def linear_accuracy(accuracy: dict) -> float:
    """The linear intervention's accuracy: the better of its unigram and bigram variants."""
    return max(accuracy.get(k, float("-inf")) for k in ("unigram", "bigram"))


def mean_by_size(rows: list[dict], key) -> dict[int, float]:
    """{hidden: mean of key(row) over the members}."""
    out: dict[int, list[float]] = {}
    for r in rows:
        out.setdefault(r["hidden"], []).append(key(r))
    return {h: sum(v) / len(v) for h, v in sorted(out.items())}


# linear accuracy against hidden size: drops of up to 0.05 are noise, a rise needs at least 0.2
rises = functools.partial(base.rises, tolerance=0.05, min_rise=0.2)


def size_figure(profile: str = "quick", store: str = "runs", arch: str = "gru"):
    """Intervention accuracy against hidden size (the paper's table as a plot), from the sweep."""
    rows = sweep(arch, profile, store, name="onion_size")
    return figs.accuracy_vs_size(rows, f"Intervention accuracy against hidden size ({arch}, {profile} profile)")
