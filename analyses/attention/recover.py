"""Recovering the attention layer a trained bilinear gated RNN implements (Zucchet et al., 2024, §4).

A trained ``hawk`` layer (``gates="linear"``, ``decay="fixed"``) is a sum of neurons, each a bilinear
memory read through one gate (see ``_attention_construct``). The construction is only defined up
to per-neuron rescaling (A, B, G, R) -> (c1 A, c2 B, c3 G, R / (c1 c2 c3)), sign flips, swapping
A with B, and permutations of the neurons; and even across decompositions, only the effective
tensor T (d_out, d_in, d_in, d_in) of the accumulators is determined by the function. So:

1. read every neuron's factors, on the augmented input (x, 1): the gate biases become a last
   input channel, and a learned input map W_E is folded in;
2. call a neuron an accumulator when its decay is within ``decay_tol`` of 1, and rank neurons by
   importance, ||R_n|| ||sym(a_n b_n^T)|| with a, b, g scaled to unit norm (the rest is "pruned");
3. bring every neuron to a canonical form (unit-norm A, B, G with their largest entry positive,
   the scale and signs moved into R) and sort by importance: rescaling and permutation are gone;
4. sum the accumulators into T with Λ := 1, and keep the block on the real inputs as the
   extracted attention layer (its loss on a batch runs it alone, through ``apply_tensor``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from analyses.attention.construct import Neurons
from analyses.attention.layer import LinearAttention, apply_tensor


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _check_model(model) -> None:
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, dict) or cfg.get("arch") != "hawk":
        raise ValueError(f"recover needs a hawk model; got arch {None if cfg is None else cfg.get('arch')!r}")
    ap = cfg["arch_params"]
    wanted = {"gates": "linear", "decay": "fixed"}
    for key, value in wanted.items():
        if ap.get(key) != value:
            raise ValueError(f"recover needs hawk with {key}={value!r} (the bilinear construction); got {ap.get(key)!r}")
    if cfg["layers"] != 1:
        raise ValueError(f"recover reads one hawk layer; this model has layers={cfg['layers']}")
    if cfg["members"] != 1:
        raise ValueError(f"recover reads a plain model; this ensemble has {cfg['members']} members, use model.member(i)")
    if cfg["input_kind"] != "vectors":
        raise ValueError(f"recover needs vector inputs; got input_kind {cfg['input_kind']!r}")


def neurons_from_hawk(model) -> tuple[Neurons, np.ndarray]:
    """The raw neuron factors on the augmented input (x, 1), and the readout bias b_U (d_out,).

    Returns Neurons with A, B, G (n, d_source + 1), R (d_out, n), decay (n,); d_source is the
    task's input size (a learned input map is folded in).
    """
    _check_model(model)
    layer = model.layers[0]
    d_source = model.d_source
    W_E = np.eye(d_source) if model.config["embedding"] == "onehot" else _np(model.embed.W_E)  # (E, d_source)
    aug = lambda W, b: np.concatenate([_np(W) @ W_E, b[:, None]], axis=1)                      # noqa: E731
    decay = _np(layer.Lambda)                                                                    # (n,)
    A = aug(layer.W_gx, _np(layer.b_gx))                                                         # (n, d_in + 1)
    B = aug(layer.W_x, np.zeros(layer.hidden))
    if layer.normalize:  # the sqrt(1 - Λ²) input scale, clamped as the model clamps it
        B = B * np.sqrt(np.clip(1 - decay ** 2, 1e-12, None))[:, None]
    G = aug(layer.W_go, _np(layer.b_go))
    R = _np(model.readout.W_U) @ _np(layer.W_out)                                                # (d_out, n)
    return Neurons(A, B, G, R, decay), _np(model.readout.b_U)


def canonical(neurons: Neurons) -> tuple[Neurons, np.ndarray]:
    """Unit-norm A, B, G with their largest-magnitude entry positive, scale and signs in R,
    sorted by importance (descending). Returns the neurons and their importance (n,)."""
    factors, scale, sign = [], np.ones(neurons.n), np.ones(neurons.n)
    for W in (neurons.A, neurons.B, neurons.G):
        norm = np.linalg.norm(W, axis=1)                                           # (n,)
        safe = np.where(norm > 0, norm, 1.0)
        lead = np.sign(W[np.arange(neurons.n), np.abs(W).argmax(1)])
        lead = np.where(lead == 0, 1.0, lead)
        factors.append(W / (safe * lead)[:, None])
        scale, sign = scale * norm, sign * lead
    A, B, G = factors
    R = neurons.R * (scale * sign)[None, :]                                        # (d_out, n)
    outer = np.einsum("np,nq->npq", A, B)                                          # (n, d, d)
    importance = np.linalg.norm(R, axis=0) * np.linalg.norm((outer + outer.transpose(0, 2, 1)) / 2, axis=(1, 2))
    order = np.argsort(-importance, kind="stable")
    return Neurons(A, B, G, R, neurons.decay).permuted(order), importance[order]


def tensor_correlation(recovered: np.ndarray, reference: np.ndarray, mask: Optional[np.ndarray] = None) -> dict[str, float]:
    """Pearson correlation of the entries of two tensors (d_out, d, d, d) and the scale of one on
    the other (<rec, ref> / |ref|^2), over the entries where ``mask`` (d, d, d) is True when given."""
    if recovered.shape != reference.shape:
        raise ValueError(f"tensor shapes differ: recovered {recovered.shape}, reference {reference.shape}")
    if mask is not None:
        mask = np.broadcast_to(mask, recovered.shape)
        recovered, reference = recovered[mask], reference[mask]
    a, b = recovered.ravel(), reference.ravel()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return {"correlation": corr, "scale": float(a @ b / (b @ b)) if b @ b > 0 else float("nan")}


def identifiable(batch) -> np.ndarray:
    """Mask (d, d, d) of the tensor entries the data can pin down: T[a, p, q, r] only ever
    multiplies x_s[p] x_s[q] x_t[r] with s <= t and t supervised, so an entry whose key/value
    product is zero at every such s, or whose query channel is zero at every supervised t, has
    no effect on the loss. (icl_regression: the query channel y and the pair (y, is_query).)"""
    x = batch.inputs.double().numpy()                                              # (B, T, d)
    sup = batch.mask.numpy()                                                       # (B, T)
    reach = np.flip(np.maximum.accumulate(np.flip(sup, 1), axis=1), 1)             # s <= some supervised t
    xs = x[reach]                                                                  # (N, d)
    pairs = (np.abs(xs[:, :, None] * xs[:, None, :]) > 0).any(0)                   # (d, d)
    query = (np.abs(x[sup]) > 0).any(0)                                            # (d,)
    return pairs[:, :, None] & query[None, None, :]


def masked_mse(pred: np.ndarray, batch) -> float:
    """Mean squared error over output coordinates at the masked positions (the trainer's loss)."""
    err = ((pred - batch.targets.double().numpy()) ** 2).mean(-1)                  # (B, T)
    return float(err[batch.mask.numpy()].mean())


@dataclass
class Recovery:
    """What :func:`recover` extracts. Neuron arrays are canonical and sorted by importance.

    Attributes
    ----------
    neurons : Neurons on the augmented input: A, B, G (n, d_in + 1), R (d_out, n), decay (n,)
    importance : (n,)
    accumulator : (n,) bool, |Λ - 1| <= decay_tol
    used : (n,) bool, importance >= prune_tol * max importance
    tensor_full : (d_out, d_in + 1, d_in + 1, d_in + 1) of the accumulators (bias channel last)
    tensor : (d_out, d_in, d_in, d_in), the attention block of ``tensor_full``
    bias : (d_out,) readout bias
    comparison : correlation and scale against the reference, when one was given
    """

    neurons: Neurons
    importance: np.ndarray
    accumulator: np.ndarray
    used: np.ndarray
    tensor_full: np.ndarray
    tensor: np.ndarray
    bias: np.ndarray
    comparison: dict = field(default_factory=dict)

    def predict(self, x: np.ndarray, affine: bool = True) -> np.ndarray:
        """The extracted attention layer run on its own: x (B, T, d_in) -> (B, T, d_out).

        ``affine=True`` runs ``tensor_full`` on (x, 1) plus the readout bias: attention with affine
        query/key/value maps, everything the accumulators compute. ``affine=False`` runs the linear
        block ``tensor`` alone. (A gate bias and an input that is constant where the loss applies,
        like icl_regression's is_query at the query, are interchangeable, so a trained network may
        split a term between them and only the affine layer keeps both halves.)
        """
        if not affine:
            return apply_tensor(self.tensor, x)
        ones = np.ones(x.shape[:-1] + (1,), dtype=x.dtype)
        return apply_tensor(self.tensor_full, np.concatenate([x, ones], axis=-1)) + self.bias

    def loss(self, batch, affine: bool = True) -> float:
        """Masked MSE of the extracted attention layer (see :meth:`predict`) on a task batch."""
        return masked_mse(self.predict(batch.inputs.double().numpy(), affine), batch)

    def summary(self) -> dict:
        outside = float(np.sum(self.tensor_full ** 2) - np.sum(self.tensor ** 2))
        total = float(np.sum(self.tensor_full ** 2))
        return {"neurons": int(self.neurons.n), "accumulators": int(self.accumulator.sum()),
                "used": int(self.used.sum()), "used_accumulators": int((self.used & self.accumulator).sum()),
                "used_leaky": int((self.used & ~self.accumulator).sum()),
                "bias_share": max(outside, 0.0) / total if total > 0 else 0.0, **self.comparison}


def recover(model, reference: Optional[LinearAttention | np.ndarray] = None, decay_tol: float = 0.05,
            prune_tol: float = 0.05, mask: Optional[np.ndarray] = None) -> Recovery:
    """Extract the attention tensor a trained bilinear ``hawk`` implements (module docstring).

    Parameters
    ----------
    model : plain one-layer hawk with ``gates="linear"``, ``decay="fixed"`` and vector inputs
    reference : LinearAttention or its tensor (d_out, d_in, d_in, d_in), optional: compare against it
    decay_tol : neurons with |Λ - 1| <= decay_tol are accumulators
    prune_tol : neurons below this fraction of the largest importance count as pruned
    mask : (d_in, d_in, d_in) bool, optional: compare only these entries (see :func:`identifiable`)
    """
    if not decay_tol >= 0 or not 0 <= prune_tol <= 1:
        raise ValueError(f"need decay_tol >= 0 and 0 <= prune_tol <= 1; got {decay_tol!r}, {prune_tol!r}")
    raw, bias = neurons_from_hawk(model)
    neurons, importance = canonical(raw)
    accumulator = np.abs(neurons.decay - 1) <= decay_tol
    used = importance >= prune_tol * (importance.max() if importance.size else 0.0)
    keep = np.flatnonzero(accumulator)
    full = neurons.permuted(keep).tensor() if keep.size else np.zeros((raw.R.shape[0],) + (raw.A.shape[1],) * 3)
    d = raw.A.shape[1] - 1
    rec = Recovery(neurons, importance, accumulator, used, full, full[:, :d, :d, :d], bias)
    if reference is not None:
        ref = reference.tensor() if isinstance(reference, LinearAttention) else np.asarray(reference)
        rec.comparison = tensor_correlation(rec.tensor, ref, mask)
    return rec
