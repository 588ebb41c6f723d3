"""How many Newton iterations a trained RNN's recurrence takes to solve over a whole sequence.

``analyze(model, task)`` runs the first recurrent layer of a plain model with ``solver="deer"``
and ``"quasi"`` (:mod:`probe.newton`) on the task's sequences at several lengths and records the
iterations each solve took to reach its tolerance; ``analyze_run(run)`` adds the same count at one
length for every checkpoint of the run, which shows how nonlinear the learned dynamics become
as training goes on. The solves are checked against the sequential loop (``max_error``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch

from analyses.base import Result

METHODS = ("deer", "quasi")


def _check(model) -> None:
    if model.is_ensemble:
        raise ValueError("analyze a plain model (model.member(i)), not an ensemble: one solve spans every member")
    if not hasattr(model.layers[0], "solver"):
        raise ValueError(f"a {model.arch} layer has no Newton solver; valid: gru, lstm, elman, gru_diag, lstm_diag")


@torch.no_grad()
def count(model, inputs: torch.Tensor, method: str, max_iter: Optional[int] = None) -> dict[str, Any]:
    """Iterations of ``method`` on the first layer for ``inputs``, and the largest deviation of its
    states from the sequential loop's (the fallback, if taken, is reported, not hidden)."""
    _check(model)
    layer = model.layers[0]
    old = (layer.solver, layer.newton_max_iter)
    try:
        layer.solver, layer.newton_max_iter = "sequential", None
        _, ref = model.run_with_cache(inputs, names_filter="layers.0.hook_h")
        layer.solver, layer.newton_max_iter = method, max_iter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # a fallback is recorded in the info
            _, got = model.run_with_cache(inputs, names_filter="layers.0.hook_h")
        info = layer.last_solve
    finally:
        layer.solver, layer.newton_max_iter = old
    error = float((got["layers.0.hook_h"] - ref["layers.0.hook_h"]).abs().max())
    return {"iterations": info.iterations, "converged": info.converged, "fallback": info.fallback, "max_error": error}


@dataclass
class ParallelResult(Result):
    """Newton iterations per method: against sequence length, and (from a run) against training step."""

    lengths: list[int] = field(default_factory=list)
    by_length: dict[str, list[int]] = field(default_factory=dict)      # method -> iterations per length
    steps: list[int] = field(default_factory=list)
    by_step: dict[str, list[int]] = field(default_factory=dict)        # method -> iterations per checkpoint
    step_length: int = 0

    def figures(self) -> dict[str, Any]:
        from analyses.parallel.figures import iterations_figure
        figs = {"iterations_vs_length": iterations_figure(self.lengths, self.by_length, "sequence length T", log_x=True)}
        if self.steps:
            figs["iterations_vs_step"] = iterations_figure(self.steps, self.by_step, "training step", log_x=False,
                                                           title=f"T = {self.step_length}")
        return figs


def _inputs(task, n: int, seed: int, length: int) -> torch.Tensor:
    return task.sample(n=n, seed=seed, length=length).inputs


def analyze(model, task, lengths: Sequence[int] = (16, 64, 256, 1024), n: int = 16, seed: int = 0,
            methods: Sequence[str] = METHODS, max_iter: Optional[int] = None) -> ParallelResult:
    """Newton iterations of ``model``'s first layer on ``n`` of ``task``'s sequences per length.

    The model runs in its own dtype with the solvers' default tolerance for it (1e-4 in float32,
    DEER's). ``max_iter`` (default 100) bounds a solve; one that stops there is counted as
    ``max_iter`` and flagged in ``data["fallbacks"]``.
    """
    _check(model)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; valid choices: {', '.join(METHODS)}")
    rows = {m: [count(model, _inputs(task, n, seed, T), m, max_iter) for T in lengths] for m in methods}
    by_length = {m: [r["iterations"] for r in rows[m]] for m in methods}
    summary = {f"{m}_iterations_T{lengths[-1]}": by_length[m][-1] for m in methods}
    summary["max_error"] = max(r["max_error"] for m in methods for r in rows[m])
    fallbacks = [(m, T) for m in methods for T, r in zip(lengths, rows[m], strict=True) if r["fallback"]]
    return ParallelResult(summary=summary, data={"fallbacks": fallbacks}, lengths=list(lengths), by_length=by_length)


def analyze_run(run, member: int = 0, lengths: Sequence[int] = (16, 64, 256, 1024), step_length: int = 256,
                n: int = 16, seed: int = 0, methods: Sequence[str] = METHODS, max_iter: Optional[int] = None,
                max_checkpoints: int = 12) -> ParallelResult:
    """:func:`analyze` at the last checkpoint, plus the iterations at ``step_length`` over training,
    at up to ``max_checkpoints`` of the run's checkpoints (evenly spread over its list, both ends kept)."""
    import tasks
    task = tasks.make(run.config["task"]["name"], **run.config["task"].get("params", {}))
    result = analyze(run.model(member=member), task, lengths, n, seed, methods, max_iter)
    steps = list(run.checkpoint_steps)
    if len(steps) > max_checkpoints:
        picks = {round(i * (len(steps) - 1) / (max_checkpoints - 1)) for i in range(max_checkpoints)}
        steps = [steps[i] for i in sorted(picks)]
    x = _inputs(task, n, seed, step_length)
    result.by_step = {m: [count(run.model(member=member, step=s), x, m, max_iter)["iterations"] for s in steps]
                      for m in methods}
    result.steps, result.step_length = steps, step_length
    result.summary.update({f"{m}_iterations_first_step": result.by_step[m][0] for m in methods})
    return result
