"""The gated delta rule (Yang, Kautz & Hatamizadeh 2024; DeltaNet, Yang et al. 2024).

Per head, with unit keys and a state S (d_key, d_value) (keys on rows)::

    u_t = a short causal convolution of x (``conv=K``, 4 as flash-linear-attention's default;
          ``conv=0``: u_t = x_t)                                         -> hook_conv
    q_t, k_t, v_t = W u_t + b  (q and k then L2-normalised per head)     -> hook_q, hook_k, hook_v
    β_t = σ(W_β u_t + b_β)                  writing strength per head     -> hook_beta
    α_t = exp(-exp(A_log) softplus(W_α u_t + dt_bias))   forget per head -> hook_alpha
    S_t = α_t (I - β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ                   -> hook_S
    o_t = S_tᵀ q_t / √d_key                                              -> hook_h
    y_t = W_out o_t

which is the issue's S_t = α S (I − β k kᵀ) + β v kᵀ with S transposed. With β = 1 the step
replaces the value stored at k_t by v_t (S_tᵀ k_t = v_t), where linear attention adds to it.
``gate=False`` drops α (α_t = 1: DeltaNet). The forget gate is parameterised as in Gated
DeltaNet (fla's ``GatedDeltaNet``: A uniform in [1, 16], dt log-uniform in [0.001, 0.1] through
an inverse softplus); the output normalisation and gate of fla's layer are left out, as for the
other one-layer models here. Hooks, the chunked (WY) kernel and the opt-in state hook are as in
:mod:`probe.models.linattn`.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import constant, linear, uniform
from probe.models.chunked import delta_rule_chunked, fla_delta_rule, use_fla
from probe.models.linattn import MatrixLayer, edited_log
from probe.models.recurrence import at


def _log_uniform_softplus_inverse(lo: float, hi: float):
    """A bias b with softplus(b) log-uniform in [lo, hi] (Mamba's dt initialisation)."""
    def init(g, shape):
        dt = torch.exp(torch.rand(shape, generator=g) * (math.log(hi) - math.log(lo)) + math.log(lo)).clamp_min(1e-4)
        return dt + torch.log(-torch.expm1(-dt))
    return init


class DeltaNetLayer(MatrixLayer):
    PARAM_RANGES = {"heads": "[1, 4096]", "d_key": "[1, 4096]", "conv": "[0, 1024]", "chunk": "[1, 4096]"}

    def __init__(self, d_in: int, hidden: int, members: int, heads: int = 1, d_key: Optional[int] = None,
                 gate: bool = True, conv: int = 4, chunk: int = 64):
        super().__init__(members)
        self._setup(d_in, hidden, heads, d_key, conv, chunk, "deltanet")
        self.gate = gate
        self.F, self.V = self.d_key, self.d_value
        bound = 1 / math.sqrt(d_in)
        self.param("W_beta", (heads, d_in), uniform(bound))
        self.param("b_beta", (heads,), constant(0.0))
        self.hook_beta = HookPoint()       # (B, T, heads) writing strength β_t
        if gate:
            self.alpha_width = heads
            self.param("W_alpha", (heads, d_in), uniform(bound))
            self.param("dt_bias", (heads,), _log_uniform_softplus_inverse(0.001, 0.1))
            self.param("A_log", (heads,), lambda g, shape: torch.log(1 + 15 * torch.rand(shape, generator=g)))
            self.hook_alpha = HookPoint()  # (B, T, heads) forget gate α_t
        self._finish_setup()

    def _features(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return F.normalize(q, dim=-1, eps=1e-6) * self.d_key ** -0.5, F.normalize(k, dim=-1, eps=1e-6)

    def _gates(self, prep: SimpleNamespace, u: Tensor) -> None:
        prep.beta = self.hooked(self.hook_beta, torch.sigmoid(linear(u, self.w("W_beta"), self.w("b_beta"))))
        if self.gate:
            log = -self.w("A_log").exp()[:, None, None, :] * F.softplus(
                linear(u, self.w("W_alpha"), self.w("dt_bias")))                        # (M, B, T, heads)
            alpha = log.exp()
            prep.g = edited_log(alpha, self.hooked(self.hook_alpha, alpha), log)

    def _kernel(self, prep, S0, start):
        q, k, v, beta, g = (self._slice(prep, n, start) for n in ("q", "k", "v", "beta", "g"))
        kernel = fla_delta_rule if use_fla(q) else delta_rule_chunked
        return kernel(q, k, v, beta, g, S0, chunk=self.chunk)

    def _update(self, prep, S: Tensor, t: int) -> Tensor:
        if prep.g is not None:
            S = S * at(prep, "g", t, 2).exp()[..., None, None]
        k = at(prep, "k", t, 2)                                                         # (M, B, h, K)
        u = at(prep, "beta", t, 2)[..., None] * (at(prep, "v", t, 2) - torch.einsum("mbhk,mbhkv->mbhv", k, S))
        return S + k[..., :, None] * u[..., None, :]
