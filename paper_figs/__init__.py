"""Paper figures: one module per figure, each with ``make(out_dir, profile="quick", store=...) -> list[Path]``.

``probe figs [--out DIR] [--store DIR] [--only NAME] [--profile quick|full]`` regenerates them
all. Every figure is written four ways by :func:`save`: PNG and SVG (static, through kaleido
and the system chromium), a self-contained interactive HTML page, and plotly's own JSON
(``plotly.io.read_json`` opens it again). Figure modules are found by file name, so adding one
is adding a file.

Figures that train models train them into a run store and read them back from there next time:
pass the store of ``probe demo`` or ``probe verify`` (``--store runs``) to reuse their runs.
:func:`problems` lists what makes a figure show nothing (one colour, flat lines, no title); the
tests hold every quick figure to it.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
import warnings
from pathlib import Path

from probe.settings import Profile

__all__ = ["check_name", "default_store", "make", "make_all", "names", "problems", "save"]


def names() -> list[str]:
    """Every figure module (public files in this package), sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def check_name(name: str) -> str:
    """``name`` if it is a figure, else ``ValueError`` listing the figures."""
    if name not in names():
        raise ValueError(f"unknown figure {name!r}; valid figures: {', '.join(names()) or 'none'}")
    return name


@contextlib.contextmanager
def _one_browser():
    # kaleido starts chromium for every image (seconds each) unless a server is kept open.
    try:
        from kaleido import start_sync_server, stop_sync_server
    except ImportError:  # kaleido < 1: no server, each export pays the start-up
        yield
        return
    start_sync_server(silence_warnings=True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            yield
    finally:
        stop_sync_server(silence_warnings=True)


def save(fig, out_dir: str | Path, name: str, width: int = 900, height: int = 500) -> list[Path]:
    """Write a plotly figure as ``<name>.png``, ``.svg``, ``.html`` and ``.json`` in ``out_dir``.

    Static export goes through kaleido, which drives the system chromium
    (``apt-get install chromium``); the HTML embeds plotly.js so it opens offline; the JSON is
    the figure itself (data and layout), for ``plotly.io.read_json`` and for :func:`problems`.
    """
    from probe import _io

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        data = fig.to_image(format=ext, width=width, height=height, scale=2 if ext == "png" else 1)
        _io.write_bytes(out / f"{name}.{ext}", data)
        paths.append(out / f"{name}.{ext}")
    _io.write_bytes(out / f"{name}.html", fig.to_html(include_plotlyjs=True, full_html=True).encode())
    paths.append(out / f"{name}.html")
    _io.write_bytes(out / f"{name}.json", fig.to_json().encode())
    paths.append(out / f"{name}.json")
    return paths


def default_store(out_dir: str | Path) -> Path:
    """The run store ``probe figs`` uses unless told: a folder of its own beside ``out_dir``
    (``figs_out`` -> ``figs_out_runs``), so that figures never write into another store."""
    out = Path(out_dir)
    return out.parent / f"{out.name}_runs"


def _array(values):
    """A trace's numbers as a float array; plotly's JSON stores arrays as base64 (``bdata``)."""
    import base64

    import numpy as np

    if values is None:
        return np.zeros(0)
    if isinstance(values, dict) and "bdata" in values:
        a = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values.get("dtype", "f8")))
        return a.astype(float)
    return np.asarray([v for v in np.asarray(values, dtype=object).ravel() if v is not None], dtype=float)


def _levels(values, lo=None, hi=None) -> int:
    """Distinct finite values once clipped to the colour range [lo, hi] (where set)."""
    import numpy as np

    a = _array(values)
    a = a[np.isfinite(a)]
    if lo is not None or hi is not None:
        a = np.clip(a, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    return len(np.unique(np.round(a, 12)))


def _flat(values) -> bool:
    import numpy as np

    try:
        a = _array(values)
    except (TypeError, ValueError):  # categorical axis
        return False
    a = a[np.isfinite(a)]
    return len(a) >= 2 and bool(np.ptp(a) <= 1e-12 * max(1.0, float(np.abs(a).max())))


def _array_or_list(values):
    try:
        return _array(values)
    except (TypeError, ValueError):
        return list(values)


def problems(fig) -> list[str]:
    """What keeps ``fig`` (a plotly figure or its dict) from showing anything; empty when fine.

    A figure shows nothing when it has no title saying what it shows, when a heatmap has a
    single colour level (constant data, or a colour range that clips it all to one end), or
    when it has data lines and every one of them is flat (dashed and dotted reference lines
    may be flat; the solid data lines may not all be).
    """
    import plotly.graph_objects as go

    fig = fig if isinstance(fig, go.Figure) else go.Figure(fig)
    found = []
    title = fig.layout.title.text if fig.layout.title else None
    if not title or not str(title).strip():
        found.append("no title")
    solid = []
    for i, trace in enumerate(fig.data):
        label = f"trace {i} ({trace.type}{', ' + trace.name if getattr(trace, 'name', None) else ''})"
        if trace.type == "heatmap":
            lo = trace.zmin if trace.zauto is False or trace.zmin is not None else None
            hi = trace.zmax if trace.zauto is False or trace.zmax is not None else None
            if _levels(trace.z, lo, hi) < 2:
                found.append(f"{label} has one colour level")
        elif trace.type == "scatter" and trace.y is not None and len(_array_or_list(trace.y)) >= 3 \
                and "lines" in (trace.mode or "lines") and (trace.line.dash in (None, "solid")):
            solid.append(_flat(trace.y))
    if solid and all(solid):
        found.append(f"all {len(solid)} solid lines are flat")
    return found


def _make_one(name: str, out_dir, profile: Profile, store) -> list[Path]:
    module = importlib.import_module(f"paper_figs.{name}")
    if "store" in inspect.signature(module.make).parameters:
        return module.make(out_dir, profile=profile, store=str(store))
    return module.make(out_dir, profile=profile)  # a figure that trains nothing


def make(name: str, out_dir: str | Path = "figs_out", profile: Profile = "quick",
         store: str | Path | None = None) -> list[Path]:
    """Make one figure, training (or reading back) its runs in ``store`` (default
    :func:`default_store` of ``out_dir``); returns the files written."""
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be quick or full; got {profile!r}")
    name = check_name(name)
    with _one_browser():
        return _make_one(name, out_dir, profile, default_store(out_dir) if store is None else store)


def make_all(which: list[str] | None = None, out_dir: str | Path = "figs_out", profile: Profile = "quick",
             progress: bool | None = None, store: str | Path | None = None) -> list[Path]:
    """Make every figure in ``which`` (default all), runs in ``store`` (default
    :func:`default_store` of ``out_dir``); returns the files written.

    On a terminal a progress bar names the figure being made; otherwise one line per figure
    (its name and seconds) goes to stderr.
    """
    from probe.progress import track

    which = names() if which is None else [check_name(n) for n in which]
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be quick or full; got {profile!r}")
    store = default_store(out_dir) if store is None else store
    written: list[Path] = []
    with _one_browser():
        for name in track(which, desc="figures", label=lambda n: f"figure {n}", unit="figure", mode=progress):
            written += _make_one(name, out_dir, profile, store)
    return written
