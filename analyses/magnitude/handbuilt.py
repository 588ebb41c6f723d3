"""Hand-built repetition models with a known state code, to check the interventions against.

Both read symbols x_0..x_{K-1} (exactly ``max_len`` = K of them), then emit them in order on every
non-symbol input (SEP, then NOINPUT: the task's ``mode="no_input"``), then EOS. Their state is
one vector per example, so the only intervention hook is ``"state"``.

- ``code="blocks"``: K blocks of V dimensions; position p's token is one-hot in block p, every
  position in its own subspace. Reading shifts the blocks down and writes into the last block;
  emitting reads block 0 and shifts the blocks down, so EOS follows when block 0 is empty.
- ``code="onion"``: V shared dimensions and a scale s; position p's token is one-hot at scale γ^p,
  h = Σ_p γ^p e_{x_p} (γ < 1/2, so the largest layer is the first token). Reading adds s·e_x and
  multiplies s by γ; emitting reads argmax h and peels it off: h <- (h − e_argmax) / γ.

Logits are ``sharpness`` × (the read vector, then 0.5 for EOS), so an empty read says EOS.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

Code = Literal["blocks", "onion"]


class HandBuiltCopier(nn.Module):
    """A repetition model whose state stores tokens in ``code``; see the module docstring.

    Parameters
    ----------
    n_symbols, max_len : the task's V and K (sequences must have length K).
    code : "blocks" (one subspace per position) or "onion" (position p at scale γ^p, shared dims).
    gamma : the onion's rate (below 0.5).
    sharpness : logit scale.
    """

    def __init__(self, n_symbols: int, max_len: int, code: Code = "blocks", gamma: float = 0.3,
                 sharpness: float = 20.0):
        super().__init__()
        if code not in ("blocks", "onion"):
            raise ValueError(f"unknown code {code!r}; valid codes: blocks, onion")
        if not 0 < gamma < 0.5:
            raise ValueError(f"gamma must lie in (0, 0.5) for the onion to be decodable, got {gamma}")
        self.V, self.K, self.code, self.gamma, self.sharpness = n_symbols, max_len, code, gamma, sharpness
        self.config = {"arch": f"handbuilt-{code}", "layers": 1}
        self.input_kind, self.d_source, self.members, self.is_ensemble = "tokens", n_symbols + 4, 1, False
        self.hook_dict: dict = {}
        # nothing is learned; this frozen scalar carries the dtype and device
        self._dtype = nn.Parameter(torch.zeros(()), requires_grad=False)

    @property
    def width(self) -> int:
        return self.K * self.V if self.code == "blocks" else self.V + 1

    def initial_state(self, B: int) -> Tensor:
        h = self._dtype.new_zeros(B, self.width)
        if self.code == "onion":
            h[:, -1] = 1.0                                                          # the scale s
        return h

    def _read(self, h: Tensor, x: Tensor) -> Tensor:
        """State after reading symbol x (B,) into h (B, D)."""
        e = F.one_hot(x.clamp_max(self.V - 1), self.V).to(h)                         # (B, V)
        if self.code == "blocks":
            return torch.cat([h[:, self.V:], e], 1)                                 # shift down, write last
        s = h[:, -1:]
        return torch.cat([h[:, :-1] + s * e, s * self.gamma], 1)

    def _emit(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (B, V+1), state after emitting) from h (B, D)."""
        read = h[:, :self.V]                                                        # (B, V)
        logits = self.sharpness * torch.cat([read, read.new_full((read.shape[0], 1), 0.5)], 1)
        if self.code == "blocks":
            return logits, torch.cat([h[:, self.V:], torch.zeros_like(read)], 1)
        top = F.one_hot(logits.argmax(1), self.V + 1)[:, :self.V].to(h)             # no peel after EOS
        return logits, torch.cat([(read - top) / self.gamma, h[:, -1:]], 1)

    def forward(self, inputs: Tensor, state: Optional[list[Tensor]] = None, return_state: bool = False):
        """inputs (B, T) tokens -> logits (B, T, V+1) [, [final state (B, D)]]."""
        B, T = inputs.shape
        h = self.initial_state(B) if state is None else state[0]
        outs = []
        for t in range(T):
            x = inputs[:, t]
            is_symbol = (x < self.V)[:, None]                                       # (B, 1)
            logits, emitted = self._emit(h)
            h = torch.where(is_symbol, self._read(h, x), emitted)
            outs.append(torch.where(is_symbol, torch.zeros_like(logits), logits))
        out = torch.stack(outs, 1)                                                  # (B, T, V+1)
        return (out, [h]) if return_state else out
