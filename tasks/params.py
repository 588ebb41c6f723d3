"""Typed, validated task parameters.

Every task declares its parameters as a frozen dataclass whose fields are built with
:func:`param`. :func:`build_params` turns a user's keyword arguments into an instance of that
dataclass, checking names, types (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``,
``X | None``) and numeric bounds, and raising ``ValueError`` that names the parameter, the value
and what is allowed. Cross-parameter constraints live in each task's ``_check`` and use
:func:`bad_param` for the same message shape.

:func:`stable_hash` gives the 64-bit seed material that makes ``Task.sample`` deterministic in
the task's parameters: it hashes JSON with ``hashlib``, never Python's salted ``hash()``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import types
from typing import Any, Literal, Mapping, Union, get_args, get_origin, get_type_hints

import numpy as np

__all__ = ["param", "bad_param", "build_params", "check_row", "check_value", "stable_hash", "describe_type",
           "doc_table", "MAX_INT", "MAX_ROW_NUMBERS"]

# Every int parameter has an upper bound: its own ``le`` / ``lt``, else this one (seeds and counts
# must fit the 64-bit integers numpy and torch generators take).
MAX_INT = 2**63 - 1
# Numbers one sampled row may hold, intermediates included (a teacher's running memory, a
# regular-language row of strings): 2^24, 128 MB in float64. Bounds on single parameters cannot
# catch a product of several; tasks whose rows grow with one call :func:`check_row` from ``_check``.
MAX_ROW_NUMBERS = 1 << 24


def param(default: Any, *, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None, doc: str = "") -> Any:
    """A dataclass field with a default, optional numeric bounds and a one-line description."""
    return dataclasses.field(default=default,
                             metadata={"ge": ge, "gt": gt, "le": le, "lt": lt, "doc": doc})


def bad_param(task: str, name: str, value: Any, allowed: str) -> ValueError:
    """The one error message shape for a parameter the task cannot take."""
    return ValueError(f"{task}: parameter {name!r} = {value!r} is not allowed; expected {allowed}")


def check_row(task: str, name: str, value: Any, numbers: int, what: str) -> None:
    """``bad_param`` if one row would hold more than :data:`MAX_ROW_NUMBERS` numbers.

    ``name`` and ``value`` are the parameter named in the message, ``what`` the product that
    makes ``numbers`` (e.g. ``"(n_examples + n_queries) * (d_x + d_y + 1)"``).
    """
    if numbers > MAX_ROW_NUMBERS:
        raise bad_param(task, name, value, f"a value for which one row holds at most {MAX_ROW_NUMBERS:,} numbers; "
                                           f"{what} = {numbers:,}")


def _is_optional(tp: Any) -> tuple[bool, Any]:
    """(True, X) for ``X | None`` / ``Optional[X]``, else (False, tp)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def describe_type(tp: Any) -> str:
    """Human words for a parameter type, e.g. ``"one of 'leaky', 'oscillator'"``."""
    optional, inner = _is_optional(tp)
    if optional:
        return describe_type(inner) + " or None"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if tp is tuple or get_origin(tp) is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_plural(describe_type(args[0]))}"
        return f"a tuple ({', '.join(map(describe_type, args))})" if args else "a tuple"
    if tp is dict or get_origin(tp) is dict:
        args = get_args(tp)
        return f"a dict of {_plural(describe_type(args[1]))}" if args else "a dict"
    words = {bool: "a bool", int: "an int", float: "a float", str: "a str"}
    return words.get(tp) or (f"a {tp.__name__}" if isinstance(tp, type) else str(tp))


def _plural(words: str) -> str:
    """"an int" -> "ints", for type words inside "a tuple of ..."."""
    head, _, rest = words.partition(" ")
    return f"{rest}s" if head in ("a", "an") and " " not in rest else words


def _bounds_text(meta: dict) -> str:
    parts = [f"{op} {meta[key]}" for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
             if meta.get(key) is not None]
    return " and ".join(parts)


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, value converted to the plain Python type ``tp`` names)."""
    optional, inner = _is_optional(tp)
    if optional:
        return (True, None) if value is None else _coerce(value, inner)
    if get_origin(tp) is Literal:
        for choice in get_args(tp):  # compare type too, so that True does not match 1
            if type(value) is type(choice) and value == choice:
                return True, choice
        return False, value
    if tp is tuple or get_origin(tp) is tuple:
        return _coerce_tuple(value, get_args(tp))
    if tp is dict or get_origin(tp) is dict:
        if not isinstance(value, Mapping):
            return False, value
        args = get_args(tp)
        if not args:
            return True, dict(value)
        items = [(k, *_coerce(v, args[1])) for k, v in value.items()]
        return (all(ok for _, ok, _ in items), {k: v for k, _, v in items})
    if tp is bool:
        return (True, bool(value)) if isinstance(value, (bool, np.bool_)) else (False, value)
    if isinstance(value, (bool, np.bool_)):
        return False, value  # a bool is never a number here
    if tp is int:
        return (True, int(value)) if isinstance(value, numbers.Integral) else (False, value)
    if tp is float:
        if isinstance(value, numbers.Real) and math.isfinite(float(value)):
            return True, float(value)
        return False, value
    if tp is str:
        return (True, value) if isinstance(value, str) else (False, value)
    if isinstance(tp, type) and tp not in (int, float, str):  # a class: a nested settings object, say
        return isinstance(value, tp), value
    raise TypeError(f"unsupported parameter type {tp!r}")  # a task author's mistake


def _coerce_tuple(value: Any, args: tuple) -> tuple[bool, Any]:
    """``tuple`` (any items), ``tuple[X, ...]`` or ``tuple[X, Y]``; a list is taken as a tuple."""
    if not isinstance(value, (tuple, list)):
        return False, value
    if not args:
        return True, tuple(value)
    types_ = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
    if len(types_) != len(value):
        return False, value
    items = [_coerce(v, t) for v, t in zip(value, types_)]
    return (all(ok for ok, _ in items), tuple(v for _, v in items)) if items else (True, ())


def check_value(owner: str, name: str, value: Any, tp: Any, meta: Mapping[str, Any] | None = None) -> Any:
    """``value`` checked against the type ``tp`` and the bounds in ``meta`` (see :func:`param`),
    converted to the plain Python type ``tp`` names; otherwise the ValueError of :func:`bad_param`.

    ``owner`` names what the value belongs to (a task, a settings class) in the message.
    """
    ok, out = _coerce(value, tp)
    if not ok:
        raise bad_param(owner, name, value, describe_type(tp))
    meta = dict(meta or {})
    if isinstance(out, int) and not isinstance(out, bool) and meta.get("le") is None and meta.get("lt") is None:
        meta["le"] = MAX_INT  # every int has an upper bound (see MAX_INT)
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        if ((meta.get("ge") is not None and out < meta["ge"])
                or (meta.get("gt") is not None and out <= meta["gt"])
                or (meta.get("le") is not None and out > meta["le"])
                or (meta.get("lt") is not None and out >= meta["lt"])):
            raise bad_param(owner, name, out, f"{describe_type(tp)} {_bounds_text(meta)}")
    return out


def build_params(cls: type, task: str, values: dict[str, Any]) -> Any:
    """Validate ``values`` against the parameter dataclass ``cls`` and instantiate it.

    Parameters
    ----------
    cls : type
        A dataclass whose fields were made with :func:`param`.
    task : str
        The task's name, used in error messages.
    values : dict
        User-given parameters; missing ones take their defaults.

    Raises
    ------
    ValueError
        For an unknown name (listing the valid ones), a value of the wrong type or out of bounds.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ValueError(f"{task}: unknown parameter {unknown[0]!r}; valid parameters: "
                         + ", ".join(fields))
    hints = get_type_hints(cls)
    return cls(**{name: check_value(task, name, values.get(name, f.default), hints[name], f.metadata)
                  for name, f in fields.items()})


def stable_hash(*parts: Any) -> int:
    """A 64-bit integer from JSON-serialisable ``parts``, stable across processes and machines."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def doc_table(cls: type) -> str:
    """One line per parameter, ``name: type = default  -- doc``, for docstrings and ``--help``."""
    hints = get_type_hints(cls)
    return "\n".join(f"{f.name}: {describe_type(hints[f.name])} = {f.default!r}  -- {f.metadata.get('doc', '')}"
                     for f in dataclasses.fields(cls))

