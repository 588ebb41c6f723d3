"""The Mamba (S6) block (Gu & Dao 2023), with input-dependent Δ, B, C and a diagonal state (D, N).

With D = hidden channels (Mamba's d_inner; its expansion is folded into ``hidden``)::

    x̃_t, z_t = W_x x_t, W_z x_t                                  input and gate branches
    u_t = SiLU(b_c + Σ_{j<K} W_c[j] ⊙ x̃_{t-j})                   short causal conv (K = 4)  -> hook_x
    Δ_t = softplus(W_Δ (W_r u_t) + b_Δ)          (D,)  through a rank-R bottleneck          -> hook_dt
    B_t = W_B u_t,  C_t = W_C u_t                 (N,)  shared by the channels      -> hook_B, hook_C
    h_t[d, n] = exp(Δ_t[d] A[d, n]) h_{t-1}[d, n] + Δ_t[d] B_t[n] u_t[d]   A = -exp(A_log) -> hook_S
    y_t[d] = Σ_n C_t[n] h_t[d, n] + D_skip[d] u_t[d]                                      -> hook_h
    out_t = W_out (y_t ⊙ SiLU(z_t))                                                  (gate: hook_gate)

Parameterisation as ``mamba_ssm/modules/mamba_simple.py``: A_log[d, n] = log(n + 1) (S4D-real),
D_skip = 1, dt_rank = ⌈d_model/16⌉, b_Δ the inverse softplus of Δ log-uniform in [0.001, 0.1],
W_Δ uniform in ±dt_rank^-½, no bias on the input and output maps, a bias on the convolution.
The discretisation of B is Mamba's simplified one (Δ B, Euler) as in its reference scan.

``hook_S`` is the state h (B, T, D·N), row-major (D, N); the state the layer carries is (h, the
convolution's last K-1 inputs). The diagonal recurrence runs on :func:`probe.scan.linear_scan`;
caching hook_S is opt-in as for the other matrix states.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe import _limits
from probe.models.base import Layer, constant, linear, uniform
from probe.models.chunked import causal_conv
from probe.models.deltanet import _log_uniform_softplus_inverse
from probe.models.linattn import S_COPIES, StateHook
from probe.models.recurrence import Join, at, has_backward_hooks, has_forward_hooks


class MambaLayer(Layer):
    PARAM_RANGES = {"state_dim": "[1, 4096]", "conv": "[1, 1024]", "dt_rank": "[1, 65536]",
                    "dt_min": "(0, inf)", "dt_max": "[dt_min, inf)"}
    points = ("hook_S",)

    def __init__(self, d_in: int, hidden: int, members: int, state_dim: int = 16, conv: int = 4,
                 dt_rank: Optional[int] = None, dt_min: float = 0.001, dt_max: float = 0.1):
        super().__init__(members)
        D, N, K = hidden, state_dim, conv
        R = dt_rank or math.ceil(d_in / 16)
        self.d_in, self.d_out, self.hidden, self.N, self.conv, self.dt_rank = d_in, hidden, hidden, N, K, R
        self.state_size = D * N + (K - 1) * D
        self.param("W_x", (D, d_in), uniform(1 / math.sqrt(d_in)))
        self.param("W_z", (D, d_in), uniform(1 / math.sqrt(d_in)))
        self.param("W_conv", (K, D), uniform(1 / math.sqrt(K)))
        self.param("b_conv", (D,), uniform(1 / math.sqrt(K)))
        self.param("W_r", (R, D), uniform(1 / math.sqrt(D)))
        self.param("W_B", (N, D), uniform(1 / math.sqrt(D)))
        self.param("W_C", (N, D), uniform(1 / math.sqrt(D)))
        self.param("W_dt", (D, R), uniform(R ** -0.5))
        self.param("b_dt", (D,), _log_uniform_softplus_inverse(dt_min, dt_max))
        self.param("A_log", (D, N), lambda g, shape: torch.log(torch.arange(1, shape[-1] + 1.0)).expand(shape))
        self.param("D_skip", (D,), constant(1.0))
        self.param("W_out", (D, D), uniform(1 / math.sqrt(D)))
        self.hook_x = HookPoint()     # (B, T, D) SiLU of the convolution: the scan's input u_t
        self.hook_dt = HookPoint()    # (B, T, D) step size Δ_t
        self.hook_B = HookPoint()     # (B, T, N) input map B_t
        self.hook_C = HookPoint()     # (B, T, N) readout C_t
        self.hook_S = StateHook()     # (B, T, D·N) state h_t
        self.hook_h = HookPoint()     # (B, T, D) y_t = C_t h_t + D u_t
        self.hook_gate = HookPoint()  # (B, T, D) SiLU(z_t)

    def width(self, hook: str) -> int:
        return {"hook_S": self.hidden * self.N, "hook_B": self.N, "hook_C": self.N}.get(hook, self.hidden)

    def initial_state(self, M: int, B: int, like: Tensor):
        return like.new_zeros(M, B, self.hidden * self.N), like.new_zeros(M, B, self.conv - 1, self.hidden)

    def prepare(self, x: Tensor, state) -> SimpleNamespace:
        M, B, T, _ = x.shape
        h0, past = state if state is not None else (None, None)
        xs, past = causal_conv(linear(x, self.w("W_x")), self.w("W_conv"), self.w("b_conv"), past)
        u = self.hooked(self.hook_x, F.silu(xs))                                       # (M, B, T, D)
        dt = self.hooked(self.hook_dt, F.softplus(linear(linear(u, self.w("W_r")), self.w("W_dt"), self.w("b_dt"))))
        Bm = self.hooked(self.hook_B, linear(u, self.w("W_B")))                        # (M, B, T, N)
        Cm = self.hooked(self.hook_C, linear(u, self.w("W_C")))
        A = -self.w("A_log").exp()                                                      # (M, D, N)
        a = torch.exp(dt[..., None] * A[:, None, None])                                 # (M, B, T, D, N)
        b = (dt * u)[..., None] * Bm[..., None, :]
        hp = self.hook_S
        if has_forward_hooks(hp) or has_backward_hooks(hp):
            width = self.width("hook_S")
            _limits.check_fits(f"the trajectory of {hp.name or 'hook_S'} ({M} member(s) x {B} rows x {T} steps "
                               f"x {width} numbers; cache fewer rows or steps)",
                               {"S trajectory": S_COPIES * M * B * T * width * x.element_size()})
        return SimpleNamespace(M=M, B=B, T=T, state=h0, past=past, a=a.flatten(-2), b=b.flatten(-2), u=u, C=Cm, x=x)

    def run(self, prep, h: Optional[Tensor], start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        from probe.scan import linear_scan
        a, b = (prep.a, prep.b) if not start else (prep.a[:, :, start:], prep.b[:, :, start:])
        if taps:  # b_t enters h_t alone, with weight 1: its gradient is the total derivative at h_t
            b = Join.apply(b, taps["hook_S"])
        return {"hook_S": linear_scan(a, b, h)}                                        # (M, B, T', D·N)

    def step(self, prep, h: Optional[Tensor], t: int, visit: Callable) -> Tensor:
        b = at(prep, "b", t, 2)
        return visit("hook_S", b if h is None else at(prep, "a", t, 2) * h + b)

    def state_at(self, values: dict, i: int) -> Tensor:
        return values["hook_S"][:, :, i]

    def finish(self, prep, carried: dict):
        S = carried["hook_S"]                                                           # (M, B, T, D·N)
        M, B, T = prep.M, prep.B, prep.T
        y = torch.einsum("mbtdn,mbtn->mbtd", S.reshape(M, B, T, self.hidden, self.N), prep.C)
        y = self.hooked(self.hook_h, y + self.w("D_skip")[:, None, None] * prep.u)
        gate = self.hooked(self.hook_gate, F.silu(linear(prep.x, self.w("W_z"))))
        return linear(y * gate, self.w("W_out")), (S[:, :, -1], prep.past)
