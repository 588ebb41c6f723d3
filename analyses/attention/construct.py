"""A gated linear RNN that computes linear self-attention exactly (Zucchet et al., 2024, §3).

The layer is the project's ``hawk`` with ``gates="linear"``, ``normalize=False``, ``decay="fixed"``:
every neuron n holds one bilinear memory and is read through one output gate::

    h_t[n] = Λ_n h_{t-1}[n] + (A_n · x_t)(B_n · x_t)        A = W_gx, B = W_x   (input gate ⊙ input)
    y_t    = sum_n R[:, n] (G_n · x_t) h_t[n]               G = W_go, R = W_U W_out

With Λ_n = 1 the neuron accumulates sum_{s<=t} (A_n x_s)(B_n x_s): an entry of a kv memory. Its
contribution to y_t is rank one in (output coordinate, query), which fixes the neuron counts:

``direct``
    one neuron per (value coordinate i, key coordinate j) of each head: A = W_V[i], B = W_K[j],
    G = W_Q[j], R = W_O[:, i]. ``H d_v d_k`` neurons: d^2 per head with d_v = d_k = d. (When a
    head writes fewer coordinates than it has values, W_O is folded into W_V: ``min(d_v, d_out) d_k``.)
``symmetric``
    every product v_i k_j of every head is a quadratic form in z = U x, U an orthonormal basis of
    the span of all keys and values (rank r <= d_in). Since z_p z_q = z_q z_p, r(r+1)/2 accumulators
    (p <= q) hold the whole memory; each output coordinate a reads them through its own gate, so
    ``d_out r(r+1)/2`` neurons, independent of the number of heads. The d(d+1)/2 count of the paper
    is this with one output coordinate: it is the count per head exactly when the kv memory is
    symmetric (values are keys, W_V = W_K, r = d) and the head writes one coordinate. W_K = W_Q
    does not help: the query enters the output gate, not the memory. The symmetric construction
    uses fewer neurons than the direct one when heads share their key/value space
    (H d_v d_k > d_out r(r+1)/2, e.g. more than (d+1)/2 heads with d_v = d_k = d_out = d_in = d);
    for one head with d_v = d_k = d_in it never does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

import probe
from analyses.attention.layer import LinearAttention

Method = Literal["auto", "direct", "symmetric"]
Basis = Literal["span", "identity"]


@dataclass(frozen=True)
class Neurons:
    """The per-neuron factors of a bilinear gated RNN layer (see the module docstring).

    Attributes
    ----------
    A, B, G : array (n, d_in)  input-gate, input and output-gate rows
    R : array (d_out, n)       readout columns (W_U W_out)
    decay : array (n,)         Λ
    """

    A: np.ndarray
    B: np.ndarray
    G: np.ndarray
    R: np.ndarray
    decay: np.ndarray

    @property
    def n(self) -> int:
        return self.A.shape[0]

    def tensor(self) -> np.ndarray:
        """The effective tensor (d_out, d_in, d_in, d_in) of the accumulators, taking Λ = 1."""
        t = np.einsum("an,np,nq,nr->apqr", self.R, self.A, self.B, self.G)
        return (t + t.transpose(0, 2, 1, 3)) / 2

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The recurrence step by step, x (B, T, d_in) -> y (B, T, d_out); floats or sympy objects."""
        h = np.zeros((x.shape[0], self.n), dtype=np.result_type(x, self.A))        # (B, n)
        ys = []
        for t in range(x.shape[1]):
            xt = x[:, t]                                                           # (B, d_in)
            h = self.decay * h + (xt @ self.A.T) * (xt @ self.B.T)                 # (B, n)
            ys.append(((xt @ self.G.T) * h) @ self.R.T)                            # (B, d_out)
        return np.stack(ys, axis=1)                                                # (B, T, d_out)

    def permuted(self, order: np.ndarray) -> "Neurons":
        return Neurons(self.A[order], self.B[order], self.G[order], self.R[:, order], self.decay[order])


def _key_value_basis(layer: LinearAttention, basis: Basis) -> np.ndarray:
    """U (r, d_in): orthonormal rows spanning every head's keys and values, or the identity."""
    if basis == "identity":
        return np.eye(layer.d_in, dtype=layer.W_Q.dtype)
    rows = np.concatenate([*layer.W_V, *layer.W_K]).astype(np.float64)            # (H (d_v + d_k), d_in)
    _, s, vt = np.linalg.svd(rows, full_matrices=False)
    r = int((s > s[0] * 1e-12).sum()) if s.size and s[0] > 0 else 0
    return vt[:r]


def _direct(layer: LinearAttention) -> Neurons:
    A, B, G, R = [], [], [], []
    d_k = layer.W_K.shape[1]
    for h in range(layer.heads):
        W_O = layer.head_out(h)                                                    # (d_out, d_v)
        fold = W_O.shape[0] < W_O.shape[1]
        values, readout = (W_O @ layer.W_V[h], np.eye(layer.d_out, dtype=W_O.dtype)) if fold else (layer.W_V[h], W_O)
        for i in range(values.shape[0]):
            for j in range(d_k):
                A.append(values[i]), B.append(layer.W_K[h, j]), G.append(layer.W_Q[h, j]), R.append(readout[:, i])
    return Neurons(np.stack(A), np.stack(B), np.stack(G), np.stack(R, axis=1), np.ones(len(A)))


def _symmetric(layer: LinearAttention, basis: Basis) -> Neurons:
    U = _key_value_basis(layer, basis)                                             # (r, d_in)
    C = 0                                                                          # (d_out, r, r, d_in)
    for h in range(layer.heads):
        alpha, beta = layer.W_V[h] @ U.T, layer.W_K[h] @ U.T                       # (d_v, r), (d_k, r)
        C = C + np.einsum("ai,ip,jq,jr->apqr", layer.head_out(h), alpha, beta, layer.W_Q[h])
    A, B, G, R = [], [], [], []
    eye = np.eye(layer.d_out, dtype=U.dtype)
    for a in range(layer.d_out):
        for p in range(U.shape[0]):
            for q in range(p, U.shape[0]):
                A.append(U[p]), B.append(U[q]), R.append(eye[:, a])
                G.append(C[a, p, p] if p == q else C[a, p, q] + C[a, q, p])
    return Neurons(np.stack(A), np.stack(B), np.stack(G), np.stack(R, axis=1), np.ones(len(A)))


def neuron_counts(layer: LinearAttention) -> dict[str, int]:
    """Neurons each construction needs: {"direct": ..., "symmetric": ...}."""
    d_v, d_k = layer.W_V.shape[1], layer.W_K.shape[1]
    r = _key_value_basis(layer, "span").shape[0] if layer.W_Q.dtype != object else layer.d_in
    return {"direct": layer.heads * min(d_v, layer.d_out) * d_k, "symmetric": layer.d_out * r * (r + 1) // 2}


def construction_neurons(layer: LinearAttention, method: Method = "auto", basis: Basis = "span") -> Neurons:
    """The neurons of the construction (floats, or sympy expressions with ``basis="identity"``).

    Parameters
    ----------
    layer : LinearAttention
    method : "direct", "symmetric", or "auto" (whichever needs fewer neurons; direct on a tie)
    basis : for "symmetric": "span" (orthonormal basis of the key/value span, floats only) or
        "identity" (the input coordinates; works on symbolic weights)
    """
    if method not in ("auto", "direct", "symmetric"):
        raise ValueError(f"unknown method {method!r}; valid choices: auto, direct, symmetric")
    if basis not in ("span", "identity"):
        raise ValueError(f"unknown basis {basis!r}; valid choices: span, identity")
    if basis == "span" and layer.W_Q.dtype == object:
        raise ValueError("basis 'span' needs numeric weights (an SVD); use basis='identity' for symbolic ones")
    if method == "auto":
        counts = neuron_counts(layer)
        method = "symmetric" if counts["symmetric"] < counts["direct"] else "direct"
    return _direct(layer) if method == "direct" else _symmetric(layer, basis)


def hawk_from_neurons(neurons: Neurons, seed: int = 0):
    """A float64 ``hawk`` model (one layer, bilinear gates, fixed decay) with exactly these neurons."""
    n, d_in, d_out = neurons.n, neurons.A.shape[1], neurons.R.shape[0]
    dims = {"input_kind": "vectors", "d_input": d_in, "d_output": d_out}
    model = probe.models.make("hawk", dims, hidden=n, embedding="onehot", gates="linear", normalize=False,
                              decay="fixed", seed=seed).double()
    layer = model.layers[0]
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    with torch.no_grad():
        layer.W_gx.copy_(t(neurons.A)), layer.W_x.copy_(t(neurons.B)), layer.W_go.copy_(t(neurons.G))
        layer.Lambda.copy_(t(neurons.decay))
        layer.b_gx.zero_(), layer.b_go.zero_()
        layer.W_out.copy_(torch.eye(n, dtype=torch.float64))
        model.readout.W_U.copy_(t(neurons.R)), model.readout.b_U.zero_()
    return model


def construct(layer: LinearAttention, method: Method = "auto", seed: int = 0):
    """A ``hawk`` model computing ``layer`` exactly; ``model.config["hidden"]`` is the neuron count.

    Parameters
    ----------
    layer : LinearAttention, or a dict with W_Q, W_K, W_V (and optionally W_O) arrays/tensors
    method : "auto", "direct" or "symmetric" (see the module docstring)
    seed : only fixes the unused initial weights of the model before they are overwritten

    Returns
    -------
    RecurrentModel in float64: inputs (B, T, d_in) -> outputs (B, T, d_out)
    """
    if isinstance(layer, dict):
        layer = LinearAttention(**{k: np.asarray(v.detach() if hasattr(v, "detach") else v, dtype=np.float64)
                                   for k, v in layer.items()})
    if not isinstance(layer, LinearAttention):
        raise TypeError(f"construct needs a LinearAttention or a dict of weights; got {type(layer).__name__}")
    return hawk_from_neurons(construction_neurons(layer, method), seed=seed)


def symbolic_check(d: int = 2, T: int = 3, heads: int = 1, method: Method = "direct") -> bool:
    """Whether the construction equals attention as polynomials (sympy), for symbolic weights and inputs.

    Every weight of W_Q, W_K, W_V (and of W_O when ``heads > 1``) and every input x_t[p] is a symbol;
    the recurrence (:meth:`Neurons.forward`) minus attention must expand to 0 in every output.
    """
    import sympy as sp

    sym = lambda name, *shape: np.array(sp.symbols(f"{name}0:{int(np.prod(shape))}"), dtype=object).reshape(shape)  # noqa: E731
    W_O = sym("o", d, heads * d) if heads > 1 else None
    layer = LinearAttention(sym("q", heads, d, d), sym("k", heads, d, d), sym("v", heads, d, d), W_O)
    x = sym("x", 1, T, d)                                                          # (1, T, d)
    neurons = construction_neurons(layer, method, basis="identity")
    diff = neurons.forward(x) - layer(x)                                           # (1, T, d_out)
    return all(sp.expand(e) == 0 for e in diff.ravel())
