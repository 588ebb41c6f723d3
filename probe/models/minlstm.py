"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201), trained with one scan.

The LSTM's gates stop reading the state, the output gate and the cell/hidden split go, and the
forget and input gates are normalised to sum to one, which makes the state's scale independent
of time (§3.2):

    f_t = σ(W_f x_t + b_f),  i_t = σ(W_i x_t + b_i)
    f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)       -> hook_f, hook_i (normalised)
    h̃_t = g(W_h x_t + b_h)                                   -> hook_h_tilde
    h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h̃_t                         -> hook_h

In log space (appendix B.3.2): d = softplus(-k_f) - softplus(-k_i), log f' = -softplus(d),
log i' = -softplus(-d), and the scan is minGRU's (:func:`probe.models.mingru.log_scan`), with the
same two ``scan=`` choices and the same fallback to the linear scan for edited values.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import linear, uniform
from probe.models.mingru import MinGRULayer, _first_edit, g, log_g


class MinLSTMLayer(MinGRULayer):
    """minLSTM: normalised forget and input gates from the input only (see the module).

    The scan, the reference step and the state handling are minGRU's, with a = f', b = i' ⊙ h̃.
    """

    def __init__(self, d_in: int, hidden: int, members: int, scan: Literal["log", "linear"] = "log"):
        super(MinGRULayer, self).__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, hidden
        self.scan = scan
        bound = 1 / math.sqrt(d_in)  # torch.nn.Linear's init, as in the paper's listings
        self.param("W_f", (hidden, d_in), uniform(bound))
        self.param("b_f", (hidden,), uniform(bound))
        self.param("W_i", (hidden, d_in), uniform(bound))
        self.param("b_i", (hidden,), uniform(bound))
        self.param("W_h", (hidden, d_in), uniform(bound))
        self.param("b_h", (hidden,), uniform(bound))
        self.hook_f = HookPoint()        # (B, T, H) normalised forget gate f'_t
        self.hook_i = HookPoint()        # (B, T, H) normalised input gate i'_t
        self.hook_h_tilde = HookPoint()  # (B, T, H) candidate h̃_t = g(W_h x_t + b_h)
        self.hook_h = HookPoint()        # (B, T, H) state

    def prepare(self, x: Tensor, state: Optional[Tensor]) -> SimpleNamespace:
        M, B, T, _ = x.shape
        k_f = linear(x, self.w("W_f"), self.w("b_f"))                                # (M, B, T, H)
        k_i = linear(x, self.w("W_i"), self.w("b_i"))                                # (M, B, T, H)
        u = linear(x, self.w("W_h"), self.w("b_h"))                                  # (M, B, T, H)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        f_raw, i_raw, h_tilde_raw = f / (f + i), i / (f + i), g(u)
        f_n, i_n = self.hooked(self.hook_f, f_raw), self.hooked(self.hook_i, i_raw)
        h_tilde = self.hooked(self.hook_h_tilde, h_tilde_raw)
        prep = SimpleNamespace(M=M, B=B, T=T, state=state, a=f_n, b=i_n * h_tilde)   # (M, B, T, H)
        if self.scan == "log":
            d = F.softplus(-k_f) - F.softplus(-k_i)
            prep.log_a, prep.log_b = -F.softplus(d), -F.softplus(-d) + log_g(u)       # (M, B, T, H)
            prep.log_until = _first_edit(T, (f_n, f_raw), (i_n, i_raw), (h_tilde, h_tilde_raw))
            self._route_gate_grads(prep)
        return prep
