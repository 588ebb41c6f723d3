"""The RG-LRU block of Griffin/Hawk (De et al., 2024), as a gated linear RNN.

    r_t = σ(W_r x_t + b_r)                            recurrence gate
    a_t = σ(Λ)^(c·r_t)                                input-dependent diagonal decay (c = 8)
    i_t = σ(W_gx x_t + b_gx)                          input gate          -> hook_gate_x
    h_t = a_t ⊙ h_{t-1} + sqrt(1 - a_t²) ⊙ (i_t ⊙ W_x x_t)
    o_t = GELU(W_go x_t + b_go)                       output gate         -> hook_gate_out
    y_t = W_out (o_t ⊙ h_t)

With ``gates="linear"`` both gates drop their nonlinearity, so the input is the bilinear product
(W_gx x)(W_x x) and the output (W_go x) ⊙ h: the multiplicative (GLU) gating with which a gated
linear RNN implements linear self-attention exactly (Zucchet et al., 2024). ``normalize=False``
drops the sqrt(1 - a²) factor, and ``decay="fixed"`` replaces the input-dependent decay by a
learned constant a_t = Λ per unit (unconstrained, so it can sit exactly at 1: an accumulator).
By default Griffin's short temporal convolution is left out, so that the state is h alone and
a_t and the gates depend on x_t only. ``conv=K`` (Griffin uses 4) puts it back, as in the Hawk
block: a depthwise causal convolution of width K feeds the recurrence branch,

    u_t = b_c + sum_{k<K} W_c[k] ⊙ x_{t-k}          (x_{t-k} = 0 before the sequence) -> hook_conv

and r_t, i_t and W_x read u_t instead of x_t (the output gate still reads x_t). Then the
bilinear input (W_gx u_t)(W_x u_t) holds products of neighbouring tokens, x_{t-1} ⊗ x_t, in one
layer. The state is then (h, the last K-1 inputs); edits of ``hook_h`` leave the convolution alone.
Either way the whole layer is one linear scan.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, constant, linear, uniform
from probe.models.recurrence import Join, at


def _decay_logit(c: float, lo: float, hi: float):
    """Λ such that σ(Λ)^c is uniform in [lo, hi] (Griffin §2.4)."""
    def init(g, shape):
        a = (lo + (hi - lo) * torch.rand(shape, generator=g)) ** (1.0 / c)
        return torch.log(a) - torch.log1p(-a)
    return init


class HawkLayer(Layer):
    # a = σ(Λ)^(c·r) needs c > 0 and a in (0, 1) (Λ = logit of a^(1/c)); conv is a window in steps
    PARAM_RANGES = {"c": "(0, inf)", "a_min": "(0, 1)", "a_max": "[a_min, 1)", "conv": "[0, 1024]"}
    def __init__(self, d_in: int, hidden: int, members: int, c: float = 8.0,
                 gates: Literal["sigmoid", "linear"] = "sigmoid", normalize: bool = True,
                 decay: Literal["input", "fixed"] = "input", a_min: float = 0.9, a_max: float = 0.999,
                 conv: int = 0):
        super().__init__(members)
        if not isinstance(conv, int) or isinstance(conv, bool) or conv < 0:
            raise ValueError(f"hawk conv must be an int >= 0 (0: no convolution); got {conv!r}")
        self.d_in, self.d_out, self.hidden = d_in, hidden, hidden
        self.state_size = hidden + max(conv - 1, 0) * d_in  # h and the convolution's last K-1 inputs
        self.c, self.gates, self.normalize, self.decay, self.conv = c, gates, normalize, decay, conv
        if conv:
            self.param("W_conv", (conv, d_in), uniform(1 / math.sqrt(conv)))
            self.param("b_conv", (d_in,), constant(0.0))
            self.hook_conv = HookPoint()  # (B, T, d_in) convolution output u_t
        bound_in, bound_h = 1 / math.sqrt(d_in), 1 / math.sqrt(hidden)
        self.param("W_x", (hidden, d_in), uniform(bound_in))
        self.param("W_gx", (hidden, d_in), uniform(bound_in))
        self.param("b_gx", (hidden,), constant(0.0))
        if decay == "input":
            self.param("W_r", (hidden, d_in), uniform(bound_in))
            self.param("b_r", (hidden,), constant(0.0))
            self.param("Lambda", (hidden,), _decay_logit(c, a_min, a_max))
        else:
            self.param("Lambda", (hidden,), lambda g, shape: a_min + (a_max - a_min) * torch.rand(shape, generator=g))
        self.param("W_go", (hidden, d_in), uniform(bound_in))
        self.param("b_go", (hidden,), constant(0.0))
        self.param("W_out", (hidden, hidden), uniform(bound_h))
        self.hook_a = HookPoint()         # (B, T, H) decay a_t
        self.hook_gate_x = HookPoint()    # (B, T, H) input gate i_t
        self.hook_h = HookPoint()         # (B, T, H) state
        self.hook_gate_out = HookPoint()  # (B, T, H) output gate o_t

    def initial_state(self, M: int, B: int, like: Tensor) -> "Tensor | tuple[Tensor, Tensor]":
        h = like.new_zeros(M, B, self.hidden)
        return (h, like.new_zeros(M, B, self.conv - 1, self.d_in)) if self.conv else h

    def width(self, hook: str) -> int:
        return self.d_in if hook == "hook_conv" else self.hidden

    def _convolve(self, x: Tensor, past: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """u (M, B, T, d_in) and the last K-1 inputs (M, B, K-1, d_in), the convolution's next state."""
        M, B, T, D = x.shape
        K = self.conv
        if past is None:
            past = x.new_zeros(M, B, K - 1, D)
        padded = torch.cat([past, x], dim=2)                                        # (M, B, K-1+T, D)
        W = self.w("W_conv")                                                        # (M, K, D)
        u = self.w("b_conv")[:, None, None, :] + sum(
            W[:, k, None, None, :] * padded[:, :, K - 1 - k: K - 1 - k + T] for k in range(K))  # (M, B, T, D)
        return self.hooked(self.hook_conv, u), padded[:, :, T:]

    def prepare(self, x: Tensor, state) -> SimpleNamespace:
        M, B, T, _ = x.shape
        x_out, past = x, None                                                       # the output gate's input
        if self.conv:
            h0, past = state if state is not None else (None, None)
            x, past = self._convolve(x, past)                                       # (M, B, T, d_in)
        else:
            h0 = state
        if self.decay == "input":
            r = torch.sigmoid(linear(x, self.w("W_r"), self.w("b_r")))              # (M, B, T, H)
            a = torch.exp(-self.c * F.softplus(-self.w("Lambda"))[:, None, None, :] * r)  # σ(Λ)^(c r)
        else:
            a = self.w("Lambda")[:, None, None, :].expand(M, B, T, self.hidden)
        a = self.hooked(self.hook_a, a)
        gx = linear(x, self.w("W_gx"), self.w("b_gx"))
        gx = self.hooked(self.hook_gate_x, torch.sigmoid(gx) if self.gates == "sigmoid" else gx)
        b = gx * linear(x, self.w("W_x"))                                           # (M, B, T, H)
        if self.normalize:
            b = b * torch.sqrt((1 - a * a).clamp_min(1e-12))
        return SimpleNamespace(M=M, B=B, T=T, state=h0, a=a, b=b, x_out=x_out, past=past)

    def run(self, prep, h: Optional[Tensor], start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        from probe.scan import linear_scan
        # slice only when needed: a slice's backward is a zero-filled copy of the whole trajectory
        a, b = (prep.a, prep.b) if not start else (prep.a[:, :, start:], prep.b[:, :, start:])
        if taps:  # dL/db_t is the total derivative at h_t (b_t enters h_t alone, with weight 1)
            b = Join.apply(b, taps["hook_h"])
        return {"hook_h": linear_scan(a, b, h)}                  # (M, B, T, H)

    def step(self, prep, h: Optional[Tensor], t: int, visit: Callable) -> Tensor:
        b = at(prep, "b", t, 2)
        return visit("hook_h", b if h is None else at(prep, "a", t, 2) * h + b)         # (M, B, H)

    def state_at(self, values: dict, i: int) -> Tensor:
        return values["hook_h"][:, :, i]

    def finish(self, prep, carried: dict):
        h = carried["hook_h"]                                                       # (M, B, T, H)
        go = linear(prep.x_out, self.w("W_go"), self.w("b_go"))
        go = self.hooked(self.hook_gate_out, F.gelu(go) if self.gates == "sigmoid" else go)
        final = (h[:, :, -1], prep.past) if self.conv else h[:, :, -1]
        return linear(go * h, self.w("W_out")), final
