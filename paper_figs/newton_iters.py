"""Newton iterations to solve a trained GRU over a whole sequence (DEER and quasi-DEER).

    paper_figs.make("newton_iters", "figs_out")       # or: probe figs --only newton_iters

Left: iterations to tolerance (float32, DEER's 1e-4) against sequence length T, for GRUs trained on
parity and on integration (``analyses.parallel.claims.trained``, the claim's runs). Right: the
same at one length over training, one point per checkpoint: how far the learned dynamics are from
what a few Newton steps solve. Dense DEER (quadratic convergence) against quasi-DEER (the
Jacobian's diagonal only).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from paper_figs import Profile, save

NAME = "newton_iters"
DASH = {"parity": "solid", "integration": "dash"}


def figure(results: dict, max_iter: int | None = None) -> go.Figure:
    """``results``: task name -> :class:`analyses.parallel.ParallelResult` (from ``analyze_run``);
    ``max_iter``, if given, is drawn as the line where a solve stopped without converging."""
    from analyses.parallel.figures import COLORS, LABELS
    step_length = next(iter(results.values())).step_length
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("iterations against sequence length", f"over training (T = {step_length})"))
    for task, r in results.items():
        for method in r.by_length:
            style = dict(color=COLORS[method], dash=DASH.get(task, "dot"))
            fig.add_trace(go.Scatter(x=r.lengths, y=r.by_length[method], mode="lines+markers", line=style,
                                     name=f"{task}: {LABELS[method]}"), 1, 1)
            fig.add_trace(go.Scatter(x=r.steps, y=r.by_step[method], mode="lines+markers", line=style,
                                     showlegend=False), 1, 2)
    if max_iter is not None:
        for col in (1, 2):
            fig.add_hline(y=max_iter, line=dict(color="grey", dash="dot", width=1), row=1, col=col,
                          annotation_text="max_iter: no convergence", annotation_position="bottom right")
    fig.update_xaxes(type="log", title_text="T", row=1, col=1)
    fig.update_xaxes(title_text="training step", row=1, col=2)
    fig.update_yaxes(title_text="Newton iterations", row=1, col=1)
    fig.update_layout(template="plotly_white", legend=dict(orientation="h", y=-0.25), margin=dict(t=80, b=110),
                      title="Newton (DEER) solves a GRU that forgets in a few iterations at any length; on one "
                            "that keeps a bit (parity) the count climbs as training goes on")
    return fig


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick") -> list[Path]:
    """Train (or load) the claim's GRUs, count iterations, draw, write PNG, SVG and HTML."""
    from analyses.parallel import claims as pc

    s = pc.settings(profile)
    with tempfile.TemporaryDirectory() as store:
        results = pc.measure(s, store)
    return save(figure(results, s.max_iter), out_dir, NAME, width=1200, height=480)
