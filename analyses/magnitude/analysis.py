"""Magnitude-coded ("onion") against linear representations of a stored token sequence.

Csordás, Potts, Manning & Geiger (2024, arXiv 2408.10920): a GRU trained to repeat a sequence
of tokens must hold the whole sequence in its final encoder state. Small GRUs store each
position's token at its own order of magnitude in shared dimensions, not in a subspace of its
own, so linear (DAS) interventions that swap a position's subspace fail where an onion
intervention, which adds the token change at a learned position-dependent magnitude, succeeds.

    result = analyses.magnitude.analyze(model, task)             # a model trained on repetition
    result.summary       # accuracy after each intervention, the fitted geometric rate
    result.figures()     # per-position accuracy, contributions on a log axis, one readout

The three interventions (examples in :mod:`analyses.magnitude.data`, the onion in
:mod:`analyses.magnitude.onion`): ``unigram`` and ``bigram`` train :class:`probe.das.DAS` to
swap one position's (or the two bigrams') rotated subspace in from a source; ``onion`` trains
h' = h + (c(b) − c(a)) ⊙ (g⊙γ^p + p·ℓ + β). All act on the final encoder state (hook
``"state"``: h for a GRU, h and c for an LSTM) and are scored by whole-sequence accuracy of the
teacher-forced decoder on the counterfactual sequence. As in the paper's code, the linear ones
are trained and scored on the longest sequences and the onion on every length. The size sweep
and the claims are in :mod:`analyses.magnitude.sweep` and :mod:`analyses.magnitude.claims`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from analyses.base import Result
from analyses.magnitude import figures as figs
from analyses.magnitude.data import (
    KINDS,
    contributions,
    geometric_fit,
    n_variables,
    sampler,
)
from analyses.magnitude.onion import Onion
from probe.das import DAS, STATE, sequence_correct


@dataclass
class MagnitudeResult(Result):
    """Per-model outcome: intervention accuracies, the magnitude view and one readout example.

    Attributes
    ----------
    accuracy : {kind: whole-sequence accuracy after intervention} (the onion's over every length
        when ``onion_lengths="all"``, as in the paper)
    accuracy_at_length : {kind: the same at length L}
    per_position : {kind: (L,) accuracy at length L by intervened position}
    model_accuracy : the model's own sequence accuracy at this length, no intervention
    contributions : (L,) mean ‖Δ final state‖ when position p's token changes; ``fit`` its
        geometric fit (``rate`` per position, ``r2``)
    onion_scales : (L,) norm of the onion intervention's learned magnitude for each position
    readout : one example's decoder probabilities (see :func:`analyses.magnitude.figures.readout`)
    """

    arch: str = ""
    hidden: int = 0
    length: int = 0
    accuracy: dict = field(default_factory=dict)
    accuracy_at_length: dict = field(default_factory=dict)
    per_position: dict = field(default_factory=dict)
    model_accuracy: float = float("nan")
    contributions: list = field(default_factory=list)
    fit: dict = field(default_factory=dict)
    onion_scales: list = field(default_factory=list)
    readout: dict = field(default_factory=dict)

    def figures(self) -> dict:
        out = {"position_accuracy": figs.position_accuracy(
                   self.per_position, f"Accuracy per position ({self.arch}, N={self.hidden}, L={self.length})"),
               "contributions": figs.contributions(self.contributions, self.fit, self.onion_scales or None)}
        if self.readout:
            out["readout"] = figs.readout(self.readout)
        return out


@torch.no_grad()
def _readout_example(model, task, onion: Onion, seed: int) -> dict:
    """Decoder probabilities for one example: clean, corrupted at a middle position, repaired."""
    s = sampler(task, "onion")
    batch = s(8, seed)
    i = int(torch.argmin((batch.info["position"] - task.config.max_len // 2).abs()))
    one = type(batch)(batch.base[i:i + 1], None, batch.variables[i:i + 1], batch.targets[i:i + 1],
                      batch.mask[i:i + 1], batch.step, info={k: v[i:i + 1] for k, v in batch.info.items()})
    L = batch.step + 1
    clean = one.base.clone()
    clean[0, int(one.info["position"])] = one.info["new"]
    probs = {"clean input": model(clean), "token corrupted": model(one.base), "onion repair": onion.predict(model, one)}
    emitted = one.mask[0]
    return {"tokens": clean[0, :L].tolist(), "position": int(one.info["position"]), "old": int(one.info["old"]),
            "new": int(one.info["new"]),
            "panels": [{"name": k, "probs": torch.softmax(v[0, emitted], -1).tolist()} for k, v in probs.items()]}


def _check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"unknown intervention kinds {bad or kinds!r}; valid kinds: {', '.join(KINDS)}")
    return tuple(kinds)


def analyze(model, task, kinds: Sequence[str] = KINDS, length: int | None = None, steps: int = 400,
            onion_steps: int | None = None, lr: float = 1e-2, batch_size: int = 128, assignment: str = "fixed",
            contributions_from: str = "learned", onion_lengths: str = "all", n_eval: int = 1024,
            seed: int = 0) -> MagnitudeResult:
    """Fit and score the interventions on one model trained on ``repetition``.

    Parameters
    ----------
    model : a plain model (``members=1``; use ``model.member(i)``).
    task : the repetition task it was trained on.
    kinds : any of "unigram", "bigram", "onion".
    length : sequence length L of the linear interventions' examples (default the task's
        ``max_len``, as the paper's).
    steps, lr, batch_size : training of each intervention (Adam, cosine decay).
    onion_steps : training steps of the onion intervention (default ``steps``).
    assignment : DAS's assignment of rotated dimensions, "fixed" (D // K per variable) or "gumbel".
    contributions_from : the onion's c(b): "learned" (tanh E[b], E learned from the model's own
        contribution, as the paper's code learns E) or "model" (the model's, fixed).
    onion_lengths : "all" trains and scores the onion on every length up to L, as the paper's code
        does; "max" on length L only, like the linear ones. Either way ``accuracy_at_length``
        holds the onion's accuracy at length L, and ``per_position`` is measured at length L.
    n_eval : fresh examples to score each intervention on.
    seed : seeds the interventions and their data.
    """
    kinds = _check_kinds(kinds)
    L = length or task.config.max_len
    lengths = (L,)
    batch = task.sample(n_eval, seed=seed + 1, min_len=L, max_len=L)
    with torch.no_grad():
        model_acc = float(sequence_correct(model(batch.inputs), batch.targets, batch.mask).float().mean())
    norms = contributions(model, task, L, n=min(n_eval, 512), seed=seed)
    result = MagnitudeResult(arch=model.config.get("arch", "?"), hidden=int(model.config.get("hidden", 0)), length=L,
                             model_accuracy=model_acc, contributions=norms.tolist(), fit=geometric_fit(norms))
    if onion_lengths not in ("all", "max"):
        raise ValueError(f"unknown onion_lengths {onion_lengths!r}; valid: all, max")
    every = tuple(range(task.config.min_len, L + 1)) if onion_lengths == "all" else lengths
    for kind in kinds:
        if kind == "onion":
            est = Onion(task.config.n_symbols, STATE, contributions_from, onion_steps or steps, lr, batch_size, seed)
            s = sampler(task, kind, every)
        else:
            est = DAS(n_variables(kind, task.config.max_len), STATE, assignment, steps=steps, lr=lr,
                      batch_size=batch_size, seed=seed)
            s = sampler(task, kind, lengths)
        est.fit(model, s)
        # one evaluation batch per length
        ev = est.evaluate(model, s, n=n_eval, seed=seed + 10_000_019, batch_size=-(-n_eval // len(every)))
        at_L = ev if kind != "onion" or every == lengths else est.evaluate(
            model, sampler(task, kind, lengths), n=n_eval, seed=seed + 10_000_019)
        result.accuracy[kind] = ev["accuracy"]
        result.accuracy_at_length[kind] = at_L["accuracy"]
        result.per_position[kind] = [at_L["by_group"].get(p, float("nan")) for p in range(L)]
        if kind == "onion":
            result.onion_scales = est.scales(L).norm(dim=-1).tolist()
            result.readout = _readout_example(model, task, est, seed + 3)
    result.summary = {"arch": result.arch, "hidden": result.hidden, "length": L, "model_accuracy": model_acc,
                      **{f"accuracy.{k}": v for k, v in result.accuracy.items()},
                      **({"accuracy.onion_at_length": result.accuracy_at_length["onion"]} if "onion" in kinds else {}),
                      "contribution_rate": result.fit["rate"], "contribution_r2": result.fit["r2"]}
    return result


__all__ = ["MagnitudeResult", "analyze"]
