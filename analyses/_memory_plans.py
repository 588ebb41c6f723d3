"""State-size accounting, the training plans and the sweeps behind the memory claims.

State size is counted in real numbers the recurrence carries from one step to the next, per
member, summed over layers: a GRU, Elman, linear RNN or Hawk layer of width H carries H, an LSTM
layer 2H (h and c), an LRU layer with N complex units 2N (real and imaginary parts). The sweeps
pick each architecture's width so that they all carry the same count (:func:`hidden_for`), and
:func:`state_size` counts what a built model really returns as its final state, so that the
accounting is checked against the models rather than restated.

Every sweep point is one run of the trainer, an ensemble whose members are the seeds; runs live
in the store, so a second claim, figure or notebook asking for the same point loads it.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch

import tasks
from analyses import base
from probe.claims import for_profile
from probe.threads import single_thread

Profile = Literal["quick", "full"]
_HALF_WIDTH = ("lstm", "lru")  # two real numbers per unit of width: (h, c), or (Re, Im)


def hidden_for(arch: str, state: int) -> int:
    """The width ``hidden`` that makes one layer of ``arch`` carry ``state`` numbers."""
    import probe

    if arch not in probe.models.names():
        raise ValueError(f"unknown arch {arch!r}; valid choices: {', '.join(probe.models.names())}")
    if arch in _HALF_WIDTH:
        if state % 2:
            raise ValueError(f"{arch} carries two numbers per unit; state size {state} must be even")
        return state // 2
    return state


@torch.no_grad()
def state_size(model) -> int:
    """Real numbers per member the recurrence hands from one step to the next, counted from the
    final state the model returns (every layer, both tensors of an LSTM's (h, c))."""
    x = torch.zeros(1, 1, dtype=torch.long) if model.input_kind == "tokens" else torch.zeros(1, 1, model.d_source)
    _, finals = model(x, return_state=True)
    count = 0
    for s in finals:
        for t in (s if isinstance(s, tuple) else (s,)):
            count += t.shape[-1] * (2 if t.is_complex() else 1)
    return count


@dataclass(frozen=True)
class Plan:
    """How one profile trains its sweeps."""

    archs: tuple[str, ...] = ("gru", "lstm", "lru", "hawk")
    states: tuple[int, ...] = (4, 16, 64)         # recall frontier: state sizes, the same for every arch
    pairs: tuple[int, ...] = (4,)                 # recall frontier: key-value pairs
    recall: dict = field(default_factory=dict)    # recall task params besides num_pairs
    recall_steps: int = 1000
    disjoint: dict = field(default_factory=dict)  # disjointness task params besides order/read_twice
    disjoint_arch: str = "gru"
    disjoint_state: int = 24
    disjoint_steps: int = 2000
    probe_sizes: tuple[int, ...] = (1, 2, 4, 8, 14)
    members: int = 2                              # seeds, trained together as one ensemble
    batch_size: int = 64
    lr: float = 1e-2
    d_embed: int = 32                             # one embedding width for every size: only the state varies
    n_eval: int = 1024


PLANS: dict[str, Plan] = {
    # Zoology and JRT use V = 8192 / 2048, sequences of 64-512 and 50k+ steps; a few CPU minutes
    # allow 16 tokens with 4 pairs (recall) and 28 elements with sets of 2 and 14 (disjointness)
    "quick": Plan(recall={"vocab_size": 16, "seq_len": 16},
                  disjoint={"vocab_size": 32, "short": 2, "long": 14}),
    "full": Plan(states=(8, 16, 32, 64, 128, 256), pairs=(4, 8, 16), members=3,
                 recall={"vocab_size": 256, "seq_len": 128}, recall_steps=20_000,
                 disjoint={"vocab_size": 256, "short": 4, "long": 64}, disjoint_state=64,
                 disjoint_steps=20_000, probe_sizes=(1, 2, 4, 8, 16, 32, 64), batch_size=128, lr=3e-3),
}


def plan(profile: str) -> Plan:
    """The plan of ``profile`` ("quick" or "full")."""
    return for_profile(PLANS, profile)


def recall_task(p: Plan, pairs: int):
    return tasks.make("recall", num_pairs=pairs, **p.recall)


def disjoint_task(p: Plan, order: str = "both", read_twice: bool = False):
    return tasks.make("disjointness", order=order, read_twice=read_twice, **p.disjoint)


def _train(task, arch: str, state: int, steps: int, p: Plan, store: str, seed: int):
    import probe

    model = probe.models.make(arch, task, hidden=hidden_for(arch, state), members=p.members, seed=seed,
                              d_embed=p.d_embed)
    return probe.train(task, model, steps=steps, batch_size=p.batch_size, lr=p.lr, schedule="cosine",
                       warmup=steps // 20, store=store, seed=seed, progress=False, eval_splits=["train"],
                       n_checkpoints=4)


def train_recall(arch: str, state: int, pairs: int, p: Plan, store: str = "runs", seed: int = 0):
    """Train (or load) the ensemble of ``p.members`` seeds at one frontier point."""
    return _train(recall_task(p, pairs), arch, state, p.recall_steps, p, store, seed)


def train_disjoint(order: str, read_twice: bool, p: Plan, store: str = "runs", seed: int = 0):
    """Train (or load) the disjointness ensemble of one (order, read_twice) at the plan's state size."""
    return _train(disjoint_task(p, order, read_twice), p.disjoint_arch, p.disjoint_state, p.disjoint_steps,
                  p, store, seed)


@torch.no_grad()
def member_accuracy(model, task, n: int, seed: int = 10_007, **overrides) -> list[float]:
    """Accuracy of every member on ``n`` fresh sequences (a held-out seed)."""
    batch = task.sample(n, seed=seed, **overrides)
    return [m["accuracy"] for m in task.evaluate_members(model(batch.inputs), batch)]


def frontier_sweep(profile: str = "quick", store: str = "runs", archs: Sequence[str] | None = None,
                   seed: int = 0) -> dict:
    """Train every (arch, state, pairs) point and measure it; ``rows`` has one row per point.

    Returns ``{"rows": [{"arch", "state", "hidden", "pairs", "accuracy": [per member], "mean", "run"}],
    "seconds": wall time of this call}`` (training included unless the store had the runs).
    """
    p = plan(profile)
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
    p = plan(profile)
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

