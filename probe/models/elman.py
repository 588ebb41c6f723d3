"""Elman networks and linear RNNs.

    elman:   pre_t = W h_{t-1} + U x_t + b,   h_t = φ(pre_t),  φ ∈ {tanh, relu}
    linear:  pre_t = W h_{t-1} + U x_t,       h_t = pre_t

The streaming-parity paper (van Rossem & Saxe) uses relu, Xavier-normal gain 0.1 and h0 = ones;
the integration theory (Bordelon et al.) needs a linear RNN with a small initial W, whose scale is
``init_scale`` (the radius of W's circular-law bulk at init).

A linear RNN is a linear recurrence in the eigenbasis of W, so on long sequences (and when no
gradient is needed) it runs as a complex diagonal scan: z_t = Λ z_{t-1} + V⁻¹ U x_t, h_t = V z_t.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Literal, Optional

import torch
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, constant, linear, normal, xavier_normal
from probe.models.recurrence import at, loop

_DIAG_MIN_T = 256       # below this the step loop is as fast as diagonalising
_DIAG_MAX_COND = 1e4    # eigenvector conditioning beyond which the diagonal path loses accuracy


class ElmanLayer(Layer):
    PARAM_RANGES = {"gain": "(0, inf)"}  # interval notation, read by probe.models._check_arch_params
    OMIT_DEFAULTS = ("solver",)  # how, not what, the layer computes: left out of configs at its default
    points = ("hook_pre", "hook_h")

    def __init__(self, d_in: int, hidden: int, members: int,
                 nonlinearity: Literal["tanh", "relu"] = "tanh", gain: float = 1.0,
                 h0: Literal["zeros", "ones", "learned"] = "zeros",
                 solver: Literal["sequential", "deer", "quasi", "auto"] = "sequential"):
        super().__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, hidden
        self.nonlinearity, self.h0_kind = nonlinearity, h0
        self.solver = solver          # "deer"/"quasi": Newton's method over all steps (probe.newton)
        self.newton_tol = self.newton_max_iter = self.last_solve = None
        self.param("W", (hidden, hidden), xavier_normal(gain))
        self.param("U", (hidden, d_in), xavier_normal(gain))
        self.param("b", (hidden,), constant(0.0))
        if h0 == "learned":
            self.param("h0", (hidden,), constant(1.0))
        self.hook_pre = HookPoint()  # (B, T, H) pre-activation
        self.hook_h = HookPoint()    # (B, T, H) state

    def initial_state(self, M: int, B: int, like: Tensor) -> Tensor:
        if self.h0_kind == "learned":
            return self.w("h0").unsqueeze(1).expand(M, B, self.hidden)
        return like.new_full((M, B, self.hidden), 1.0 if self.h0_kind == "ones" else 0.0)

    def prepare(self, x: Tensor, state: Optional[Tensor]) -> SimpleNamespace:
        M, B, T, _ = x.shape
        h0 = self.initial_state(M, B, x) if state is None else state                  # (M, B, H)
        return SimpleNamespace(M=M, B=B, T=T, state=h0, ux=linear(x, self.w("U"), self.w("b")),  # (M, B, T, H)
                               W_T=self.w("W").transpose(1, 2))

    def run(self, prep, h: Tensor, start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        from probe import newton
        method = newton.resolve(self.solver, self.device, prep.T - start, self.hidden, False)
        if method == "sequential" or taps:  # gradient hooks take the loop, which reports them
            return loop(self, prep, h, start, taps)
        phi = torch.relu if self.nonlinearity == "relu" else torch.tanh
        ux, W = (prep.ux[:, :, start:] if start else prep.ux), self.w("W")

        def jac_diag(hp, args):  # φ'(pre) W_ii: quasi-DEER's Jacobian
            pre = linear(hp, args[1]) + args[0]
            slope = (pre > 0).to(pre) if self.nonlinearity == "relu" else 1 - torch.tanh(pre) ** 2
            return slope * torch.diagonal(args[1], dim1=-2, dim2=-1)[:, None, None, :]
        hs = newton.run_layer_solver(self, method, lambda hp, u, w: phi(linear(hp, w) + u), h, prep.T - start,
                                     (ux, W), jac_diag=jac_diag,
                                     step=lambda hp, t: phi(torch.baddbmm(ux[:, :, t], hp, prep.W_T)))
        pre = linear(torch.cat([h.unsqueeze(2), hs[:, :, :-1]], 2), W) + ux
        return {"hook_pre": pre, "hook_h": hs}                                        # (M, B, T, H)

    def step(self, prep, h: Tensor, t: int, visit: Callable) -> Tensor:
        phi = torch.relu if self.nonlinearity == "relu" else torch.tanh
        pre = visit("hook_pre", torch.baddbmm(at(prep, "ux", t, 2), h, prep.W_T))     # (M, B, H)
        return visit("hook_h", phi(pre))

    def state_at(self, values: dict, i: int) -> Tensor:
        return values["hook_h"][:, :, i]

    def finish(self, prep, carried: dict):
        h = carried["hook_h"]                                                         # (M, B, T, H)
        return h, h[:, :, -1]


class LinearLayer(Layer):
    PARAM_RANGES = {"init_scale": "[0, inf)"}  # 0: W starts at zero
    points = ("hook_pre", "hook_h")

    def __init__(self, d_in: int, hidden: int, members: int, init_scale: float = 1.0,
                 scan: Literal["auto", "loop", "diag"] = "auto"):
        super().__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, hidden
        self.scan = scan
        self.param("W", (hidden, hidden), normal(init_scale / math.sqrt(hidden)))
        self.param("U", (hidden, d_in), normal(1 / math.sqrt(d_in)))
        self.hook_pre = HookPoint()  # (B, T, H) W h_{t-1} + U x_t (equal to h_t: no nonlinearity)
        self.hook_h = HookPoint()    # (B, T, H) state

    def initial_state(self, M: int, B: int, like: Tensor) -> Tensor:
        return like.new_zeros(M, B, self.hidden)

    def prepare(self, x: Tensor, state: Optional[Tensor]) -> SimpleNamespace:
        M, B, T, _ = x.shape
        h0 = self.initial_state(M, B, x) if state is None else state                  # (M, B, H)
        return SimpleNamespace(M=M, B=B, T=T, state=h0, ux=linear(x, self.w("U")),  # (M, B, T, H)
                               W_T=self.w("W").transpose(1, 2))

    def run(self, prep, h: Tensor, start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        # gradient taps need the loop (the diagonal path is chosen only without gradients anyway)
        ux = prep.ux[:, :, start:] if start else prep.ux
        hs = self._diagonal(ux, h) if not taps and self._use_diagonal(prep.T - start) else None
        if hs is None:
            return loop(self, prep, h, start, taps)
        return {"hook_pre": hs, "hook_h": hs}                                         # (M, B, T, H)

    def step(self, prep, h: Tensor, t: int, visit: Callable) -> Tensor:
        pre = visit("hook_pre", torch.baddbmm(at(prep, "ux", t, 2), h, prep.W_T))     # (M, B, H)
        return visit("hook_h", pre)

    def state_at(self, values: dict, i: int) -> Tensor:
        return values["hook_h"][:, :, i]

    def finish(self, prep, carried: dict):
        h = carried["hook_h"]                                                         # (M, B, T, H)
        return h, h[:, :, -1]

    def _use_diagonal(self, T: int) -> bool:
        if self.scan == "loop":
            return False
        if self.scan == "diag":
            return True
        return T >= _DIAG_MIN_T and not (torch.is_grad_enabled() and self.W.requires_grad)

    def _diagonal(self, ux: Tensor, h0: Tensor) -> Optional[Tensor]:
        """h_t through the eigenbasis of W, or None when W is too far from diagonalisable."""
        from probe.scan import linear_scan
        lam, V = torch.linalg.eig(self.w("W"))                                        # (M, H), (M, H, H)
        if self.scan == "auto" and torch.linalg.cond(V).max() > _DIAG_MAX_COND:
            return None
        V_inv = torch.linalg.inv(V)
        cdtype = V.dtype
        b = linear(ux.to(cdtype), V_inv)                                              # (M, B, T, H) complex
        z0 = linear(h0.to(cdtype), V_inv)                                             # (M, B, H)
        z = linear_scan(lam[:, None, None, :], b, z0)                                 # (M, B, T, H)
        return linear(z, V).real.to(ux.dtype)                                         # (M, B, T, H)
