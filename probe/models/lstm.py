"""Long short-term memory, with PyTorch's equations, gate order (i, f, g, o) and initialisation.

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)        input gate
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)        forget gate
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     cell candidate
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)        output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

The state is the pair (h, c); ``state_size`` counts both. As for the GRU, :func:`_lstm_step` is
the reference step (the one through which hooks and edits change values) and :class:`_LSTMScan`
the same operations with a hand-written backward; the tests check that they agree.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Literal, Optional

import torch
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, linear, project, uniform
from probe.models.recurrence import at

_POINTS = ("hook_i", "hook_f", "hook_g", "hook_o", "hook_c", "hook_h")


def _lstm_step(gi_t: Tensor, h: Tensor, c: Tensor, W_hh_T: Tensor, visit: Callable) -> tuple[Tensor, Tensor]:
    """One reference step: gi_t (M, B, 4H) with both biases, h, c (M, B, H) -> h, c.

    The operations are those of :meth:`_LSTMScan.forward`, on the same slices.
    """
    H = h.shape[-1]
    p = torch.baddbmm(gi_t, h, W_hh_T)                                              # (M, B, 4H)
    act = torch.cat([p[..., :2 * H].sigmoid(), p[..., 2 * H:3 * H].tanh(), p[..., 3 * H:].sigmoid()], -1)
    i, f, g, o = (visit(name, act[..., k * H:(k + 1) * H]) for k, name in enumerate(_POINTS[:4]))
    c = visit("hook_c", torch.addcmul(f * c, i, g))
    return visit("hook_h", torch.mul(o, torch.tanh(c))), c


class _LSTMScan(torch.autograd.Function):
    """The recurrence without edits: (gi (T, M, B, 4H), h0, c0 (M, B, H), W_hh, taps) -> gates, c, h.

    As in :class:`probe.models.gru._GRUScan`: ``gi`` is indexed by step first in any memory
    layout and gets its gradient in that layout; outputs are time-first ((T, M, B, 4H) and
    (T, M, B, H)) so per-step writes are contiguous; the backward accumulates dW_hh step by step
    instead of concatenating and transposing whole trajectories. The six optional ``taps``
    (M, B, T, H), for i, f, g, o, c, h, receive the total derivatives of the loss at each step.
    """

    @staticmethod
    def forward(ctx, gi, h0, c0, W_hh, *taps):
        T, M, B, H4 = gi.shape
        H = H4 // 4
        gates, tcs = h0.new_empty(T, M, B, H4), h0.new_empty(T, M, B, H)
        cs, hs = h0.new_empty(T + 1, M, B, H), h0.new_empty(T + 1, M, B, H)  # [0] = c0, h0
        cs[0], hs[0] = c0, h0
        W_hh_T, h, c = W_hh.transpose(1, 2), h0, c0
        for t in range(T):
            g = torch.baddbmm(gi[t], h, W_hh_T, out=gates[t])                         # (M, B, 4H)
            g[..., :2 * H].sigmoid_(); g[..., 2 * H:3 * H].tanh_(); g[..., 3 * H:].sigmoid_()
            c = torch.addcmul(g[..., H:2 * H] * c, g[..., :H], g[..., 2 * H:3 * H], out=cs[t + 1])
            h = torch.mul(g[..., 3 * H:], torch.tanh(c, out=tcs[t]), out=hs[t + 1])
        ctx.save_for_backward(gi, W_hh, gates, cs, tcs, hs)
        ctx.set_materialize_grads(False)
        return gates, cs[1:], hs[1:]

    @staticmethod
    def backward(ctx, dgates, dcs, dhs):
        gi, W_hh, gates, cs, tcs, hs = ctx.saved_tensors
        T, M, B, H = tcs.shape
        dtap = [tcs.new_empty(T, M, B, H) if need else None for need in ctx.needs_input_grad[4:]]
        tapped = any(d is not None for d in dtap)
        dgi = torch.empty_like(gi)                           # gi's own layout
        dW_hh = W_hh.new_zeros(M, 4 * H, H)
        p = tcs.new_empty(M, B, 4 * H)                       # d(gate pre-activations) of one step
        dh, dc = torch.zeros_like(hs[0]), torch.zeros_like(cs[0])
        for t in reversed(range(T)):
            if dhs is not None:
                dh = dh + dhs[t]
            if dcs is not None:
                dc = dc + dcs[t]
            i, f, g, o = gates[t].chunk(4, -1)
            tc, c_prev = tcs[t], cs[t]
            dc = torch.addcmul(dc, dh * o, 1 - tc * tc)
            d_i, d_f, d_g, d_o = dc * g, dc * c_prev, dc * i, dh * tc
            if dgates is not None:
                d_i, d_f, d_g, d_o = (d + dd for d, dd in zip((d_i, d_f, d_g, d_o), dgates[t].chunk(4, -1)))
            if tapped:
                for tap, d in zip(dtap, (d_i, d_f, d_g, d_o, dc, dh)):
                    if tap is not None:
                        tap[t] = d
            torch.mul(d_i, i * (1 - i), out=p[..., :H])
            torch.mul(d_f, f * (1 - f), out=p[..., H:2 * H])
            torch.mul(d_g, 1 - g * g, out=p[..., 2 * H:3 * H])
            torch.mul(d_o, o * (1 - o), out=p[..., 3 * H:])
            dgi[t] = p
            dW_hh.baddbmm_(p.transpose(1, 2), hs[t])                                  # (M, 4H, H)
            dc = dc * f
            dh = torch.bmm(p, W_hh)                                                   # (M, B, H)
        taps = (None if d is None else d.permute(1, 2, 0, 3) for d in dtap)          # (M, B, T, H)
        return dgi, dh, dc, dW_hh, *taps


def _lstm_cell(sp: Tensor, gi: Tensor, W_hh: Tensor) -> tuple[Tensor, ...]:
    """Every step at once from given previous states, for Newton's method (:mod:`probe.newton`):
    sp = [h | c] (M, B, T, 2H), gi (M, B, T, 4H) -> i, f, g, o, c, h (M, B, T, H) and [h | c]."""
    H = sp.shape[-1] // 2
    h_prev, c_prev = sp[..., :H], sp[..., H:]
    p = gi + linear(h_prev, W_hh)                                                     # (M, B, T, 4H)
    i, f = torch.sigmoid(p[..., :H]), torch.sigmoid(p[..., H:2 * H])
    g, o = torch.tanh(p[..., 2 * H:3 * H]), torch.sigmoid(p[..., 3 * H:])
    c = f * c_prev + i * g
    h = o * torch.tanh(c)
    return i, f, g, o, c, h, torch.cat([h, c], -1)


def _lstm_jac_diag(sp: Tensor, args) -> Tensor:
    """The diagonal of ∂[h | c]_t/∂[h | c]_{t-1} in closed form, (M, B, T, 2H): quasi-DEER's Jacobian."""
    gi, W_hh = args
    i, f, g, o, c, _, _ = _lstm_cell(sp, gi, W_hh)
    M, H = W_hh.shape[0], sp.shape[-1] // 2
    Wd = torch.diagonal(W_hh.view(M, 4, H, H), dim1=-2, dim2=-1)[:, :, None, None, :]  # (M, 4, 1, 1, H)
    tc = torch.tanh(c)
    dc = sp[..., H:] * f * (1 - f) * Wd[:, 1] + g * i * (1 - i) * Wd[:, 0] + i * (1 - g * g) * Wd[:, 2]
    dh = o * (1 - o) * Wd[:, 3] * tc + o * (1 - tc * tc) * dc
    return torch.cat([dh, f], -1)


class LSTMLayer(Layer):
    takes_tokens = True  # its input map may be a per-token table lookup (base.Tokens)
    points = _POINTS

    OMIT_DEFAULTS = ("solver",)  # how, not what, the layer computes: left out of configs at its default

    def __init__(self, d_in: int, hidden: int, members: int,
                 solver: Literal["sequential", "deer", "quasi", "auto"] = "sequential"):
        super().__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, 2 * hidden
        self.solver = solver          # "deer"/"quasi": Newton's method over all steps on [h | c] (probe.newton)
        self.newton_tol = self.newton_max_iter = self.last_solve = None
        bound = 1 / math.sqrt(hidden)  # torch.nn.LSTM's init
        self.param("W_ih", (4 * hidden, d_in), uniform(bound))
        self.param("W_hh", (4 * hidden, hidden), uniform(bound))
        self.param("b_ih", (4 * hidden,), uniform(bound))
        self.param("b_hh", (4 * hidden,), uniform(bound))
        self.hook_i = HookPoint()  # (B, T, H) input gate
        self.hook_f = HookPoint()  # (B, T, H) forget gate
        self.hook_g = HookPoint()  # (B, T, H) cell candidate
        self.hook_o = HookPoint()  # (B, T, H) output gate
        self.hook_c = HookPoint()  # (B, T, H) cell state
        self.hook_h = HookPoint()  # (B, T, H) hidden state

    def initial_state(self, M: int, B: int, like: Tensor) -> tuple[Tensor, Tensor]:
        return like.new_zeros(M, B, self.hidden), like.new_zeros(M, B, self.hidden)

    def prepare(self, x, state: Optional[tuple[Tensor, Tensor]]) -> SimpleNamespace:
        M, B, T, _ = x.shape
        state = self.initial_state(M, B, x) if state is None else state              # (h0, c0) (M, B, H)
        bias = self.w("b_ih") + self.w("b_hh")
        return SimpleNamespace(M=M, B=B, T=T, state=state, gi=project(x, self.w("W_ih"), bias))  # (T, M, B, 4H)

    def run(self, prep, state, start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        from probe import newton
        gi = prep.gi[start:] if start else prep.gi  # a slice would cost a zero-filled copy in the backward
        method = newton.resolve(self.solver, self.device, prep.T - start, 2 * self.hidden, False)
        if method != "sequential" and not taps:  # gradient hooks take the loop, which reports them
            return self._solve(gi.permute(1, 2, 0, 3), state, method)
        taps = taps or {}
        gates, c, h = _LSTMScan.apply(gi, *state, self.w("W_hh"), *(taps.get(p) for p in self.points))
        values = (*gates.chunk(4, -1), c, h)
        return {p: v.permute(1, 2, 0, 3) for p, v in zip(self.points, values)}      # (M, B, T, H) each

    def _solve(self, gi: Tensor, state, method: str) -> dict[str, Tensor]:
        """Every point's trajectory (M, B, T, H) from Newton's method; gradients by the IFT."""
        from probe import newton
        H, W_hh = self.hidden, self.w("W_hh")
        W_hh_T = W_hh.transpose(1, 2)

        def step(sp, t):
            h, c = _lstm_step(gi[:, :, t], sp[..., :H], sp[..., H:], W_hh_T, lambda p, v: v)
            return torch.cat([h, c], -1)
        s0 = torch.cat(state, -1)                                                     # (M, B, 2H)
        s = newton.run_layer_solver(self, method, lambda sp, *a: _lstm_cell(sp, *a)[6], s0, gi.shape[2],
                                    (gi, W_hh), jac_diag=_lstm_jac_diag, step=step)
        i, f, g, o, _, _, _ = _lstm_cell(torch.cat([s0.unsqueeze(2), s[:, :, :-1]], 2), gi, W_hh)
        return dict(zip(self.points, (i, f, g, o, s[..., H:], s[..., :H]), strict=True))

    def step(self, prep, state, t: int, visit: Callable) -> tuple[Tensor, Tensor]:
        return _lstm_step(at(prep, "gi", t, 0), *state, self.w("W_hh").transpose(1, 2), visit)

    def state_at(self, values: dict, i: int) -> tuple[Tensor, Tensor]:
        return values["hook_h"][:, :, i], values["hook_c"][:, :, i]

    def finish(self, prep, carried: dict):
        h, c = carried["hook_h"], carried["hook_c"]                                  # (M, B, T, H)
        return h, (h[:, :, -1], c[:, :, -1])
