"""Analyses: one package per study, all behind one Result contract (see ``analyses.base``).

::

    import analyses
    analyses.names()                                     # every analysis, found without importing one
    result = analyses.analyze("cells", run, member=0)    # computed once, then read from the cache
    result.summary, result.to_dict(), result.figures()
    analyses.cells.analyze(model, task)                  # the study's own entry point, on any model

A study is a package ``analyses/<study>/``: ``analysis.py`` (its Result and ``analyze``),
``figures.py`` (plotly builders of plain data), helpers named for what they hold, ``claims.py``
(the paper's claims, registered with :mod:`probe.claims` when imported) and ``NOTES.md`` (what
was measured, and the settings tried). Inside a study imports run one way, helpers and figures ←
analysis ← claims; the study's ``__init__`` re-exports its public names and never imports
``claims``. A study is an analysis when its ``__init__`` exports ``analyze(model, task, ...)``
and optionally ``analyze_run(run, member=0, ...)`` (for analyses that need the whole run).
Results are cached as JSON in ``<run>/analyses/<name>.json`` (``<name>.m<member>[.<params
hash>].json`` for other members or parameters) with the checkpoint step they were computed at, so
a resumed run is analysed again. Functions registered with :func:`register` join the studies.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
from pathlib import Path
from typing import Any, Callable

from analyses.base import Result, install_moved_paths, to_jsonable
from probe import _io, _safepath
from probe.runs import Run, open_run

__all__ = ["Result", "analyze", "load_all", "names", "register", "studies"]

install_moved_paths()  # old module paths (analyses._ngram_sweep, ...) still import, with a warning
_REGISTERED: dict[str, Callable] = {}  # name -> analyze_run(run, member=0, **params); see register


def _exports(package: str, name: str) -> bool:
    """Whether ``analyses/<package>/__init__.py`` binds ``name`` at top level (read, not imported)."""
    init = Path(__path__[0]) / package / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == name for a in node.names):
            return True
        if isinstance(node, (ast.FunctionDef, ast.Assign)) and name in (
                [node.name] if isinstance(node, ast.FunctionDef) else [getattr(t, "id", None) for t in node.targets]):
            return True
    return False


def studies() -> list[str]:
    """Every study package (analyses and others, such as ``lsrl``), by name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg and not m.name.startswith("_"))


def _discovered() -> list[str]:
    return [s for s in studies() if _exports(s, "analyze")]


def names() -> list[str]:
    """Every analysis, by name: the studies that export ``analyze`` (found without importing them),
    and the functions registered with :func:`register`."""
    return sorted(set(_discovered()) | set(_REGISTERED))


def register(name: str, fn: Callable | None = None):
    """Register ``fn(run, member=0, **params) -> Result`` as analysis ``name`` (usable as a decorator).

    For analyses that do not live in a study of their own (plugins, tests).
    """
    def add(f: Callable) -> Callable:
        _REGISTERED[name] = f
        return f
    return add(fn) if fn is not None else add


def _runner(name: str) -> tuple[Callable, bool]:
    """The function computing ``name`` and whether it takes the run (True) or (model, task)."""
    if name in _REGISTERED:
        return _REGISTERED[name], True
    if name not in _discovered():
        raise ValueError(f"unknown analysis {name!r}; valid analyses: {', '.join(names()) or 'none yet'}")
    module = importlib.import_module(f"analyses.{name}")
    if hasattr(module, "analyze_run"):
        return module.analyze_run, True
    return module.analyze, False


def _check_params(name: str, fn: Callable, params: dict) -> None:
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    fixed = {"run", "member", "model", "task"}
    valid = [k for k in sig.parameters if k not in fixed]
    for key in params:
        if key not in valid:
            raise ValueError(f"unknown parameter {key!r} for analysis {name!r}; valid: {', '.join(valid) or 'none'}")


def _cache_name(name: str, member: int, params: dict) -> str:
    if member == 0 and not params:
        return f"{name}.json"
    tag = f"{name}.m{member}"
    if params:
        blob = json.dumps(to_jsonable(params), sort_keys=True).encode()
        tag += "." + hashlib.sha256(blob).hexdigest()[:8]
    return tag + ".json"


def _result_class(path: str) -> type[Result]:
    # Only classes inside this package are rebuilt from a cache file: JSON never names code to run elsewhere.
    module, _, cls_name = path.rpartition(".")
    if module == "analyses" or module.startswith("analyses."):
        try:
            cls = getattr(importlib.import_module(module), cls_name)
            if isinstance(cls, type) and issubclass(cls, Result):
                return cls
        except (ImportError, AttributeError):
            pass
    return Result
def analyze(name: str, run, member: int = 0, recompute: bool = False, **params: Any) -> Result:
    """Load the cached result of analysis ``name`` on one member of ``run``, or compute and cache it.

    Parameters
    ----------
    name : one of :func:`names`.
    run : probe.Run (or a run path / id, opened with ``probe.open_run``).
    member : which ensemble member.
    recompute : ignore the cache.
    **params : passed on to the analysis.
    """
    fn, takes_run = _runner(name)
    _check_params(name, fn, params)
    run = run if isinstance(run, Run) else open_run(run)
    members = int(run.config["model"].get("members", 1))
    if not isinstance(member, int) or not 0 <= member < members:
        raise ValueError(f"member {member!r} out of range: run {run.id} has members 0..{members - 1}")
    steps = run.checkpoint_steps
    step = steps[-1] if steps else None
    try:
        key_params = json.loads(json.dumps(to_jsonable(params)))
    except TypeError:
        key_params = None  # not JSON-able: compute, do not cache
    # The cache folder and files go through probe._safepath: a link, FIFO or device there is
    # refused (never followed), and reads are bounded.
    folder = _safepath.run_subdir(run.path, "analyses")
    path = folder / _cache_name(name, member, key_params or {})
    if key_params is not None and not recompute and os.path.lexists(path):
        try:
            cached = _io.read_json(path)
            if (cached.get("step"), cached.get("member"), cached.get("params")) == (step, member, key_params) \
                    and isinstance(cached.get("result"), dict):
                result = _result_class(str(cached.get("class", ""))).from_dict(cached["result"])
                if isinstance(result.summary, dict):
                    return result
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # unreadable cache: compute again
    result = fn(run, member=member, **params) if takes_run else fn(run.model(member), run.task(), **params)
    if not isinstance(result, Result):
        raise TypeError(f"analysis {name!r} returned {type(result).__name__}, not a Result")
    if key_params is not None:
        _safepath.clean_stale_tmp(_safepath.run_subdir(run.path, "analyses", create=True), older_than_s=60.0)
        _io.write_json(path, {"analysis": name, "member": member, "params": key_params, "step": step,
                              "class": f"{type(result).__module__}.{type(result).__qualname__}",
                              "result": result.to_dict()})
    return result


def load_all() -> list[str]:
    """Import every study's ``claims`` module (so that the claims they define register with
    :mod:`probe.claims`); returns the analyses' names."""
    for study in studies():
        if importlib.util.find_spec(f"analyses.{study}.claims") is not None:
            importlib.import_module(f"analyses.{study}.claims")
    return _discovered()


def __getattr__(name: str) -> Any:
    # analyses.cells works without an explicit import, as probe.models does.
    if name in studies():
        return importlib.import_module(f"analyses.{name}")
    raise AttributeError(f"module 'analyses' has no attribute {name!r}")
