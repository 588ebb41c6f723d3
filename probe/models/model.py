"""The model: an input map, a stack of recurrent layers and a linear readout, with hooks.

Hooks behave as in TransformerLens (see :mod:`probe.models.hooked` and
:mod:`probe.models.recurrence`): the cache is an ``ActivationCache``, what a hook returns is
the activation the model goes on with (on states and gates too, fed to the next step), and a
hook that returns its input unchanged leaves every output as it was, bit for bit.
"""
from __future__ import annotations

import numbers
from types import SimpleNamespace
from typing import Callable, Literal, Optional

import torch
import torch.nn as nn
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from probe.models.base import Embed, Layer, Readout, Stacked, State, Tokens, member_seed
from probe.models.hooked import HookedRecurrent
from probe.models.recurrence import face, has_backward_hooks, has_forward_hooks, unface

ReturnType = Optional[Literal["logits", "loss", "both"]]
RETURN_TYPES = ("logits", "loss", "both", None)


def _map_state(state: State, fn: Callable[[Tensor], Tensor]) -> State:
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


class RecurrentModel(HookedRecurrent):
    """A stack of recurrent layers between an input map and a linear readout, with hooks.

    Built by :func:`probe.models.make`. ``model(inputs)`` returns outputs (B, T, d_output), or
    (M, B, T, d_output) for an ensemble; every hook carries whole trajectories (B, T, D) or
    (M, B, T, D), and the value a hook returns is what the model goes on with, inside the
    recurrence too (an edit of ``layers.0.hook_h`` at step 3 reaches step 4).
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

    def state_size(self) -> int:
        """Real numbers carried by the recurrence per member (summed over layers)."""
        return sum(layer.state_size for layer in self.layers)

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

    def batch_size(self, inputs) -> int:
        """The number of sequences B in ``inputs`` (a tensor as ``forward`` takes, or a Batch)."""
        inputs = getattr(inputs, "inputs", inputs)
        return inputs.shape[-2] if self.input_kind == "tokens" else inputs.shape[-3]

    def _embed(self, inputs: Tensor, per_member: bool) -> "Tensor | Tokens":
        """The first layer's input (M, B, T, E) through ``hook_embed``.

        A GRU or LSTM looks its input map up per token (see :class:`Tokens`) wherever no hook
        has changed the embedding, so a hook that only watches it changes no output bit.
        """
        hook, ens = self.hook_embed, self.is_ensemble
        if not (self.input_kind == "tokens" and self.embed.kind == "learned" and not per_member
                and getattr(self.layers[0], "takes_tokens", False)):
            return self.readout.hooked(hook, self.embed(inputs, per_member, self.readout.W_U.dtype))
        tokens = Tokens(inputs, self.embed.w("W_E"))
        if not (has_forward_hooks(hook) or has_backward_hooks(hook)):
            return tokens                                                           # (M, B, T, E) lazily
        x = face(tokens.materialise(), ens)
        given = x.clone() if has_forward_hooks(hook) else x                         # hooks may write into x
        given = unface(given, ens)
        y = unface(hook(x), ens).to(given)
        differs = ((y != given) & ~(y.isnan() & given.isnan())).any(-1)            # (M, B, T)
        tokens.route_grad = has_backward_hooks(hook) and torch.is_grad_enabled()
        tokens.changed = differs if bool(differs.any()) else None
        tokens.hooked = y if tokens.changed is not None or tokens.route_grad else None
        return tokens

    def forward(self, inputs, state: Optional[list[State]] = None, return_state: bool = False,
                return_type: ReturnType = "logits", targets: Optional[Tensor] = None, mask: Optional[Tensor] = None):
        """Run the model.

        Parameters
        ----------
        inputs : LongTensor (B, T) of token ids, or FloatTensor (B, T, d_input); an ensemble also
            takes per-member inputs (M, B, T[, d_input]). A task's ``Batch`` gives inputs, targets
            and mask at once.
        state : optional list with one initial state per layer, as returned with ``return_state``.
        return_state : also return the list of final states (to continue a sequence).
        return_type : "logits" (the outputs), "loss", "both" (outputs, loss) or None (nothing), as
            in TransformerLens. The loss is the task's: cross-entropy for integer ``targets``
            (B, T), mean squared error for float ``targets`` (B, T, d_output), averaged over the
            positions where ``mask`` (B, T) is true (default: all); an ensemble's loss is the sum of
            its members' losses, as in training, so each member gets its own gradient.

        Returns
        -------
        outputs : (B, T, d_output), or (M, B, T, d_output) for an ensemble; logits for "ce" tasks;
            followed by the list of final states if ``return_state``.
        """
        if return_type not in RETURN_TYPES:
            raise ValueError(f"unknown return_type {return_type!r}; valid choices: {', '.join(map(repr, RETURN_TYPES))}")
        if hasattr(inputs, "inputs") and hasattr(inputs, "targets"):             # a Batch
            targets = inputs.targets if targets is None else targets
            mask = getattr(inputs, "mask", None) if mask is None else mask
            inputs = inputs.inputs
        if return_type in ("loss", "both") and targets is None:
            raise ValueError(f"return_type={return_type!r} needs targets= (or a Batch as the input)")
        per_member = self._check_inputs(inputs)
        if state is not None and len(state) != len(self.layers):
            raise ValueError(f"state must hold one entry per layer ({len(self.layers)}), got {len(state)}")
        ens = self.is_ensemble
        x = self._embed(inputs, per_member)                                         # (M, B, T, E)
        finals = []
        for i, layer in enumerate(self.layers):
            s = None if state is None else _map_state(state[i], lambda t: t if ens else t.unsqueeze(0))
            x, final = layer(x, s)                                                  # (M, B, T, H)
            finals.append(_map_state(final, lambda t: t if ens else t.squeeze(0)))
        logits = self.readout.hooked(self.hook_logits, self.readout(x))             # (M, B, T, d_output)
        out = face(logits, ens)
        if return_type in ("loss", "both"):
            loss = self.loss(out, targets, mask)
            out = loss if return_type == "loss" else (out, loss)
        elif return_type is None:
            out = None
        return (out, finals) if return_state else out

    def loss(self, outputs: Tensor, targets: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """The task's loss of ``outputs`` (see ``forward``'s ``return_type``): a scalar."""
        from probe._trainer import member_losses
        outs = unface(outputs, self.is_ensemble)                                   # (M, B, T, K)
        kind = "mse" if targets.is_floating_point() else "ce"
        want = outs.shape[1:3] if kind == "ce" else outs.shape[1:]
        if tuple(targets.shape[-len(want):]) != tuple(want):
            raise ValueError(f"{'integer' if kind == 'ce' else 'float'} targets must have shape "
                             f"{tuple(want)} to match the outputs, got {tuple(targets.shape)}")
        mask = torch.ones(outs.shape[1:3], dtype=torch.bool, device=outs.device) if mask is None else mask.bool()
        batch = SimpleNamespace(targets=targets.to(outs.device), mask=mask.to(outs.device))
        return member_losses(outs, batch, kind).sum()

    def extra_repr(self) -> str:
        c = self.config
        return f"arch={c['arch']}, hidden={c['hidden']}, layers={c['layers']}, members={c['members']}"
