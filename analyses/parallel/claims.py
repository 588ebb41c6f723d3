"""``parallel.predictability``: Newton's method solves a GRU trained to integrate in a few iterations,
and one trained on parity in far more.

DEER (Lim et al. 2024) and ParaRNN (Danieli et al. 2025) report Newton over the whole sequence
converging in a handful of iterations on their cells. Gonzalez et al. 2025 ("Predictability enables
parallelization of nonlinear state space models") tie that to the dynamics: few iterations when
they contract (perturbations forgotten), iterations growing with T when they do not. A GRU trained
on integration forgets (the leaky target decays); one trained on parity must keep a bit for ever
and flip it on every 1. Both are trained here (:func:`trained`) and DEER's iterations on their first
layer counted at the settings' longest T (float32, DEER's tolerance 1e-4).
"""
from __future__ import annotations

from dataclasses import dataclass

from analyses.parallel.analysis import analyze_run
from probe import sweep
from probe.claims import Claim, claim, outcome
from probe.settings import Settings, profiles, setting, settings_for

TASKS = {"parity": {}, "integration": {"length": 64}}


@dataclass(frozen=True)
class ParallelSettings(Settings):
    """What the claim trains and measures."""

    hidden: int = setting(16, ge=1)
    steps: int = setting(150, ge=1)
    lengths: tuple[int, ...] = (16, 64, 256)
    step_length: int = setting(64, ge=1, doc="T of the iterations-against-training-step curve")
    n: int = setting(16, ge=1, doc="sequences per measurement")
    max_iter: int = setting(50, ge=1, doc="a solve stopped here counts as max_iter")
    max_checkpoints: int = setting(8, ge=2)


SETTINGS = profiles(quick=ParallelSettings(),
                    full=ParallelSettings(steps=400, lengths=(16, 64, 256, 1024), step_length=256, max_iter=100,
                                          max_checkpoints=27))


def settings(profile: str = "quick") -> ParallelSettings:
    return settings_for(SETTINGS, profile)


def trained(task_name: str, s: ParallelSettings, store: str = "runs"):
    """The GRU run on ``task_name`` (:func:`point`; cached in the store: a second call loads it)."""
    return sweep.train_points([point(task_name, s)], store=store, name="parallel.predictability")[0]


def point(task_name: str, s: ParallelSettings) -> sweep.Point:
    """The claim's GRU on ``task_name`` as a :class:`probe.sweep.Point`."""
    sets = tuple((f"task.{k}", v) for k, v in TASKS[task_name].items())
    sets += (("train.batch_size", 64), ("train.lr", 1e-2), ("train.eval_splits", ["train"]), ("train.eval_n", 256))
    return sweep.Point(task_name, "gru", s.hidden, steps=s.steps, seed=0, sets=sets)


def measure(s: ParallelSettings, store: str = "runs") -> dict:
    """Task name -> the :class:`analyses.parallel.ParallelResult` of its trained GRU (both GRUs
    trained, or loaded, through :func:`probe.sweep.train_points`)."""
    runs = sweep.train_points([point(name, s) for name in TASKS], store=store, name="parallel.predictability")
    return {name: analyze_run(run, lengths=s.lengths, step_length=s.step_length, n=s.n,
                              max_iter=s.max_iter, max_checkpoints=s.max_checkpoints) for name, run in zip(TASKS, runs)}


@claim("parallel.predictability",
       source="Lim et al. 2024 (DEER); Danieli et al. 2025 (ParaRNN); Gonzalez et al. 2025 (predictability)",
       quick_s=19, full_s=900, measured=("quick",),  # CPU s, one process, empty store; full: estimate
       statement="Newton's method solves a GRU trained to integrate in a few iterations (<= 10), and needs "
                 "more than twice as many on a GRU trained on parity, whose dynamics do not forget")
def predictability(profile: str = "quick", store: str = "runs") -> Claim:
    """DEER's iterations at the longest T for the two GRUs (quasi-DEER's reported alongside)."""
    s = settings(profile)
    results = measure(s, store)
    measured = {name: {"T": s.lengths[-1], **{m: r.by_length[m][-1] for m in r.by_length},
                       "fallbacks": len(r.data["fallbacks"])} for name, r in results.items()}
    deer = {name: measured[name]["deer"] for name in TASKS}
    return outcome(measured, "integration deer <= 10 and parity deer > 2 x integration deer",
                   deer["integration"] <= 10 and deer["parity"] > 2 * deer["integration"])
