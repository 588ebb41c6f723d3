"""Figures of the magnitude analysis: pure functions from results (plain dicts and lists) to plotly."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LABELS = {"unigram": "Linear unigram", "bigram": "Linear bigram", "onion": "Onion unigram"}
COLORS = {"unigram": "#1f77b4", "bigram": "#2ca02c", "onion": "#d62728", "model": "#7f7f7f"}


def accuracy_vs_size(rows: Sequence[dict], title: str = "Intervention accuracy against hidden size") -> go.Figure:
    """The paper's table as a plot.

    Parameters
    ----------
    rows : dicts with ``hidden``, ``accuracy`` ({kind: accuracy}) and optionally ``model_accuracy``
        and ``arch``; several rows per size (seeds) give mean ± standard deviation.
    """
    fig = go.Figure()
    kinds = [k for k in LABELS if any(k in r["accuracy"] for r in rows)]
    series = [(k, LABELS[k], lambda r, k=k: r["accuracy"].get(k)) for k in kinds]
    series.append(("model", "Model, no intervention", lambda r: r.get("model_accuracy")))
    for key, label, get in series:
        sizes = sorted({r["hidden"] for r in rows if get(r) is not None})
        if not sizes:
            continue
        vals = [[get(r) for r in rows if r["hidden"] == h and get(r) is not None] for h in sizes]
        fig.add_trace(go.Scatter(
            x=sizes, y=[float(np.mean(v)) for v in vals], name=label, mode="lines+markers",
            error_y=dict(type="data", array=[float(np.std(v)) for v in vals], visible=any(len(v) > 1 for v in vals)),
            line=dict(color=COLORS[key], dash="dot" if key == "model" else "solid")))
    sizes = sorted({r["hidden"] for r in rows})
    fig.update_xaxes(type="log", tickvals=sizes, ticktext=[str(s) for s in sizes], title="hidden size N")
    fig.update_yaxes(range=[-0.03, 1.03], title="accuracy after intervention")
    fig.update_layout(template="plotly_white", title=title, legend=dict(orientation="h", y=-0.2))
    return fig


def position_accuracy(per_position: dict[str, Sequence[float]], title: str = "Accuracy per position") -> go.Figure:
    """Accuracy after intervention against the intervened position, one line per kind."""
    fig = go.Figure()
    for kind, acc in per_position.items():
        fig.add_trace(go.Scatter(x=list(range(len(acc))), y=list(acc), mode="lines+markers",
                                 name=LABELS.get(kind, kind), line=dict(color=COLORS.get(kind))))
    fig.update_xaxes(title="intervened position p", dtick=1)
    fig.update_yaxes(range=[-0.03, 1.03], title="accuracy after intervention")
    fig.update_layout(template="plotly_white", title=title)
    return fig


def contributions(norms: Sequence[float], fit: dict, onion_scales: Sequence[float] | None = None,
                  title: str = "Each position's contribution to the final state") -> go.Figure:
    """Contribution norm against position on a log axis, with the fitted geometric rate.

    Parameters
    ----------
    norms : (L,) mean change of the final state when position p's token changes.
    fit : ``rate`` and ``intercept`` of log(norm) = intercept + p·log(rate).
    onion_scales : optional (L,) norms of the onion intervention's learned magnitudes.
    """
    p = np.arange(len(norms))
    fig = go.Figure(go.Scatter(x=p, y=list(norms), mode="markers+lines", name="‖Δ final state‖",
                               line=dict(color="#1f77b4")))
    if math.isfinite(fit.get("rate", math.nan)):
        line = np.exp(fit["intercept"]) * fit["rate"] ** p
        fig.add_trace(go.Scatter(x=p, y=line, mode="lines", line=dict(dash="dash", color="#1f77b4"),
                                 name=f"fit: rate {fit['rate']:.3f} per position (R² {fit.get('r2', math.nan):.2f})"))
    if onion_scales is not None:
        fig.add_trace(go.Scatter(x=p, y=list(onion_scales), mode="markers+lines", name="‖onion magnitude‖",
                                 line=dict(color="#d62728")))
    fig.update_xaxes(title="position p", dtick=1)
    fig.update_yaxes(type="log", title="norm (log scale)")
    fig.update_layout(template="plotly_white", title=title, legend=dict(orientation="h", y=-0.2))
    return fig


def readout(example: dict, title: str = "Stored-token readout for one example") -> go.Figure:
    """Decoder output probabilities at each emitted step, for the clean, corrupted and repaired input.

    Parameters
    ----------
    example : ``tokens`` (L,), ``position`` p, ``old`` a, ``new`` b and ``panels``, a list of
        {``name``, ``probs``: (L+1, n_symbols+1) probabilities at the emitted steps, the last row EOS}.
    """
    panels = example["panels"]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p["name"] for p in panels], shared_yaxes=True,
                        horizontal_spacing=0.04)
    L = len(example["tokens"])
    steps = [f"{i}: {t}" for i, t in enumerate(example["tokens"])] + [f"{L}: eos"]
    for j, panel in enumerate(panels):
        z = np.asarray(panel["probs"])
        fig.add_trace(go.Heatmap(z=z, x=[str(i) for i in range(z.shape[1] - 1)] + ["eos"], y=steps,
                                 coloraxis="coloraxis"), row=1, col=j + 1)
        fig.update_xaxes(title="output token", row=1, col=j + 1)
    fig.update_yaxes(title="emitted step: stored token", autorange="reversed", row=1, col=1)
    fig.update_layout(template="plotly_white", coloraxis=dict(colorscale="Blues", cmin=0, cmax=1),
                      title=f"{title} (position {example['position']}: {example['old']} → {example['new']})")
    return fig
