"""How much memory recall and set disjointness need, and why the order of the sets matters.

Zoology (Arora et al. 2023) finds that a recurrent model's multi-query associative recall (MQAR)
accuracy is set by its recurrent state size, along a recall-memory frontier; "Just read twice"
(Arora et al. 2024) that on set disjointness the state a causal recurrent model needs grows with
the size of the set it reads *first*, so (short, long) is easy and (long, short) fails at a fixed
state size, and that reading the context twice removes the dependence on order.

    result = analyses.memory.analyze(model, task)     # one model on recall or disjointness
    result.summary, result.figures()                  # recall: accuracy by lag (and, for a matrix
                                                      # state, pairs read back out of S); disjointness: probes
    analyses.memory.frontier_figure("quick")          # the sweeps, trained into the run store
    analyses.memory.asymmetry_figure("quick"); analyses.memory.probe_figure("quick")

State size counts the real numbers the recurrence carries (GRU, Elman, Hawk: H; LSTM: 2H for h
and c; LRU: 2N for the real and imaginary parts), and each architecture's width is chosen to give
the same count, so GRU, LSTM, LRU and Hawk are compared at equal memory
(:func:`analyses.memory.plans.hidden_for`, checked by :func:`analyses.memory.plans.state_size`).
What the state stores is probed directly: one logistic regression per element token, from the
state at the list separator, decodes whether the token is in the first set; its balanced
accuracy against the first set's size shows how much of the set the state holds.

The quick profile departs from the papers' scale (:mod:`analyses.memory.plans`: 16 tokens and
4 pairs for recall, 28 elements with sets of 2 and 14 for disjointness); NOTES.md records what was
measured and the searches for the order asymmetry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analyses.base import Result
from analyses.memory import figures as figs
from analyses.memory.accounting import member_accuracy, state_size
from analyses.memory.probes import probe_by_set_size, recall_by_lag
from analyses.memory.readout import pair_readout, readout_layers, retrieval_summary
from probe.threads import single_thread


@dataclass
class MemoryResult(Result):
    """One model on recall or disjointness.

    Attributes
    ----------
    task : "recall" or "disjointness"
    state_size : real numbers the recurrence carries (all layers)
    accuracy : {split: accuracy} on fresh sequences of each of the task's splits
    by_lag : recall only: {lag: accuracy}, lag = query position - position of its stored key
    probe : disjointness only: {first-set size: membership-probe balanced accuracy}
    retrieval : recall with a matrix state only: {"count": [per step, mean pairs whose S_t k is
        closest to their own v], "stored": [pairs written by each step], "cos_by_step": [mean
        cosine of S_t k with v]} (:mod:`analyses.memory.readout`)
    """

    task: str = ""
    arch: str = ""
    state_size: int = 0
    accuracy: dict = field(default_factory=dict)
    by_lag: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)
    retrieval: dict = field(default_factory=dict)

    def figures(self) -> dict:
        out = {}
        if self.retrieval:
            out["retrieval"] = figs.retrieval({f"{self.arch}, state {self.state_size}": self.retrieval})
        if self.by_lag:
            out["by_lag"] = figs.by_lag(self.by_lag, f"Recall by lag ({self.arch}, state {self.state_size})")
        if self.probe:
            out["probe"] = figs.probe_vs_size({f"{self.arch}, state {self.state_size}": self.probe})
        return out



def _nanmean_steps(cos: np.ndarray) -> list:
    """Mean cosine per step over rows and pairs; NaN (null in JSON) before any pair is stored."""
    finite = np.isfinite(cos).sum(axis=(0, 1))
    total = np.nansum(cos, axis=(0, 1))
    return [round(float(t / c), 4) if c else None for t, c in zip(total, finite)]

def analyze(model, task, sizes: list[int] | None = None, n: int = 1024, seed: int = 0) -> MemoryResult:
    """Accuracy per split, and recall by lag (recall) or membership probes by set size (disjointness).

    Parameters
    ----------
    model : a plain model (``members=1``; use ``model.member(i)``).
    task : a ``recall`` or ``disjointness`` task.
    sizes : disjointness: first-set sizes to probe (default 1, 2, 4, ... up to the long set).
    n : sequences per evaluation (the probes fit on half and score on the other half).
    seed : seeds the data and the probes.
    """
    if task.name not in ("recall", "disjointness"):
        raise ValueError(f"memory analyses recall or disjointness models; got task {task.name!r}")
    if model.is_ensemble:
        raise ValueError("analyze takes a plain model; pick a member with model.member(i)")
    result = MemoryResult(task=task.name, arch=model.config["arch"], state_size=state_size(model))
    with single_thread():
        for split, overrides in task.splits().items():
            result.accuracy[split] = member_accuracy(model, task, n, seed=seed + 10_007, **overrides)[0]
        if task.name == "recall":
            result.by_lag = recall_by_lag(model, task, n, seed=seed + 10_007)
            if readout_layers(model):
                r = pair_readout(model, task, min(n, 256), seed=seed + 10_007)
                ctx = 2 * task.config.num_pairs * task.config.num_passes
                result.retrieval = {"count": r["count"].round(4).tolist(), "stored": r["stored"].tolist(),
                                    "cos_by_step": _nanmean_steps(r["cos"]),
                                    **retrieval_summary(r, ctx)}
        else:
            long = task.config.long
            sizes = sizes or sorted({2 ** i for i in range(long.bit_length()) if 2 ** i <= long} | {long})
            result.probe = probe_by_set_size(model, task, sizes, n, seed)
    result.summary = {"task": task.name, "arch": result.arch, "state_size": result.state_size,
                      **{f"accuracy.{k}": v for k, v in result.accuracy.items()}}
    if result.by_lag:
        lags = sorted(result.by_lag)
        result.summary.update({"accuracy.shortest_lag": result.by_lag[lags[0]],
                               "accuracy.longest_lag": result.by_lag[lags[-1]]})
    if result.retrieval:
        result.summary.update({f"retrieval.{k}": v for k, v in result.retrieval.items()
                               if not isinstance(v, list)})
    if result.probe:
        result.summary.update({f"probe.size_{k}": v for k, v in result.probe.items()})
    return result


__all__ = ["MemoryResult", "analyze"]
