"""The pieces every architecture shares: member-stacked parameters, the layer contract, input map and readout.

Every parameter carries a leading member axis when the model is an ensemble (``members > 1``)
and none when it is a plain model. Inside the equations the member axis is always there: a plain
model's parameters are viewed with a leading axis of size 1 (:meth:`Stacked.w`) and the axis is
dropped again at the model's boundary. So each architecture is written once, for ``M`` members,
and serves both cases.

Layout inside the equations: activations are ``(M, B, T, D)``, per-step states ``(M, B, D)``.
"""
from __future__ import annotations

import hashlib
import math
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.recurrence import Join, run_layer

State = Union[Tensor, tuple[Tensor, ...]]


def member_seed(seed: int, member: int) -> int:
    """Seed of one ensemble member; member 0 uses ``seed`` itself, so a plain model equals member 0."""
    if member == 0:
        return int(seed)
    digest = hashlib.sha256(f"probe-member:{seed}:{member}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# ---------------------------------------------------------------------------------------------
# initialisers: (generator, shape) -> tensor, drawn on CPU in float32 so that weights do not
# depend on the device or on the order in which modules are built
# ---------------------------------------------------------------------------------------------

def uniform(bound: float) -> Callable:
    return lambda g, shape: (torch.rand(shape, generator=g) * 2 - 1) * bound


def normal(std: float) -> Callable:
    return lambda g, shape: torch.randn(shape, generator=g) * std


def xavier_normal(gain: float = 1.0) -> Callable:
    def init(g, shape):
        fan_out, fan_in = shape[-2], shape[-1]
        return torch.randn(shape, generator=g) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return init


def constant(value: float) -> Callable:
    return lambda g, shape: torch.full(shape, float(value))


class Stacked(nn.Module):
    """A module whose parameters have a leading member axis when ``members > 1``.

    Subclasses declare parameters with :meth:`param` (shape without the member axis, and an
    initialiser) and read them inside equations with :meth:`w`, which always has the member axis.
    """

    def __init__(self, members: int):
        super().__init__()
        self.members = members
        self._inits: list[tuple[str, Callable]] = []

    @property
    def ensemble(self) -> bool:
        return self.members > 1

    def param(self, name: str, shape: Sequence[int], init: Callable) -> None:
        full = (self.members, *shape) if self.ensemble else tuple(shape)
        self.register_parameter(name, nn.Parameter(torch.zeros(full)))
        self._inits.append((name, init))

    def w(self, name: str) -> Tensor:
        p = getattr(self, name)
        return p if self.ensemble else p.unsqueeze(0)

    def hooked(self, hook: HookPoint, x: Tensor) -> Tensor:
        """Pass a trajectory x (M, B, T, D) computed outside any recurrence through ``hook``, with
        the model-facing shape (a plain model's hooks see (B, T, D), an ensemble's (M, B, T, D)),
        and go on with what it returns. A broadcast value (a decay constant over steps) reaches
        the hooks as a tensor of its own, so that they may write into it."""
        if not (hook._forward_hooks or hook._forward_pre_hooks or hook._backward_hooks
                or hook._backward_pre_hooks):
            return x
        if 0 in x.stride():
            x = x.contiguous()
        return hook(x) if self.ensemble else hook(x.squeeze(0)).unsqueeze(0)

    @torch.no_grad()
    def init_member(self, member: int, g: torch.Generator) -> None:
        for name, init in self._inits:
            p = getattr(self, name)
            value = init(g, p.shape[1:] if self.ensemble else p.shape)
            (p[member] if self.ensemble else p).copy_(value)


def linear(x: Tensor, w: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """Per-member affine map. x (M, ..., d_in), w (M, d_out, d_in), b (M, d_out) -> (M, ..., d_out)."""
    M, d_in = x.shape[0], x.shape[-1]
    flat = x.reshape(M, -1, d_in)                                     # (M, N, d_in)
    if b is None:
        out = torch.bmm(flat, w.transpose(1, 2))
    else:
        out = torch.baddbmm(b.unsqueeze(1), flat, w.transpose(1, 2))  # (M, N, d_out)
    return out.reshape(*x.shape[:-1], w.shape[1])


class Tokens:
    """Token ids whose learned embedding has not been materialised.

    ``ids`` (B, T) shared by all members, ``W_E`` (M, V, E). A layer's input map W x + b of an
    embedded token is row ``token`` of the table W_E Wᵀ + b (M, V, out), so :func:`project`
    looks it up instead of computing the embedding and then a matmul per position: for the
    small vocabularies here that skips half the training FLOPs of a GRU or LSTM.
    :meth:`materialise` gives the embedded tokens for any other use.

    Hooks on ``hook_embed`` see the materialised embedding, and the lookup stays wherever they
    leave it unchanged, so that watching the embedding changes no output bit: ``hooked`` (M, B,
    T, E) is what the hooks returned, ``changed`` (M, B, T) where it differs (those positions
    take the input map of the edited embedding), and ``route_grad`` makes every gradient pass
    through ``hooked``, for gradient hooks on ``hook_embed`` (see :func:`project`).
    """

    def __init__(self, ids: Tensor, W_E: Tensor):
        self.ids, self.W_E = ids, W_E
        self.hooked: Optional[Tensor] = None
        self.changed: Optional[Tensor] = None
        self.route_grad = False
        self.shape = torch.Size((W_E.shape[0], *ids.shape, W_E.shape[2]))  # (M, B, T, E)

    def new_zeros(self, *size) -> Tensor:
        return self.W_E.new_zeros(*size)

    def materialise(self) -> Tensor:
        M, V, E = self.W_E.shape
        flat = F.embedding(self.ids, self.W_E.transpose(0, 1).reshape(V, M * E))  # (B, T, M*E)
        return flat.view(*self.ids.shape, M, E).permute(2, 0, 1, 3)                # (M, B, T, E)


def project(x: "Tensor | Tokens", W: Tensor, b: Optional[Tensor]) -> Tensor:
    """A layer's input map, step-first: x (M, B, T, d_in), W (M, d_out, d_in), b (M, d_out) ->
    (T, M, B, d_out), a view (contiguous as (M, T, B, d_out), or as (T, B, M, d_out) for tokens).

    The step-first view is what a recurrence indexes; :class:`Tokens` become a table lookup
    whose backward is the dense scatter of ``F.embedding`` (one per member at once).
    """
    if isinstance(x, Tokens):
        table = torch.bmm(x.W_E, W.transpose(1, 2))                                # (M, V, d_out)
        if b is not None:
            table = table + b.unsqueeze(1)
        M, V, d_out = table.shape
        flat = F.embedding(x.ids.transpose(0, 1), table.transpose(0, 1).reshape(V, M * d_out))
        looked = flat.view(*flat.shape[:2], M, d_out).transpose(1, 2)             # (T, M, B, d_out)
        if x.hooked is None:
            return looked
        dense = project(x.hooked, W, b)                                           # (T, M, B, d_out)
        if x.changed is not None:
            looked = torch.where(x.changed.permute(2, 0, 1).unsqueeze(-1), dense, looked)
        if not x.route_grad:
            return looked
        return Join.apply(looked.detach(), dense)  # the same values, every gradient through ``hooked``
    return linear(x.transpose(1, 2), W, b).transpose(0, 1)                        # (T, M, B, d_out)


class Layer(Stacked):
    """The contract every recurrent layer meets.

    ``layer(x, state)`` maps inputs (M, B, T, d_in) and an initial state (None for the
    architecture's default) to outputs (M, B, T, d_out) and the final state. A layer names its
    recurrent hook points in ``points``, in the order one step computes them, and splits its
    work into five pieces that :func:`probe.models.recurrence.run_layer` puts together so that
    what a hook returns at step t is what step t+1 starts from:

    - ``prepare(x, state)``: everything computed in parallel over steps before the recurrence
      (input maps, input-driven gates and their hooks); a namespace with ``M, B, T, state``;
    - ``run(prep, state, start, taps)``: the fast path from step ``start`` to the end, without
      edits -> {point: (M, B, T - start, D)};
    - ``step(prep, state, t, visit)``: one reference step, every point's value (M, B, D) passed
      through ``visit(point, value)`` -> the next state;
    - ``state_at(values, i)``: the state after step i of a ``run``'s values;
    - ``finish(prep, carried)``: outputs and final state from the trajectories carried forward.
    """

    d_out: int
    state_size: int  # real numbers the recurrence carries per member
    points: tuple[str, ...] = ("hook_h",)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def initial_state(self, M: int, B: int, like: Tensor) -> State:
        raise NotImplementedError

    def width(self, hook: str) -> int:
        """Number of units in the value of the local hook ``hook`` (its last dimension)."""
        return self.hidden

    def forward(self, x: "Tensor | Tokens", state: Optional[State] = None, edits: Optional[dict] = None,
                fused: bool = True):
        """Outputs (M, B, T, d_out) and the final state.

        ``edits`` ({local hook name: {step: fn}}) are applied as step hooks (see
        :func:`probe.interventions.step_hook`) for this call only; ``fused=False`` runs every step
        through the reference :meth:`step` (e.g. for ``torch.func`` transforms).
        """
        prep = self.prepare(x, state) if not edits else None
        if edits:
            from probe.interventions import step_hook
            level = object()                   # this call's hooks, removed again below
            for name, steps in edits.items():
                getattr(self, name).add_hook(step_hook(steps), level=level)
            try:
                return self.forward(x, state, None, fused)
            finally:
                for name in edits:
                    getattr(self, name).remove_hooks("fwd", level=level)
        return self.finish(prep, run_layer(self, prep, fused))


# ---------------------------------------------------------------------------------------------
# input map and readout (the model itself is probe.models.model.RecurrentModel)
# ---------------------------------------------------------------------------------------------

class Embed(Stacked):
    """Token embedding (learned or one-hot) or a linear map of vector inputs."""

    def __init__(self, input_kind: str, d_source: int, d_embed: int, kind: str, members: int):
        super().__init__(members)
        self.input_kind, self.d_source, self.kind, self.d_out = input_kind, d_source, kind, d_embed
        if kind == "learned":
            shape = (d_source, d_embed) if input_kind == "tokens" else (d_embed, d_source)
            self.param("W_E", shape, normal(1.0) if input_kind == "tokens" else uniform(1 / math.sqrt(d_source)))

    def forward(self, inputs: Tensor, per_member: bool, dtype: torch.dtype) -> Tensor:
        M = self.members
        if self.kind == "onehot":  # no learned map: one-hot tokens, or the vectors themselves
            x = F.one_hot(inputs, self.d_source) if self.input_kind == "tokens" else inputs
            x = x.to(dtype)
            return x if per_member else x.unsqueeze(0).expand(M, *x.shape)
        W = self.w("W_E")
        if self.input_kind == "tokens":
            if per_member:                                              # (M, B, T) -> (M, B, T, E)
                return W[torch.arange(M, device=W.device)[:, None, None], inputs]
            # one embedding of width M*E: its backward is a dense scatter, far cheaper than the
            # accumulating index_put that W[:, inputs] would need
            return Tokens(inputs, W).materialise()                          # (M, B, T, E)
        x = inputs if per_member else inputs.unsqueeze(0).expand(M, *inputs.shape)
        return linear(x.to(W.dtype), W)                                 # (M, B, T, E)


class Readout(Stacked):
    def __init__(self, d_in: int, d_output: int, members: int):
        super().__init__(members)
        bound = 1 / math.sqrt(d_in)
        self.param("W_U", (d_output, d_in), uniform(bound))
        self.param("b_U", (d_output,), uniform(bound))

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.w("W_U"), self.w("b_U"))                  # (M, B, T, d_output)
