"""Per-profile settings of a study or a claim: one frozen dataclass type, checked like task parameters.

A study declares what its ``quick`` and ``full`` profiles train and measure as a subclass of
:class:`Settings`, and the two profiles as one :func:`profiles` table::

    @dataclass(frozen=True)
    class ParitySettings(Settings):
        members: int = setting(4, ge=1, doc="seeds trained at once")
        lr: float = setting(3e-3, gt=0)
        optimizer: Literal["adamw", "sgd"] = "adamw"

    SETTINGS = profiles(quick=ParitySettings(), full=ParitySettings(lr=2e-3, optimizer="sgd"))
    SETTINGS["quick"].lr                  # 0.003
    settings_for(SETTINGS, "fast")        # ValueError: unknown profile 'fast'; valid profiles: quick, full
    ParitySettings(members=0)             # ValueError: ParitySettings: parameter 'members' = 0 is not
                                          #   allowed; expected an int >= 1

Every field is checked when an instance is made (also by ``replace``), with the type words and
error shape of :mod:`tasks.params`: ``int``, ``float`` (finite), ``bool``, ``str``,
``Literal[...]``, ``X | None``, ``tuple[X, ...]``, ``dict`` and nested classes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Mapping, TypeVar, get_type_hints

from tasks.params import check_value

Profile = Literal["quick", "full"]
PROFILES: tuple[str, ...] = ("quick", "full")

S = TypeVar("S", bound="Settings")


def setting(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, doc: str = "", factory: Any = dataclasses.MISSING) -> Any:
    """A settings field with optional numeric bounds and a one-line description (``factory`` for
    mutable defaults such as dicts)."""
    return dataclasses.field(default=default, default_factory=factory,
                             metadata={"ge": ge, "gt": gt, "le": le, "lt": lt, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Base of every study's per-profile settings; subclass it as a frozen dataclass."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        owner = type(self).__name__
        for f in dataclasses.fields(self):
            value = check_value(owner, f.name, getattr(self, f.name), hints[f.name], f.metadata)
            object.__setattr__(self, f.name, value)  # the converted value (a list given for a tuple, ...)

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes`` applied and checked; an unknown name raises ValueError naming the valid ones."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = [k for k in changes if k not in names]
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown parameter {unknown[0]!r}; valid parameters: "
                             + ", ".join(names))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (nested settings included)."""
        return dataclasses.asdict(self)


def profiles(**by_profile: S) -> dict[str, S]:
    """The table ``{"quick": ..., "full": ...}`` of one study, checked: both profiles, one Settings type."""
    missing = [p for p in PROFILES if p not in by_profile]
    unknown = [p for p in by_profile if p not in PROFILES]
    if missing or unknown:
        raise ValueError(f"profiles needs exactly {', '.join(PROFILES)}; "
                         + (f"missing {missing[0]!r}" if missing else f"unknown {unknown[0]!r}"))
    kinds = {type(s) for s in by_profile.values()}
    if len(kinds) != 1 or not issubclass(kinds.pop(), Settings):
        raise TypeError("every profile must be an instance of the same Settings subclass")
    return {p: by_profile[p] for p in PROFILES}


def settings_for(table: Mapping[str, S], profile: str) -> S:
    """``table[profile]``, or a ValueError naming the valid profiles."""
    if profile not in table:
        raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(table)}")
    return table[profile]


__all__ = ["PROFILES", "Profile", "Settings", "profiles", "setting", "settings_for"]
