"""Gated recurrent networks discover attention (Zucchet et al., ICML 2024, arXiv 2309.01775).

A linear recurrence between multiplicative (GLU) gates implements causal linear self-attention
exactly: the input gate forms products of value and key coordinates, neurons with eigenvalue 1
accumulate sum_s v_s k_s^T, the output gate multiplies by query coordinates and the readout sums.

    import analyses.attention as att
    layer = att.random_attention(d_in=4, heads=2)
    model = att.construct(layer)                       # hawk, gates="linear", decay="fixed"
    rec = att.recover(model, reference=layer)          # accumulators, canonical neurons, tensor
    result = att.analyze(trained_model, task)          # on icl_regression (teacher or regression)

The pieces are :mod:`~analyses.attention.layer` (the layer, its tensor, the reference solutions
of ``icl_regression`` and the one-step-GD loss in closed form), :mod:`~analyses.attention.construct`
(the construction, neuron counts, the sympy identity) and :mod:`~analyses.attention.recover`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from analyses.attention import figures as figs
from analyses.attention.construct import neuron_counts
from analyses.attention.layer import gd_loss_closed_form, reference_attention
from analyses.attention.recover import identifiable, masked_mse, recover
from analyses.base import Result

HAWK_OPTIONS = dict(embedding="onehot", gates="linear", normalize=False, decay="fixed")
Kind = Literal["teacher", "regression"]


def model_loss(model, batch) -> float:
    """Masked MSE of a plain model on a batch, computed in float64 on a copy of the model."""
    with torch.no_grad():
        out = copy.deepcopy(model).double()(batch.inputs.double())                # (B, T, d_out)
    return masked_mse(out.numpy(), batch)


@dataclass
class AttentionResult(Result):
    """Recovery of the attention layer in one trained model (and, from the claim, a size sweep).

    ``recovered`` / ``reference`` hold the identifiable tensor entries (see ``identifiable``: the
    entries whose input products are not identically zero on the data), flattened alike.
    """

    decay: list = field(default_factory=list)
    importance: list = field(default_factory=list)
    accumulator: list = field(default_factory=list)
    recovered: list = field(default_factory=list)
    reference: list = field(default_factory=list)
    sweep: list = field(default_factory=list)          # rows {"task", "arch", "hidden", "relative_loss", ...}
    construction: dict = field(default_factory=dict)   # {task kind: neuron count}
    references: dict = field(default_factory=dict)     # {task kind: relative loss of the LSA solution}

    def figures(self) -> dict[str, Any]:
        out = {}
        if self.decay:
            out["eigenvalues"] = figs.eigenvalues(self.decay, self.importance, self.accumulator)
        if self.recovered:
            out["tensor_scatter"] = figs.tensor_scatter(self.recovered, self.reference,
                                                        self.summary.get("correlation", float("nan")))
        if self.sweep:
            out["loss_vs_hidden"] = figs.loss_vs_hidden(self.sweep, self.construction, self.references)
        return out


def analyze(model, task, n: int = 4096, seed: int = 20240, decay_tol: float = 0.05,
            prune_tol: float = 0.05) -> AttentionResult:
    """Recover the attention layer of a trained bilinear hawk on ``icl_regression`` and score it.

    Parameters
    ----------
    model : plain one-layer hawk with ``gates="linear"``, ``decay="fixed"`` (see :data:`HAWK_OPTIONS`)
    task : an ``icl_regression`` task; its linear self-attention solution is the reference
        (the teacher, or one step of gradient descent for ``kind="regression"``)
    n, seed : the evaluation batch; every loss below is on this same batch
    decay_tol, prune_tol : see :func:`recover`

    Returns
    -------
    AttentionResult whose summary holds the model's loss, the reference (LSA / one-step-GD) loss
    on the same data, the closed-form GD loss, the zero-predictor loss, the excess loss, the
    extracted layer's loss run on its own (``attention_loss`` with affine maps, i.e. the gate
    biases kept, and ``attention_loss_linear`` without), and the tensor correlation.
    """
    reference = reference_attention(task)
    batch = task.sample(n=n, seed=seed)
    x = batch.inputs.double().numpy()                                              # (B, T, d_in)
    mask = identifiable(batch)                                                     # (d_in, d_in, d_in)
    rec = recover(model, reference, decay_tol=decay_tol, prune_tol=prune_tol, mask=mask)
    cfg = task.config
    losses = {"loss": model_loss(model, batch), "reference_loss": masked_mse(reference(x), batch),
              "zero_loss": masked_mse(np.zeros_like(batch.targets.numpy()), batch),
              "attention_loss": rec.loss(batch), "attention_loss_linear": rec.loss(batch, affine=False)}
    if cfg.kind == "regression":
        # E|W x_q|^2 = 1 per coordinate, so the closed form is already the per-coordinate loss
        losses["gd_loss_closed_form"] = gd_loss_closed_form(cfg.d_x, cfg.n_examples, cfg.noise_std)
        losses["excess"] = (losses["loss"] - losses["reference_loss"]) / losses["reference_loss"]
    else:  # the teacher is itself the LSA solution: its loss is 0, so measure against the target scale
        losses["excess"] = (losses["loss"] - losses["reference_loss"]) / losses["zero_loss"]
    counts = neuron_counts(reference)
    summary = {"kind": cfg.kind, **losses, **rec.summary(), "construction_neurons": min(counts.values()),
               **{f"construction_{k}": v for k, v in counts.items()}}
    return AttentionResult(
        summary=summary, decay=rec.neurons.decay.tolist(), importance=rec.importance.tolist(),
        accumulator=rec.accumulator.tolist(), recovered=rec.tensor[:, mask].ravel().tolist(),
        reference=reference.tensor()[:, mask].ravel().tolist(),
        construction={cfg.kind: min(counts.values())},
        references={cfg.kind: losses["reference_loss"] / losses["zero_loss"]})


__all__ = ["AttentionResult", "HAWK_OPTIONS", "Kind", "analyze", "model_loss"]
