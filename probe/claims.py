"""Reproduced paper claims: a registry, a runner, and the report ``probe verify`` prints.

A claim is a function that trains (or loads) what it needs, measures, and says whether the
measurement agrees with the paper. It lives next to the analysis it uses::

    from probe.claims import claim, outcome

    @claim("parity-len-gen", source="van Rossem & Saxe 2025, Fig. 2",
           statement="GRUs trained on parity up to length 10 generalise to length 1000",
           quick_s=30, full_s=900, measured=("quick",))   # expected seconds; probe verify --list
    def parity_length_generalisation(profile="quick", store="runs") -> Claim:
        ...
        return outcome(measured=acc, expected=">= 0.99", passed=acc >= 0.99)

The decorator registers the function under its id; calling it returns a :class:`Claim` whose id,
source and statement come from the registration. The registry is module state on purpose:
claims register themselves when their module is imported, as Dash pages do. ``probe`` itself
never imports ``analyses``; ``probe verify`` (in ``probe/cli.py``) calls ``analyses.load_all()``,
which imports every study's ``claims`` module, so their claims are here when it asks.

Claims train through ``probe.train`` (or load what the store already holds, by run id) and read
analyses through ``analyses.analyze`` (cached in the run folder), so checking them a second time
on the same store trains nothing. :func:`run` with ``workers > 1`` checks the claims of different
study modules in parallel processes; the claims of one module share runs and run in order in one
process. :func:`write_report` with ``merge=True`` updates the claims it checked in an existing
report and keeps the others (``probe verify --only``).
"""
from __future__ import annotations

import dataclasses
import json
import math
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
    quick_s: float | None = None  # expected seconds on 2 CPU cores from an empty store
    full_s: float | None = None
    measured: tuple[str, ...] = ()  # the profiles whose time was measured; the others are estimates

    @property
    def group(self) -> str:
        """Claims of one group share runs and are checked in order, in one process."""
        return self.fn.__module__

    def expected_s(self, profile: Profile) -> float | None:
        """Expected seconds of ``profile`` from an empty store (None when nobody said)."""
        return self.quick_s if profile == "quick" else self.full_s

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


def claim(id: str, source: str, statement: str, quick_s: float | None = None, full_s: float | None = None,
          measured: tuple[str, ...] = ()) -> Callable[[Callable], ClaimSpec]:
    """Register ``fn(profile="quick", store="runs")`` as the check of a paper claim.

    ``fn`` returns a :class:`Claim`, usually made by :func:`outcome`. Ids are unique across all
    analyses modules. ``quick_s`` and ``full_s`` are the seconds each profile is expected to take
    on 2 CPU cores from an empty store (``probe verify --list`` prints them, the progress bar's
    ETA uses them); ``measured`` names the profiles whose time was measured rather than estimated.
    """
    for name, v in (("quick_s", quick_s), ("full_s", full_s)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0):
            raise ValueError(f"claim {id!r}: {name} must be a number of seconds >= 0; got {v!r}")
    measured = (measured,) if isinstance(measured, str) else tuple(measured)
    if any(m not in ("quick", "full") for m in measured):
        raise ValueError(f"claim {id!r}: measured must name profiles (quick, full); got {measured!r}")

    def register(fn: Callable) -> ClaimSpec:
        old = _REGISTRY.get(id)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"claim id {id!r} is registered twice: by {old.fn.__module__}.{old.fn.__qualname__} "
                             f"and {fn.__module__}.{fn.__qualname__}")
        spec = ClaimSpec(id, source, statement, fn, quick_s, full_s, measured)
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
        from probe._suggest import choices

        raise ValueError(f"unknown claim {unknown[0]!r}; {choices(unknown[0], sorted(_REGISTRY), 'claims', 'probe verify --list shows them')}")
    return [_REGISTRY[i] for i in ids]


def _weight(spec: ClaimSpec, profile: Profile) -> float:
    return spec.expected_s(profile) or 60.0  # a claim that says nothing counts as a minute


def run(specs: list[ClaimSpec], profile: Profile = "quick", store: str = "runs",
        progress: bool | str | None = None, workers: int = 1, engine: str = "local",
        address: str | None = None) -> list[Claim]:
    """Check every claim in ``specs``; the results come back in the order of ``specs``.

    ``workers > 1`` checks groups of claims (:attr:`ClaimSpec.group`: one study module, whose
    claims share runs) in that many processes at once; with a single group, the claims' own sweeps
    (:func:`probe.sweep.train_points`) get the workers instead. ``engine="ray"`` sends every
    claim's sweep to the Ray cluster at ``address`` (see :func:`probe.sweep.using`).
    ``progress`` (see :mod:`probe.progress`) shows what runs, with an ETA from the claims'
    expected times.
    """
    from probe import sweep
    from probe.progress import Progress

    sweep.EngineSettings(engine, workers, address)  # refuse a bad engine or workers before anything runs
    total = sum(_weight(s, profile) for s in specs)
    with Progress(total=total or None, desc=f"claims ({profile})", unit="s", mode=progress if specs else False) as bar:
        if workers == 1 or len({s.group for s in specs}) < 2:
            out = []
            with sweep.using(engine, workers, address):
                for spec in specs:
                    bar.stage(spec.id)
                    out.append(check(spec, profile=profile, store=store))
                    bar.update(_weight(spec, profile), note=f"{spec.id} {'PASS' if out[-1].passed else 'FAIL'}")
        else:
            out = _run_parallel(specs, profile, store, workers, bar, engine, address)
        bar.close(f"{sum(c.passed for c in out)}/{len(out)} claims pass")
    return out


def _check_group(ids: list[str], modules: list[str], profile: Profile, store: str, engine: str = "local",
                 address: str | None = None) -> list[dict]:
    # In a worker process: a forked one has the registry already, a spawned one imports the modules.
    # The cores are already split among the groups: a local sweep trains here, in this process.
    import importlib

    from probe import sweep

    if any(i not in _REGISTRY for i in ids):
        for m in modules:
            importlib.import_module(m)
    with sweep.using(engine, 1, address):
        return [check(_REGISTRY[i], profile=profile, store=store).to_dict() for i in ids]


def _run_parallel(specs: list[ClaimSpec], profile: Profile, store: str, workers: int, bar, engine: str = "local",
                  address: str | None = None) -> list[Claim]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    groups: dict[str, list[ClaimSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.group, []).append(spec)
    # Longest groups first, so the last one to finish starts early.
    order = sorted(groups.values(), key=lambda g: -sum(_weight(s, profile) for s in g))
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    done: dict[str, Claim] = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(order)), mp_context=ctx) as pool:
        running = {pool.submit(_check_group, [s.id for s in g], sorted({s.fn.__module__ for s in g}), profile,
                               store, engine, address): g for g in order}
        while running:
            bar.stage("running " + ", ".join(s.id for g in list(running.values())[:workers] for s in g))
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                group = running.pop(fut)
                try:
                    rows = [Claim(**row) for row in fut.result()]
                except Exception as e:  # noqa: BLE001 (the worker died (memory, a signal): its claims fail, the rest go on)
                    rows = [Claim(s.id, s.source, s.statement, f"error: worker: {type(e).__name__}: {e}", None, False)
                            for s in group]
                done.update((c.id, c) for c in rows)
                bar.update(sum(_weight(s, profile) for s in group),
                           note=", ".join(f"{c.id} {'PASS' if c.passed else 'FAIL'}" for c in rows))
    return [done[s.id] for s in specs]


def format_list(specs: list[ClaimSpec]) -> str:
    """One line per claim: id, expected quick and full times (``~`` marks an estimate), statement."""
    from probe.progress import duration

    def t(spec: ClaimSpec, profile: str) -> str:
        v = spec.expected_s(profile)
        return "?" if v is None else ("" if profile in spec.measured else "~") + duration(v)

    rows = [(s.id, t(s, "quick"), t(s, "full"), _clip(s.statement, 70)) for s in specs]
    head = ("id", "quick", "full", "statement")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    line = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()
    known = lambda key: sum(getattr(s, key) or 0 for s in specs)
    tail = (f"{len(specs)} claims; expected in all: quick {duration(known('quick_s'))}, full {duration(known('full_s'))}"
            " on 2 CPU cores from an empty store (~: estimated, not measured; a second run on the same store "
            "loads the trained runs)")
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows), tail])


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


def read_report(store: str = "runs") -> tuple[str | None, list[Claim]]:
    """The profile and claims of ``<store>/claims.json`` (``(None, [])`` when there is none or it is unreadable)."""
    from probe.runs import store_dir

    path = store_dir(store) / "claims.json"
    try:
        data = _io.read_json(path)
        fields = {f.name for f in dataclasses.fields(Claim)}
        return data.get("profile"), [Claim(**{k: v for k, v in c.items() if k in fields}) for c in data["claims"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, []


def write_report(claims: list[Claim], store: str = "runs", profile: Profile = "quick",
                 merge: bool = False) -> tuple[Path, Path]:
    """Write ``<store>/claims.md`` and ``<store>/claims.json`` (atomically); return their paths.

    ``merge=True`` keeps the claims of an existing report of the same profile that ``claims`` does
    not hold, replacing those it does (in id order), so checking one claim does not shrink the report.
    """
    from probe.runs import store_dir

    if merge:
        old_profile, old = read_report(store)
        if old_profile == profile:
            new = {c.id: c for c in claims}
            claims = sorted([c for c in old if c.id not in new] + list(new.values()), key=lambda c: c.id)
    root = store_dir(store, create=True)
    md, js = root / "claims.md", root / "claims.json"
    _io.write_bytes(md, to_markdown(claims, profile).encode())
    _io.write_json(js, {"profile": profile, "created": time.time(), "claims": [c.to_dict() for c in claims]})
    return md, js
