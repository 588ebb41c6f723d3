"""Long short-term memory, with PyTorch's equations, gate order (i, f, g, o) and initialisation.

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)        input gate
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)        forget gate
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     cell candidate
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)        output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

The state is the pair (h, c); ``state_size`` counts both.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, StepEdits, edit_at, linear, uniform


class LSTMLayer(Layer):
    def __init__(self, d_in: int, hidden: int, members: int):
        super().__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, 2 * hidden
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

    def forward(self, x: Tensor, state: Optional[tuple[Tensor, Tensor]] = None,
                edits: Optional[StepEdits] = None):
        M, B, T, _ = x.shape
        e, ens = edits or {}, self.ensemble
        h, c = self.initial_state(M, B, x) if state is None else state               # (M, B, H) each
        gi = linear(x, self.w("W_ih"), self.w("b_ih"))                               # (M, B, T, 4H)
        W_hh_T, b_hh = self.w("W_hh").transpose(1, 2), self.w("b_hh").unsqueeze(1)
        traj = {k: [] for k in "ifgoch"}
        for t, gi_t in enumerate(gi.unbind(2)):
            pre = gi_t + torch.baddbmm(b_hh, h, W_hh_T)                              # (M, B, 4H)
            p_i, p_f, p_g, p_o = pre.chunk(4, -1)
            i = edit_at(e.get("hook_i"), t, torch.sigmoid(p_i), ens)
            f = edit_at(e.get("hook_f"), t, torch.sigmoid(p_f), ens)
            g = edit_at(e.get("hook_g"), t, torch.tanh(p_g), ens)
            o = edit_at(e.get("hook_o"), t, torch.sigmoid(p_o), ens)
            c = edit_at(e.get("hook_c"), t, f * c + i * g, ens)
            h = edit_at(e.get("hook_h"), t, o * torch.tanh(c), ens)
            for k, v in zip("ifgoch", (i, f, g, o, c, h)):
                traj[k].append(v)
        for k in "ifgoc":
            self.hooked(getattr(self, f"hook_{k}"), torch.stack(traj[k], 2))
        out = self.hooked(self.hook_h, torch.stack(traj["h"], 2))                   # (M, B, T, H)
        return out, (h, c)
