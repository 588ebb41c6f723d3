"""MQAR accuracy against recurrent state size, every architecture on one plot (Zoology's figure 2).

    paper_figs.make("recall_frontier", "figs_out")       # or: probe figs --only recall_frontier

One line per registered architecture of the profile (quick: the LTI LRU against the input-dependent
linattn, deltanet, mamba and based; full: every architecture), each point the mean MQAR accuracy
of the seeds of one run at the model's own ``state_size()``, error bars spanning them, on Zoology's
task (random filler, power-law query placement). ``profile`` picks the sweep of
``analyses.memory.plans`` ("quick": 32 tokens, 16 steps, 4 pairs, states 16 (LRU, Mamba), 64 and 256; "full":
8192 tokens, 256 steps, 4-32 pairs, states 64-4096). Runs are cached in ``store`` (default
``"runs"``, the store ``probe verify`` uses, so the claims and this figure share them).
"""
from __future__ import annotations

from pathlib import Path

from paper_figs import Profile, save

NAME = "recall_frontier"


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick", store: str | Path = "runs") -> list[Path]:
    """Train (or load) the frontier sweep, draw it, write PNG, SVG and HTML; returns the paths."""
    from analyses import memory

    fig = memory.frontier_figure(profile, str(store))
    fig.update_layout(width=800, height=480)
    return save(fig, out_dir, NAME, width=800, height=480)
