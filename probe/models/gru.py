"""Gated recurrent unit, with PyTorch's equations, gate order (r, z, n) and initialisation.

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

Weights are stored as ``torch.nn.GRU`` stores them (``weight_ih_l0`` is our ``W_ih``, rows r|z|n),
so copying a torch GRU's weights in gives the same outputs.

Two paths compute the recurrence. :func:`_gru_step` is the reference, one autograd step at a
time, and the one through which hooks and step edits change a value (see
:mod:`probe.models.recurrence`). :class:`_GRUScan` runs the same operations with a hand-written
backward that works on one step's slices at a time (no whole-trajectory copies) and needs no
autograd graph per step, which makes ensemble training several times faster on CPU. Both read
the input map through :func:`probe.models.base.project` (a per-token table lookup for learned
token embeddings). The tests check that they agree.
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


def _gru_step(gi_t: Tensor, h: Tensor, W_hh_T: Tensor, b_hh: Tensor, visit: Callable) -> Tensor:
    """One reference step: gi_t (M, B, 3H) (a view), h (M, B, H) -> h (M, B, H).

    Every value passes through ``visit(point, value)``, which returns the value to go on with.
    The operations are those of :meth:`_GRUScan.forward`.
    """
    H = h.shape[-1]
    gh = torch.baddbmm(b_hh, h, W_hh_T)                                             # (M, B, 3H)
    rz = torch.add(gi_t[..., :2 * H], gh[..., :2 * H]).sigmoid()                    # (M, B, 2H)
    r, z = visit("hook_r", rz[..., :H]), visit("hook_z", rz[..., H:])
    n = visit("hook_n", torch.addcmul(gi_t[..., 2 * H:], r, gh[..., 2 * H:]).tanh())
    return visit("hook_h", torch.addcmul(n, z, h - n))


class _GRUScan(torch.autograd.Function):
    """The recurrence without edits: (gi (T, M, B, 3H), h0 (M, B, H), W_hh, b_hh, taps) -> r, z, n, h.

    ``gi`` is indexed by step first but may have any memory layout (the token path hands in a
    (T, B, M, 3H) table lookup, see :func:`probe.models.base.project`); its gradient is written
    in that same layout, so autograd passes it back without a copy. Outputs are time-first
    (T, M, B, H) buffers, so every per-step write lands in one contiguous block. The backward
    runs step by step on slices that stay in cache and accumulates the weight gradients as it
    goes; nothing the size of the whole trajectory is concatenated, transposed or copied.
    Gates are outputs too (for the hooks), and gradients that reach them are honoured. The four
    optional ``taps`` (M, B, T, H) are not read: their gradients are the total derivatives of the
    loss with respect to r, z, n and h at each step (for gradient hooks, see
    :mod:`probe.models.recurrence`).
    """

    @staticmethod
    def forward(ctx, gi, h0, W_hh, b_hh, tap_r=None, tap_z=None, tap_n=None, tap_h=None):
        T, M, B, H3 = gi.shape
        H = H3 // 3
        rz, ns = h0.new_empty(T, M, B, 2 * H), h0.new_empty(T, M, B, H)  # rz[t] = r_t | z_t
        hs = h0.new_empty(T + 1, M, B, H)  # hs[0] = h0, so h_{t-1} is hs[t] in the backward
        ghn = h0.new_empty(T, M, B, H)     # W_hn h_{t-1} + b_hn, needed by the backward
        hs[0] = h0
        W_hh_T, b = W_hh.transpose(1, 2), b_hh.unsqueeze(1)
        h = h0
        for t in range(T):
            gi_t, gh = gi[t], torch.baddbmm(b, h, W_hh_T)                             # (M, B, 3H)
            rz_t = torch.add(gi_t[..., :2 * H], gh[..., :2 * H], out=rz[t]).sigmoid_()
            ghn[t] = gh[..., 2 * H:]
            n = torch.addcmul(gi_t[..., 2 * H:], rz_t[..., :H], ghn[t], out=ns[t]).tanh_()
            h = torch.addcmul(n, rz_t[..., H:], h - n, out=hs[t + 1])
        ctx.save_for_backward(gi, W_hh, rz, ns, hs, ghn)
        ctx.set_materialize_grads(False)
        return rz[..., :H], rz[..., H:], ns, hs[1:]

    @staticmethod
    def backward(ctx, drs, dzs, dns, dhs):
        gi, W_hh, rz, ns, hs, ghn = ctx.saved_tensors
        T, M, B, H = ns.shape
        dtap = [ns.new_empty(T, M, B, H) if need else None for need in ctx.needs_input_grad[4:]]
        tapped = any(d is not None for d in dtap)
        dgi = torch.empty_like(gi)                           # gi's own layout
        dW_hh = W_hh.new_zeros(M, 3 * H, H)
        db_acc = W_hh.new_zeros(M, B, 3 * H)                 # dgh summed over steps
        dgh = ns.new_empty(M, B, 3 * H)                      # d(W_hh h + b_hh) of one step
        one = ns.new_ones(())
        dh = torch.zeros_like(hs[0])
        for t in reversed(range(T)):
            if dhs is not None:
                dh = dh + dhs[t]
            rz_t, n, h_prev, dgi_t = rz[t], ns[t], hs[t], dgi[t]
            r, z = rz_t[..., :H], rz_t[..., H:]
            dhz = dh * z                                     # the direct path to h_{t-1}
            dn = dh - dhz                                    # dh * (1 - z)
            if dns is not None:
                dn += dns[t]
            if tapped:
                for tap, d in zip(dtap[2:], (dn, dh)):
                    if tap is not None:
                        tap[t] = d
            dn = torch.mul(dn, torch.addcmul(one, n, n, value=-1), out=dgi_t[..., 2 * H:])
            torch.mul(dn, ghn[t], out=dgh[..., :H])                                  # dL/dr
            torch.mul(dh, h_prev - n, out=dgh[..., H:2 * H])                          # dL/dz
            if drs is not None:
                dgh[..., :H] += drs[t]
            if dzs is not None:
                dgh[..., H:2 * H] += dzs[t]
            if tapped:
                for tap, d in zip(dtap[:2], (dgh[..., :H], dgh[..., H:2 * H])):
                    if tap is not None:
                        tap[t] = d
            dgh[..., :2 * H] *= torch.addcmul(rz_t, rz_t, rz_t, value=-1)            # σ' = σ(1 - σ)
            torch.mul(dn, r, out=dgh[..., 2 * H:])
            dgi_t[..., :2 * H] = dgh[..., :2 * H]
            dW_hh.baddbmm_(dgh.transpose(1, 2), h_prev)                               # (M, 3H, H)
            db_acc += dgh
            dh = torch.baddbmm(dhz, dgh, W_hh)                                        # (M, B, H)
        taps = (None if d is None else d.permute(1, 2, 0, 3) for d in dtap)          # (M, B, T, H)
        return dgi, dh, dW_hh, db_acc.sum(1), *taps


def _gru_cell(hp: Tensor, gi: Tensor, W_hh: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Every step at once from given previous states, for Newton's method (:mod:`probe.newton`):
    hp (M, B, T, H), gi (M, B, T, 3H) -> r, z, n, h and W_hn h + b_hn, each (M, B, T, H)."""
    H = hp.shape[-1]
    gh = linear(hp, W_hh, b_hh)                                                       # (M, B, T, 3H)
    rz = torch.sigmoid(gi[..., :2 * H] + gh[..., :2 * H])
    r, z, ghn = rz[..., :H], rz[..., H:], gh[..., 2 * H:]
    n = torch.tanh(gi[..., 2 * H:] + r * ghn)
    return r, z, n, n + z * (hp - n), ghn


def _gru_jac_diag(hp: Tensor, args) -> Tensor:
    """∂h_t,i/∂h_{t-1},i in closed form, (M, B, T, H): quasi-DEER's Jacobian."""
    gi, W_hh, b_hh = args
    r, z, n, _, ghn = _gru_cell(hp, gi, W_hh, b_hh)
    M, H = W_hh.shape[0], hp.shape[-1]
    Wd = torch.diagonal(W_hh.view(M, 3, H, H), dim1=-2, dim2=-1)[:, :, None, None, :]  # (M, 3, 1, 1, H)
    dn = (1 - n * n) * (r * Wd[:, 2] + ghn * r * (1 - r) * Wd[:, 0])
    return z + (1 - z) * dn + (hp - n) * z * (1 - z) * Wd[:, 1]


class GRULayer(Layer):
    takes_tokens = True  # its input map may be a per-token table lookup (base.Tokens)
    points = ("hook_r", "hook_z", "hook_n", "hook_h")

    OMIT_DEFAULTS = ("solver",)  # how, not what, the layer computes: left out of configs at its default

    def __init__(self, d_in: int, hidden: int, members: int,
                 solver: Literal["sequential", "deer", "quasi", "auto"] = "sequential"):
        super().__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, hidden
        self.solver = solver          # "deer"/"quasi": Newton's method over all steps (probe.newton)
        self.newton_tol = self.newton_max_iter = self.last_solve = None
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

    def prepare(self, x, state: Optional[Tensor]) -> SimpleNamespace:
        M, B, T, _ = x.shape
        h0 = self.initial_state(M, B, x) if state is None else state                  # (M, B, H)
        return SimpleNamespace(M=M, B=B, T=T, state=h0,
                               gi=project(x, self.w("W_ih"), self.w("b_ih")))        # (T, M, B, 3H) view

    def run(self, prep, h: Tensor, start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        from probe import newton
        gi = prep.gi[start:] if start else prep.gi  # a slice would cost a zero-filled copy in the backward
        method = newton.resolve(self.solver, self.device, prep.T - start, self.hidden, False)
        if method != "sequential" and not taps:  # gradient hooks take the loop, which reports them
            return self._solve(gi.permute(1, 2, 0, 3), h, method)
        taps = taps or {}
        out = _GRUScan.apply(gi, h, self.w("W_hh"), self.w("b_hh"), *(taps.get(p) for p in self.points))
        return {p: v.permute(1, 2, 0, 3) for p, v in zip(self.points, out)}         # (M, B, T, H) each

    def _solve(self, gi: Tensor, h0: Tensor, method: str) -> dict[str, Tensor]:
        """Every point's trajectory (M, B, T, H) from Newton's method; gradients by the IFT."""
        from probe import newton
        args = (gi, self.w("W_hh"), self.w("b_hh"))
        W_hh_T, b = args[1].transpose(1, 2), args[2].unsqueeze(1)
        h = newton.run_layer_solver(
            self, method, lambda hp, *a: _gru_cell(hp, *a)[3], h0, gi.shape[2], args, jac_diag=_gru_jac_diag,
            step=lambda hp, t: _gru_step(gi[:, :, t], hp, W_hh_T, b, lambda p, v: v))
        r, z, n, _, _ = _gru_cell(torch.cat([h0.unsqueeze(2), h[:, :, :-1]], 2), *args)
        return {"hook_r": r, "hook_z": z, "hook_n": n, "hook_h": h}

    def step(self, prep, h: Tensor, t: int, visit: Callable) -> Tensor:
        return _gru_step(at(prep, "gi", t, 0), h, self.w("W_hh").transpose(1, 2), self.w("b_hh").unsqueeze(1), visit)

    def state_at(self, values: dict, i: int) -> Tensor:
        return values["hook_h"][:, :, i]

    def finish(self, prep, carried: dict):
        h = carried["hook_h"]                                                         # (M, B, T, H)
        return h, h[:, :, -1]
