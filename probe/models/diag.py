"""ParaRNN's diagonal cells (Danieli et al. 2025, arXiv 2510.21450): GRU and LSTM whose recurrent
weights are diagonal, so that Newton's method over the whole sequence scans elementwise.

gru_diag (ParaRNN's ``GRUDiagMH`` with one head; note z weighs the *new* candidate, as there):

    z_t = σ(a_z ⊙ h_{t-1} + W_z x_t + b_z)                  -> hook_z
    r_t = σ(a_r ⊙ h_{t-1} + W_r x_t + b_r)                  -> hook_r
    n_t = tanh(a_n ⊙ (r_t ⊙ h_{t-1}) + W_n x_t + b_n)        -> hook_n
    h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ n_t                    -> hook_h

Unit i of h_t reads unit i of h_{t-1} only: the Jacobian ∂h_t/∂h_{t-1} is diagonal, so DEER's
Newton step is one elementwise scan (:func:`probe.newton.solve` with ``blocks=1``).

lstm_diag (ParaRNN's ``LSTMCIFGDiagMH``: coupled input and forget gates, peepholes on c):

    f_t = σ(a_f ⊙ h_{t-1} + W_f x_t + p_f ⊙ c_{t-1} + b_f)    -> hook_f
    g_t = tanh(a_g ⊙ h_{t-1} + W_g x_t + b_g)                -> hook_g
    c_t = f_t ⊙ c_{t-1} + (1 - f_t) ⊙ g_t                    -> hook_c
    o_t = σ(a_o ⊙ h_{t-1} + W_o x_t + p_o ⊙ c_t + b_o)        -> hook_o
    h_t = o_t ⊙ tanh(c_t)                                    -> hook_h

Here unit i of (h_t, c_t) reads unit i of (h_{t-1}, c_{t-1}): the Jacobian is 2x2 blocks of
diagonals (``blocks=2``), scanned as H independent 2x2 matrix recurrences.

Initialisation as ParaRNN's defaults: diagonal weights N(0, (2/sqrt(5H))²) ("xlstm"), input
weights Xavier-uniform, biases zero but the first gate's (z, f) -linspace(0, 1, H).

``solver`` picks how the layer runs without edits: "sequential" (the step loop), "deer" (exact
Newton: elementwise for gru_diag, 2x2 blocks for lstm_diag), "quasi" (the diagonal only; for
gru_diag the same as "deer") or "auto" (:func:`probe.newton.choose_solver`). Edits by hooks and
gradient hooks take the step loop (:mod:`probe.models.recurrence`).
"""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Callable, Literal, Optional

import torch
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Layer, linear, normal
from probe.models.recurrence import at, loop

Solver = Literal["sequential", "deer", "quasi", "auto"]


def _xavier_uniform(fan_in: int, fan_out: int) -> Callable:
    bound = math.sqrt(6 / (fan_in + fan_out))
    return lambda g, shape: (torch.rand(shape, generator=g) * 2 - 1) * bound


def _first_gate_bias(hidden: int) -> Callable:
    """Zeros, but -linspace(0, 1, H) on the first gate (ParaRNN's "bias_minus_linspace")."""
    def init(g, shape):
        b = torch.zeros(shape)
        b[:hidden] = -torch.linspace(0, 1, hidden)
        return b
    return init


def _rows(v: Tensor, k: int, like: Tensor) -> Tensor:
    """Row k of a per-member (M, G, H) weight, shaped to broadcast against ``like`` (M, ..., H)."""
    return v[:, k].view(v.shape[0], *([1] * (like.dim() - 2)), v.shape[-1])


class _DiagLayer(Layer):
    OMIT_DEFAULTS = ()
    blocks = 1
    gates = 3

    def __init__(self, d_in: int, hidden: int, members: int, solver: Solver = "auto"):
        super().__init__(members)
        self.d_in, self.d_out, self.hidden, self.state_size = d_in, hidden, hidden, hidden * self.blocks
        self.solver = solver
        self.newton_tol = self.newton_max_iter = self.last_solve = None
        G = self.gates
        self.param("A", (G, hidden), normal(2 / math.sqrt(5 * hidden)))              # diagonal recurrent weights
        self.param("W_ih", (G * hidden, d_in), _xavier_uniform(d_in, hidden))
        self.param("b", (G * hidden,), _first_gate_bias(hidden))

    def prepare(self, x: Tensor, state) -> SimpleNamespace:
        M, B, T, _ = x.shape
        state = self.initial_state(M, B, x) if state is None else state
        return SimpleNamespace(M=M, B=B, T=T, state=state, gi=linear(x, self.w("W_ih"), self.w("b")))  # (M, B, T, GH)

    def _params(self) -> tuple[Tensor, ...]:
        return (self.w("A"),)                                                       # (M, G, H)

    def run(self, prep, state, start: int, taps: Optional[dict] = None) -> dict[str, Tensor]:
        from probe import newton
        method = newton.resolve(self.solver, self.device, prep.T - start, self.state_size, True)
        if method == "sequential" or taps:   # gradient hooks take the loop, which reports them
            return loop(self, prep, state, start, taps)
        gi = prep.gi[:, :, start:] if start else prep.gi
        s0 = self._pack(state)
        args = (gi, *self._params())
        ident = lambda p, v: v  # noqa: E731

        def step(sp, t):
            return self._pack(self._cell(self._unpack(sp), gi[:, :, t], *args[1:], ident))
        s = newton.run_layer_solver(self, method, lambda sp, g_, *w: self._pack(self._cell(self._unpack(sp), g_, *w,
                                                                                             ident)),
                                    s0, gi.shape[2], args, step=step, blocks=self.blocks)
        values = {}

        def keep(p, v):
            values[p] = v
            return v
        self._cell(self._unpack(torch.cat([s0.unsqueeze(2), s[:, :, :-1]], 2)), *args, keep)
        values["hook_h"] = self._unpack(s)[0] if self.blocks > 1 else s                # the solved states
        if self.blocks > 1:
            values["hook_c"] = self._unpack(s)[1]
        return values

    def step(self, prep, state, t: int, visit: Callable):
        return self._cell(state, at(prep, "gi", t, 2), *self._params(), visit)

    def _pack(self, state) -> Tensor:
        return torch.cat(state, -1) if isinstance(state, tuple) else state

    def _unpack(self, s: Tensor):
        return s

    def initial_state(self, M: int, B: int, like: Tensor):
        return like.new_zeros(M, B, self.hidden)

    def state_at(self, values: dict, i: int):
        return values["hook_h"][:, :, i]

    def finish(self, prep, carried: dict):
        h = carried["hook_h"]                                                         # (M, B, T, H)
        return h, h[:, :, -1]


class GRUDiagLayer(_DiagLayer):
    """ParaRNN's diagonal GRU (see the module): a diagonal Jacobian, exact Newton by elementwise scans."""

    points = ("hook_z", "hook_r", "hook_n", "hook_h")

    def __init__(self, d_in: int, hidden: int, members: int, solver: Solver = "auto"):
        super().__init__(d_in, hidden, members, solver)
        self.hook_z = HookPoint()  # (B, T, H) update gate (weight of the new candidate)
        self.hook_r = HookPoint()  # (B, T, H) reset gate
        self.hook_n = HookPoint()  # (B, T, H) candidate state
        self.hook_h = HookPoint()  # (B, T, H) state

    def _cell(self, h: Tensor, gi: Tensor, A: Tensor, visit: Callable) -> Tensor:
        """One step (h (M, B, H), gi (M, B, 3H)) or every step at once (h (M, B, T, H), gi (M, B, T, 3H))."""
        H = self.hidden
        z = visit("hook_z", torch.sigmoid(_rows(A, 0, h) * h + gi[..., :H]))
        r = visit("hook_r", torch.sigmoid(_rows(A, 1, h) * h + gi[..., H:2 * H]))
        n = visit("hook_n", torch.tanh(_rows(A, 2, h) * (r * h) + gi[..., 2 * H:]))
        return visit("hook_h", h + z * (n - h))


class LSTMDiagLayer(_DiagLayer):
    """ParaRNN's diagonal LSTM with coupled gates and peepholes (see the module): 2x2-block Jacobians."""

    points = ("hook_f", "hook_g", "hook_c", "hook_o", "hook_h")
    blocks = 2

    def __init__(self, d_in: int, hidden: int, members: int, solver: Solver = "auto"):
        super().__init__(d_in, hidden, members, solver)
        self.param("P", (2, hidden), normal(2 / math.sqrt(5 * hidden)))              # peepholes p_f, p_o
        self.hook_f = HookPoint()  # (B, T, H) forget gate (the input gate is 1 - f)
        self.hook_g = HookPoint()  # (B, T, H) cell candidate
        self.hook_c = HookPoint()  # (B, T, H) cell state
        self.hook_o = HookPoint()  # (B, T, H) output gate
        self.hook_h = HookPoint()  # (B, T, H) hidden state

    def initial_state(self, M: int, B: int, like: Tensor):
        return like.new_zeros(M, B, self.hidden), like.new_zeros(M, B, self.hidden)

    def _params(self) -> tuple[Tensor, ...]:
        return self.w("A"), self.w("P")                                             # (M, G, H), (M, 2, H)

    def _unpack(self, s: Tensor):
        return s[..., :self.hidden], s[..., self.hidden:]

    def _cell(self, state, gi: Tensor, A: Tensor, P: Tensor, visit: Callable):
        """One step or every step at once (as :meth:`GRUDiagLayer._cell`); state = (h, c)."""
        H, (h, c) = self.hidden, state
        f = visit("hook_f", torch.sigmoid(_rows(A, 0, h) * h + gi[..., :H] + _rows(P, 0, h) * c))
        g = visit("hook_g", torch.tanh(_rows(A, 1, h) * h + gi[..., H:2 * H]))
        c = visit("hook_c", g + f * (c - g))
        o = visit("hook_o", torch.sigmoid(_rows(A, 2, h) * h + gi[..., 2 * H:] + _rows(P, 1, h) * c))
        return visit("hook_h", o * torch.tanh(c)), c

    def state_at(self, values: dict, i: int):
        return values["hook_h"][:, :, i], values["hook_c"][:, :, i]

    def finish(self, prep, carried: dict):
        h, c = carried["hook_h"], carried["hook_c"]                                  # (M, B, T, H)
        return h, (h[:, :, -1], c[:, :, -1])
