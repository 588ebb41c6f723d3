"""In-context n-gram predictors against recurrent models on in-context regular languages.

Akyürek, Wang, Kim & Andreas (ICML 2024, arXiv 2401.12973; RegBench): a model reads strings of
an automaton it has never seen and must continue them. The paper finds that models which do
this well behave like *in-context n-gram predictors* (its "n-gram heads"): their next-token
distribution is close to that of a bigram or trigram model fitted to the earlier strings of the
same context. This analysis compares a model trained on :mod:`tasks.regular` with those
predictors (n = 1, 2, 3; see :mod:`analyses.ngram.counts` for the paper's backoff smoothing) and with the
true DFA distribution::

    result = analyses.ngram.analyze(model, task)          # a model trained on "regular"
    result = analyses.analyze("ngram", run, member=0)     # + the same over the run's checkpoints
    result.summary     # accuracy, TVD to the DFA and to each n-gram predictor, the closest n
    result.figures()   # TVD against position in context, over training, one coloured context

Measured on held-out automata (``automata="test"``): total-variation distance (TVD) to each
reference, overall and per position in the context; ``accuracy``, the fraction of positions
whose greedy next letter is legal under the DFA (RegBench's accuracy: ``|`` is no symbol of the
automaton), next to ``accuracy_with_sep``, the task's own metric where ``|`` counts too (it is
legal after every letter, so hedging on it scores); the same for the n-gram baselines; which n
the model is closest to; and how well a linear probe (scikit-learn) decodes the current DFA
state from the last layer's state, against a probe on the current token alone.

The claim ``regular.icll`` (:mod:`analyses.ngram.claims`) trains the sweep over architectures
and numbers of training automata of :mod:`analyses.ngram.sweep`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from analyses.base import Result
from analyses.ngram import figures as figs
from analyses.ngram import measure


@dataclass
class NgramResult(Result):
    """One model against the in-context n-gram predictors and the DFA.

    Attributes
    ----------
    scores : the model's ``accuracy``, ``accuracy_with_sep``, ``tvd`` {ref: mean},
        ``tvd_by_position`` {ref: (T,)}, ``closest`` (n) and ``closest_by_position`` ((T,) n);
        refs are "dfa", "1", "2", "3"
    baselines : {n: accuracy, accuracy_with_sep, tvd (to the DFA), tvd_by_position} of each predictor
    counts : (T,) number of scored rows at each position
    probe : linear-probe decodability of the DFA state (``accuracy``, ``chance``, ``token_control``)
    training : one row per checkpoint: ``step``, ``accuracy``, ``tvd`` {ref: mean}, ``closest``
    example : one context for the legality figure (see :func:`analyses.ngram.measure.example`)
    """

    arch: str = ""
    n_train_automata: int = 0
    scores: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    counts: list = field(default_factory=list)
    probe: dict = field(default_factory=dict)
    training: list = field(default_factory=list)
    example: dict = field(default_factory=dict)

    def figures(self) -> dict:
        out = {"tvd_by_position": figs.tvd_by_position(self.scores, self.baselines, self.counts,
                                                       f"{self.arch}: TVD to each predictor by position")}
        if self.training:
            out["training"] = figs.over_training(self.training, f"{self.arch}: distance to each predictor over training")
        if self.example:
            out["example"] = figs.example(self.example, f"{self.arch}: greedy next letter, legal (green) or not (red)")
        return out


def _eval_batch(task, n: int, seed: int, pool: str):
    if getattr(task, "name", None) != "regular":
        raise ValueError(f"the ngram analysis needs the regular task; got {getattr(task, 'name', task)!r}")
    if pool not in ("train", "test"):
        raise ValueError(f"unknown pool {pool!r}; valid pools: train, test")
    # the batch's random stream hashes every task parameter; pinning n_train_automata (which the
    # held-out pool does not depend on) gives every cell of a sweep the very same test contexts
    same = {"n_train_automata": 1} if pool == "test" else {}
    batch = task.sample(n, seed=seed, automata=pool, **same)
    return batch, task.legal_next(batch)


@torch.no_grad()
def _probs(model, batch) -> np.ndarray:
    if getattr(model, "members", 1) != 1:
        raise ValueError(f"analyse one member at a time (model.member(i)); this model has {model.members}")
    return model(batch.inputs).softmax(-1).double().numpy()  # (B, T, 20)


def analyze(model, task, n: int = 256, seed: int = 12345, pool: str = "test", orders: Sequence[int] = (1, 2, 3),
            smoothing: str = "backoff", probe: bool = True, example_row: int = 0) -> NgramResult:
    """Compare one model with the in-context n-gram predictors and the DFA on fresh contexts.

    Parameters
    ----------
    model : a plain model (``members=1``) trained on ``regular``
    task : the regular task (its held-out pool is the same whatever ``n_train_automata``)
    n : contexts scored; seed : their seed; pool : "test" (held-out automata) or "train"
    orders : n-gram orders to compare with
    smoothing : "backoff" (the paper's) or "add_one"
    probe : fit the linear probe of the DFA state (a second or two)
    example_row : which context the legality figure shows
    """
    batch, legal = _eval_batch(task, n, seed, pool)
    mask = batch.mask.numpy()
    refs = measure.references(batch, legal, tuple(orders), smoothing)
    p = _probs(model, batch)
    result = NgramResult(arch=model.config.get("arch", "?"),
                         n_train_automata=int(task.params.get("n_train_automata", 0)),
                         scores=measure.scores(p, refs, legal, mask), baselines=measure.baselines(refs, legal, mask),
                         counts=measure.by_position(mask.astype(float), mask)[1],
                         example=measure.example(batch, example_row, p, legal, refs))
    if probe:
        with torch.no_grad():
            _, cache = model.run_with_cache(batch.inputs)
        states = cache[f"layers.{len(model.layers) - 1}.hook_h"].double().numpy()  # (B, T, D)
        result.probe = measure.state_probe(states, batch.features["dfa_state"].numpy(), mask,
                                           tokens=batch.inputs.numpy(), seed=seed)
    s = result.scores
    result.summary = {"arch": result.arch, "n_train_automata": result.n_train_automata,
                      "accuracy": s["accuracy"], "accuracy_with_sep": s["accuracy_with_sep"],
                      "tvd.dfa": s["tvd"]["dfa"], **{f"tvd.{k}gram": s["tvd"][str(k)] for k in orders},
                      "closest_n": s["closest"],
                      **{f"baseline.{k}gram.accuracy": result.baselines[str(k)]["accuracy"] for k in orders},
                      **({"probe.dfa_state": result.probe["accuracy"],
                          "probe.token_control": result.probe.get("token_control", float("nan"))} if probe else {})}
    return result


def over_training(run, member: int = 0, n: int = 256, seed: int = 12345, pool: str = "test",
                  orders: Sequence[int] = (1, 2, 3), smoothing: str = "backoff") -> list[dict]:
    """Accuracy, TVD to each reference and the closest n at every stored checkpoint of ``run``."""
    task = run.task()
    batch, legal = _eval_batch(task, n, seed, pool)
    mask = batch.mask.numpy()
    refs = measure.references(batch, legal, tuple(orders), smoothing)
    rows = []
    for step in run.checkpoint_steps:
        s = measure.scores(_probs(run.model(member, step), batch), refs, legal, mask)
        rows.append({"step": step, "accuracy": s["accuracy"], "accuracy_with_sep": s["accuracy_with_sep"],
                     "tvd": s["tvd"], "closest": s["closest"]})
    return rows


def analyze_run(run, member: int = 0, n: int = 256, seed: int = 12345, pool: str = "test",
                orders: Sequence[int] = (1, 2, 3), smoothing: str = "backoff", probe: bool = True,
                checkpoints: bool = True) -> NgramResult:
    """:func:`analyze` on the run's final model, plus (``checkpoints``) :func:`over_training`."""
    result = analyze(run.model(member), run.task(), n=n, seed=seed, pool=pool, orders=orders,
                     smoothing=smoothing, probe=probe)
    if checkpoints:
        result.training = over_training(run, member, n, seed, pool, orders, smoothing)
    return result


__all__ = ["NgramResult", "analyze", "analyze_run", "over_training"]
