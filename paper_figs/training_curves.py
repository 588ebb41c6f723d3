"""Training curves of the demo: the training-split metric of every member against the step, per task.

    paper_figs.make("training_curves", "figs_out")           # or: probe figs --only training_curves

``profile="full"`` uses the demo's own runs (``probe demo``'s plan, in ``store``, trained there
if missing); ``profile="quick"`` trains a tiny version of the same plan (30 steps, 2 members,
training split only) in a temporary store unless one is given. The x axis is logarithmic, as the checkpoints are.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from paper_figs import Profile, save

NAME = "training_curves"
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _plan(profile: Profile):
    from probe import demo

    if profile == "full":
        return demo.QUICK
    # a tiny version: options tied to the full length (warm-up, evaluation period) are dropped
    return tuple(dataclasses.replace(s, steps=min(s.steps, 30), members=2, hidden=8, eval_splits=("train",),
                                     train_params={k: v for k, v in s.train_params.items()
                                                   if k not in ("warmup", "eval_every")})
                 for s in demo.QUICK)


def figure(runs: list) -> go.Figure:
    """One panel per run: ``train.accuracy`` (ce tasks) or ``train.mse`` (mse tasks, log scale) per member.

    Parameters
    ----------
    runs : list of probe.Run
    """
    cols = 4
    rows = max(1, math.ceil(len(runs) / cols))
    titles = [f"{r.config['task']['name']} ({r.config['model']['arch']})" for r in runs]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.16)
    for i, run in enumerate(runs):
        row, col = i // cols + 1, i % cols + 1
        mse = "train.mse" in run.final
        key = "train.mse" if mse else "train.accuracy"
        for m in range(int(run.config["model"].get("members", 1))):
            steps, values = run.curve(key, member=m)
            steps, values = steps[1:], values[1:]  # step 0 has no place on a log axis
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines",
                                     line=dict(width=1.5, color=_COLORS[m % len(_COLORS)]),
                                     name=f"member {m}", legendgroup=f"m{m}", showlegend=i == 0,
                                     hovertemplate=f"{run.id}<br>step %{{x}}<br>{key} %{{y:.4g}}<extra></extra>"),
                          row=row, col=col)
        fig.update_xaxes(type="log", title_text="step" if row == rows else None, row=row, col=col)
        fig.update_yaxes(type="log" if mse else "linear", title_text=key.split(".")[1] if col == 1 or mse else None,
                         row=row, col=col)
    fig.update_layout(template="plotly_white", height=320 * rows, width=1100,
                      title="Training curves of the demo runs (training split, every member)",
                      legend=dict(orientation="h", y=-0.12), margin=dict(t=80, l=60, r=20, b=60))
    return fig


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick", store: str | Path | None = None) -> list[Path]:
    """Train (or load) the runs, draw the figure, write PNG, SVG and HTML; returns the paths."""
    from probe import demo

    with tempfile.TemporaryDirectory(prefix="probe-figs-") as tmp:
        where = str(store) if store is not None else ("runs" if profile == "full" else tmp)
        runs = [demo.train_one(spec, where, progress=False) for spec in _plan(profile)]
        fig = figure(runs)
    return save(fig, out_dir, NAME, width=1100, height=320 * math.ceil(len(runs) / 4))
