"""Step interventions: edit a hook's value at one time step and let the recurrence run on.

    >>> out, cache = probe.intervene(model, inputs, [
    ...     probe.Edit("layers.0.hook_h", step=5, fn=probe.zero_ablate(), units=[3, 7]),
    ... ])

An :class:`Edit` addresses one hook at one step, and the recurrence runs on from the edited
value, so every later state, gate and output follows from it. Edits work on every architecture,
on ``hook_h`` and on gate hooks. They are forward hooks (:func:`step_hook`) run as any hook in
``run_with_hooks`` is (see :mod:`probe.models.recurrence`), so an Edit and the hook
``lambda x, hook: ...`` that makes the same change at the same step give the same outputs, bit
for bit.

An edit function takes the hook's value at the step — (B, D), or (M, B, D) for an ensemble — and
returns a tensor of the same shape. With ``units`` only those units take the function's value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

Units = Optional[Union[Sequence[int], Tensor, range]]


@dataclass(frozen=True)
class Edit:
    """Apply ``fn`` to the value of ``hook`` at time ``step`` (only ``units``, if given).

    ``step`` counts from 0; a negative step counts from the end, as in Python indexing.
    """

    hook: str
    step: int
    fn: Callable[[Tensor], Tensor]
    units: Units = None


# -- edit functions ---------------------------------------------------------------------------

def zero_ablate() -> Callable[[Tensor], Tensor]:
    """Set the value to zero."""
    return torch.zeros_like


def mean_ablate(mean: Tensor) -> Callable[[Tensor], Tensor]:
    """Replace the value by ``mean`` (D,), e.g. ``cache[hook].mean((0, 1))`` over a reference batch."""
    return lambda v: mean.to(v).expand_as(v)


def scale(factor: float) -> Callable[[Tensor], Tensor]:
    """Multiply the value by ``factor``."""
    return lambda v: v * factor


def set_to(value: Union[float, Tensor]) -> Callable[[Tensor], Tensor]:
    """Clamp the value to a constant (a scalar, or a tensor broadcastable to (..., D))."""
    return lambda v: torch.as_tensor(value).to(v).expand_as(v).clone()


def clamp(min: Optional[float] = None, max: Optional[float] = None) -> Callable[[Tensor], Tensor]:
    """Clip the value into [min, max]."""
    return lambda v: v.clamp(min=min, max=max)


def patch_from(source: Tensor, step: int) -> Callable[[Tensor], Tensor]:
    """Replace the value by ``source[..., step, :]``, a trajectory from another input's cache.

    ``source`` is (B, T, D) (or (M, B, T, D)) as stored in a cache; a batch of 1 is broadcast.
    """
    value = source[..., step, :]
    return lambda v: value.to(v).expand_as(v).clone()


# -- running ----------------------------------------------------------------------------------

def _seq_len(model, inputs: Tensor) -> int:
    return inputs.shape[-1] if model.input_kind == "tokens" else inputs.shape[-2]


def _restricted(fn: Callable, units: Units) -> Callable[[Tensor], Tensor]:
    if units is None:
        return fn
    idx = torch.as_tensor(list(units) if isinstance(units, range) else units, dtype=torch.long)

    def edit(v: Tensor) -> Tensor:
        out = v.clone()
        out[..., idx] = fn(v)[..., idx]
        return out
    return edit


def _compose(first: Callable, second: Callable) -> Callable:
    return lambda v: second(first(v))


def compile_edits(model, edits: Sequence[Edit], seq_len: int) -> dict[str, dict[int, Callable]]:
    """Validate edits and group them as {hook: {step: fn}}, composing edits that share a step."""
    grouped: dict[str, dict[int, Callable]] = {}
    for e in edits:
        if not isinstance(e, Edit):
            raise TypeError(f"edits must be probe.Edit objects, got {type(e).__name__}")
        if e.hook not in model.hook_dict:
            raise ValueError(f"unknown hook {e.hook!r}; valid hooks: {', '.join(sorted(model.hook_dict))}")
        if not -seq_len <= e.step < seq_len:
            raise ValueError(f"step {e.step} is outside the sequence: valid steps are 0..{seq_len - 1} "
                             f"(or -{seq_len}..-1)")
        width = _hook_width(model, e.hook)
        if e.units is not None:
            units = list(e.units) if not isinstance(e.units, Tensor) else e.units.tolist()
            bad = [u for u in units if not 0 <= u < width]
            if bad:
                raise ValueError(f"units {bad} out of range for {e.hook}: valid units are 0..{width - 1}")
        step = e.step % seq_len
        fn = _restricted(e.fn, e.units)
        steps = grouped.setdefault(e.hook, {})
        steps[step] = _compose(steps[step], fn) if step in steps else fn
    return grouped


def step_hook(steps: Mapping[int, Callable[[Tensor], Tensor]]) -> Callable:
    """A TransformerLens forward hook that applies ``fn`` to the value at each of its steps.

    ``steps`` maps a step to a function of that step's value (B, D) (or (M, B, D)), as grouped by
    :func:`compile_edits`; the hook takes and returns whole trajectories (..., T, D).
    """
    def hook(x: Tensor, hook=None) -> Tensor:
        out = x.clone()
        for step, fn in steps.items():
            out[..., step, :] = fn(x[..., step, :])
        return out
    return hook


def _hook_width(model, hook: str) -> int:
    """Width D of a hook's value, found from the layer that owns it."""
    if hook == "hook_embed":
        return model.layers[0].d_in
    if hook == "hook_logits":
        return model.config["d_output"]
    _, index, local = hook.split(".")
    return model.layers[int(index)].width(local)


def intervene(model, inputs: Tensor, edits: Sequence[Edit], names_filter=None):
    """Run ``model`` on ``inputs`` with step edits applied inside the recurrence.

    Parameters
    ----------
    model : a model from :func:`probe.models.make`.
    inputs : (B, T) tokens or (B, T, d_input) vectors (per-member inputs for an ensemble too).
    edits : :class:`Edit` objects; several at one hook and step are applied in order.
    names_filter : which hooks to cache, as in ``run_with_cache`` (default: all).

    Returns
    -------
    outputs : as ``model(inputs)``, reflecting the edits.
    cache : ActivationCache (a :class:`probe.models.hooked.RecurrentCache`) of whole
        trajectories, edited values included.
    """
    grouped = compile_edits(model, edits, _seq_len(model, inputs))
    with model.hooks(fwd_hooks=[(name, step_hook(steps)) for name, steps in grouped.items()]):
        return model.run_with_cache(inputs, names_filter=names_filter)


__all__ = ["Edit", "clamp", "compile_edits", "intervene", "mean_ablate", "patch_from", "scale", "set_to",
           "step_hook", "zero_ablate"]
