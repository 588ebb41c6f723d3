"""TransformerLens's hook API on recurrent models: the config, the cache and the caching hooks.

:class:`HookedRecurrent` is the :class:`~transformer_lens.HookedRootModule` every probe model
derives from. It keeps TransformerLens's methods and meanings (``run_with_cache``,
``get_caching_hooks``, ``add_caching_hooks`` with ``names_filter``, ``device``,
``remove_batch_dim``, ``incl_bwd``, ``pos_slice``) and changes what a recurrent model needs:

- the position axis is the time axis of every hook point, whatever its name (TransformerLens
  reads position at dim -3 for names ending in ``hook_z``, GRU's update gate here); each hook
  point says where in ``pos_dim``, as TransformerLens's own HookPoints do;
- an ensemble's activations carry a member axis before the batch axis, (M, B, T, D): batch
  operations (``remove_batch_dim``, ``apply_slice_to_batch_dim``) act on axis 1 there;
- the cache is a :class:`RecurrentCache`, an ``ActivationCache`` whose shorthand keys name
  probe's hooks (``cache["h", 0]`` is ``layers.0.hook_h``) and which knows the member axis.
"""
from __future__ import annotations

import re
import statistics
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Optional

import torch
from torch import Tensor
from transformer_lens import ActivationCache
from transformer_lens.HookedRootModule import HookedRootModule
from transformer_lens.utilities import Slice

_SHORTHAND = re.compile(r"([a-z_]+?)(\d+)$")   # "h0" -> ("h", 0), "gate_x1" -> ("gate_x", 1)
_MODEL_WIDE = {"embed", "logits"}               # hook_embed and hook_logits belong to no layer


@dataclass(frozen=True)
class RecurrentConfig:
    """The ``model.cfg`` fields TransformerLens code reads, in TransformerLens's names."""

    n_layers: int
    d_model: int            # hidden width of each layer
    d_vocab: int            # vocabulary size (token inputs) or input width (vector inputs)
    d_vocab_out: int        # output width
    n_members: int          # ensemble members (1: a plain model)
    arch: str
    input_kind: str
    device: str
    dtype: torch.dtype
    n_ctx: Optional[int] = None  # no context limit: any number of steps
    model_name: str = ""


def act_name(name: str, layer: Optional[int] = None, layer_type: Optional[str] = None) -> str:
    """A probe hook name from TransformerLens-style shorthand.

    ``act_name("h", 0)`` and ``act_name("h0")`` are ``layers.0.hook_h``; ``act_name("embed")`` is
    ``hook_embed``; a trailing ``_grad`` carries over (``("h_grad", 1)`` -> ``layers.1.hook_h_grad``).
    Full names pass through. ``layer_type`` is accepted for TransformerLens's calling convention
    and ignored: a recurrent layer has no sublayers.
    """
    if ("." in name or name.startswith("hook_")) and layer is None:
        return name
    match = _SHORTHAND.match(name) if layer is None else None
    if match:
        name, layer = match.group(1), int(match.group(2))
    name = name[len("hook_"):] if name.startswith("hook_") else name
    if layer is None:
        return f"hook_{name}"
    return f"layers.{layer}.hook_{name}"


class RecurrentCache(ActivationCache):
    """An ``ActivationCache`` of a probe model: whole trajectories (B, T, D), (M, B, T, D) for an
    ensemble (``has_member_dim``).

    Works as TransformerLens's: ``cache[name]``, shorthand ``cache["h", 0]`` / ``cache["h0"]`` /
    ``cache["h", -1]``, ``keys``/``items``/``values``, ``to``, ``stack_activation("h")``
    (L, ..., T, D), ``remove_batch_dim()`` and ``apply_slice_to_batch_dim()`` (on the batch axis,
    axis 1 of an ensemble's activations), plus :meth:`member`. Methods built on a transformer's
    residual stream (``accumulated_resid``, ``decompose_resid``, ``logit_attrs``, ...) raise
    ``NotImplementedError``: a recurrent model has no residual stream.
    """

    def __init__(self, cache_dict: dict[str, Tensor], model, has_batch_dim: bool = True,
                 has_member_dim: Optional[bool] = None):
        super().__init__(cache_dict, model, has_batch_dim=has_batch_dim)
        self.has_member_dim = model.is_ensemble if has_member_dim is None else has_member_dim

    @property
    def batch_axis(self) -> int:
        return 1 if self.has_member_dim else 0

    def __repr__(self) -> str:
        return f"RecurrentCache with keys {list(self.cache_dict)}"

    def __getitem__(self, key) -> Tensor:
        if isinstance(key, str) and key in self.cache_dict:
            return self.cache_dict[key]
        name, layer, *rest = (key, None) if isinstance(key, str) else (*key, None)
        if layer is not None and layer < 0:
            layer += self.model.cfg.n_layers
        full = act_name(name, layer, *rest[:1])
        if full not in self.cache_dict:
            raise KeyError(f"{key!r} ({full}) is not in this cache; cached: {', '.join(self.cache_dict)}")
        return self.cache_dict[full]

    def _batch_size(self) -> int:
        ax = self.batch_axis
        sizes = [v.shape[ax] for v in self.cache_dict.values() if v.dim() > ax]
        return statistics.mode(sizes) if sizes else 1

    def remove_batch_dim(self, batch_size: Optional[int] = None) -> "RecurrentCache":
        """Drop the batch axis (axis 1 of an ensemble's activations) of a cache of one sequence."""
        if not self.has_batch_dim:
            warnings.warn("tried to remove the batch axis of a cache that has none left", stacklevel=2)
            return self
        size = self._batch_size() if batch_size is None else batch_size
        if size != 1:
            raise ValueError(f"remove_batch_dim needs a batch of 1 sequence, this cache holds {size}")
        ax = self.batch_axis
        self.cache_dict = {k: (v.squeeze(ax) if v.dim() > ax and v.shape[ax] == 1 else v)
                           for k, v in self.cache_dict.items()}
        self.has_batch_dim = False
        return self

    def apply_slice_to_batch_dim(self, batch_slice) -> "RecurrentCache":
        """Select sequences (an int, a (start, stop[, step]) tuple, a list or a Slice) on the batch axis."""
        batch_slice = batch_slice if isinstance(batch_slice, Slice) else Slice(batch_slice)
        if not self.has_batch_dim and batch_slice.mode != "identity":
            raise ValueError("this cache has no batch axis to slice")
        ax, size = self.batch_axis, self._batch_size()
        sliced = {k: (batch_slice.apply(v, dim=ax) if v.dim() > ax and v.shape[ax] == size else v)
                  for k, v in self.cache_dict.items()}
        return RecurrentCache(sliced, self.model, has_batch_dim=self.has_batch_dim and batch_slice.mode != "int",
                              has_member_dim=self.has_member_dim)

    def member(self, i: int) -> "RecurrentCache":
        """The cache of ensemble member ``i``, as ``model.member(i)`` would have written it."""
        if not self.has_member_dim:
            raise ValueError("this cache has no member axis (it is not an ensemble's)")
        n = self.model.members
        if not -n <= i < n:
            raise ValueError(f"member {i} out of range: the ensemble has members 0..{n - 1}")
        return RecurrentCache({k: v[i] for k, v in self.cache_dict.items()}, self.model,
                              has_batch_dim=self.has_batch_dim, has_member_dim=False)


def _no_residual_stream(name: str):
    def method(self, *args, **kwargs):
        raise NotImplementedError(f"ActivationCache.{name} works on a transformer's residual stream; a "
                                  f"recurrent model has none. Index the cache by hook name instead.")
    method.__name__ = name
    return method


for _name in ("accumulated_resid", "logit_lens", "logit_attrs", "decompose_resid", "compute_head_results",
              "stack_head_results", "get_neuron_results", "stack_neuron_results", "apply_ln_to_stack",
              "get_full_resid_decomposition", "ssm_layers", "compute_ssm_effective_attention", "compute_ssm_state"):
    if hasattr(ActivationCache, _name):
        setattr(RecurrentCache, _name, _no_residual_stream(_name))


def _names_filter(names_filter):
    if names_filter is None:
        return lambda name: True
    if isinstance(names_filter, str):
        return lambda name: name == names_filter
    if isinstance(names_filter, (list, tuple, set)):
        wanted = set(names_filter)
        return lambda name: name in wanted
    if callable(names_filter):
        return names_filter
    raise ValueError(f"names_filter must be None, a hook name, a list of names or a function of a name; "
                     f"got {type(names_filter).__name__}")


class HookedRecurrent(HookedRootModule):
    """``HookedRootModule`` with the time axis, the member axis and :class:`RecurrentCache`."""

    def setup(self):
        super().setup()
        for hp in self.hook_dict.values():
            hp.pos_dim = 2 if self.is_ensemble else 1   # the time axis, in TransformerLens's attribute

    @property
    def cfg(self) -> RecurrentConfig:
        c, p = self.config, next(self.parameters())
        return RecurrentConfig(n_layers=c["layers"], d_model=c["hidden"], d_vocab=self.d_source,
                               d_vocab_out=c["d_output"], n_members=self.members, arch=c["arch"],
                               input_kind=self.input_kind, device=str(p.device), dtype=p.dtype,
                               model_name=c["arch"])

    def get_caching_hooks(self, names_filter=None, incl_bwd: bool = False, device=None,
                          remove_batch_dim: bool = False, cache: Optional[dict] = None, pos_slice=None):
        """As TransformerLens's: (cache dict, forward hooks, backward hooks), not yet attached.

        ``pos_slice`` slices the time axis of every hook; ``remove_batch_dim`` drops the batch axis
        where it has size 1 (axis 1 of an ensemble's activations, axis 0 of a plain model's).
        """
        cache = {} if cache is None else cache
        keep = _names_filter(names_filter)
        pos_slice = Slice.unwrap(pos_slice)
        self.is_caching = True

        def save(tensor: Tensor, hook, is_backward: bool = False):
            value = tensor.detach().to(device)
            time = hook.pos_dim if hook.pos_dim is not None else value.dim() - 2
            batch = 1 if self.is_ensemble else 0
            if remove_batch_dim and value.dim() > batch and value.shape[batch] == 1:
                value, time = value.squeeze(batch), time - 1
            cache[hook.name + ("_grad" if is_backward else "")] = pos_slice.apply(value, dim=time)

        # a matrix state's hook (``opt_in``) is cached only where names_filter asks for it
        names = [name for name in self.hook_dict if keep(name)
                 and (names_filter is not None or not getattr(self.hook_dict[name], "opt_in", False))]
        fwd = [(name, partial(save, is_backward=False)) for name in names]
        bwd = [(name, partial(save, is_backward=True)) for name in names] if incl_bwd else []
        return cache, fwd, bwd

    def add_caching_hooks(self, names_filter=None, incl_bwd: bool = False, device=None,
                          remove_batch_dim: bool = False, cache: Optional[dict] = None) -> dict:
        cache, fwd, bwd = self.get_caching_hooks(names_filter, incl_bwd, device, remove_batch_dim, cache)
        for name, hook in fwd:
            self.hook_dict[name].add_hook(hook, dir="fwd")
        for name, hook in bwd:
            self.hook_dict[name].add_hook(hook, dir="bwd")
        return cache

    def run_with_cache(self, *model_args: Any, names_filter=None, device=None, remove_batch_dim: bool = False,
                       incl_bwd: bool = False, reset_hooks_end: bool = True, clear_contexts: bool = False,
                       pos_slice=None, return_cache_object: bool = True, **model_kwargs: Any):
        """Run the model and return (output, cache) as TransformerLens does.

        The cache is a :class:`RecurrentCache` (a dict with ``return_cache_object=False``).
        ``incl_bwd=True`` calls ``backward()`` on the output, so it needs ``return_type="loss"``
        (and ``targets=``, or a ``Batch`` as input); gradients land under ``<name>_grad``.
        Caching never changes the output: the hooks only observe. A matrix state's hook
        (``hook_S``) is cached only where ``names_filter`` names it.
        """
        if remove_batch_dim and model_args:
            size = self.batch_size(model_args[0])
            if size != 1:
                raise ValueError(f"remove_batch_dim needs a batch of 1 sequence, got {size}")
        cache, fwd, bwd = self.get_caching_hooks(names_filter, incl_bwd, device, remove_batch_dim=remove_batch_dim,
                                                 pos_slice=pos_slice)
        with self.hooks(fwd_hooks=fwd, bwd_hooks=bwd, reset_hooks_end=reset_hooks_end, clear_contexts=clear_contexts):
            out = self(*model_args, **model_kwargs)
            if incl_bwd:
                if not (isinstance(out, Tensor) and out.dim() == 0):
                    raise ValueError("incl_bwd=True needs a scalar output to call backward() on: pass "
                                     "return_type='loss' with targets= (or a Batch as the input)")
                out.backward()
        if not return_cache_object:
            return out, cache
        return out, RecurrentCache(cache, self, has_batch_dim=not remove_batch_dim)


__all__ = ["HookedRecurrent", "RecurrentCache", "RecurrentConfig", "act_name"]
