"""Per-profile settings, training and the sweeps behind the memory claims and figures.

Every architecture of a sweep carries the same state size, as its own ``state_size()`` counts
it: :func:`width_for` searches the one size knob of each architecture (``hidden``; ``state_dim``
for the LRU) for the largest state not above the target, the rest fixed by ``arch_params``.
Architectures come from what :mod:`probe.models` registers (:func:`registered`), so a sweep grows
as architectures land. Every sweep point is one run of the trainer, an ensemble whose members are
the seeds; runs live in the store, so a second claim, figure or notebook asking for the same
point loads it.
"""
from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import analyses
import probe
import tasks
from analyses import base
from analyses.base import renamed
from analyses.memory import figures as figs
from analyses.memory.accounting import hidden_for, member_accuracy, state_size  # noqa: F401  (re-exported)
from probe.settings import Settings, profiles, setting, settings_for
from probe.sweep import Point, train_points
from probe.threads import single_thread

# Zoology's families: state written through products of the input with itself, or not
INPUT_DEPENDENT = ("linattn", "deltanet", "mamba", "based")
LTI = "lru"
JRT_ARCHS = ("based", "mamba", "linattn")  # the recurrent models of JRT's set-disjointness figures
EVERY_ARCH = ("gru", "lstm", "elman", "linear", "lru", "hawk", "linattn", "deltanet", "mamba", "based")
KNOB = {"lru": "state_dim"}  # the parameter that sets an architecture's state size (default: hidden)


def _arch_params() -> dict:
    # a short convolution of 2 lets a one-layer matrix-state model see the key when it reads the
    # value (Zoology's BaseConv before every attention-free mixer) and costs the state little;
    # linear attention with elu + 1 features and the normaliser learns MQAR on both seeds where the
    # identity map learns it on one (NOTES.md); Based keeps 2 key features (its Taylor map makes
    # 7), Mamba 4 state indices per channel; DeltaNet runs without its forget gate (the delta rule
    # alone, as Yang et al. 2024); the LRU keeps a width of 32 and varies its complex units
    return {"lru": {"hidden": 32}, "linattn": {"conv": 2, "feature": "elu", "normalize": True},
            "deltanet": {"conv": 2, "gate": False}, "based": {"conv": 2, "d_key": 2}, "mamba": {"conv": 2, "state_dim": 4}}


def _disjoint_arch_params() -> dict:
    # no convolution (Mamba: a width of 1); the sets need no pairing of neighbours, and its state
    # would crowd out S
    return {"linattn": {"feature": "elu", "normalize": True}, "based": {"conv": 0, "d_key": 2},
            "mamba": {"conv": 1, "state_dim": 4}}


@dataclass(frozen=True)
class MemorySettings(Settings):
    """How one profile trains its sweeps."""

    archs: tuple[str, ...] = setting(EVERY_ARCH, doc="recall frontier: architectures, those registered")
    arch_params: dict = setting(factory=_arch_params, doc="per architecture: fixed parameters besides the size knob")
    states: tuple[int, ...] = setting((64, 256), doc="recall frontier: state sizes, the same for every arch")
    pairs: tuple[int, ...] = setting((4,), doc="recall frontier: key-value pairs")
    recall: dict = setting(factory=dict, doc="recall task params besides num_pairs")
    recall_steps: int = setting(1000, ge=1)
    disjoint: dict = setting(factory=dict, doc="disjointness task params besides order/read_twice")
    disjoint_archs: tuple[str, ...] = setting(JRT_ARCHS, doc="order asymmetry: architectures, those registered")
    disjoint_arch_params: dict = setting(factory=dict, doc="order asymmetry: per arch, replaces arch_params")
    disjoint_layers: int = setting(1, ge=1, doc="order asymmetry: layers (the state counts all of them)")
    disjoint_state: int = setting(24, ge=1)
    disjoint_steps: int = setting(2000, ge=1)
    probe_sizes: tuple[int, ...] = (1, 2, 4, 8, 14)
    members: int = setting(2, ge=1, doc="seeds, trained together as one ensemble")
    batch_size: int = setting(64, ge=1)
    lr: float = setting(1e-2, gt=0)
    lrs: dict = setting(factory=dict, doc="per architecture: a learning rate that replaces lr (Zoology sweeps "
                                          "it per model and reports the best)")
    d_embed: int = setting(32, ge=1, doc="one embedding width for every size: only the state varies")
    n_eval: int = setting(1024, ge=1)


SETTINGS = profiles(
    # Zoology uses V = 8192, sequences of 64-512, 4-64 pairs and d_model 64-512, and sweeps the
    # learning rate per model (1e-3 to 3.2e-2); ~2 CPU minutes allow 32 tokens, sequences of 16
    # and 4 pairs (8 query slots) on the LTI model and the input-dependent ones, at states 64 and
    # 256 (and 16, which only the LRU and Mamba can carry: a short convolution over the
    # embedding alone holds d_embed = 32 numbers), each at the better of lr 3e-3 and 1e-2 where both were tried (NOTES.md); JRT's
    # 2048 tokens and sets of 16-1024 become 16 elements with sets of 2 and 8 on linear attention
    # (the one JRT model that learns the task at this size)
    quick=MemorySettings(archs=(LTI, *INPUT_DEPENDENT), states=(16, 64, 256), lr=3e-3,
                         lrs={"linattn": 1e-2, "deltanet": 1e-2},
                         recall={"vocab_size": 32, "seq_len": 16},
                         disjoint={"vocab_size": 20, "short": 2, "long": 8}, disjoint_state=40,
                         disjoint_archs=("linattn",), disjoint_layers=2,
                         disjoint_arch_params=_disjoint_arch_params(), probe_sizes=(1, 2, 4, 8)),
    full=MemorySettings(states=(64, 256, 1024, 4096), pairs=(4, 8, 16, 32), members=3,
                        recall={"vocab_size": 8192, "seq_len": 256}, recall_steps=20_000,
                        disjoint={"vocab_size": 256, "short": 4, "long": 64}, disjoint_state=256,
                        disjoint_steps=20_000, probe_sizes=(1, 2, 4, 8, 16, 32, 64), batch_size=128, lr=3e-3),
)


def settings(profile: str) -> MemorySettings:
    """The settings of ``profile`` ("quick" or "full")."""
    return settings_for(SETTINGS, profile)


# Before 0.2: Plan, PLANS, plan(); the accounting helpers lived here too.
__getattr__ = renamed(globals(), {"Plan": "MemorySettings", "PLANS": "SETTINGS", "plan": "settings"})


def describe_recall(p: MemorySettings, archs: Sequence[str] | None = None) -> str:
    """The frontier sweep's setting in words (what a claim's report says it ran)."""
    lrs = ", ".join(f"{a} {_lr(p, a):g}" for a in registered(archs or p.archs))
    return (f"MQAR V={p.recall.get('vocab_size')}, T={p.recall.get('seq_len')}, pairs {list(p.pairs)}, "
            f"states {list(p.states)}, {p.recall_steps} steps, batch {p.batch_size}, {p.members} seeds, "
            f"d_embed {p.d_embed}, lr {lrs}")


def describe_disjoint(p: MemorySettings) -> str:
    """The order-asymmetry sweep's setting in words."""
    d = p.disjoint
    lrs = ", ".join(f"{a} {_lr(p, a):g}" for a in registered(p.disjoint_archs))
    return (f"set disjointness, {d.get('vocab_size', 128) - 4} elements, sets of {d.get('short', 4)} and "
            f"{d.get('long', 16)}, {p.disjoint_layers} layers, state {p.disjoint_state}, {p.disjoint_steps} steps, "
            f"batch {p.batch_size}, {p.members} seeds, lr {lrs}")


def registered(archs: Sequence[str]) -> tuple[str, ...]:
    """Those of ``archs`` that :mod:`probe.models` registers, in the given order."""
    names = probe.models.names()
    return tuple(a for a in archs if a in names)


@functools.lru_cache(maxsize=512)
def _width(arch: str, state: int, dims: str, fixed: str) -> tuple[dict, int]:
    d = json.loads(dims)
    params = json.loads(fixed)
    knob = KNOB.get(arch, "hidden")

    def size(k: int) -> int | None:
        try:
            return probe.models.make(arch, d["task"], **{**params, knob: k}, d_embed=d["d_embed"],
                                     layers=d["layers"]).state_size()
        except ValueError:
            return None

    lo, hi, best = 1, max(state, 1), None
    while lo <= hi:  # state_size grows with the knob: the largest knob whose state fits
        mid = (lo + hi) // 2
        s = size(mid)
        if s is not None and s <= state:
            best, lo = (mid, s), mid + 1
        else:
            hi = mid - 1
    if best is None:
        probe.models.make(arch, d["task"], **{**params, knob: 1}, d_embed=d["d_embed"], layers=d["layers"])  # bad params
        raise ValueError(f"{arch} cannot carry a state of {state} numbers or fewer with {params or 'its defaults'}; "
                         f"choose a larger state size")
    return {**params, knob: best[0]}, best[1]


def width_for(arch: str, state: int, p: MemorySettings, task, layers: int = 1,
              arch_params: dict | None = None) -> tuple[dict, int]:
    """Model parameters that give ``arch`` (``layers`` deep) the largest state of at most ``state``
    numbers, and that state.

    ``hidden`` (``state_dim`` for the LRU) is searched; ``arch_params`` (default
    ``p.arch_params``) fixes the rest per architecture.
    """
    arch_params = p.arch_params if arch_params is None else arch_params
    if arch not in probe.models.names():
        raise ValueError(f"unknown arch {arch!r}; valid choices: {', '.join(probe.models.names())}")
    valid = probe.models.arch_params(arch)
    bad = [k for k in arch_params.get(arch, {}) if k not in valid and k != "hidden"]
    if bad:
        raise ValueError(f"arch_params[{arch!r}] has unknown parameter {bad[0]!r}; valid choices: "
                         f"hidden, {', '.join(valid)}")
    dims = {"task": {"vocab_size": task.vocab_size, "d_output": task.d_output, "input_kind": task.input_kind},
            "d_embed": p.d_embed, "layers": layers}
    return _width(arch, state, json.dumps(dims, sort_keys=True), json.dumps(arch_params.get(arch, {}), sort_keys=True))


def carries(arch: str, state: int, p: MemorySettings, task) -> bool:
    """Whether ``arch`` can be built with a state of at most ``state`` numbers (a short convolution
    over the embedding alone holds ``d_embed`` of them: a sweep's smallest states may be carried
    by a few architectures only)."""
    try:
        width_for(arch, state, p, task)
    except ValueError as e:
        if "cannot carry" in str(e):
            return False
        raise
    return True


def recall_task(p: MemorySettings, pairs: int):
    return tasks.make("recall", num_pairs=pairs, **p.recall)


def disjoint_task(p: MemorySettings, order: str = "both", read_twice: bool = False):
    return tasks.make("disjointness", order=order, read_twice=read_twice, **p.disjoint)


def _lr(p: MemorySettings, arch: str) -> float:
    return p.lrs.get(arch, p.lr)


def _point(task_name: str, task_params: dict, arch: str, state: int, steps: int, p: MemorySettings, seed: int,
           layers: int = 1, arch_params: dict | None = None):
    """The :class:`probe.sweep.Point` of one run: ``probe train``'s arguments for this model and task."""
    task = tasks.make(task_name, **task_params)
    params, _ = width_for(arch, state, p, task, layers, arch_params)
    params = dict(params)
    hidden = params.pop("hidden")
    sets = (*((f"task.{k}", v) for k, v in task_params.items()),
            ("model.d_embed", p.d_embed), *((f"model.{k}", v) for k, v in params.items()),
            ("train.batch_size", p.batch_size), ("train.lr", _lr(p, arch)), ("train.schedule", "cosine"),
            ("train.warmup", steps // 20), ("train.eval_splits", ("train",)), ("train.n_checkpoints", 4))
    return Point(task=task_name, arch=arch, hidden=hidden, layers=layers, members=p.members, steps=steps,
                       seed=seed, sets=sets)


def recall_point(arch: str, state: int, pairs: int, p: MemorySettings, seed: int = 0):
    """The :class:`probe.sweep.Point` of one frontier run (``p.members`` seeds as one ensemble)."""
    return _point("recall", {"num_pairs": pairs, **p.recall}, arch, state, p.recall_steps, p, seed)


def disjoint_point(order: str, read_twice: bool, p: MemorySettings, seed: int = 0, arch: str | None = None):
    """The :class:`probe.sweep.Point` of one order-asymmetry run (``arch``: default the first
    registered of ``p.disjoint_archs``)."""
    arch = arch or disjoint_archs(p)[0]
    return _point("disjointness", {"order": order, "read_twice": read_twice, **p.disjoint}, arch,
                  p.disjoint_state, p.disjoint_steps, p, seed, p.disjoint_layers,
                  {**p.arch_params, **p.disjoint_arch_params})


def train_recall(arch: str, state: int, pairs: int, p: MemorySettings, store: str = "runs", seed: int = 0):
    """Train (or load) the ensemble of ``p.members`` seeds at one frontier point."""
    return train_points([recall_point(arch, state, pairs, p, seed)], store=store, name="memory.recall_run")[0]


def train_disjoint(order: str, read_twice: bool, p: MemorySettings, store: str = "runs", seed: int = 0,
                   arch: str | None = None):
    """Train (or load) the disjointness ensemble of one (order, read_twice) at the plan's state size
    (``arch``: default the first registered of ``p.disjoint_archs``)."""
    return train_points([disjoint_point(order, read_twice, p, seed, arch)], store=store,
                        name="memory.disjoint_run")[0]


def disjoint_archs(p: MemorySettings) -> tuple[str, ...]:
    """The registered architectures of the order-asymmetry sweep (ValueError if none is)."""
    archs = registered(p.disjoint_archs)
    if not archs:
        raise ValueError(f"none of {', '.join(p.disjoint_archs)} is registered; valid choices: "
                         f"{', '.join(probe.models.names())}")
    return archs


def frontier_sweep(profile: str = "quick", store: str = "runs", archs: Sequence[str] | None = None,
                   seed: int = 0) -> dict:
    """Train every (arch, state, pairs) point and measure it; ``rows`` has one row per point.

    ``archs`` defaults to the profile's architectures that are registered. Returns ``{"rows":
    [{"arch", "state" (the target), "state_size" (the model's own count), "params", "pairs",
    "accuracy": [per member], "mean", "run"}], "seconds": wall time of this call}`` (training
    included unless the store had the runs).
    """
    p = settings(profile)
    t0, rows = time.perf_counter(), []
    grid = [(pairs, arch, state) for pairs in p.pairs for arch in registered(archs or p.archs) for state in p.states
            if carries(arch, state, p, recall_task(p, pairs))]
    with single_thread():
        runs = train_points([recall_point(arch, state, pairs, p, seed) for pairs, arch, state in grid], store=store,
                            name="recall.state_frontier")
        for (pairs, arch, state), run in zip(grid, runs):
            task = recall_task(p, pairs)
            params, size = width_for(arch, state, p, task)
            acc = member_accuracy(run.ensemble(), task, p.n_eval)
            rows.append({"arch": arch, "state": state, "state_size": size, "params": params,
                         "hidden": params.get("hidden"), "pairs": pairs, "lr": _lr(p, arch), "accuracy": acc,
                         "mean": float(np.mean(acc)), "run": run.id})
    return {"rows": rows, "seconds": round(time.perf_counter() - t0, 1)}


def asymmetry_sweep(profile: str = "quick", store: str = "runs", seed: int = 0,
                    archs: Sequence[str] | None = None) -> dict:
    """Disjointness at the plan's state size: accuracy of each order, read once and twice, per arch.

    One model per (arch, order, read_twice), each trained on its own order, so that each measures
    the memory its order needs. Returns ``{"rows": [{"arch", "order", "read_twice", "accuracy":
    [per member], "mean", "run"}], "seconds"}``.
    """
    p = settings(profile)
    t0, rows = time.perf_counter(), []
    grid = [(arch, read_twice, order) for arch in (registered(archs) if archs else disjoint_archs(p))
            for read_twice in (False, True) for order in ("short_first", "long_first")]
    with single_thread():
        runs = train_points([disjoint_point(order, read_twice, p, seed, arch) for arch, read_twice, order in grid],
                            store=store, name="disjointness.order_asymmetry")
        for (arch, read_twice, order), run in zip(grid, runs):
            acc = member_accuracy(run.ensemble(), disjoint_task(p, order, read_twice), p.n_eval)
            rows.append({"arch": arch, "order": order, "read_twice": read_twice, "accuracy": acc,
                         "mean": float(np.mean(acc)), "run": run.id})
    return {"rows": rows, "seconds": round(time.perf_counter() - t0, 1)}


def gaps(rows: list[dict], arch: str | None = None) -> dict:
    """Short-first minus long-first accuracy, read once and twice, from :func:`asymmetry_sweep` rows
    of one architecture (``arch``; default the first in ``rows``)."""
    arch = arch or rows[0].get("arch")
    acc = {(r["order"], r["read_twice"]): r["mean"] for r in rows if r.get("arch") == arch}
    once = acc[("short_first", False)] - acc[("long_first", False)]
    twice = acc[("short_first", True)] - acc[("long_first", True)]
    return {"once": once, "twice": twice, "closed": (once - twice) / once if once > 0 else float("nan")}


# recall accuracy against state size: drops of up to 0.05 are noise, a rise needs at least 0.1
rises = functools.partial(base.rises, tolerance=0.05, min_rise=0.1)


def frontier_figure(profile: str = "quick", store: str = "runs"):
    """MQAR accuracy against state size, every architecture on one plot (trains or loads the sweep)."""
    rows = frontier_sweep(profile, store)["rows"]
    return figs.frontier(rows, f"MQAR accuracy against recurrent state size ({profile} profile)")


def asymmetry_figure(profile: str = "quick", store: str = "runs"):
    """Disjointness accuracy, order x read twice, at the plan's state size (trains or loads)."""
    rows = asymmetry_sweep(profile, store)["rows"]
    return figs.asymmetry(rows, settings(profile).disjoint_state)


def probe_curves(profile: str = "quick", store: str = "runs", member: int = 0) -> dict[str, dict]:
    """Membership-probe accuracy by first-set size for the read-once models of the asymmetry sweep."""
    p = settings(profile)
    out = {}
    for order in ("short_first", "long_first"):
        run = train_disjoint(order, False, p, store)  # the first registered of the asymmetry's archs
        r = analyses.analyze("memory", run, member=member, sizes=list(p.probe_sizes))
        out[f"trained {order.replace('_', ' ')}"] = {int(k): v for k, v in r.probe.items()}
    return out


def probe_figure(profile: str = "quick", store: str = "runs"):
    """Probe accuracy against the first set's size (from :func:`probe_curves`)."""
    return figs.probe_vs_size(probe_curves(profile, store),
                              f"Membership of the first set, decoded at the separator ({profile} profile)")
