"""Intervention accuracy against GRU hidden size: linear (DAS) and onion (Csordás et al. 2024, Table 1).

    paper_figs.make("onion_size", "figs_out")           # or: probe figs --only onion_size

The paper's table as a plot: for each hidden size N, the accuracy after the linear unigram and
bigram interventions and after the onion intervention, with the model's own accuracy for
reference. ``profile`` picks the sweep of ``analyses.magnitude.sweep`` ("quick": lengths 2-5, a
few thousand steps; "full": the paper's task and 40k steps, N up to 1024, three seeds). Runs and
interventions are cached in ``store`` (default ``"runs"``, the store ``probe verify`` uses, so the
claims and this figure share their models).
"""
from __future__ import annotations

from pathlib import Path

from paper_figs import Profile, save

NAME = "onion_size"


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick", store: str | Path = "runs") -> list[Path]:
    """Train (or load) the sweep, draw the figure, write PNG, SVG and HTML; returns the paths."""
    from analyses import magnitude

    fig = magnitude.size_figure(profile, str(store))
    fig.update_layout(width=800, height=480,
                      title="Onion (magnitude) interventions work on GRUs of every size; linear ones only on large GRUs")
    return save(fig, out_dir, NAME, width=800, height=480)
