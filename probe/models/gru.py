"""Gated recurrent unit, with PyTorch's equations, gate order (r, z, n) and initialisation.

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

Weights are stored as ``torch.nn.GRU`` stores them (``weight_ih_l0`` is our ``W_ih``, rows r|z|n),
so copying a torch GRU's weights in gives the same outputs.

Two paths compute the recurrence. :func:`_gru_steps` is the reference, one autograd step at a
time, and the only one that takes step edits (their functions may be anything differentiable).
:class:`_GRUScan` runs the same equations with a hand-written backward: gradients of the weights
come from one batched matmul over all steps instead of one per step, which makes ensemble training
several times faster on CPU. The tests check that both agree.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, StepEdits, edit_at, linear, uniform


def _gru_steps(gi: Tensor, h: Tensor, W_hh: Tensor, b_hh: Tensor, e: StepEdits, ens: bool):
    """Reference recurrence. gi (M, T, B, 3H) time-major, h (M, B, H) -> r, z, n, h (M, T, B, H)."""
    W_hh_T, b_hh = W_hh.transpose(1, 2), b_hh.unsqueeze(1)
    rs, zs, ns, hs = [], [], [], []
    for t, gi_t in enumerate(gi.unbind(1)):
        gh = torch.baddbmm(b_hh, h, W_hh_T)                                          # (M, B, 3H)
        i_r, i_z, i_n = gi_t.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r = edit_at(e.get("hook_r"), t, torch.sigmoid(i_r + h_r), ens)
        z = edit_at(e.get("hook_z"), t, torch.sigmoid(i_z + h_z), ens)
        n = edit_at(e.get("hook_n"), t, torch.tanh(i_n + r * h_n), ens)
        h = edit_at(e.get("hook_h"), t, n + z * (h - n), ens)
        rs.append(r); zs.append(z); ns.append(n); hs.append(h)
    return [torch.stack(v, 1) for v in (rs, zs, ns, hs)]                             # (M, T, B, H) each


class _GRUScan(torch.autograd.Function):
    """The recurrence without edits: (gi (M, T, B, 3H), h0 (M, B, H), W_hh, b_hh) -> r, z, n, h.

    Outputs are time-first (T, M, B, H), so that every per-step write lands in a contiguous block
    (a strided ``out=`` costs ATen a hidden temporary and copy). Gates are outputs too (for the
    hooks), and gradients that reach them are honoured, so a loss on a cached gate trains the
    same way as on the reference path.
    """

    @staticmethod
    def forward(ctx, gi, h0, W_hh, b_hh):
        M, T, B, H3 = gi.shape
        H = H3 // 3
        rs, zs, ns, hs = (gi.new_empty(T, M, B, H) for _ in range(4))
        W_hh_T, b = W_hh.transpose(1, 2), b_hh.unsqueeze(1)
        h = h0
        for t in range(T):
            gi_t, gh = gi[:, t], torch.baddbmm(b, h, W_hh_T)                          # (M, B, 3H)
            r = torch.add(gi_t[..., :H], gh[..., :H], out=rs[t]).sigmoid_()
            z = torch.add(gi_t[..., H:2 * H], gh[..., H:2 * H], out=zs[t]).sigmoid_()
            n = torch.addcmul(gi_t[..., 2 * H:], r, gh[..., 2 * H:], out=ns[t]).tanh_()
            h = torch.addcmul(n, z, h - n, out=hs[t])
        ctx.save_for_backward(h0, W_hh, b_hh, rs, zs, ns, hs)
        ctx.set_materialize_grads(False)
        return rs, zs, ns, hs

    @staticmethod
    def backward(ctx, drs, dzs, dns, dhs):
        h0, W_hh, b_hh, rs, zs, ns, hs = ctx.saved_tensors
        T, M, B, H = hs.shape
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]], 0)                             # (T, M, B, H)
        # W_hn h_{t-1} + b_hn for every step at once, rather than saving it step by step
        ghn = torch.matmul(h_prev, W_hh[:, 2 * H:].transpose(1, 2)) + b_hh[:, None, 2 * H:]
        dgh = hs.new_empty(T, M, B, 3 * H)                   # d(W_hh h + b_hh) per step
        dpre_n = hs.new_empty(T, M, B, H)                    # d(input part of the candidate)
        dh = torch.zeros_like(h0)
        for t in reversed(range(T)):
            if dhs is not None:
                dh = dh + dhs[t]
            r, z, n = rs[t], zs[t], ns[t]
            dn = dh * (1 - z) if dns is None else torch.addcmul(dns[t], dh, 1 - z)
            dn = torch.mul(dn, 1 - n * n, out=dpre_n[t])
            dr = dn * ghn[t] if drs is None else torch.addcmul(drs[t], dn, ghn[t])
            dz = dh * (h_prev[t] - n) if dzs is None else torch.addcmul(dzs[t], dh, h_prev[t] - n)
            g = torch.cat([dr * r * (1 - r), dz * z * (1 - z), dn * r], -1, out=dgh[t])  # (M, B, 3H)
            dh = torch.baddbmm(dh * z, g, W_hh)                                       # (M, B, H)
        dgi = torch.cat([dgh[..., :2 * H], dpre_n], -1).transpose(0, 1)              # (M, T, B, 3H)
        dgh_m = dgh.transpose(0, 1).reshape(M, T * B, 3 * H)
        dW_hh = torch.bmm(dgh_m.transpose(1, 2), h_prev.transpose(0, 1).reshape(M, T * B, H))
        return dgi, dh, dW_hh, dgh_m.sum(1)


class GRULayer(Layer):
    def __init__(self, d_in: int, hidden: int, members: int):
        super().__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, hidden
        bound = 1 / math.sqrt(hidden)  # torch.nn.GRU's init
        self.param("W_ih", (3 * hidden, d_in), uniform(bound))
        self.param("W_hh", (3 * hidden, hidden), uniform(bound))
        self.param("b_ih", (3 * hidden,), uniform(bound))
        self.param("b_hh", (3 * hidden,), uniform(bound))
        self.hook_r = HookPoint()  # (B, T, H) reset gate
        self.hook_z = HookPoint()  # (B, T, H) update gate
        self.hook_n = HookPoint()  # (B, T, H) candidate state
        self.hook_h = HookPoint()  # (B, T, H) state

    def initial_state(self, M: int, B: int, like: Tensor) -> Tensor:
        return like.new_zeros(M, B, self.hidden)

    def forward(self, x: Tensor, state: Optional[Tensor] = None, edits: Optional[StepEdits] = None,
                fused: bool = True):
        M, B, T, _ = x.shape
        h0 = self.initial_state(M, B, x) if state is None else state                  # (M, B, H)
        gi = linear(x.transpose(1, 2), self.w("W_ih"), self.w("b_ih"))               # (M, T, B, 3H)
        if edits or not fused:
            r, z, n, h = _gru_steps(gi, h0, self.w("W_hh"), self.w("b_hh"), edits or {}, self.ensemble)
        else:
            r, z, n, h = (v.permute(1, 0, 2, 3) for v in _GRUScan.apply(gi, h0, self.w("W_hh"), self.w("b_hh")))
        for hook, v in ((self.hook_r, r), (self.hook_z, z), (self.hook_n, n)):
            self.hooked(hook, v.transpose(1, 2))
        out = self.hooked(self.hook_h, h.transpose(1, 2))                            # (M, B, T, H)
        return out, out[:, :, -1]
