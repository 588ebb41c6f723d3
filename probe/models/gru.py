"""Gated recurrent unit, with PyTorch's equations, gate order (r, z, n) and initialisation.

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

Weights are stored as ``torch.nn.GRU`` stores them (``weight_ih_l0`` is our ``W_ih``, rows r|z|n),
so copying a torch GRU's weights in gives the same outputs.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, StepEdits, edit_at, linear, uniform


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

    def forward(self, x: Tensor, state: Optional[Tensor] = None, edits: Optional[StepEdits] = None):
        M, B, T, _ = x.shape
        e, ens = edits or {}, self.ensemble
        h = self.initial_state(M, B, x) if state is None else state                  # (M, B, H)
        gi = linear(x, self.w("W_ih"), self.w("b_ih"))                               # (M, B, T, 3H)
        W_hh_T, b_hh = self.w("W_hh").transpose(1, 2), self.w("b_hh").unsqueeze(1)
        rs, zs, ns, hs = [], [], [], []
        for t, gi_t in enumerate(gi.unbind(2)):
            gh = torch.baddbmm(b_hh, h, W_hh_T)                                      # (M, B, 3H)
            i_r, i_z, i_n = gi_t.chunk(3, -1)
            h_r, h_z, h_n = gh.chunk(3, -1)
            r = edit_at(e.get("hook_r"), t, torch.sigmoid(i_r + h_r), ens)
            z = edit_at(e.get("hook_z"), t, torch.sigmoid(i_z + h_z), ens)
            n = edit_at(e.get("hook_n"), t, torch.tanh(i_n + r * h_n), ens)
            h = edit_at(e.get("hook_h"), t, n + z * (h - n), ens)
            rs.append(r); zs.append(z); ns.append(n); hs.append(h)
        self.hooked(self.hook_r, torch.stack(rs, 2))
        self.hooked(self.hook_z, torch.stack(zs, 2))
        self.hooked(self.hook_n, torch.stack(ns, 2))
        out = self.hooked(self.hook_h, torch.stack(hs, 2))                          # (M, B, T, H)
        return out, h
