"""Kernels of the matrix-state recurrences: a step-by-step reference and a chunkwise-parallel form.

Two recurrences, on a state S (K, V) per sequence (a "sequence" here is one member, row and head,
flattened into the leading axis N):

- linear attention, optionally with a diagonal forget gate (GLA, Yang et al. 2024)::

      S_t = diag(a_t) S_{t-1} + k_t v_tᵀ,        o_t = S_tᵀ q_t

  ``log_decay`` = log a_t, either per key dimension (N, T, K) or one per step (N, T, 1);
- the gated delta rule (Yang, Kautz & Hatamizadeh 2024), with scalar forget a_t and strength β_t::

      S_t = a_t (I - β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ,   o_t = S_tᵀ q_t

  which is the issue's S_t = α S (I − β k kᵀ) + β v kᵀ with S transposed (keys on rows here).

These are the recurrences of flash-linear-attention's naive references (``fla/ops/gla/naive.py``,
``fla/ops/gated_delta_rule/naive.py``), with the query scale left to the caller.

The chunkwise form splits the sequence into chunks of C steps: inside a chunk the outputs are
matrix products (a masked C×C "attention" and the chunk-start state), and only the state at chunk
boundaries passes from chunk to chunk. For the delta rule the chunk's updates are put in the
WY/UT form: with A_ts = β_t (γ_t/γ_s) k_tᵀk_s for s < t (γ the cumulative decay in the chunk),
the pseudo-values u = (I + A)⁻¹(β v) − (I + A)⁻¹(β γ k) S₀ come from one unit-triangular solve.
Both forms are plain autograd code, so their gradients agree as their values do.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


# Largest decay (in log) across one chunk for which GLA's in-chunk product is split into two
# factors exp(b_t - ref) exp(ref - b_s); past it (e^30 ~ 1e13) the exact C x C x K form is used.
MAX_SPLIT_EXPONENT = 30.0


def _pad(x: Optional[Tensor], n: int) -> Optional[Tensor]:
    """Pad the time axis (dim 1) of x (N, T, ...) with n zero steps."""
    if x is None or n == 0:
        return x
    return torch.cat([x, x.new_zeros(x.shape[0], n, *x.shape[2:])], 1)


def _chunks(x: Optional[Tensor], C: int) -> Optional[Tensor]:
    """(N, T, ...) -> (N, T/C, C, ...)."""
    return None if x is None else x.reshape(x.shape[0], x.shape[1] // C, C, *x.shape[2:])


def _check(q: Tensor, k: Tensor, v: Tensor, chunk: int) -> None:
    if q.shape != k.shape or q.dim() != 3 or v.dim() != 3 or v.shape[:2] != k.shape[:2]:
        raise ValueError(f"q, k must be (N, T, K) and v (N, T, V); got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")


# ---------------------------------------------------------------------------------------------
# linear attention with an optional diagonal forget gate
# ---------------------------------------------------------------------------------------------

def linear_attention_step(q: Tensor, k: Tensor, v: Tensor, log_decay: Optional[Tensor] = None,
                          state: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Reference: one step at a time. q, k (N, T, K), v (N, T, V), log_decay None, (N, T, K) or
    (N, T, 1), state (N, K, V) -> outputs (N, T, V) and the final state (N, K, V)."""
    _check(q, k, v, 1)
    S = q.new_zeros(q.shape[0], q.shape[2], v.shape[2]) if state is None else state
    out = []
    decays = log_decay.unbind(1) if log_decay is not None else [None] * q.shape[1]
    for q_t, k_t, v_t, g_t in zip(q.unbind(1), k.unbind(1), v.unbind(1), decays):
        if g_t is not None:
            S = S * g_t[:, :, None].exp()
        S = S + k_t[:, :, None] * v_t[:, None, :]
        out.append(torch.einsum("nk,nkv->nv", q_t, S))
    return torch.stack(out, 1), S


def linear_attention_chunked(q: Tensor, k: Tensor, v: Tensor, log_decay: Optional[Tensor] = None,
                             state: Optional[Tensor] = None, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """Chunkwise-parallel form of :func:`linear_attention_step` (same arguments, same results)."""
    _check(q, k, v, chunk)
    N, T, K = q.shape
    V = v.shape[2]
    C = min(chunk, T)
    pad = -T % C
    # padded steps have k = v = 0 and no decay: they leave the state as it was
    q, k, v, g = (_chunks(_pad(x, pad), C) for x in (q, k, v, log_decay))          # (N, n, C, ...)
    n = q.shape[1]
    S0 = q.new_zeros(N, K, V) if state is None else state
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    if g is None:
        intra = (q @ k.transpose(-1, -2)).masked_fill(~causal, 0) @ v               # (N, n, C, V)
        kv = k.transpose(-1, -2) @ v                                                 # (N, n, K, V)
        S, outs = S0, []
        # unbind once: indexing chunk c would cost a zero-filled copy of the whole tensor in the backward
        for q_c, intra_c, kv_c in zip(q.unbind(1), intra.unbind(1), kv.unbind(1)):
            outs.append(q_c @ S + intra_c)
            S = S + kv_c
        return torch.stack(outs, 1).reshape(N, n * C, V)[:, :T], S
    b = torch.cumsum(g, 2)                                                           # (N, n, C, K|1)
    if g.shape[-1] == 1:                 # one decay per step: a C×C decay matrix
        gap = (b[..., :, None, 0] - b[..., None, :, 0]).masked_fill(~causal, float("-inf"))
        A = (q @ k.transpose(-1, -2)) * gap.exp()                                    # (N, n, C, C)
    else:                                # a decay per key dimension
        ref = b[:, :, :1]                # the chunk's first step: b - ref <= 0 <= ref - b
        if float((ref - b).detach().max()) <= MAX_SPLIT_EXPONENT:
            # γ_t/γ_s = exp(b_t - ref) exp(ref - b_s): one matmul, both factors finite
            A = ((q * (b - ref).exp()) @ (k * (ref - b).exp()).transpose(-1, -2)).masked_fill(~causal, 0)
        else:                            # steep decay: every exponent taken as a difference, never positive
            gap = (b[..., :, None, :] - b[..., None, :, :]).masked_fill(~causal[..., None], float("-inf"))
            A = (q[..., :, None, :] * k[..., None, :, :] * gap.exp()).sum(-1)        # (N, n, C, C)
    intra = A @ v                                                                    # (N, n, C, V)
    qd = q * b.exp()                                                                 # q_t ⊙ γ_t
    kd = k * (b[:, :, -1:] - b).exp()                                                # k_s ⊙ γ_C/γ_s
    kv = kd.transpose(-1, -2) @ v                                                    # (N, n, K, V)
    last = b[:, :, -1].exp()                                                         # (N, n, K|1)
    S, outs = S0, []
    for qd_c, intra_c, last_c, kv_c in zip(qd.unbind(1), intra.unbind(1), last.unbind(1), kv.unbind(1)):
        outs.append(qd_c @ S + intra_c)
        S = last_c[:, :, None] * S + kv_c
    return torch.stack(outs, 1).reshape(N, n * C, V)[:, :T], S


# ---------------------------------------------------------------------------------------------
# the gated delta rule
# ---------------------------------------------------------------------------------------------

def delta_rule_step(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, log_decay: Optional[Tensor] = None,
                    state: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Reference: one step at a time. q, k (N, T, K), v (N, T, V), beta (N, T), log_decay None or
    (N, T), state (N, K, V) -> outputs (N, T, V) and the final state (N, K, V)."""
    _check(q, k, v, 1)
    S = q.new_zeros(q.shape[0], q.shape[2], v.shape[2]) if state is None else state
    out = []
    decays = log_decay.unbind(1) if log_decay is not None else [None] * q.shape[1]
    for q_t, k_t, v_t, b_t, g_t in zip(q.unbind(1), k.unbind(1), v.unbind(1), beta.unbind(1), decays):
        if g_t is not None:
            S = S * g_t[:, None, None].exp()
        u = b_t[:, None] * (v_t - torch.einsum("nk,nkv->nv", k_t, S))
        S = S + k_t[:, :, None] * u[:, None, :]
        out.append(torch.einsum("nk,nkv->nv", q_t, S))
    return torch.stack(out, 1), S


def delta_rule_chunked(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, log_decay: Optional[Tensor] = None,
                       state: Optional[Tensor] = None, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """Chunkwise-parallel (WY/UT) form of :func:`delta_rule_step` (same arguments, same results)."""
    _check(q, k, v, chunk)
    N, T, K = q.shape
    V = v.shape[2]
    C = min(chunk, T)
    pad = -T % C
    # padded steps have k = v = β = 0 and no decay: they leave the state as it was
    q, k, v, beta, g = (_chunks(_pad(x, pad), C) for x in (q, k, v, beta, log_decay))
    n = q.shape[1]
    S = q.new_zeros(N, K, V) if state is None else state
    b = torch.zeros_like(beta) if g is None else torch.cumsum(g, 2)                  # (N, n, C)
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    gap = (b[..., :, None] - b[..., None, :]).masked_fill(~causal, float("-inf")).exp()  # γ_t/γ_s, s <= t
    kk = k @ k.transpose(-1, -2)                                                     # (N, n, C, C)
    eye = torch.eye(C, dtype=q.dtype, device=q.device)
    unit = eye + (beta[..., :, None] * kk * gap).tril(-1)                           # I + A
    solve = lambda rhs: torch.linalg.solve_triangular(unit, rhs, upper=False, unitriangular=True)  # noqa: E731
    u_v = solve(beta[..., None] * v)                                                 # (N, n, C, V)
    w = solve((beta * b.exp())[..., None] * k)                                       # (N, n, C, K)
    attn = (q @ k.transpose(-1, -2)) * gap                                           # (N, n, C, C)
    qd = q * b.exp()[..., None]
    kd = k * (b[:, :, -1:] - b).exp()[..., None]
    last = b[:, :, -1].exp()                                                         # (N, n)
    outs = []
    for u_c, w_c, qd_c, attn_c, last_c, kd_c in zip(*(x.unbind(1) for x in (u_v, w, qd, attn, last, kd))):
        u = u_c - w_c @ S                                                            # (N, C, V)
        outs.append(qd_c @ S + attn_c @ u)
        S = last_c[:, None, None] * S + kd_c.transpose(-1, -2) @ u
    return torch.stack(outs, 1).reshape(N, n * C, V)[:, :T], S


# ---------------------------------------------------------------------------------------------
# flash-linear-attention's kernels, where installed, on CUDA
# ---------------------------------------------------------------------------------------------

def _fla_ops():
    """flash-linear-attention's chunked kernels, or None where it is not installed."""
    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
        from fla.ops.gla import chunk_gla
        from fla.ops.simple_gla import chunk_simple_gla
    except Exception:  # noqa: BLE001 - an optional extra: missing, or built for another torch
        return None
    return {"gla": chunk_gla, "simple_gla": chunk_simple_gla, "delta": chunk_gated_delta_rule}


def use_fla(x: Tensor) -> bool:
    """Whether :func:`fla_linear_attention` / :func:`fla_delta_rule` serve ``x``: a CUDA tensor
    of a dtype fla's Triton kernels take, fla installed, and ``PROBE_FLA`` not set to 0."""
    import os
    return (x.is_cuda and x.dtype in (torch.float32, torch.float16, torch.bfloat16)
            and os.environ.get("PROBE_FLA", "1") != "0" and _fla_ops() is not None)


def _to_fla(x: Tensor) -> Tensor:
    """Our (N, T, ...) -> fla's (B=1, T, H=N, ...)."""
    return x.transpose(0, 1)[None].contiguous()


def fla_linear_attention(q, k, v, log_decay=None, state=None, chunk: int = 64):
    """:func:`linear_attention_chunked` on flash-linear-attention's kernels (scale 1)."""
    ops = _fla_ops()
    S0 = None if state is None else state[None].contiguous()
    if log_decay is None:
        o, S = ops["simple_gla"](_to_fla(q), _to_fla(k), _to_fla(v), scale=1.0, initial_state=S0,
                                 output_final_state=True)
    elif log_decay.shape[-1] == 1:
        o, S = ops["simple_gla"](_to_fla(q), _to_fla(k), _to_fla(v), g=_to_fla(log_decay[..., 0]), scale=1.0,
                                 initial_state=S0, output_final_state=True)
    else:
        o, S = ops["gla"](_to_fla(q), _to_fla(k), _to_fla(v), _to_fla(log_decay), scale=1.0, initial_state=S0,
                          output_final_state=True)
    return o[0].transpose(0, 1), S[0]


def fla_delta_rule(q, k, v, beta, log_decay=None, state=None, chunk: int = 64):
    """:func:`delta_rule_chunked` on flash-linear-attention's kernel (scale 1, keys as given)."""
    g = torch.zeros_like(beta) if log_decay is None else log_decay
    S0 = None if state is None else state[None].contiguous()
    o, S = _fla_ops()["delta"](_to_fla(q), _to_fla(k), _to_fla(v), _to_fla(g), _to_fla(beta), scale=1.0,
                               initial_state=S0, output_final_state=True)
    return o[0].transpose(0, 1), S[0]


# ---------------------------------------------------------------------------------------------
# feature maps
# ---------------------------------------------------------------------------------------------

FEATURES = ("identity", "elu", "relu", "taylor")


def feature_dim(feature: str, d: int) -> int:
    """Width of φ(x) for x of width d."""
    return 1 + d + d * d if feature == "taylor" else d


def feature_map(feature: str, x: Tensor) -> Tensor:
    """φ(x) on the last axis.

    ``taylor`` is Based's second-order Taylor map, φ(q)ᵀφ(k) = 1 + qᵀk/√d + (qᵀk)²/(2d), laid out
    as [1, x/d^¼, vec(x xᵀ)/(√2 √d)] (Zoology's ``TaylorExp``); ``elu`` is elu(x) + 1
    (Katharopoulos et al. 2020).
    """
    if feature == "identity":
        return x
    if feature == "elu":
        return F.elu(x) + 1
    if feature == "relu":
        return F.relu(x)
    if feature == "taylor":
        d = x.shape[-1]
        x2 = (x[..., :, None] * x[..., None, :]).flatten(-2) / (2 ** 0.5 * d ** 0.5)
        return torch.cat([torch.ones_like(x[..., :1]), x / d ** 0.25, x2], -1)
    raise ValueError(f"unknown feature map {feature!r}; valid choices: {', '.join(FEATURES)}")


def causal_conv(x: Tensor, W: Tensor, b: Tensor, past: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """Depthwise causal convolution of width K over the time axis.

    x (M, B, T, D), W (M, K, D) (tap k weighs x_{t-k}), b (M, D), past (M, B, K-1, D) or None
    (zeros) -> u (M, B, T, D) and the last K-1 inputs, the convolution's next state.
    """
    M, B, T, D = x.shape
    K = W.shape[1]
    if past is None:
        past = x.new_zeros(M, B, K - 1, D)
    padded = torch.cat([past, x], dim=2)                                             # (M, B, K-1+T, D)
    u = b[:, None, None, :] + sum(W[:, k, None, None, :] * padded[:, :, K - 1 - k: K - 1 - k + T]
                                  for k in range(K))
    return u, padded[:, :, T:]


__all__ = ["FEATURES", "causal_conv", "delta_rule_chunked", "delta_rule_step", "feature_dim", "feature_map",
           "fla_delta_rule", "fla_linear_attention", "linear_attention_chunked", "linear_attention_step", "use_fla"]
