"""Recurrent models with TransformerLens hooks, single or as ensembles.

    >>> import probe, tasks
    >>> model = probe.models.make("gru", tasks.make("parity"), hidden=64, members=4, seed=0)
    >>> logits, cache = model.run_with_cache(inputs)        # (M, B, T, 2), cache[...] (M, B, T, D)

Architectures and their hooks (besides ``hook_embed``, ``layers.{i}.hook_h`` and ``hook_logits``):

    gru     hook_r hook_z hook_n                  lstm   hook_i hook_f hook_g hook_o hook_c
    elman   hook_pre                              linear hook_pre
    lru     hook_a hook_b                         hawk   hook_a hook_gate_x hook_gate_out
    mingru  hook_z hook_h_tilde                   minlstm hook_f hook_i hook_h_tilde
    gru_diag hook_z hook_r hook_n                 lstm_diag hook_f hook_g hook_c hook_o
    linattn  hook_q hook_k hook_v [hook_alpha] hook_S     (hook_h: the state's readout)
    deltanet hook_q hook_k hook_v hook_beta [hook_alpha] hook_S
    based    hook_conv hook_q hook_k hook_v hook_S
    mamba    hook_x hook_dt hook_B hook_C hook_S hook_gate

Matrix-state layers (linattn, deltanet, based, mamba; [hook_conv] where ``conv`` > 0) carry
``hook_S``, the state flattened per step, and their ``hook_h`` is the state's readout;
``run_with_cache`` caches hook_S only where ``names_filter`` names it. ``model.state_size()``
counts the numbers every architecture carries from one step to the next.
"""
from __future__ import annotations

import inspect
import math
import typing
from typing import Any, Literal, Mapping, Optional

from probe import _limits
from probe.models.base import Layer, member_seed
from probe.models.diag import GRUDiagLayer, LSTMDiagLayer
from probe.models.elman import ElmanLayer, LinearLayer
from probe.models.gru import GRULayer
from probe.models.hawk import HawkLayer
from probe.models.based import BasedLayer
from probe.models.deltanet import DeltaNetLayer
from probe.models.linattn import LinAttnLayer
from probe.models.mamba import MambaLayer
from probe.models.lru import LRULayer
from probe.models.lstm import LSTMLayer
from probe.models.mingru import MinGRULayer
from probe.models.minlstm import MinLSTMLayer
from probe.models.model import RecurrentModel

ARCHITECTURES: dict[str, type[Layer]] = {
    "gru": GRULayer,
    "lstm": LSTMLayer,
    "elman": ElmanLayer,
    "linear": LinearLayer,
    "lru": LRULayer,
    "hawk": HawkLayer,
    "linattn": LinAttnLayer,
    "deltanet": DeltaNetLayer,
    "mamba": MambaLayer,
    "based": BasedLayer,
    "mingru": MinGRULayer,
    "minlstm": MinLSTMLayer,
    "gru_diag": GRUDiagLayer,
    "lstm_diag": LSTMDiagLayer,
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
    if isinstance(value, bool) or value not in choices or not isinstance(value, str) and \
            any(isinstance(c, str) for c in choices):
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(str, choices))}")


def _check_positive(name: str, value: Any, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be a positive integer <= {high}, got {value!r}")
    return value


# -- architecture parameters: types from the constructor's signature, ranges from PARAM_RANGES --

def _interval(text: str) -> tuple[str, str, str, str]:
    """``"[r_min, 1)"`` -> ("[", "r_min", "1", ")"): a bound is a number, ``inf`` or another parameter."""
    lo, hi = (part.strip() for part in text[1:-1].split(","))
    return text[0], lo, hi, text[-1]


def _bound(token: str, values: Mapping[str, Any]) -> tuple[float, str]:
    if token in values:
        return float(values[token]), f"{token} = {values[token]!r}"
    return float(token), token


def _in_range(value: float, spec: str, values: Mapping[str, Any]) -> tuple[bool, str]:
    left, lo, hi, right = _interval(spec)
    (low, low_text), (high, high_text) = _bound(lo, values), _bound(hi, values)
    ok = (value >= low if left == "[" else value > low) and (value <= high if right == "]" else value < high)
    return ok, f"{left}{low_text}, {high_text}{right}"


def _check_value(arch: str, key: str, value: Any, hint: Any) -> None:
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    if optional:
        if value is None:
            return
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is Literal:
        _check_choice(f"{arch} {key}", value, typing.get_args(hint))
    elif hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{arch} parameter {key} must be true or false, got {value!r}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{arch} parameter {key} must be an integer{' or null' if optional else ''}, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{arch} parameter {key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{arch} parameter {key} must be a finite number, got {value!r}")


def _check_arch_params(arch: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Known names, types from the layer's signature (NaN and infinities refused), and the
    ranges its class declares in ``PARAM_RANGES``; ``ValueError`` naming the value otherwise."""
    defaults = arch_params(arch)
    layer = ARCHITECTURES[arch]
    hints = typing.get_type_hints(layer.__init__)
    for key, value in params.items():
        if key not in defaults:
            raise ValueError(f"unknown parameter {key!r} for arch {arch!r}; valid: {', '.join(defaults) or 'none'}")
        _check_value(arch, key, value, hints.get(key))
    values = {**defaults, **params}
    for key, spec in getattr(layer, "PARAM_RANGES", {}).items():
        value = values[key]
        if value is None:
            continue
        ok, allowed = _in_range(value, spec, values)
        if not ok:
            raise ValueError(f"{arch} parameter {key} must lie in {allowed}, got {value!r}")
    for key in getattr(layer, "OMIT_DEFAULTS", ()):  # how, not what, it computes: run ids stay as they were
        if values[key] == defaults[key]:
            del values[key]
    return values


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


# -- memory ---------------------------------------------------------------------------------

def parameter_count(config: Mapping[str, Any]) -> int:
    """Numbers in one member's parameters, counted from shapes (nothing is allocated).

    The layers are built on PyTorch's ``meta`` device, where a tensor has a shape and no storage.
    """
    import torch

    source = config["vocab_size"] if config["input_kind"] == "tokens" else config["d_input"]
    hidden = config["hidden"]
    d_in = source if config["embedding"] == "onehot" else (config.get("d_embed") or hidden)
    embed = 0 if config["embedding"] == "onehot" else source * d_in
    Layer_ = ARCHITECTURES[config["arch"]]
    try:
        with torch.device("meta"):
            first = sum(p.numel() for p in Layer_(d_in, hidden, 1, **config["arch_params"]).parameters())
            rest = sum(p.numel() for p in Layer_(hidden, hidden, 1, **config["arch_params"]).parameters()) \
                if config["layers"] > 1 else 0
    except (RuntimeError, OverflowError):  # a shape whose size does not fit in 64 bits
        raise ValueError(f"a {config['arch']} model with hidden={hidden} and input width {d_in} is too large "
                         f"to build: its weights' sizes overflow") from None
    return embed + first + (config["layers"] - 1) * rest + config["d_output"] * (hidden + 1)


def step_numbers(config: Mapping[str, Any]) -> int:
    """Numbers one member computes per row and time step: its input to the first layer, every
    hook of every layer (states and gates) and its outputs. Counted from shapes, like
    :func:`parameter_count`."""
    import torch
    from transformer_lens.hook_points import HookPoint

    source = config["vocab_size"] if config["input_kind"] == "tokens" else config["d_input"]
    hidden = config["hidden"]
    d_in = source if config["embedding"] == "onehot" else (config.get("d_embed") or hidden)
    total = d_in + config["d_output"]
    Layer_ = ARCHITECTURES[config["arch"]]
    with torch.device("meta"):
        for i, width_in in enumerate([d_in] + [hidden] * min(config["layers"] - 1, 1)):
            layer = Layer_(width_in, hidden, 1, **config["arch_params"])
            widths = sum(layer.width(n) for n, m in layer.named_modules()
                         if isinstance(m, HookPoint) and not getattr(m, "opt_in", False))
            total += widths * (1 if i == 0 else config["layers"] - 1)
    return total


def _check_memory(config: Mapping[str, Any]) -> None:
    n = parameter_count(config) * config["members"]
    sizes = ", ".join(f"{k}={config[k]}" for k in ("hidden", "layers", "members", "d_embed") if config.get(k) is not None)
    _limits.check_fits(f"a {config['arch']} model with {sizes}", {f"{n:,} float32 weights": 4 * n})


def check_config(config: Any) -> dict[str, Any]:
    """Validate a model config (``model.config``, or ``config.model`` of a stored run) before
    anything is built: types, ranges, caps and the memory its weights take."""
    if not isinstance(config, Mapping):
        raise ValueError(f"a model config must be a mapping, got {type(config).__name__}")
    config = dict(config)
    missing = [k for k in ("arch", "hidden", "layers", "members", "input_kind", "d_output", "embedding",
                           "arch_params") if k not in config]
    if missing:
        raise ValueError(f"model config lacks {', '.join(missing)}")
    _check_choice("arch", config["arch"], names())
    _check_positive("hidden", config["hidden"])
    _check_positive("layers", config["layers"], _limits.MAX_LAYERS)
    _check_positive("members", config["members"], _limits.MAX_MEMBERS)
    _limits.check_int("seed", config.get("seed", 0), 0, _limits.MAX_SEED)
    _check_choice("embedding", config["embedding"], EMBEDDINGS)
    if config.get("d_embed") is not None:
        _check_positive("d_embed", config["d_embed"])
    if not isinstance(config["arch_params"], Mapping):
        raise ValueError(f"arch_params must be a mapping, got {config['arch_params']!r}")
    config.update(_dims(config))
    config["arch_params"] = _check_arch_params(config["arch"], config["arch_params"])
    _check_memory(config)
    return config


def make(arch: str, task_or_dims: Any, hidden: int = 64, layers: int = 1, members: int = 1, seed: int = 0,
         embedding: Literal["learned", "onehot"] = "learned", d_embed: Optional[int] = None,
         **arch_params: Any) -> RecurrentModel:
    """Build a model for a task (``from_config(make_config(...))``).

    Parameters
    ----------
    arch : one of :func:`names`.
    task_or_dims : a Task, or a dict ``{"input_kind": "tokens", "vocab_size": V, "d_output": K}``
        / ``{"input_kind": "vectors", "d_input": D, "d_output": K}``.
    hidden, layers : state width and number of stacked recurrent layers (at most 256).
    members : M > 1 builds an ensemble: every parameter gets a leading member axis and outputs
        and hooks are (M, B, T, ...); member i is initialised from ``member_seed(seed, i)``. At
        most 4096.
    seed : an integer in 0..2**63 - 1.
    embedding : "learned" (an embedding of size ``d_embed``, default ``hidden``, or a learned
        linear map of vector inputs) or "onehot" (tokens enter one-hot, vectors as they are).
    **arch_params : architecture options, see :func:`arch_params`; their ranges are the layer
        class's ``PARAM_RANGES``.

    Raises
    ------
    ValueError
        For an unknown choice, a value of the wrong type or out of range (NaN and infinities
        included), or a model whose weights would not fit in memory (the message says how much).
    """
    return from_config(make_config(arch, task_or_dims, hidden, layers, members, seed, embedding, d_embed,
                                   **arch_params))


def make_config(arch: str, task_or_dims: Any, hidden: int = 64, layers: int = 1, members: int = 1, seed: int = 0,
                embedding: Literal["learned", "onehot"] = "learned", d_embed: Optional[int] = None,
                **arch_params: Any) -> dict[str, Any]:
    """The checked ``model.config`` that :func:`make` builds, without building it (to check what
    a run would need before anything is allocated)."""
    _check_choice("arch", arch, names())
    config = {
        "arch": arch,
        "hidden": _check_positive("hidden", hidden),
        "layers": _check_positive("layers", layers, _limits.MAX_LAYERS),
        "members": _check_positive("members", members, _limits.MAX_MEMBERS),
        "seed": _limits.check_int("seed", seed, 0, _limits.MAX_SEED),
        **_dims(task_or_dims),
        "embedding": embedding,
        "d_embed": None if d_embed is None else _check_positive("d_embed", d_embed),
        "arch_params": _check_arch_params(arch, arch_params),
    }
    _check_choice("embedding", embedding, EMBEDDINGS)
    return check_config(config)


def from_config(config: Mapping[str, Any]) -> RecurrentModel:
    """Rebuild a model (architecture and initial weights) from ``model.config``, checked first
    (:func:`check_config`), so a damaged stored config is a ``ValueError``, never a crash."""
    config = check_config(config)
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


__all__ = ["ARCHITECTURES", "RecurrentModel", "arch_params", "check_config", "from_config", "make", "member_seed",
           "make_config", "names", "parameter_count", "stack", "step_numbers"]
