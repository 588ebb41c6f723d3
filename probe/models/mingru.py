"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201), trained with one scan.

The GRU's gates stop reading the state, and the candidate loses its range restriction (§3.1):

    z_t = σ(W_z x_t + b_z)                     update gate        -> hook_z
    h̃_t = g(W_h x_t + b_h)                     candidate          -> hook_h_tilde
    h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t      state              -> hook_h

with g(x) = x + 0.5 for x >= 0 and σ(x) otherwise (appendix B.3: positive, so that the state
stays positive and the scan can run on logarithms). As z_t and h̃_t depend on x_t alone, the
whole sequence is one linear recurrence h_t = a_t h_{t-1} + b_t with a = 1 - z, b = z ⊙ h̃.

Two scans compute it (``scan=``):

- ``"log"`` (the paper's, appendix B.3.1): log a = -softplus(k), log b = -softplus(-k) + log g(·),
  a* = cumsum(log a), h_t = exp(a*_t + logcumsumexp(log b - a*)_t) (Heinsen's log-space scan,
  as in the paper's listing and lucidrains/minGRU-pytorch). A given initial state h0 enters by
  superposition, h_t += exp(a*_t) h0, which equals the paper's log(h0) entry for h0 > 0 and
  also holds for a state of any sign (an edited one, or lucidrains's ``log_g(prev_hidden)``
  would not equal the step-by-step definition);
- ``"linear"``: :func:`probe.scan.linear_scan` on (a, b) (float64 accumulation on the CPU).

From the first step at which a hook edited z or h̃ on, the linear scan takes over (edited values
may have any sign); the steps before keep the log scan's bits. A gradient hook on the state adds
a linear scan of zeros, whose gradient is the total derivative at each step.
:meth:`MinGRULayer.step` is the step-by-step definition, the reference the tests hold both
scans to.
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, linear, uniform
from probe.models.recurrence import Join, at, has_backward_hooks

# -- appendix B.3: the positive candidate and its logarithm -------------------------------------

def g(x: Tensor) -> Tensor:
    """x + 0.5 for x >= 0, σ(x) below: continuous, positive, linear for large x."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), computed without forming g(x) for negative x (-softplus(-x) = log σ(x))."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def log_scan(log_a: Tensor, log_b: Tensor, h0: Optional[Tensor] = None) -> Tensor:
    """h_t = a_t h_{t-1} + b_t from log a, log b (..., T, D), h0 (..., D) of any sign or None (0).

    Heinsen's scan (appendix B.1): a*_t = Σ_{s<=t} log a_s, h_t = exp(a*_t) h0 +
    exp(a*_t + logcumsumexp_{s<=t}(log b_s - a*_s)). log b may hold -inf (b = 0).
    """
    a_star = torch.cumsum(log_a, dim=-2)                                            # (..., T, D)
    h = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=-2))             # (..., T, D)
    return h if h0 is None else h + torch.exp(a_star) * h0.unsqueeze(-2)


def _first_edit(T: int, *pairs: tuple[Tensor, Tensor]) -> int:
    """The first step at which a hook changed a value (M, B, T, H) it was given; T if none."""
    first = T
    for hooked, raw in pairs:
        if hooked is not raw:
            differs = (hooked != raw).transpose(2, -1).flatten(end_dim=-2).any(0).nonzero()
            first = min(first, int(differs[0]) if differs.numel() else T)
    return first


class MinGRULayer(Layer):
    """minGRU: gates from the input only, so one scan runs the whole sequence (see the module)."""

    points = ("hook_h",)

    def __init__(self, d_in: int, hidden: int, members: int, scan: Literal["log", "linear"] = "log"):
        super().__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, hidden
        self.scan = scan
        bound = 1 / math.sqrt(d_in)  # torch.nn.Linear's init, as in the paper's listings
        self.param("W_z", (hidden, d_in), uniform(bound))
        self.param("b_z", (hidden,), uniform(bound))
        self.param("W_h", (hidden, d_in), uniform(bound))
        self.param("b_h", (hidden,), uniform(bound))
        self.hook_z = HookPoint()        # (B, T, H) update gate z_t
        self.hook_h_tilde = HookPoint()  # (B, T, H) candidate h̃_t = g(W_h x_t + b_h)
        self.hook_h = HookPoint()        # (B, T, H) state

    def initial_state(self, M: int, B: int, like: Tensor) -> Tensor:
        return like.new_zeros(M, B, self.hidden)

    def prepare(self, x: Tensor, state: Optional[Tensor]) -> SimpleNamespace:
        M, B, T, _ = x.shape
        k = linear(x, self.w("W_z"), self.w("b_z"))                                  # (M, B, T, H)
        u = linear(x, self.w("W_h"), self.w("b_h"))                                  # (M, B, T, H)
        z_raw, h_tilde_raw = torch.sigmoid(k), g(u)
        z, h_tilde = self.hooked(self.hook_z, z_raw), self.hooked(self.hook_h_tilde, h_tilde_raw)
        prep = SimpleNamespace(M=M, B=B, T=T, state=state, a=1 - z, b=z * h_tilde)   # (M, B, T, H)
        if self.scan == "log":
            prep.log_a, prep.log_b = -F.softplus(k), -F.softplus(-k) + log_g(u)      # (M, B, T, H)
            prep.log_until = _first_edit(T, (z, z_raw), (h_tilde, h_tilde_raw))
            self._route_gate_grads(prep)
        return prep

    def _route_gate_grads(self, prep) -> None:
        """With gradient hooks on gates, the log scan's inputs keep their values and send their
        gradients through a and b (d log a = da / a), so that they pass the hooked gates."""
        gates = [getattr(self, p) for p in self.hook_dict_local() if p != "hook_h"]
        if torch.is_grad_enabled() and any(has_backward_hooks(hp) for hp in gates):
            a, b = prep.a, prep.b
            prep.log_a = Join.apply(prep.log_a.detach(), a, lambda g: g / a)
            prep.log_b = Join.apply(prep.log_b.detach(), b, lambda g: g / b)

    def hook_dict_local(self) -> list[str]:
        """The layer's own hook names, in the order a step computes them."""
        return [n for n, m in self.named_children() if isinstance(m, HookPoint)]

    def run(self, prep, h: Optional[Tensor], start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        from probe.scan import linear_scan

        def part(v, lo, hi):  # slice only when needed: a slice's backward is a zero-filled copy
            return v if (lo, hi) == (0, prep.T) else v[:, :, lo:hi]
        split = max(start, getattr(prep, "log_until", start))  # the log scan up to the first edited step
        pieces = []
        if split > start:
            pieces.append(log_scan(part(prep.log_a, start, split), part(prep.log_b, start, split), h))
            h = pieces[-1][:, :, -1]
        if split < prep.T:
            pieces.append(linear_scan(part(prep.a, split, prep.T), part(prep.b, split, prep.T), h))
        hs = pieces[0] if len(pieces) == 1 else torch.cat(pieces, 2)                  # (M, B, T, H)
        if taps:  # + a scan of zeros: the same values, and the tap's gradient is the total dL/dh_t
            hs = hs + linear_scan(part(prep.a, start, prep.T).detach(), taps["hook_h"])
        return {"hook_h": hs}

    def step(self, prep, h: Optional[Tensor], t: int, visit: Callable) -> Tensor:
        b = at(prep, "b", t, 2)
        return visit("hook_h", b if h is None else torch.addcmul(b, at(prep, "a", t, 2), h))  # (M, B, H)

    def state_at(self, values: dict, i: int) -> Tensor:
        return values["hook_h"][:, :, i]

    def finish(self, prep, carried: dict):
        h = carried["hook_h"]                                                         # (M, B, T, H)
        return h, h[:, :, -1]
