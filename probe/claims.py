"""Reproduced paper claims: a registry, a runner, and the report ``probe verify`` prints.

A claim is a function that trains (or loads) what it needs, measures, and says whether the
measurement agrees with the paper. It lives next to the analysis it uses::

    from probe.claims import claim, outcome

    @claim("parity-len-gen", source="van Rossem & Saxe 2025, Fig. 2",
           statement="GRUs trained on parity up to length 10 generalise to length 1000")
    def parity_length_generalisation(profile="quick", store="runs") -> Claim:
        ...
        return outcome(measured=acc, expected=">= 0.99", passed=acc >= 0.99)

The decorator registers the function under its id; calling it returns a :class:`Claim` whose id,
source and statement come from the registration. The registry is module state on purpose:
claims register themselves when their module is imported, as Dash pages do. ``probe`` itself
never imports ``analyses``; ``probe verify`` (in ``probe/cli.py``) calls ``analyses.load_all()``,
which imports every study's ``claims`` module, so their claims are here when it asks.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from probe import _io
from probe.settings import Profile, settings_for


@dataclass
class Claim:
    """The outcome of checking one claim."""

    id: str
    source: str  # paper and figure/table, e.g. "Maheswaranathan et al. 2019, Fig. 3"
    statement: str  # the claim in one sentence, as the paper makes it
    measured: Any  # what we measured (number, string or small dict)
    expected: Any  # what the paper leads us to expect, e.g. ">= 0.99" or [0.8, 1.0]
    passed: bool
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ClaimSpec:
    """A registered claim: its identity and the function that checks it."""

    id: str
    source: str
    statement: str
    fn: Callable[..., Any]

    def __call__(self, profile: Profile = "quick", store: str = "runs") -> Claim:
        return check(self, profile=profile, store=store)


_REGISTRY: dict[str, ClaimSpec] = {}


for_profile = settings_for  # the name the claims used before probe.settings; same function


def outcome(measured: Any, expected: Any, passed: bool) -> Claim:
    """What a claim function returns: a :class:`Claim` of what it measured, what the paper leads us
    to expect, and whether they agree; :func:`check` fills in the id, source and statement."""
    return Claim("", "", "", measured, expected, bool(passed))


def _as_claim(spec: ClaimSpec, out: Any) -> Claim:
    if isinstance(out, Claim):
        return dataclasses.replace(out, id=out.id or spec.id, source=out.source or spec.source,
                                   statement=out.statement or spec.statement)
    old = ((out["measured"], out["expected"], out["passed"]) if isinstance(out, dict)
           and {"measured", "expected", "passed"} <= set(out) else out if isinstance(out, tuple) and len(out) == 3
           else None)
    if old is not None:  # the forms claims returned before 0.2
        warnings.warn(f"claim {spec.id} returned a {type(out).__name__}; return probe.claims.outcome(...) "
                      "instead (other forms are refused from the next release)", DeprecationWarning, stacklevel=2)
        return Claim(spec.id, spec.source, spec.statement, old[0], old[1], bool(old[2]))
    raise TypeError(f"claim {spec.id} returned {type(out).__name__}; expected a Claim "
                    "(return probe.claims.outcome(measured, expected, passed))")


def check(spec: ClaimSpec, profile: Profile = "quick", store: str = "runs") -> Claim:
    """Run one claim; an exception inside it becomes a failed Claim that says what went wrong."""
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be quick or full; got {profile!r}")
    t0 = time.perf_counter()
    try:
        result = _as_claim(spec, spec.fn(profile=profile, store=store))
    except Exception as e:  # a broken claim must not hide the others
        result = Claim(spec.id, spec.source, spec.statement, f"error: {type(e).__name__}: {e}", None, False)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def claim(id: str, source: str, statement: str) -> Callable[[Callable], ClaimSpec]:
    """Register ``fn(profile="quick", store="runs")`` as the check of a paper claim.

    ``fn`` returns a :class:`Claim`, usually made by :func:`outcome`. Ids are unique across all
    analyses modules.
    """
    def register(fn: Callable) -> ClaimSpec:
        old = _REGISTRY.get(id)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"claim id {id!r} is registered twice: by {old.fn.__module__}.{old.fn.__qualname__} "
                             f"and {fn.__module__}.{fn.__qualname__}")
        spec = ClaimSpec(id, source, statement, fn)
        _REGISTRY[id] = spec
        return spec
    return register


def registered(only: str | list[str] | None = None) -> list[ClaimSpec]:
    """The registered claims, by id (all when ``only`` is None); unknown ids raise ``ValueError``."""
    if only is None:
        return [_REGISTRY[k] for k in sorted(_REGISTRY)]
    ids = [only] if isinstance(only, str) else list(only)
    unknown = [i for i in ids if i not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown claim {unknown[0]!r}; valid claims: {', '.join(sorted(_REGISTRY)) or 'none registered'}")
    return [_REGISTRY[i] for i in ids]


def run(specs: list[ClaimSpec], profile: Profile = "quick", store: str = "runs",
        progress: bool | None = None) -> list[Claim]:
    """Check every claim in ``specs`` in order, with a progress bar on stderr."""
    from tqdm import tqdm

    progress = sys.stderr.isatty() if progress is None else progress
    out = []
    with tqdm(specs, desc="claims", disable=not progress or not specs, leave=False, file=sys.stderr) as bar:
        for spec in bar:
            bar.set_postfix_str(spec.id)
            out.append(check(spec, profile=profile, store=store))
    return out


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return "" if v is None else str(v)


_COLUMNS = ("id", "source", "statement", "measured", "expected", "pass")


def _rows(claims: list[Claim]) -> list[list[str]]:
    return [[c.id, c.source, c.statement, _cell(c.measured), _cell(c.expected), "PASS" if c.passed else "FAIL"]
            for c in claims]


# Widest a text-table cell may be; the Markdown and JSON reports keep every value whole.
_MAX_CELL = {"source": 32, "statement": 60, "measured": 60, "expected": 48}


def _clip(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def format_table(claims: list[Claim]) -> str:
    """Fixed-width text table of the claims (an empty table when there are none).

    Long cells are cut to fit a terminal; the whole values are in the report files."""
    rows = [[_clip(v, _MAX_CELL.get(col)) for v, col in zip(r, _COLUMNS)] for r in _rows(claims)]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(_COLUMNS)]
    line = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()  # noqa: E731
    tail = [f"{sum(c.passed for c in claims)}/{len(claims)} claims pass"] if claims else ["(no claims registered)"]
    return "\n".join([line(_COLUMNS), line(["-" * w for w in widths]), *map(line, rows), *tail])


def to_markdown(claims: list[Claim], profile: Profile = "quick") -> str:
    """The claims report as a Markdown table."""
    esc = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = [f"# Claims ({profile} profile)", "",
             f"{sum(c.passed for c in claims)}/{len(claims)} claims pass.", "",
             "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in _rows(claims)]
    return "\n".join(lines) + "\n"


def write_report(claims: list[Claim], store: str = "runs", profile: Profile = "quick") -> tuple[Path, Path]:
    """Write ``<store>/claims.md`` and ``<store>/claims.json`` (atomically); return their paths."""
    from probe.runs import store_dir

    root = store_dir(store, create=True)
    md, js = root / "claims.md", root / "claims.json"
    _io.write_bytes(md, to_markdown(claims, profile).encode())
    _io.write_json(js, {"profile": profile, "created": time.time(), "claims": [c.to_dict() for c in claims]})
    return md, js
