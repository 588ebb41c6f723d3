"""Loss against hidden size of bilinear gated RNNs on in-context regression (Zucchet et al., 2024).

    paper_figs.make("attention_size", "figs_out")           # or: probe figs --only attention_size

Hawks with bilinear gates and fixed decays (``analyses.attention.HAWK_OPTIONS``) of several widths
learn the linear-attention teacher of ``icl_regression``; the loss drops to ~0 once the width
reaches the neuron count of the exact construction (dashed line), and an LSTM is shown for
comparison. ``profile="full"`` is the ``attention.discovered`` claim's full study (both task
variants, 3 seeds; runs in ``store``, default ``runs``, trained there if missing);
``profile="quick"`` trains a small version on the teacher alone (300 steps) in a temporary store
unless one is given.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import plotly.graph_objects as go

from paper_figs import Profile, save

NAME = "attention_size"


def _budget(profile: Profile):
    from analyses.attention.study import AttentionSettings, settings

    if profile == "full":
        return settings("full")
    # A larger step size than the claim's: 300 steps are enough to show the threshold at 4 neurons.
    return AttentionSettings(steps=300, hidden=8, sweep=(2, 3, 4), sweep_kinds=("teacher",), lstm_hidden=16,
                  lstm_steps=100, lstm_kinds=("teacher",), members=1, eval_n=1024, lr=1e-2, kinds=("teacher",))


def figure(study: dict) -> go.Figure:
    """The loss-against-size figure of a study (``analyses.attention.study.study``'s output)."""
    from analyses.attention.figures import loss_vs_hidden

    fig = loss_vs_hidden(study["sweep"], study["construction"], study["references"])
    return fig.update_layout(title="Bilinear gated RNNs match the attention teacher once they have the exact "
                                   "construction's neurons (dashed); an LSTM does not")


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick", store: str | Path | None = None) -> list[Path]:
    """Train (or load) the runs, draw the figure, write PNG, SVG and HTML; returns the paths."""
    from analyses.attention.study import study

    with tempfile.TemporaryDirectory(prefix="probe-figs-") as tmp:
        where = str(store) if store is not None else ("runs" if profile == "full" else tmp)
        fig = figure(study(_budget(profile), where))
    return save(fig, out_dir, NAME, width=900, height=520)
