"""Paper figures: every module makes PNG, SVG and interactive HTML in the quick profile."""
from __future__ import annotations

import shutil
from pathlib import Path

import plotly.io
import pytest
import torch

import paper_figs
from probe.cli import main


def _has_browser() -> bool:
    if shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome"):
        return True
    try:
        from choreographer.utils import get_browser_path  # kaleido's own chrome, if downloaded

        return bool(get_browser_path())
    except Exception:
        return False


def test_every_figure_module_has_make():
    assert "training_curves" in paper_figs.names()
    for name in paper_figs.names():
        module = __import__(f"paper_figs.{name}", fromlist=["make"])
        assert callable(module.make)


# Figures whose quick profile trains a claim's whole quick sweep (many minutes on 2 cores): they
# run with the slow checks, so that the default suite stays within its budget.
SLOW = {"recall_frontier", "onion_size"}


@pytest.mark.skipif(not _has_browser(), reason="static export needs chromium (apt-get install chromium)")
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in paper_figs.names()])
def test_probe_figs_writes_png_svg_and_html(tmp_path, capsys, name):
    before_runs = sorted((Path.cwd() / "runs").iterdir()) if (Path.cwd() / "runs").is_dir() else []
    before = torch.get_num_threads()
    assert main(["figs", "--only", name, "--out", str(tmp_path), "--profile", "quick"]) == 0
    torch.set_num_threads(before)
    png, svg, html, data = (tmp_path / f"{name}.{ext}" for ext in ("png", "svg", "html", "json"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:2000]
    assert b"plotly" in html.read_bytes()[:200_000].lower()
    assert str(png) in capsys.readouterr().out.split()
    # the quick figure shows something: a title, more than one colour level, lines that move
    assert paper_figs.problems(plotly.io.read_json(data)) == []
    # its runs went into a store of its own beside --out, never into ./runs
    assert not (Path.cwd() / "runs").exists() or before_runs == sorted((Path.cwd() / "runs").iterdir())


def test_an_unknown_figure_is_a_value_error():
    with pytest.raises(ValueError, match="unknown figure 'nope'; valid figures: .*training_curves"):
        paper_figs.make("nope")


def _fig(**kw):
    import plotly.graph_objects as go

    return go.Figure(layout=dict(title=kw.pop("title", "a title")), **kw)


def test_problems_finds_figures_that_show_nothing():
    import plotly.graph_objects as go

    assert paper_figs.problems(_fig(data=[go.Heatmap(z=[[0.1, 0.5], [0.9, 0.2]])])) == []
    assert paper_figs.problems(_fig(data=[go.Heatmap(z=[[0.3, 0.3], [0.3, 0.3]])])) == [
        "trace 0 (heatmap) has one colour level"]
    # a colour range that clips every value to one end shows one colour too
    assert paper_figs.problems(_fig(data=[go.Heatmap(z=[[2, 3], [4, 5]], zmin=0, zmax=1)])) != []
    flat = go.Scatter(y=[1, 1, 1], mode="lines")
    moving = go.Scatter(y=[1, 2, 3], mode="lines")
    reference = go.Scatter(y=[2, 2, 2], mode="lines", line=dict(dash="dot"))
    assert paper_figs.problems(_fig(data=[flat, moving, reference])) == []
    assert paper_figs.problems(_fig(data=[flat, reference])) == ["all 1 solid lines are flat"]
    assert paper_figs.problems(_fig(data=[moving], title="")) == ["no title"]


def test_the_default_store_of_figs_is_beside_its_output(tmp_path):
    assert paper_figs.default_store(tmp_path / "figs_out") == tmp_path / "figs_out_runs"
