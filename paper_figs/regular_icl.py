"""Accuracy and TVD against the number of training automata (Akyürek et al. 2024, Fig. 1).

    paper_figs.make("regular_icl", "figs_out")           # or: probe figs --only regular_icl

The paper's main plot for the recurrent models here: on held-out automata, the fraction of
positions whose greedy next letter is legal under the DFA (left) and the total-variation
distance to the true next-token distribution (right), against the number of automata the model
was trained on, one line per architecture (mean over seeds, bars from min to max), with the
in-context 1-, 2- and 3-gram predictors as dotted lines, and the claim's champion (the model that
has to beat the in-context bigram; a star at its number of automata). ``profile`` picks the sweep of
``analyses.ngram.sweep`` ("quick": short contexts, one-layer 64-unit models, a few hundred
steps; "full": the paper's contexts and longer training). Runs and analyses are cached in
``store`` (default ``"runs"``, the store ``probe verify`` uses, so the claim and this figure
share their models).
"""
from __future__ import annotations

from pathlib import Path

from paper_figs import Profile, save

NAME = "regular_icl"


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick", store: str | Path = "runs") -> list[Path]:
    """Train (or load) the sweep, draw the figure, write PNG, SVG and HTML; returns the paths."""
    from analyses import ngram

    fig = ngram.sweep_figures(profile, str(store), champion=True)["sweep"]
    fig.update_layout(width=1100, height=480,
                      title=f"In-context regular languages ({profile}): accuracy and TVD against training automata;"
                            "<br><sup>in-context n-gram predictors dotted, the claim's champion a star</sup>")
    return save(fig, out_dir, NAME, width=1100, height=480)
