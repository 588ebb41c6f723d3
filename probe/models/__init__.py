"""Recurrent models with TransformerLens hooks, single or as ensembles.

    >>> import probe, tasks
    >>> model = probe.models.make("gru", tasks.make("parity"), hidden=64, members=4, seed=0)
    >>> logits, cache = model.run_with_cache(inputs)        # (M, B, T, 2), cache[...] (M, B, T, D)

Architectures and their hooks (besides ``hook_embed``, ``layers.{i}.hook_h`` and ``hook_logits``):

    gru     hook_r hook_z hook_n                  lstm   hook_i hook_f hook_g hook_o hook_c
    elman   hook_pre                              linear hook_pre
    lru     hook_a hook_b                         hawk   hook_a hook_gate_x hook_gate_out
"""
from __future__ import annotations

import inspect
import typing
from typing import Any, Literal, Mapping, Optional

from probe.models.base import Layer, member_seed
from probe.models.elman import ElmanLayer, LinearLayer
from probe.models.gru import GRULayer
from probe.models.hawk import HawkLayer
from probe.models.lru import LRULayer
from probe.models.lstm import LSTMLayer
from probe.models.model import RecurrentModel

ARCHITECTURES: dict[str, type[Layer]] = {
    "gru": GRULayer,
    "lstm": LSTMLayer,
    "elman": ElmanLayer,
    "linear": LinearLayer,
    "lru": LRULayer,
    "hawk": HawkLayer,
}
EMBEDDINGS = ("learned", "onehot")


def names() -> list[str]:
    """Every registered architecture."""
    return list(ARCHITECTURES)


def arch_params(arch: str) -> dict[str, Any]:
    """The architecture-specific parameters of ``arch`` and their defaults."""
    _check_choice("arch", arch, names())
    sig = inspect.signature(ARCHITECTURES[arch].__init__)
    return {k: p.default for k, p in sig.parameters.items() if k not in ("self", "d_in", "hidden", "members")}


def _check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(str, choices))}")


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_arch_params(arch: str, params: Mapping[str, Any]) -> dict[str, Any]:
    defaults = arch_params(arch)
    hints = typing.get_type_hints(ARCHITECTURES[arch].__init__)
    for key, value in params.items():
        if key not in defaults:
            raise ValueError(f"unknown parameter {key!r} for arch {arch!r}; valid: {', '.join(defaults) or 'none'}")
        hint = hints.get(key)
        if typing.get_origin(hint) is Literal:
            _check_choice(f"{arch} {key}", value, typing.get_args(hint))
        elif hint in (float, int) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{arch} parameter {key} must be a number, got {value!r}")
        elif hint is bool and not isinstance(value, bool):
            raise ValueError(f"{arch} parameter {key} must be true or false, got {value!r}")
    return {**defaults, **params}


def _dims(task_or_dims: Any) -> dict[str, Any]:
    """Input/output description from a Task or a dict with the same attributes."""
    get = (task_or_dims.get if isinstance(task_or_dims, Mapping)
           else lambda k, d=None: getattr(task_or_dims, k, d))
    kind = get("input_kind", "tokens" if get("vocab_size") is not None else "vectors")
    _check_choice("input_kind", kind, ("tokens", "vectors"))
    source_key = "vocab_size" if kind == "tokens" else "d_input"
    dims = {"input_kind": kind, source_key: get(source_key), "d_output": get("d_output")}
    for key in (source_key, "d_output"):
        if dims[key] is None:
            raise ValueError(f"task_or_dims has no {key!r}; give a Task or a dict with input_kind, {source_key}, d_output")
        _check_positive(key, dims[key])
    return dims


def make(arch: str, task_or_dims: Any, hidden: int = 64, layers: int = 1, members: int = 1, seed: int = 0,
         embedding: Literal["learned", "onehot"] = "learned", d_embed: Optional[int] = None,
         **arch_params: Any) -> RecurrentModel:
    """Build a model for a task.

    Parameters
    ----------
    arch : one of :func:`names`.
    task_or_dims : a Task, or a dict ``{"input_kind": "tokens", "vocab_size": V, "d_output": K}``
        / ``{"input_kind": "vectors", "d_input": D, "d_output": K}``.
    hidden, layers : state width and number of stacked recurrent layers.
    members : M > 1 builds an ensemble: every parameter gets a leading member axis and outputs
        and hooks are (M, B, T, ...); member i is initialised from ``member_seed(seed, i)``.
    embedding : "learned" (an embedding of size ``d_embed``, default ``hidden``, or a learned
        linear map of vector inputs) or "onehot" (tokens enter one-hot, vectors as they are).
    **arch_params : architecture options, see :func:`arch_params`.
    """
    _check_choice("arch", arch, names())
    config = {
        "arch": arch,
        "hidden": _check_positive("hidden", hidden),
        "layers": _check_positive("layers", layers),
        "members": _check_positive("members", members),
        "seed": int(seed),
        **_dims(task_or_dims),
        "embedding": embedding,
        "d_embed": None if d_embed is None else _check_positive("d_embed", d_embed),
        "arch_params": _check_arch_params(arch, arch_params),
    }
    _check_choice("embedding", embedding, EMBEDDINGS)
    return from_config(config)


def from_config(config: Mapping[str, Any]) -> RecurrentModel:
    """Rebuild a model (architecture and initial weights) from ``model.config``."""
    config = dict(config)
    source = config["vocab_size"] if config["input_kind"] == "tokens" else config["d_input"]
    d_in = source if config["embedding"] == "onehot" else (config.get("d_embed") or config["hidden"])
    Layer_ = ARCHITECTURES[config["arch"]]
    stack = []
    for i in range(config["layers"]):
        stack.append(Layer_(d_in if i == 0 else config["hidden"], config["hidden"], config["members"],
                            **config["arch_params"]))
    return RecurrentModel(config, stack)


def stack(models: list[RecurrentModel]) -> RecurrentModel:
    """An ensemble whose member i is ``models[i]`` (plain models of one architecture and size)."""
    import torch
    if not models:
        raise ValueError("stack needs at least one model")
    base = {k: v for k, v in models[0].config.items() if k not in ("seed", "members")}
    for m in models:
        if m.is_ensemble or {k: v for k, v in m.config.items() if k not in ("seed", "members")} != base:
            raise ValueError("stack needs plain models (members=1) with the same configuration apart from seed")
    ens = from_config({**models[0].config, "members": len(models)})
    p = next(models[0].parameters())
    ens.to(device=p.device, dtype=p.dtype)
    states = [m.state_dict() for m in models]
    ens.load_state_dict({k: torch.stack([s[k] for s in states]) for k in states[0]})
    return ens


__all__ = ["ARCHITECTURES", "RecurrentModel", "arch_params", "from_config", "make", "member_seed", "names", "stack"]
