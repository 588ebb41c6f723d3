"""Recall accuracy against recurrent state size, per architecture (Zoology's recall-memory frontier).

    paper_figs.make("recall_frontier", "figs_out")       # or: probe figs --only recall_frontier

One line per architecture (GRU, LSTM, LRU, Hawk), each point the mean MQAR accuracy of the seeds
of one run, error bars spanning them. State size is counted in real numbers the recurrence
carries (LSTM: h and c; LRU: real and imaginary parts), so the architectures are compared at equal
memory. ``profile`` picks the sweep of ``analyses.memory.plans`` ("quick": 16 tokens, 4 pairs,
states 4-64; "full": 256 tokens, 4-16 pairs, states 8-256). Runs are cached in ``store``
(default ``"runs"``, the store ``probe verify`` uses, so the claim and this figure share them).
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
