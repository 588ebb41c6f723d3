"""Interchange interventions and distributed alignment search (DAS) on a recurrent state.

    >>> from probe import das
    >>> out = das.interchange(model, base, source, hook="layers.0.hook_h", step=8)   # (B, T, K)
    >>> search = das.DAS(n_variables=9, steps=400).fit(model, sampler)
    >>> search.evaluate(model, sampler)["accuracy"]

An interchange intervention runs ``base`` with the value at a hook and step replaced, wholly or
in part, by the value ``source`` produced there. DAS (Geiger et al. 2024, arXiv 2303.02536) looks
for the part to swap: an orthogonal rotation R of the hook's space, and an assignment of rotated
dimensions to the causal variables; swapping variable k means taking the rotated dimensions
assigned to k from the source and the rest from the base,

    h' = Rᵀ (R h_base + m_k ⊙ (R h_source − R h_base)),    m_k ∈ {0, 1}^D.

The assignment is either learned (``assignment="gumbel"``), as in Csordás et al. 2024 (arXiv
2408.10920, code ``AutosegmentationInterventionModel``): logits (D, K+1) over the K variables and a
"rest" column, sampled with a hard straight-through Gumbel-softmax while training and taken by
argmax afterwards, with a small push towards "rest"; or fixed (``"fixed"``): variable k owns
rotated dimensions [k·s, (k+1)·s), s = D // K, as in their ``InterventionModel`` and in classic
DAS, and only the rotation is learned. In a few hundred steps the fixed one is found far more
reliably (on the repetition GRUs it gave the higher accuracy every time we compared).

Hooks. A hook name (``"layers.0.hook_h"``, a gate) is edited through :func:`probe.intervene`, the
reference path, as in :class:`probe.Edit`. ``"state"`` is the model's whole recurrent state (every layer; an LSTM's cells
too) as one flat vector, edited by running the prefix, editing the returned state and continuing
from it with ``model(rest, state=...)`` (the fused recurrences, so training is faster). For a
one-layer GRU, Elman, linear RNN or Hawk, ``"state"`` and ``"layers.0.hook_h"`` are the same vector
and give the same outputs after the step (tests check); at the step itself ``"state"`` leaves the
output as it was, the hook shows the edited state's readout.

Learned interventions share :class:`TrainableIntervention` (scikit-learn style: the constructor
stores arguments, ``fit`` sets attributes ending in ``_`` and returns self). Their data is a
*sampler* ``sampler(n, seed) -> SwapBatch``: base and source inputs, which variables to swap, and
the counterfactual targets the swapped run should produce.
"""
from __future__ import annotations

import contextlib
import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from probe._das_swap import RotatedSwap, block_assignment, gumbel_softmax  # noqa: F401 (public here)
from probe.interventions import Edit, check_units, intervene

STATE = "state"
Assignment = Literal["gumbel", "fixed"]


def _site_is_hook(fn):
    """Accept the keyword ``site=`` (before 0.2) for ``hook=``, with a DeprecationWarning."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if "site" in kwargs:
            if "hook" in kwargs:
                raise TypeError(f"{fn.__qualname__}() got both hook= and its old name site=")
            warnings.warn(f"{fn.__qualname__}(site=...) is now hook=...; site= goes in the next release",
                          DeprecationWarning, stacklevel=2)
            kwargs["hook"] = kwargs.pop("site")
        return fn(*args, **kwargs)
    return wrapper


# ---------------------------------------------------------------------------------------------
# hooks: read a value, run with an edit
# ---------------------------------------------------------------------------------------------

def _check_model(model, hook: str) -> None:
    if getattr(model, "is_ensemble", False):
        raise ValueError(f"interventions need a plain model; this one has members={model.members} "
                         "(use model.member(i))")
    if hook != STATE and hook not in model.hook_dict:
        raise ValueError(f"unknown hook {hook!r}; valid: {STATE!r} or one of the model's hooks: "
                         f"{', '.join(sorted(model.hook_dict))}")


def _check_step(step: int, T: int) -> int:
    if isinstance(step, bool) or not isinstance(step, int) or not -T <= step < T:
        raise ValueError(f"step {step!r} is outside the sequence: valid steps are 0..{T - 1} (or -{T}..-1)")
    return step % T


def _flatten(states: list) -> tuple[Tensor, list[list[int]]]:
    """Per-layer states (tensors or tuples of tensors, each (B, D_i)) -> (B, S) and the widths."""
    parts, widths = [], []
    for s in states:
        group = list(s) if isinstance(s, tuple) else [s]
        parts += group
        widths.append([g.shape[-1] for g in group])
    return torch.cat(parts, -1), widths                                             # (B, S)


def _unflatten(flat: Tensor, widths: list[list[int]]) -> list:
    pieces = iter(flat.split([w for ws in widths for w in ws], -1))
    return [tuple(next(pieces) for _ in ws) if len(ws) > 1 else next(pieces) for ws in widths]


@_site_is_hook
def read_value(model, inputs: Tensor, hook: str, step: int) -> Tensor:
    """The value at ``hook`` after step ``step``.

    Parameters
    ----------
    model : a plain model from :func:`probe.models.make`.
    inputs : (B, T) tokens or (B, T, d_input) vectors.
    hook : ``"state"`` or a hook name.
    step : time step (negative counts from the end).

    Returns
    -------
    Tensor (B, D)
    """
    _check_model(model, hook)
    step = _check_step(step, inputs.shape[1])
    if hook == STATE:
        _, states = model(inputs[:, :step + 1], return_state=True)
        return _flatten(states)[0]
    _, cache = model.run_with_cache(inputs[:, :step + 1], names_filter=hook)
    return cache[hook][:, step]                                                     # (B, D)


@_site_is_hook
def value_width(model, hook: str) -> int:
    """Width D of a hook's value."""
    x = torch.zeros(1, 1, dtype=torch.long) if model.input_kind == "tokens" else \
        torch.zeros(1, 1, model.d_source, dtype=next(model.parameters()).dtype)
    with torch.no_grad():
        return read_value(model, x, hook, 0).shape[-1]


@_site_is_hook
def run_edited(model, inputs: Tensor, hook: str, step: int, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Outputs of ``model`` on ``inputs`` with ``fn`` applied to the hook's value at ``step``.

    ``fn`` maps (B, D) to (B, D) and may be any differentiable function; later steps follow from
    its value. Returns (B, T, d_output).
    """
    _check_model(model, hook)
    T = inputs.shape[1]
    step = _check_step(step, T)
    if hook != STATE:
        out, _ = intervene(model, inputs, [Edit(hook, step, fn)], names_filter=lambda name: False)
        return out
    first, states = model(inputs[:, :step + 1], return_state=True)                  # (B, step+1, K)
    if step + 1 == T:
        return first
    flat, widths = _flatten(states)
    rest = model(inputs[:, step + 1:], state=_unflatten(fn(flat), widths))          # (B, T-step-1, K)
    return torch.cat([first, rest], 1)                                              # (B, T, K)


def _patch(value: Tensor, units) -> Callable[[Tensor], Tensor]:
    if units is None:
        return lambda v: value.to(v).expand_as(v)
    idx = torch.as_tensor(list(units), dtype=torch.long)

    def fn(v: Tensor) -> Tensor:
        out = v.clone()
        out[..., idx] = value.to(v)[..., idx]
        return out
    return fn


@_site_is_hook
def interchange(model, base: Tensor, source: Tensor, hook: str, step: int, source_step: Optional[int] = None,
                units: Optional[Sequence[int]] = None) -> Tensor:
    """Run ``base`` with the hook's value at ``step`` taken from ``source`` at ``source_step``.

    Parameters
    ----------
    model : a plain model.
    base, source : (B, T) and (B, T') inputs (a source batch of 1 is broadcast).
    hook : ``"state"`` or a hook name, e.g. ``"layers.0.hook_h"``.
    step, source_step : where to write in the base and read in the source (default: ``step``).
    units : only these units of the value are swapped (default all).

    Returns
    -------
    Tensor (B, T, d_output): the base's outputs after the interchange.
    """
    if source.shape[0] not in (1, base.shape[0]):
        raise ValueError(f"source batch {source.shape[0]} does not match base batch {base.shape[0]} (or 1)")
    units = check_units(units)
    with torch.no_grad():
        value = read_value(model, source, hook, step if source_step is None else source_step)  # (B, D)
    if units is not None and max(units) >= value.shape[-1]:
        raise ValueError(f"units {[u for u in units if u >= value.shape[-1]]} out of range for hook {hook!r}: "
                         f"valid units are 0..{value.shape[-1] - 1}")
    return run_edited(model, base, hook, step, _patch(value, units))


# ---------------------------------------------------------------------------------------------
# training and evaluation loops
# ---------------------------------------------------------------------------------------------

@dataclass
class SwapBatch:
    """Interchange examples that all intervene at one step.

    Attributes
    ----------
    base : (B, T) inputs run with the intervention (for a decoder fed its own targets, the
        decoder part should hold the counterfactual tokens).
    source : (B, T') inputs the swapped values come from, or None for interventions without one.
    variables : (B, K) bool, the variables to swap in each example.
    targets : (B, T) long, the outputs the intervened run should give.
    mask : (B, T) bool, where targets count.
    step, source_step : where to intervene in the base, and read in the source (None: ``step``).
    info : extra per-example tensors an intervention may use (tokens, positions, a ``group`` (B,)
        for per-group accuracy).
    """

    base: Tensor
    source: Optional[Tensor]
    variables: Tensor
    targets: Tensor
    mask: Tensor
    step: int
    source_step: Optional[int] = None
    info: dict[str, Tensor] = field(default_factory=dict)


@contextlib.contextmanager
def frozen(model):
    """Turn off gradients of the model's parameters for the duration (restored afterwards)."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)


def masked_loss(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Mean cross-entropy over the masked steps; logits (B, T, K), targets/mask (B, T)."""
    return F.cross_entropy(logits[mask], targets[mask])


def sequence_correct(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """(B,) bool: every masked step's argmax equals its target."""
    return ((logits.argmax(-1) == targets) | ~mask).all(1)


class TrainableIntervention:
    """The fit/evaluate loops of a learned intervention at one hook.

    Subclasses define ``_build(model, width, generator) -> nn.Module`` and
    ``_apply(module, value, source_value, batch, train, generator) -> edited value`` (B, D).
    """

    hook: str

    @property
    def site(self) -> str:
        """Deprecated name of :attr:`hook`."""
        warnings.warn("TrainableIntervention.site is now .hook; .site goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return self.hook
    steps: int
    lr: float
    batch_size: int
    seed: int

    def _build(self, model, width: int, generator: torch.Generator) -> nn.Module:
        raise NotImplementedError

    def _apply(self, module, value: Tensor, source_value: Optional[Tensor], batch: SwapBatch, train: bool,
               generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def _penalty(self, module) -> Tensor:
        return torch.zeros(())

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit(model, sampler) first")

    def _forward(self, model, module, batch: SwapBatch, train: bool, generator: torch.Generator) -> Tensor:
        src = None
        if batch.source is not None:
            with torch.no_grad():
                step = batch.step if batch.source_step is None else batch.source_step
                src = read_value(model, batch.source, self.hook, step)                # (B, D)
        fn = lambda v: self._apply(module, v, src, batch, train, generator)           # noqa: E731
        return run_edited(model, batch.base, self.hook, batch.step, fn)              # (B, T, K)

    def fit(self, model, sampler: Callable[[int, int], SwapBatch]):
        """Train the intervention on ``sampler(batch_size, seed)`` batches; the model stays frozen.

        Adam at ``lr``, decaying along a cosine to ``lr / 10`` by the last step.

        Sets ``module_`` (the trained intervention), ``width_`` and ``history_`` (loss per step);
        returns self.
        """
        _check_model(model, self.hook)
        gen = torch.Generator().manual_seed(self.seed)
        self.width_ = value_width(model, self.hook)
        module = self._build(model, self.width_, gen)
        opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=self.lr)
        history = []
        with frozen(model):
            for i in range(self.steps):
                batch = sampler(self.batch_size, self.seed * 1_000_003 + i)
                logits = self._forward(model, module, batch, True, gen)
                loss = masked_loss(logits, batch.targets, batch.mask) + self._penalty(module)
                opt.zero_grad()
                loss.backward()
                opt.step()
                for group in opt.param_groups:  # cosine decay to lr/10: the last steps settle the fit
                    group["lr"] = self.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * (i + 1) / self.steps)))
                history.append(float(loss.detach()))
        self.module_ = module.eval()
        self.history_ = history
        return self

    @torch.no_grad()
    def predict(self, model, batch: SwapBatch) -> Tensor:
        """Logits (B, T, K) of the intervened run (deterministic: no sampling)."""
        self._check_fitted()
        return self._forward(model, self.module_, batch, False, torch.Generator().manual_seed(self.seed))

    @torch.no_grad()
    def evaluate(self, model, sampler: Callable[[int, int], SwapBatch], n: int = 1024, seed: int = 10_000_019,
                 batch_size: int = 512) -> dict:
        """Accuracy of the intervened runs on ``n`` fresh examples.

        Returns
        -------
        dict with ``accuracy`` (whole masked sequence right), ``token_accuracy``, ``n``, and
        ``by_group`` {group: accuracy}, groups from ``batch.info["group"]`` (default: the first
        swapped variable).
        """
        self._check_fitted()
        right, tokens, total, groups = 0, 0.0, 0, {}
        for j in range(math.ceil(n / batch_size)):
            batch = sampler(min(batch_size, n - j * batch_size), seed + j)
            logits = self.predict(model, batch)
            ok = sequence_correct(logits, batch.targets, batch.mask)                 # (B,)
            tok = ((logits.argmax(-1) == batch.targets) & batch.mask).sum(1) / batch.mask.sum(1).clamp_min(1)
            group = batch.info.get("group", batch.variables.long().argmax(1))
            for g in group.unique().tolist():
                hit = ok[group == g]
                r, c = groups.get(g, (0, 0))
                groups[g] = (r + int(hit.sum()), c + hit.numel())
            right, tokens, total = right + int(ok.sum()), tokens + float(tok.sum()), total + ok.numel()
        return {"accuracy": right / total, "token_accuracy": tokens / total, "n": total,
                "by_group": {g: r / c for g, (r, c) in sorted(groups.items())}}


class DAS(TrainableIntervention):
    """Distributed alignment search: a learned rotation and assignment of dimensions to variables.

    Parameters
    ----------
    n_variables : K, the causal variables (e.g. one per stored position).
    hook : ``"state"`` (default) or a hook name.
    steps, lr, batch_size : the Adam training loop.
    assignment : "gumbel" (learned, as Csordás et al.) or "fixed" (``size`` rotated dimensions per
        variable, default D // K, as their ``InterventionModel`` and classic DAS; faster to train).
    size : dimensions per variable for ``assignment="fixed"``.
    tau : Gumbel-softmax temperature of the assignment while training.
    sparsity : weight of the push of every dimension towards "rest", as in Csordás et al.
    orthogonal_map : parametrisation of the rotation ("matrix_exp", "cayley", "householder").
    seed : seeds the initial rotation, the Gumbel noise and the batches.

    Attributes (after ``fit``)
    --------------------------
    module_ : RotatedSwap
    rotation_ : (D, D) orthogonal matrix, rotated coordinates ``rotation_ @ h``.
    assignment_ : (D,) long, the variable of each rotated dimension (K for "rest").
    history_ : list of training losses.
    """

    @_site_is_hook
    def __init__(self, n_variables: int, hook: str = STATE, assignment: Assignment = "gumbel",
                 size: Optional[int] = None, steps: int = 500, lr: float = 1e-2, batch_size: int = 256,
                 tau: float = 1.0, sparsity: float = 1e-3, orthogonal_map: str = "matrix_exp", seed: int = 0):
        self.n_variables, self.hook, self.assignment, self.size = n_variables, hook, assignment, size
        self.steps, self.lr, self.batch_size, self.tau, self.sparsity = steps, lr, batch_size, tau, sparsity
        self.orthogonal_map, self.seed = orthogonal_map, seed

    def _build(self, model, width: int, generator: torch.Generator) -> nn.Module:
        if isinstance(self.n_variables, bool) or not isinstance(self.n_variables, int) or self.n_variables < 1:
            raise ValueError(f"n_variables must be a positive integer, got {self.n_variables!r}")
        if self.orthogonal_map not in ("matrix_exp", "cayley", "householder"):
            raise ValueError(f"unknown orthogonal_map {self.orthogonal_map!r}; valid: matrix_exp, cayley, householder")
        if self.assignment not in ("gumbel", "fixed"):
            raise ValueError(f"unknown assignment {self.assignment!r}; valid: gumbel, fixed")
        return RotatedSwap(width, self.n_variables, generator, self.orthogonal_map, self.assignment, self.size)

    def _apply(self, module, value, source_value, batch, train, generator):
        if source_value is None:
            raise ValueError("DAS swaps values from a source: the sampler's batches need source inputs")
        if batch.variables.shape[-1] != self.n_variables:
            raise ValueError(f"batch has {batch.variables.shape[-1]} variables, this DAS {self.n_variables}")
        assign = module.assignment(self.tau if train else None, generator)           # (D, K+1)
        return module(value, source_value, batch.variables, assign)

    def _penalty(self, module) -> Tensor:
        if not module.learned:
            return torch.zeros(())
        return self.sparsity * (module.logits[:, :-1].mean() - module.logits[:, -1].mean())

    def fit(self, model, sampler):
        super().fit(model, sampler)
        self.rotation_ = self.module_.R.detach().clone()
        self.assignment_ = self.module_.logits.detach().argmax(-1)
        return self

    def swap(self, base: Tensor, source: Tensor, variables: Tensor) -> Tensor:
        """Apply the fitted swap to hook values: base, source (B, D), variables (B, K) bool -> (B, D)."""
        self._check_fitted()
        with torch.no_grad():
            return self.module_(base, source, variables, self.module_.assignment())

    def subspace_sizes(self) -> list[int]:
        """Rotated dimensions assigned to each variable (K entries, "rest" left out)."""
        self._check_fitted()
        return torch.bincount(self.assignment_, minlength=self.n_variables + 1)[:-1].tolist()


def read_site(*args, **kwargs) -> Tensor:
    """Deprecated name of :func:`read_value`."""
    warnings.warn("probe.das.read_site is now read_value; read_site goes in the next release",
                  DeprecationWarning, stacklevel=2)
    return read_value(*args, **kwargs)


def site_width(*args, **kwargs) -> int:
    """Deprecated name of :func:`value_width`."""
    warnings.warn("probe.das.site_width is now value_width; site_width goes in the next release",
                  DeprecationWarning, stacklevel=2)
    return value_width(*args, **kwargs)


__all__ = ["DAS", "STATE", "RotatedSwap", "SwapBatch", "TrainableIntervention", "block_assignment", "frozen",
           "gumbel_softmax", "interchange", "masked_loss", "read_value", "run_edited", "sequence_correct", "value_width"]
