"""Linear attention with a feature map, and with GLA's data-dependent diagonal forget (``decay="input"``).

Per head, with a state S (F, V) written through products of the input with itself::

    u_t = x_t, or a short causal convolution of x (``conv=K``)               -> hook_conv
    q_t = W_q u_t + b_q, k_t = W_k u_t + b_k, v_t = W_v u_t + b_v       -> hook_q, hook_k, hook_v
    S_t = diag(α_t) S_{t-1} + φ(k_t) v_tᵀ                                -> hook_S
    o_t = S_tᵀ φ(q_t)          (divided by φ(q_t)ᵀ z_t with ``normalize``)  -> hook_h
    y_t = W_out o_t

φ is the feature map (``feature``; identity by default, with queries scaled by 1/√d_key as in
flash-linear-attention). The projections carry biases (a one-layer model has no other
constant input), so that a constant key feature can make the state an accumulator.
``decay="input"`` is Gated Linear Attention (Yang et al. 2024): α_t = σ(W_a u_t + b_a)^(1/16)
per key dimension (the log-sigmoid gate over fla's normaliser 16) -> hook_alpha; without it
α_t = 1 (Katharopoulos et al. 2020). ``normalize`` keeps the running sum
z_t = Σ φ(k_s) as one more column of S (so hook_S and the state carry it).

The layer's output ``hook_h`` is the state's readout o_t (the heads side by side), not the
state: the carried state is ``hook_S``, (B, T, heads·F·V) with S flattened row-major per head
(heads, F, V). Its whole trajectory is built only where a hook asks for it: caching it is
opt-in (``names_filter`` must name it), and a trajectory that would not fit in memory is refused
with the size named. Without a hook on S the layer runs the chunkwise-parallel kernel of
:mod:`probe.models.chunked` (flash-linear-attention's, on CUDA where it is installed); with one,
the reference steps.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe import _limits
from probe.models.base import Layer, constant, linear, uniform
from probe.models.chunked import (causal_conv, feature_dim, feature_map, fla_linear_attention,
                                  linear_attention_chunked, use_fla)
from probe.models.recurrence import Join, at, has_backward_hooks, has_forward_hooks, loop

# numbers one cached step of S costs: the trajectory, the copy the hooks are handed, the cache's
S_COPIES = 3
MIN_LOG_DECAY = -30.0  # a forget gate edited to 0 decays by e^-30 per step, so chunk sums stay finite


class StateHook(HookPoint):
    """The hook point of a matrix state: left out of ``run_with_cache`` unless ``names_filter``
    names it (its trajectory holds heads·F·V numbers per row and step)."""

    opt_in = True


def _heads_of(x: Tensor, h: int) -> Tensor:
    """(M, B, T, h·d) -> (M, B, T, h, d)."""
    return x.reshape(*x.shape[:-1], h, x.shape[-1] // h)


def _flat(x: Tensor) -> Tensor:
    """(M, B, T, h, d) -> (M·B·h, T, d), the kernels' layout."""
    M, B, T, h, d = x.shape
    return x.permute(0, 1, 3, 2, 4).reshape(M * B * h, T, d)


def _unflat(x: Tensor, M: int, B: int, h: int) -> Tensor:
    """(M·B·h, T, d) -> (M, B, T, h, d)."""
    return x.reshape(M, B, h, *x.shape[1:]).permute(0, 1, 3, 2, 4)


def edited_log(value: Tensor, hooked: Tensor, log: Tensor) -> Tensor:
    """log of a gate after its hooks: ``log`` where the hooks left the gate as it was (bit for
    bit), log of the hooks' value elsewhere (floored at ``MIN_LOG_DECAY``)."""
    if hooked is value:
        return log
    return torch.where(hooked == value, log, torch.log(hooked).clamp_min(MIN_LOG_DECAY))


class MatrixLayer(Layer):
    """What the matrix-state layers share: heads, an optional short convolution, projections
    q, k, v, the state hook and the switch between the chunked kernel and the reference steps.

    Subclasses set ``F`` (key features per head), ``V`` (state columns per head) and implement
    ``_gates(prep, u)`` (input-driven gates into ``prep``), ``_kernel(prep, S0, start)`` ->
    (o (N, T', V), S (N, F, V)) and ``_update(prep, S, t)`` (one step of the recurrence, before
    the state hook), and may override ``_features``.
    """

    points = ("hook_S",)

    def _setup(self, d_in: int, hidden: int, heads: int, d_key: Optional[int], conv: int, chunk: int,
               arch: str) -> None:
        if hidden % heads:
            raise ValueError(f"{arch} hidden ({hidden}) must be a multiple of heads ({heads})")
        self.d_in, self.d_out, self.hidden, self.heads = d_in, hidden, hidden, heads
        self.d_key = d_key or hidden // heads
        self.d_value = hidden // heads
        self.conv, self.chunk = conv, chunk
        bound = 1 / math.sqrt(d_in)
        if conv:
            self.param("W_conv", (conv, d_in), uniform(1 / math.sqrt(conv)))
            self.param("b_conv", (d_in,), constant(0.0))
            self.hook_conv = HookPoint()  # (B, T, d_in) convolution output u_t
        for name, width in (("q", heads * self.d_key), ("k", heads * self.d_key), ("v", hidden)):
            self.param(f"W_{name}", (width, d_in), uniform(bound))
            self.param(f"b_{name}", (width,), constant(0.0))
        self.param("W_out", (hidden, hidden), uniform(1 / math.sqrt(hidden)))
        self.hook_q = HookPoint()  # (B, T, heads·d_key)
        self.hook_k = HookPoint()  # (B, T, heads·d_key)
        self.hook_v = HookPoint()  # (B, T, hidden)

    def _finish_setup(self) -> None:
        self.hook_S = StateHook()  # (B, T, heads·F·V) the state after each step
        self.hook_h = HookPoint()  # (B, T, hidden) the state's readout o_t
        self.state_size = self.heads * self.F * self.V + max(self.conv - 1, 0) * self.d_in

    # -- shapes ---------------------------------------------------------------------------------
    def width(self, hook: str) -> int:
        return {"hook_S": self.heads * self.F * self.V, "hook_conv": self.d_in, "hook_q": self.heads * self.d_key,
                "hook_k": self.heads * self.d_key, "hook_beta": self.heads, "hook_alpha": self.alpha_width,
                }.get(hook, self.hidden)

    alpha_width = 0

    def initial_state(self, M: int, B: int, like: Tensor):
        S = like.new_zeros(M, B, self.heads, self.F, self.V)
        return (S, like.new_zeros(M, B, self.conv - 1, self.d_in)) if self.conv else S

    def _matrix(self, S: Tensor) -> Tensor:
        """(M, B, heads·F·V) -> (M, B, heads, F, V)."""
        return S.reshape(*S.shape[:2], self.heads, self.F, self.V)

    # -- the pieces run_layer puts together ----------------------------------------------------
    def _features(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        return q, k

    def _values(self, v: Tensor) -> Tensor:
        return v

    def prepare(self, x: Tensor, state) -> SimpleNamespace:
        M, B, T, _ = x.shape
        S0, past = (state if state is not None else (None, None)) if self.conv else (state, None)
        u = x
        if self.conv:
            u, past = causal_conv(x, self.w("W_conv"), self.w("b_conv"), past)
            u = self.hooked(self.hook_conv, u)
        h = self.heads
        q = _heads_of(self.hooked(self.hook_q, linear(u, self.w("W_q"), self.w("b_q"))), h)      # (M, B, T, h, d_key)
        k = _heads_of(self.hooked(self.hook_k, linear(u, self.w("W_k"), self.w("b_k"))), h)
        v = _heads_of(self.hooked(self.hook_v, linear(u, self.w("W_v"), self.w("b_v"))), h)      # (M, B, T, h, d_value)
        q, k = self._features(q, k)
        prep = SimpleNamespace(M=M, B=B, T=T, state=S0, past=past, q=q, k=k, v=self._values(v), g=None)
        self._gates(prep, u)
        hp = self.hook_S
        if has_forward_hooks(hp) or has_backward_hooks(hp):
            width = self.width("hook_S")
            need = S_COPIES * M * B * T * width * x.element_size()
            _limits.check_fits(f"the trajectory of {hp.name or 'hook_S'} ({M} member(s) x {B} rows x {T} steps "
                               f"x {width} numbers; cache fewer rows or steps)", {"S trajectory": need})
        return prep

    def _gates(self, prep: SimpleNamespace, u: Tensor) -> None:
        pass

    def run(self, prep, state: Optional[Tensor], start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        M, B, h = prep.M, prep.B, self.heads
        if start == 0:                                   # the chunked kernel (the whole of a run without S hooks)
            S0 = None if state is None else state.reshape(M * B * h, self.F, self.V)
            o, S = self._kernel(prep, S0, start)
            fast = {"_o": _unflat(o, M, B, h), "_final": S.reshape(M, B, h, self.F, self.V)}
            if not (taps or has_forward_hooks(self.hook_S)):
                return fast
        values = loop(self, prep, state, start, taps)    # the whole trajectory of S: the reference steps
        if start == 0:
            prep.fast, prep.raw_S = fast, values["hook_S"].detach()
        return values

    def _slice(self, prep, name: str, start: int) -> Optional[Tensor]:
        """``prep.<name>`` from step ``start`` in the kernels' layout: (M, B, T, h, d) -> (N, T', d),
        (M, B, T, h) -> (N, T')."""
        x = getattr(prep, name)
        if x is None:
            return None
        x = x if not start else x[:, :, start:]
        return _flat(x) if x.dim() == 5 else _flat(x[..., None])[..., 0]

    def step(self, prep, S: Optional[Tensor], t: int, visit: Callable) -> Tensor:
        if S is None:
            S = prep.q.new_zeros(prep.M, prep.B, self.heads, self.F, self.V)
        S = self._update(prep, S, t)
        return self._matrix(visit("hook_S", S.flatten(2)))

    def state_at(self, values: dict, i: int) -> Tensor:
        return self._matrix(values["hook_S"][:, :, i])

    def _readout(self, o: Tensor) -> Tensor:
        return o

    def finish(self, prep, carried: dict):
        M, B, T = prep.M, prep.B, prep.T
        if "hook_S" in carried:
            kept = carried["hook_S"]
            S = kept.reshape(M, B, T, self.heads, self.F, self.V)
            o = torch.einsum("mbthf,mbthfv->mbthv", prep.q, S)
            final = S[:, :, -1]
            fast = getattr(prep, "fast", None)
            if fast is not None:
                # until the hooks first change S, the outputs are the chunked kernel's, bit for bit
                # (a hook that only watches changes nothing); gradients go through the steps
                # either way, so that gradient hooks on S see the total derivative
                raw = prep.raw_S
                differs = ((kept != raw) & ~(kept.isnan() & raw.isnan())).transpose(2, -1).flatten(end_dim=-2)
                changed = differs.any(0).nonzero()
                t0 = T if changed.numel() == 0 else int(changed[0])
                o = torch.cat([Join.apply(fast["_o"][:, :, :t0].detach(), o[:, :, :t0]), o[:, :, t0:]], 2)
                if t0 == T:
                    final = Join.apply(fast["_final"].detach(), final)
        else:
            o, final = carried["_o"], carried["_final"]
        o = self.hooked(self.hook_h, self._readout(o).reshape(M, B, T, self.hidden))
        return linear(o, self.w("W_out")), ((final, prep.past) if self.conv else final)


class LinAttnLayer(MatrixLayer):
    ARCH = "linattn"
    PARAM_RANGES = {"heads": "[1, 4096]", "d_key": "[1, 4096]", "conv": "[0, 1024]", "chunk": "[1, 4096]",
                    "eps": "(0, 1]"}

    def __init__(self, d_in: int, hidden: int, members: int, heads: int = 1, d_key: Optional[int] = None,
                 feature: Literal["identity", "elu", "relu", "taylor"] = "identity", normalize: bool = False,
                 decay: Literal["none", "input"] = "none", conv: int = 0, chunk: int = 64, eps: float = 1e-12):
        super().__init__(members)
        self._setup(d_in, hidden, heads, d_key, conv, chunk, self.ARCH)
        self.feature, self.normalize, self.decay, self.eps = feature, normalize, decay, eps
        self.F = feature_dim(feature, self.d_key)
        self.V = self.d_value + int(normalize)
        if decay == "input":
            self.alpha_width = heads * self.d_key
            self.param("W_a", (heads * self.d_key, d_in), uniform(1 / math.sqrt(d_in)))
            self.param("b_a", (heads * self.d_key,), constant(0.0))
            self.hook_alpha = HookPoint()  # (B, T, heads·d_key) forget gate α_t per key dimension
        self._finish_setup()

    def _features(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        if self.feature == "identity":
            q = q * self.d_key ** -0.5
        return feature_map(self.feature, q), feature_map(self.feature, k)

    def _values(self, v: Tensor) -> Tensor:
        return torch.cat([v, torch.ones_like(v[..., :1])], -1) if self.normalize else v

    def _gates(self, prep: SimpleNamespace, u: Tensor) -> None:
        if self.decay == "input":
            log = F.logsigmoid(linear(u, self.w("W_a"), self.w("b_a"))) / 16
            alpha = log.exp()
            prep.g = _heads_of(edited_log(alpha, self.hooked(self.hook_alpha, alpha), log), self.heads)

    def _kernel(self, prep, S0, start):
        q, k, v, g = (self._slice(prep, n, start) for n in ("q", "k", "v", "g"))
        kernel = fla_linear_attention if use_fla(q) else linear_attention_chunked
        # a decay per key dimension makes the in-chunk product C x C x d_key: chunks of at most 32
        return kernel(q, k, v, g, S0, chunk=self.chunk if g is None else min(self.chunk, 32))

    def _update(self, prep, S: Tensor, t: int) -> Tensor:
        if prep.g is not None:
            S = S * at(prep, "g", t, 2).exp()[..., None]
        return S + at(prep, "k", t, 2)[..., :, None] * at(prep, "v", t, 2)[..., None, :]

    def _readout(self, o: Tensor) -> Tensor:
        if not self.normalize:
            return o
        return o[..., :-1] / (o[..., -1:] + self.eps)
