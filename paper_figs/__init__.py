"""Paper figures: one module per figure, each with ``make(out_dir, profile="quick") -> list[Path]``.

``probe figs [--out DIR] [--only NAME] [--profile quick|full]`` regenerates them all. Every
figure is written three ways by :func:`save`: PNG and SVG (static, through kaleido and the
system chromium) and a self-contained interactive HTML page. Figure modules are found by file
name, so adding one is adding a file.
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

from probe.settings import Profile  # noqa: F401  (the figure modules' profile type)

__all__ = ["check_name", "make", "make_all", "names", "save"]


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
    """Write a plotly figure as ``<name>.png``, ``<name>.svg`` and ``<name>.html`` in ``out_dir``.

    Static export goes through kaleido, which drives the system chromium
    (``apt-get install chromium``); the HTML embeds plotly.js so it opens offline.
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
    return paths


def make(name: str, out_dir: str | Path = "figs_out", profile: Profile = "quick") -> list[Path]:
    """Make one figure; returns the files written."""
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be quick or full; got {profile!r}")
    module = importlib.import_module(f"paper_figs.{check_name(name)}")
    with _one_browser():
        return module.make(out_dir, profile=profile)


def make_all(which: list[str] | None = None, out_dir: str | Path = "figs_out", profile: Profile = "quick",
             progress: bool | None = None) -> list[Path]:
    """Make every figure in ``which`` (default all) with a progress bar; returns the files written."""
    from tqdm import tqdm

    which = names() if which is None else [check_name(n) for n in which]
    progress = sys.stderr.isatty() if progress is None else progress
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be quick or full; got {profile!r}")
    written: list[Path] = []
    with _one_browser(), tqdm(which, desc="figures", disable=not progress, leave=False, file=sys.stderr) as bar:
        for name in bar:
            bar.set_postfix_str(name)
            written += importlib.import_module(f"paper_figs.{name}").make(out_dir, profile=profile)
    return written
