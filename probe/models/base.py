"""The pieces every architecture shares: member-stacked parameters, the layer contract, the model.

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
import numbers
from typing import Callable, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from transformer_lens.hook_points import HookPoint
from transformer_lens.HookedRootModule import HookedRootModule

State = Union[Tensor, tuple[Tensor, ...]]
StepEdits = Mapping[str, Mapping[int, Callable[[Tensor], Tensor]]]  # hook name -> step -> fn


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
        """Call a trajectory hook on x (M, B, T, D) with the model-facing shape: a plain model's
        hooks see (B, T, D), an ensemble's (M, B, T, D)."""
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
    :class:`RecurrentModel` hands this to the first layer only when nothing observes or edits
    ``hook_embed``; :meth:`materialise` gives the embedded tokens for any other use.
    """

    def __init__(self, ids: Tensor, W_E: Tensor):
        self.ids, self.W_E = ids, W_E
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
        return flat.view(*flat.shape[:2], M, d_out).transpose(1, 2)               # (T, M, B, d_out)
    return linear(x.transpose(1, 2), W, b).transpose(0, 1)                        # (T, M, B, d_out)


def edit_at(edits: Optional[Mapping[int, Callable]], t: int, value: Tensor, ensemble: bool) -> Tensor:
    """Apply the edit registered for step ``t`` (if any) to a per-step value (M, B, D).

    Edit functions see the model-facing shape: (B, D) for a plain model, (M, B, D) for an ensemble.
    """
    if not edits or t not in edits:
        return value
    out = edits[t](value if ensemble else value[0])
    return out if ensemble else out.unsqueeze(0)


def edit_trajectory(edits: Optional[Mapping[int, Callable]], traj: Tensor, ensemble: bool) -> Tensor:
    """Apply step edits to a whole trajectory (M, B, T, ...) computed in parallel (no feedback)."""
    if not edits:
        return traj
    traj = traj.clone()
    for t, fn in edits.items():
        traj[:, :, t] = edit_at({t: fn}, t, traj[:, :, t], ensemble)
    return traj


class Layer(Stacked):
    """The contract every recurrent layer meets.

    ``forward(x, state, edits)`` maps inputs (M, B, T, d_in) and an initial state (None for the
    architecture's default) to outputs (M, B, T, d_out) and the final state; ``edits`` maps a
    local hook name (``"hook_h"``) to {step: fn} and is applied inside the recurrence, so that
    later steps see the edited value. Trajectory hooks are called once on (M, B, T, D) tensors.
    """

    d_out: int
    state_size: int  # real numbers the recurrence carries per member

    def initial_state(self, M: int, B: int, like: Tensor) -> State:
        raise NotImplementedError

    def width(self, hook: str) -> int:
        """Number of units in the value of the local hook ``hook`` (its last dimension)."""
        return self.hidden

    def forward(self, x: Tensor, state: Optional[State] = None, edits: Optional[StepEdits] = None):
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# the model: input map -> layers -> readout
# ---------------------------------------------------------------------------------------------

def _map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


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


class RecurrentModel(HookedRootModule):
    """A stack of recurrent layers between an input map and a linear readout, with hooks.

    Built by :func:`probe.models.make`. ``model(inputs)`` returns outputs (B, T, d_output), or
    (M, B, T, d_output) for an ensemble; every hook carries whole trajectories (B, T, D) or
    (M, B, T, D). Hooks are applied after the recurrence has produced the trajectory: an edit of
    ``layers.{i}.hook_h`` in ``run_with_hooks`` reaches the next layer and the readout, but the
    recurrence itself is edited step by step only through :func:`probe.intervene`.
    """

    def __init__(self, config: dict, layers: list[Layer]):
        super().__init__()
        self.config = config
        self.arch = config["arch"]
        self.members = int(config["members"])
        self.input_kind = config["input_kind"]
        self.d_source = config["vocab_size"] if self.input_kind == "tokens" else config["d_input"]
        self.embed = Embed(self.input_kind, self.d_source, layers[0].d_in, config["embedding"], self.members)
        self.hook_embed = HookPoint()           # (B, T, E)
        self.layers = nn.ModuleList(layers)
        self.readout = Readout(layers[-1].d_out, config["d_output"], self.members)
        self.hook_logits = HookPoint()          # (B, T, d_output)
        self.reset_parameters(config["seed"])
        self.setup()

    # -- construction -------------------------------------------------------------------------
    @property
    def is_ensemble(self) -> bool:
        return self.members > 1

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """Draw every member's weights from its own generator (see :func:`member_seed`)."""
        stacked = [m for m in self.modules() if isinstance(m, Stacked)]
        for i in range(self.members):
            g = torch.Generator().manual_seed(member_seed(seed, i))
            for module in stacked:
                module.init_member(i, g)

    def member(self, i: int) -> "RecurrentModel":
        """A plain single model whose outputs equal slice ``i`` of this ensemble's."""
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"member must be an integer, got {i!r}")
        if not 0 <= i < self.members:
            raise ValueError(f"member {i} out of range: this model has members 0..{self.members - 1}")
        from probe.models import from_config
        single = from_config({**self.config, "members": 1})
        p = next(self.parameters())
        single.to(device=p.device, dtype=p.dtype)
        state = {k: (v[i] if self.is_ensemble else v) for k, v in self.state_dict().items()}
        single.load_state_dict(state)
        return single

    def state_size(self) -> int:
        """Real numbers carried by the recurrence per member (summed over layers)."""
        return sum(layer.state_size for layer in self.layers)

    # -- argument checks for the TransformerLens entry points ------------------------------------
    def _check_hook_names(self, names, what: str) -> None:
        """Hook names given as strings must exist: a typo would otherwise cache or hook nothing."""
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, (list, tuple, set, frozenset)) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"{what} must be a hook name, a list of them or a function, got {names!r}")
        if not names:
            raise ValueError(f"{what} is empty, so nothing would be cached; pass None for every hook")
        unknown = sorted(set(names) - set(self.hook_dict))
        if unknown:
            raise ValueError(f"unknown hook(s) {unknown} in {what}; valid hooks: {', '.join(sorted(self.hook_dict))}")

    def run_with_cache(self, *args, names_filter=None, **kwargs):
        """As ``HookedRootModule.run_with_cache``; a ``names_filter`` naming no hook is refused."""
        if names_filter is not None and not callable(names_filter):
            self._check_hook_names(names_filter, "names_filter")
        return super().run_with_cache(*args, names_filter=names_filter, **kwargs)

    def run_with_hooks(self, *args, fwd_hooks=(), bwd_hooks=(), **kwargs):
        """As ``HookedRootModule.run_with_hooks``; a hook given by an unknown name is refused."""
        for what, hooks in (("fwd_hooks", fwd_hooks), ("bwd_hooks", bwd_hooks)):
            names = [h[0] for h in hooks if isinstance(h, (tuple, list)) and h and isinstance(h[0], str)]
            if names:
                self._check_hook_names(names, what)
        return super().run_with_hooks(*args, fwd_hooks=list(fwd_hooks), bwd_hooks=list(bwd_hooks), **kwargs)

    # -- running ------------------------------------------------------------------------------
    def _check_inputs(self, inputs: Tensor) -> bool:
        """Validate inputs; return whether they carry a leading member axis."""
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        if self.input_kind == "tokens":
            if inputs.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"token inputs must be an integer tensor (B, T), got dtype {inputs.dtype}")
            ok_dims = (2, 3) if self.is_ensemble else (2,)
            if inputs.dim() not in ok_dims:
                raise ValueError(f"token inputs must have shape (B, T){' or (M, B, T)' if self.is_ensemble else ''}, "
                                 f"got {tuple(inputs.shape)}")
            if inputs.numel() and (inputs.min() < 0 or inputs.max() >= self.d_source):
                raise ValueError(f"token ids must lie in 0..{self.d_source - 1}, got values "
                                 f"{int(inputs.min())}..{int(inputs.max())}")
            per_member = inputs.dim() == 3
        else:
            if not inputs.is_floating_point():
                raise ValueError(f"vector inputs must be a float tensor (B, T, {self.d_source}), got dtype {inputs.dtype}")
            ok_dims = (3, 4) if self.is_ensemble else (3,)
            if inputs.dim() not in ok_dims or inputs.shape[-1] != self.d_source:
                raise ValueError(f"vector inputs must have shape (B, T, {self.d_source})"
                                 f"{' or (M, B, T, ' + str(self.d_source) + ')' if self.is_ensemble else ''}, "
                                 f"got {tuple(inputs.shape)}")
            per_member = inputs.dim() == 4
        if per_member and inputs.shape[0] != self.members:
            raise ValueError(f"per-member inputs need a leading axis of size {self.members}, got {inputs.shape[0]}")
        return per_member

    def _lookup_tokens(self, per_member: bool, edits: StepEdits) -> bool:
        """Whether the first layer may look its input map up per token (see :class:`Tokens`):
        learned embeddings of shared token inputs that no hook or edit needs to see."""
        hook = self.hook_embed
        return (self.input_kind == "tokens" and self.embed.kind == "learned" and not per_member
                and getattr(self.layers[0], "takes_tokens", False) and "hook_embed" not in edits
                and not (hook._forward_hooks or hook._forward_pre_hooks or hook._backward_hooks
                         or hook._backward_pre_hooks))

    def forward(self, inputs: Tensor, state: Optional[list[State]] = None, return_state: bool = False,
                edits: Optional[StepEdits] = None):
        """Run the model.

        Parameters
        ----------
        inputs : LongTensor (B, T) of token ids, or FloatTensor (B, T, d_input); an ensemble also
            takes per-member inputs (M, B, T[, d_input]).
        state : optional list with one initial state per layer, as returned with ``return_state``.
        return_state : also return the list of final states (to continue a sequence).
        edits : {full hook name: {step: fn}}, applied inside the recurrence; see :func:`probe.intervene`.

        Returns
        -------
        outputs : (B, T, d_output), or (M, B, T, d_output) for an ensemble; logits for "ce" tasks.
        """
        per_member = self._check_inputs(inputs)
        edits = dict(edits or {})
        ens = self.is_ensemble
        dtype = self.readout.W_U.dtype
        if self._lookup_tokens(per_member, edits):
            x = Tokens(inputs, self.embed.w("W_E"))                                 # (M, B, T, E) lazily
        else:
            x = self.embed(inputs, per_member, dtype)                               # (M, B, T, E)
            x = edit_trajectory(edits.pop("hook_embed", None), x, ens)
            x = self.readout.hooked(self.hook_embed, x)
        if state is not None and len(state) != len(self.layers):
            raise ValueError(f"state must hold one entry per layer ({len(self.layers)}), got {len(state)}")
        finals = []
        for i, layer in enumerate(self.layers):
            prefix = f"layers.{i}."
            layer_edits = {k[len(prefix):]: v for k, v in edits.items() if k.startswith(prefix)}
            s = None if state is None else _map_state(state[i], lambda t: t if ens else t.unsqueeze(0))
            x, final = layer(x, s, layer_edits)                                     # (M, B, T, H)
            finals.append(_map_state(final, lambda t: t if ens else t.squeeze(0)))
        logits = self.readout(x)                                                    # (M, B, T, d_output)
        logits = edit_trajectory(edits.pop("hook_logits", None), logits, ens)
        logits = self.readout.hooked(self.hook_logits, logits)
        out = logits if ens else logits.squeeze(0)
        return (out, finals) if return_state else out

    def extra_repr(self) -> str:
        c = self.config
        return f"arch={c['arch']}, hidden={c['hidden']}, layers={c['layers']}, members={c['members']}"


def scan_with_state_edits(a: Tensor, b: Tensor, h0: Optional[Tensor], edits: Optional[Mapping[int, Callable]],
                          ensemble: bool, view: Callable = lambda h: h, unview: Callable = lambda v: v) -> Tensor:
    """h_t = a_t h_{t-1} + b_t over (M, B, T, N), with state edits applied between scan segments.

    ``a`` may be constant over time (its time axis of size 1). An edit at step t ends one scan at
    t, edits the state (through ``view``/``unview``, e.g. complex <-> real), and starts the next
    scan from the edited state, so that later states follow from it.
    """
    from probe.scan import linear_scan
    if not edits:
        return linear_scan(a, b, h0)
    T = b.shape[2]
    pieces, start, h = [], 0, h0
    for t in sorted(edits):
        seg = linear_scan(a if a.shape[2] == 1 else a[:, :, start:t + 1], b[:, :, start:t + 1], h)
        h = unview(edit_at(edits, t, view(seg[:, :, -1]), ensemble))               # (M, B, N)
        pieces += [seg[:, :, :-1], h.unsqueeze(2)]
        start = t + 1
    if start < T:
        pieces.append(linear_scan(a if a.shape[2] == 1 else a[:, :, start:], b[:, :, start:], h))
    return torch.cat(pieces, 2)                                                     # (M, B, T, N)
