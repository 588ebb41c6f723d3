"""Linear recurrent unit (Orvieto et al., "Resurrecting Recurrent Neural Networks for Long Sequences").

    λ = exp(-exp(ν) + i·exp(θ))                      stable exponential parametrisation (§3.3)
    h_t = λ ⊙ h_{t-1} + γ ⊙ (B x_t),   γ = sqrt(1 - |λ|²)   normalisation (§3.4)
    y_t = GELU(Re(C h_t) + D x_t)                    real-part readout, then a nonlinearity

ν, θ are initialised on the ring r_min ≤ |λ| ≤ r_max, arg λ ≤ max_phase (§3.3). The complex state
of N units is exposed as real numbers: ``hook_h`` carries [Re h, Im h] (B, T, 2N), and so do the
states passed in and out, so every analysis sees real tensors. ``hook_a`` and ``hook_b`` carry the
complex λ (broadcast over steps) and γ ⊙ B x_t (B, T, N).
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, linear, normal
from probe.models.recurrence import Join, at


def _ring_nu(r_min: float, r_max: float):
    def init(g, shape):
        u = torch.rand(shape, generator=g)
        return torch.log(-0.5 * torch.log(u * (r_max**2 - r_min**2) + r_min**2))
    return init


def _ring_theta(max_phase: float):
    return lambda g, shape: torch.log(max_phase * torch.rand(shape, generator=g).clamp_min(1e-6))


class LRULayer(Layer):
    # |λ| = 1 would make γ = sqrt(1 - |λ|²) zero and ν = log(0); a bound may name another parameter
    PARAM_RANGES = {"state_dim": "[1, inf)", "r_min": "[0, 1)", "r_max": "[r_min, 1)", "max_phase": "(0, inf)"}
    def __init__(self, d_in: int, hidden: int, members: int, state_dim: Optional[int] = None,
                 r_min: float = 0.0, r_max: float = 0.99, max_phase: float = 2 * math.pi):
        super().__init__(members)
        N = state_dim or hidden
        self.d_in, self.d_out, self.hidden, self.N, self.state_size = d_in, hidden, hidden, N, 2 * N
        self.param("nu_log", (N,), _ring_nu(r_min, r_max))
        self.param("theta_log", (N,), _ring_theta(max_phase))
        self.param("gamma_log", (N,), normal(0.0))   # set from ν in init_member
        self.param("B_re", (N, d_in), normal(1 / math.sqrt(2 * d_in)))
        self.param("B_im", (N, d_in), normal(1 / math.sqrt(2 * d_in)))
        self.param("C_re", (hidden, N), normal(1 / math.sqrt(N)))
        self.param("C_im", (hidden, N), normal(1 / math.sqrt(N)))
        self.param("D", (hidden, d_in), normal(1 / math.sqrt(d_in)))
        self.hook_a = HookPoint()  # (B, T, N) complex: λ at every step
        self.hook_b = HookPoint()  # (B, T, N) complex: γ ⊙ B x_t
        self.hook_h = HookPoint()  # (B, T, 2N) real: [Re h, Im h]

    @torch.no_grad()
    def init_member(self, member, g):
        super().init_member(member, g)
        nu = self.nu_log[member] if self.ensemble else self.nu_log
        gamma = self.gamma_log[member] if self.ensemble else self.gamma_log
        gamma.copy_(0.5 * torch.log1p(-torch.exp(-2 * torch.exp(nu))))  # log sqrt(1 - |λ|²)

    def width(self, hook: str) -> int:
        return 2 * self.N if hook == "hook_h" else self.N

    def initial_state(self, M: int, B: int, like: Tensor) -> Tensor:
        return like.new_zeros(M, B, 2 * self.N)

    def _complex(self, v: Tensor) -> Tensor:
        return torch.complex(v[..., : self.N], v[..., self.N:])

    def _real(self, h: Tensor) -> Tensor:
        return torch.cat([h.real, h.imag], -1)

    def prepare(self, x: Tensor, state: Optional[Tensor]) -> SimpleNamespace:
        M, B, T, _ = x.shape
        lam = torch.exp(torch.complex(-torch.exp(self.w("nu_log")), torch.exp(self.w("theta_log"))))  # (M, N)
        a = self.hooked(self.hook_a, lam[:, None, None, :].expand(M, B, T, self.N))  # (M, B, T, N)
        Bx = torch.complex(linear(x, self.w("B_re")), linear(x, self.w("B_im")))  # (M, B, T, N)
        b = self.hooked(self.hook_b, torch.exp(self.w("gamma_log"))[:, None, None, :] * Bx)
        h0 = None if state is None else self._complex(state)                       # (M, B, N) complex
        return SimpleNamespace(M=M, B=B, T=T, state=h0, a=a, b=b, x=x)

    def run(self, prep, h: Optional[Tensor], start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        from probe.scan import linear_scan
        # slice only when needed: a slice's backward is a zero-filled copy of the whole trajectory
        a, b = (prep.a, prep.b) if not start else (prep.a[:, :, start:], prep.b[:, :, start:])
        if taps:  # dL/db_t is the total derivative at h_t; as real numbers, [Re, Im]
            b = Join.apply(b, taps["hook_h"], self._real)
        return {"hook_h": self._real(linear_scan(a, b, h))}     # (M, B, T, 2N)

    def step(self, prep, h: Optional[Tensor], t: int, visit: Callable) -> Tensor:
        b = at(prep, "b", t, 2)
        return self._complex(visit("hook_h", self._real(b if h is None else at(prep, "a", t, 2) * h + b)))

    def state_at(self, values: dict, i: int) -> Tensor:
        return self._complex(values["hook_h"][:, :, i])

    def finish(self, prep, carried: dict):
        hr = carried["hook_h"]                                                      # (M, B, T, 2N)
        C = torch.cat([self.w("C_re"), -self.w("C_im")], -1)                        # Re(C h) = C_re h_re - C_im h_im
        y = F.gelu(linear(hr, C) + linear(prep.x, self.w("D")))                     # (M, B, T, H)
        return y, hr[:, :, -1]
