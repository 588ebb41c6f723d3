"""Per-profile settings, training and the sweeps behind the memory claims and figures.

Widths come from :func:`analyses.memory.accounting.hidden_for`, so every architecture of a sweep
carries the same state size. Every sweep point is one run of the trainer, an ensemble whose members are the seeds; runs live
in the store, so a second claim, figure or notebook asking for the same point loads it.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import analyses
import probe
import tasks
from analyses import base
from analyses._moved import renamed
from analyses.memory import figures as figs
from analyses.memory.accounting import hidden_for, member_accuracy, state_size  # noqa: F401  (state_size: re-exported)
from probe.settings import Settings, profiles, setting, settings_for
from probe.threads import single_thread


@dataclass(frozen=True)
class MemorySettings(Settings):
    """How one profile trains its sweeps."""

    archs: tuple[str, ...] = ("gru", "lstm", "lru", "hawk")
    states: tuple[int, ...] = setting((4, 16, 64), doc="recall frontier: state sizes, the same for every arch")
    pairs: tuple[int, ...] = setting((4,), doc="recall frontier: key-value pairs")
    recall: dict = setting(factory=dict, doc="recall task params besides num_pairs")
    recall_steps: int = setting(1000, ge=1)
    disjoint: dict = setting(factory=dict, doc="disjointness task params besides order/read_twice")
    disjoint_arch: str = "gru"
    disjoint_state: int = setting(24, ge=1)
    disjoint_steps: int = setting(2000, ge=1)
    probe_sizes: tuple[int, ...] = (1, 2, 4, 8, 14)
    members: int = setting(2, ge=1, doc="seeds, trained together as one ensemble")
    batch_size: int = setting(64, ge=1)
    lr: float = setting(1e-2, gt=0)
    d_embed: int = setting(32, ge=1, doc="one embedding width for every size: only the state varies")
    n_eval: int = setting(1024, ge=1)


SETTINGS = profiles(
    # Zoology and JRT use V = 8192 / 2048, sequences of 64-512 and 50k+ steps; a few CPU minutes
    # allow 16 tokens with 4 pairs (recall) and 28 elements with sets of 2 and 14 (disjointness)
    quick=MemorySettings(recall={"vocab_size": 32, "seq_len": 16},
                         disjoint={"vocab_size": 32, "short": 2, "long": 14}),
    full=MemorySettings(states=(8, 16, 32, 64, 128, 256), pairs=(4, 8, 16), members=3,
                        recall={"vocab_size": 256, "seq_len": 128}, recall_steps=20_000,
                        disjoint={"vocab_size": 256, "short": 4, "long": 64}, disjoint_state=64,
                        disjoint_steps=20_000, probe_sizes=(1, 2, 4, 8, 16, 32, 64), batch_size=128, lr=3e-3),
)


def settings(profile: str) -> MemorySettings:
    """The settings of ``profile`` ("quick" or "full")."""
    return settings_for(SETTINGS, profile)


# Before 0.2: Plan, PLANS, plan(); the accounting helpers lived here too.
__getattr__ = renamed(globals(), {"Plan": "MemorySettings", "PLANS": "SETTINGS", "plan": "settings"})


def recall_task(p: MemorySettings, pairs: int):
    return tasks.make("recall", num_pairs=pairs, **p.recall)


def disjoint_task(p: MemorySettings, order: str = "both", read_twice: bool = False):
    return tasks.make("disjointness", order=order, read_twice=read_twice, **p.disjoint)


def _train(task, arch: str, state: int, steps: int, p: MemorySettings, store: str, seed: int):
    model = probe.models.make(arch, task, hidden=hidden_for(arch, state), members=p.members, seed=seed,
                              d_embed=p.d_embed)
    return probe.train(task, model, steps=steps, batch_size=p.batch_size, lr=p.lr, schedule="cosine",
                       warmup=steps // 20, store=store, seed=seed, progress=False, eval_splits=["train"],
                       n_checkpoints=4)


def train_recall(arch: str, state: int, pairs: int, p: MemorySettings, store: str = "runs", seed: int = 0):
    """Train (or load) the ensemble of ``p.members`` seeds at one frontier point."""
    return _train(recall_task(p, pairs), arch, state, p.recall_steps, p, store, seed)


def train_disjoint(order: str, read_twice: bool, p: MemorySettings, store: str = "runs", seed: int = 0):
    """Train (or load) the disjointness ensemble of one (order, read_twice) at the plan's state size."""
    return _train(disjoint_task(p, order, read_twice), p.disjoint_arch, p.disjoint_state, p.disjoint_steps,
                  p, store, seed)


def frontier_sweep(profile: str = "quick", store: str = "runs", archs: Sequence[str] | None = None,
                   seed: int = 0) -> dict:
    """Train every (arch, state, pairs) point and measure it; ``rows`` has one row per point.

    Returns ``{"rows": [{"arch", "state", "hidden", "pairs", "accuracy": [per member], "mean", "run"}],
    "seconds": wall time of this call}`` (training included unless the store had the runs).
    """
    p = settings(profile)
    t0, rows = time.perf_counter(), []
    with single_thread():
        for pairs in p.pairs:
            task = recall_task(p, pairs)
            for arch in archs or p.archs:
                for state in p.states:
                    run = train_recall(arch, state, pairs, p, store, seed)
                    acc = member_accuracy(run.ensemble(), task, p.n_eval)
                    rows.append({"arch": arch, "state": state, "hidden": hidden_for(arch, state), "pairs": pairs,
                                 "accuracy": acc, "mean": float(np.mean(acc)), "run": run.id})
    return {"rows": rows, "seconds": round(time.perf_counter() - t0, 1)}


def asymmetry_sweep(profile: str = "quick", store: str = "runs", seed: int = 0) -> dict:
    """Disjointness at the plan's state size: accuracy of each order, read once and twice.

    One model per (order, read_twice), each trained on its own order, so that each measures the
    memory its order needs. Returns ``{"rows": [{"order", "read_twice", "accuracy": [per member],
    "mean", "run"}], "seconds"}``.
    """
    p = settings(profile)
    t0, rows = time.perf_counter(), []
    with single_thread():
        for read_twice in (False, True):
            for order in ("short_first", "long_first"):
                run = train_disjoint(order, read_twice, p, store, seed)
                acc = member_accuracy(run.ensemble(), disjoint_task(p, order, read_twice), p.n_eval)
                rows.append({"order": order, "read_twice": read_twice, "accuracy": acc, "mean": float(np.mean(acc)),
                             "run": run.id})
    return {"rows": rows, "seconds": round(time.perf_counter() - t0, 1)}


def gaps(rows: list[dict]) -> dict:
    """Short-first minus long-first accuracy, read once and twice, from :func:`asymmetry_sweep` rows."""
    acc = {(r["order"], r["read_twice"]): r["mean"] for r in rows}
    once = acc[("short_first", False)] - acc[("long_first", False)]
    twice = acc[("short_first", True)] - acc[("long_first", True)]
    return {"once": once, "twice": twice, "closed": (once - twice) / once if once > 0 else float("nan")}


# recall accuracy against state size: drops of up to 0.05 are noise, a rise needs at least 0.1
rises = functools.partial(base.rises, tolerance=0.05, min_rise=0.1)


def frontier_figure(profile: str = "quick", store: str = "runs"):
    """Recall accuracy against state size, one line per architecture (trains or loads the sweep)."""
    rows = frontier_sweep(profile, store)["rows"]
    return figs.frontier(rows, f"Recall against recurrent state size ({profile} profile)")


def asymmetry_figure(profile: str = "quick", store: str = "runs"):
    """Disjointness accuracy, order x read twice, at the plan's state size (trains or loads)."""
    rows = asymmetry_sweep(profile, store)["rows"]
    return figs.asymmetry(rows, settings(profile).disjoint_state)


def probe_curves(profile: str = "quick", store: str = "runs", member: int = 0) -> dict[str, dict]:
    """Membership-probe accuracy by first-set size for the read-once models of the asymmetry sweep."""
    p = settings(profile)
    out = {}
    for order in ("short_first", "long_first"):
        run = train_disjoint(order, False, p, store)
        r = analyses.analyze("memory", run, member=member, sizes=list(p.probe_sizes))
        out[f"trained {order.replace('_', ' ')}"] = {int(k): v for k, v in r.probe.items()}
    return out


def probe_figure(profile: str = "quick", store: str = "runs"):
    """Probe accuracy against the first set's size (from :func:`probe_curves`)."""
    return figs.probe_vs_size(probe_curves(profile, store),
                              f"Membership of the first set, decoded at the separator ({profile} profile)")
