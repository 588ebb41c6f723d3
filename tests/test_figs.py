"""Paper figures: every module makes PNG, SVG and interactive HTML in the quick profile."""
from __future__ import annotations

import shutil

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


@pytest.mark.skipif(not _has_browser(), reason="static export needs chromium (apt-get install chromium)")
@pytest.mark.parametrize("name", paper_figs.names())
def test_probe_figs_writes_png_svg_and_html(tmp_path, capsys, name):
    before = torch.get_num_threads()
    assert main(["figs", "--only", name, "--out", str(tmp_path), "--profile", "quick"]) == 0
    torch.set_num_threads(before)
    png, svg, html = (tmp_path / f"{name}.{ext}" for ext in ("png", "svg", "html"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:2000]
    assert b"plotly" in html.read_bytes()[:200_000].lower()
    assert str(png) in capsys.readouterr().out.split()


def test_an_unknown_figure_is_a_value_error():
    with pytest.raises(ValueError, match="unknown figure 'nope'; valid figures: .*training_curves"):
        paper_figs.make("nope")
