"""The Result contract every analysis returns, the JSON conversion its cache relies on, and the
old module paths of analyses, kept importable for one release (:data:`MOVED`, :func:`forward`,
:func:`renamed`).

An analysis module ``analyses/<name>.py`` defines::

    @dataclass
    class CellsResult(Result):
        selectivity: list[float] = field(default_factory=list)   # extra fields, JSON-able
        def figures(self): return {"selectivity": go.Figure(...)}

    def analyze(model, task, **params) -> CellsResult             # one trained model
    def analyze_run(run, member=0, **params) -> CellsResult       # optional: needs the whole run

and the registry in ``analyses/__init__.py`` finds it by its file name. ``to_dict`` /
``from_dict`` round-trip through JSON (arrays and tensors become nested lists), which is what
``runs/<id>/analyses/<name>.json`` holds; nothing is pickled.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.abc
import importlib.util
import math
import sys
import types
import warnings
from dataclasses import dataclass, field
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Nested dicts/lists of plain numbers and strings from tensors, arrays and numpy scalars."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return to_jsonable(value.tolist())
    if isinstance(value, complex):
        return {"re": value.real, "im": value.imag}
    raise TypeError(f"cannot store {type(value).__name__} in a Result; convert it to numbers or lists")


@dataclass
class Result:
    """What every analysis returns.

    Attributes
    ----------
    summary : dict[str, float | str]
        Headline figures, printed by ``probe analyze`` and shown by the explorer.
    data : dict
        Anything else worth keeping (JSON-able); subclasses usually add typed fields instead.
    """

    summary: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every dataclass field."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        """Rebuild from :meth:`to_dict` output (unknown keys ignored, missing ones defaulted)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def figures(self) -> dict[str, Any]:
        """Plotly figures by name; none by default."""
        return {}

    def format_summary(self) -> str:
        """The summary as ``key  value`` lines."""
        if not self.summary:
            return "(empty summary)"
        width = max(map(len, self.summary))
        fmt = lambda v: (f"{v:.4g}" if isinstance(v, float) and not math.isnan(v) else str(v))  # noqa: E731
        return "\n".join(f"{k.ljust(width)}  {fmt(v)}" for k, v in self.summary.items())


def rises(values, tolerance: float, min_rise: float) -> bool:
    """Whether a curve rises: non-decreasing up to ``tolerance`` at each step (noise), and the
    last value above the first by at least ``min_rise`` (a real rise, not a flat line)."""
    v = list(values)
    return len(v) >= 2 and all(b >= a - tolerance for a, b in zip(v, v[1:])) and v[-1] - v[0] >= min_rise

# ---------------------------------------------------------------------------------------------
# Old module paths, kept importable for one release with a DeprecationWarning.
#
# Until the studies became packages, ``analyses/`` was a flat folder of ``_<study>_<part>.py``
# helpers. Importing one of those old paths now returns the module at its new home (the very same
# module object, so every name, public or not, is there) and warns once. To be removed in the
# release after 0.2, with everything below.

MOVED = {
    "analyses._automata": "analyses.automaton.automata",
    "analyses._automaton_claims": "analyses.automaton.claims",
    "analyses._automaton_figures": "analyses.automaton.figures",
    "analyses._fixed_points": "analyses.spectrum.fixed_point_search",
    "analyses._spectrum_figures": "analyses.spectrum.figures",
    "analyses._integration_claims": "analyses.spectrum.claims",
    "analyses._integration_train": "analyses.spectrum.training",
    "analyses.theory": None,  # the old package, now empty: only its module below moved
    "analyses.theory.integration": "analyses.spectrum.theory",
    "analyses._magnitude_data": "analyses.magnitude.data",
    "analyses._magnitude_figures": "analyses.magnitude.figures",
    "analyses._magnitude_handbuilt": "analyses.magnitude.handbuilt",
    "analyses._magnitude_onion": "analyses.magnitude.onion",
    "analyses._magnitude_sweep": "analyses.magnitude.sweep",
    "analyses._attention_construct": "analyses.attention.construct",
    "analyses._attention_figures": "analyses.attention.figures",
    "analyses._attention_layer": "analyses.attention.layer",
    "analyses._attention_recover": "analyses.attention.recover",
    "analyses._attention_study": "analyses.attention.study",
    "analyses._cells_claims": "analyses.cells.claims",
    "analyses._cells_figures": "analyses.cells.figures",
    "analyses._cells_scores": "analyses.cells.scores",
    "analyses._memory_claims": "analyses.memory.claims",
    "analyses._memory_figures": "analyses.memory.figures",
    "analyses._memory_plans": "analyses.memory.plans",
    "analyses._memory_probe": "analyses.memory.probes",
    "analyses._ngram_claims": "analyses.ngram.claims",
    "analyses._ngram_construct": "analyses.ngram.construct",
    "analyses._ngram_counts": "analyses.ngram.counts",
    "analyses._ngram_figures": "analyses.ngram.figures",
    "analyses._ngram_measure": "analyses.ngram.measure",
    "analyses._ngram_sweep": "analyses.ngram.sweep",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old path will be removed in the next release",
                  DeprecationWarning, stacklevel=3)


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module at its new path (the same object in sys.modules)."""

    def __init__(self, new: str | None):
        self.new = new

    def create_module(self, spec):
        if self.new is None:  # an old package none of whose own code is left
            return types.ModuleType(spec.name)
        _warn(spec.name, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        pass  # already executed at its new path


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        new = MOVED[fullname]
        return importlib.util.spec_from_loader(fullname, _Alias(new), is_package=new is None)


def install_moved_paths() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())


def forward(package: str, names: dict[str, str]):
    """A module ``__getattr__`` for ``package`` that still finds old ``names``, with a DeprecationWarning.

    ``names`` maps an old attribute to where it lives now: ``"module"`` (same name there) or
    ``"module:name"``. A study's ``__init__`` uses it for what it no longer re-exports: its
    claims, since a study's ``__init__`` never imports its ``claims`` module.
    """
    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, new = names[name].partition(":")
        _warn(f"{package}.{name}", f"{module}.{new or name}")
        return getattr(importlib.import_module(module), new or name)
    return __getattr__


def renamed(namespace: dict, names: dict[str, str]):
    """A module ``__getattr__`` that still answers to old ``names`` (old -> new name in the same
    module, whose globals are ``namespace``), with a DeprecationWarning."""
    module = namespace["__name__"]

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        _warn(f"{module}.{name}", f"{module}.{names[name]}")
        return namespace[names[name]]
    return __getattr__
