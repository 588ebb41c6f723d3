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

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

Units = Optional[Union[Sequence[int], Tensor, range]]


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _check_number(name: str, value, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number{' or None' if optional else ''}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_units(units, what: str = "units") -> list[int] | None:
    """``units`` as a list of ints (``None`` = all): a range, a sequence of ints or a 1-D integer
    tensor, not empty, none negative; a bool, float or string unit raises ``TypeError``.
    Whether they are below the hook's width is checked where the width is known."""
    if units is None:
        return None
    if isinstance(units, Tensor):
        if units.dim() > 1 or units.dtype.is_floating_point or units.dtype.is_complex or units.dtype == torch.bool:
            raise TypeError(f"{what} as a tensor must be 1-D integer unit indices, got {units.dtype} {tuple(units.shape)}")
        units = units.tolist()
    elif isinstance(units, (str, bytes)) or not isinstance(units, (range, Sequence, np.ndarray)):
        raise TypeError(f"{what} must be a list or range of unit indices, got {units!r}")
    units = list(units)
    bad = [u for u in units if not _is_int(u)]
    if bad:
        raise TypeError(f"{what} must be integers, got {bad[0]!r} (a {type(bad[0]).__name__})")
    if not units:
        raise ValueError(f"{what} is empty, so the edit would change nothing; pass None for every unit")
    if min(units) < 0:
        raise ValueError(f"{what} must be >= 0, got {min(units)}")
    return [int(u) for u in units]


@dataclass(frozen=True)
class Edit:
    """Apply ``fn`` to the value of ``hook`` at time ``step`` (only ``units``, if given).

    ``step`` counts from 0; a negative step counts from the end, as in Python indexing. A bool
    or float step or unit, empty units, or an ``fn`` that is not callable raise at construction.
    """

    hook: str
    step: int
    fn: Callable[[Tensor], Tensor]
    units: Units = None

    def __post_init__(self):
        if not isinstance(self.hook, str):
            raise TypeError(f"Edit hook must be a hook name (str), got {self.hook!r}")
        if not _is_int(self.step):
            raise TypeError(f"Edit step must be an integer, got {self.step!r} (a {type(self.step).__name__})")
        object.__setattr__(self, "step", int(self.step))
        if not callable(self.fn):
            raise TypeError(f"Edit fn must be a function of the hook's value, got {self.fn!r}")
        check_units(self.units, "Edit units")


# -- edit functions ---------------------------------------------------------------------------
# Functions that replace the value by a tensor of their own record its width (``fn.width``),
# so that compile_edits can name a mismatch before anything runs.

def zero_ablate() -> Callable[[Tensor], Tensor]:
    """Set the value to zero."""
    return torch.zeros_like


def mean_ablate(mean: Tensor) -> Callable[[Tensor], Tensor]:
    """Replace the value by ``mean`` (D,), e.g. ``cache[hook].mean((0, 1))`` over a reference batch."""
    if not isinstance(mean, Tensor):
        raise TypeError(f"mean must be a tensor (D,), got {type(mean).__name__}")
    if mean.dim() < 1 or not (mean.is_floating_point() or mean.is_complex()) or not bool(torch.isfinite(mean).all()):
        raise ValueError(f"mean must be a finite float tensor (D,), got {mean.dtype} {tuple(mean.shape)}")

    def fn(v: Tensor) -> Tensor:
        return mean.to(v).expand_as(v)
    fn.width = mean.shape[-1]
    return fn


def scale(factor: float) -> Callable[[Tensor], Tensor]:
    """Multiply the value by ``factor`` (a finite number)."""
    _check_number("scale factor", factor)
    return lambda v: v * factor


def set_to(value: Union[float, Tensor]) -> Callable[[Tensor], Tensor]:
    """Clamp the value to a constant (a finite scalar, or a tensor broadcastable to (..., D))."""
    if isinstance(value, Tensor):
        if not bool(torch.isfinite(value).all()):
            raise ValueError("set_to value must be finite")
    else:
        _check_number("set_to value", value)

    def fn(v: Tensor) -> Tensor:
        return torch.as_tensor(value).to(v).expand_as(v).clone()
    if isinstance(value, Tensor) and value.dim() >= 1 and value.shape[-1] != 1:
        fn.width = value.shape[-1]
    return fn


def clamp(min: Optional[float] = None, max: Optional[float] = None) -> Callable[[Tensor], Tensor]:
    """Clip the value into [min, max] (finite bounds, at least one, min <= max)."""
    _check_number("clamp min", min, optional=True)
    _check_number("clamp max", max, optional=True)
    if min is None and max is None:
        raise ValueError("clamp needs min, max or both")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clamp min {min} is above max {max}")
    return lambda v: v.clamp(min=min, max=max)


def patch_from(source: Tensor, step: int) -> Callable[[Tensor], Tensor]:
    """Replace the value by ``source[..., step, :]``, a trajectory from another input's cache.

    ``source`` is (B, T, D) (or (M, B, T, D)) as stored in a cache; a batch of 1 is broadcast.
    """
    if not isinstance(source, Tensor) or source.dim() < 3:
        raise TypeError(f"source must be a cached trajectory (B, T, D), got "
                        f"{tuple(source.shape) if isinstance(source, Tensor) else type(source).__name__}")
    if not _is_int(step):
        raise TypeError(f"patch_from step must be an integer, got {step!r}")
    T = source.shape[-2]
    if not -T <= step < T:
        raise ValueError(f"patch_from step {step} is outside the source's {T} steps (0..{T - 1})")
    value = source[..., step, :]

    def fn(v: Tensor) -> Tensor:
        return value.to(v).expand_as(v).clone()
    fn.width = source.shape[-1]
    return fn


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
    if isinstance(edits, Edit) or not isinstance(edits, Sequence):
        raise TypeError(f"edits must be a list of probe.Edit objects, got {type(edits).__name__}")
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
            units = check_units(e.units)
            bad = [u for u in units if not 0 <= u < width]
            if bad:
                raise ValueError(f"units {bad} out of range for {e.hook}: valid units are 0..{width - 1}")
        own = getattr(e.fn, "width", None)
        if own is not None and own != width:
            raise ValueError(f"the edit's value has {own} units but {e.hook} has {width}")
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


__all__ = ["Edit", "check_units", "clamp", "compile_edits", "intervene", "mean_ablate", "patch_from", "scale",
           "set_to", "step_hook", "zero_ablate"]
