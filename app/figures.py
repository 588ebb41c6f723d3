"""Pure plotly figure builders for the explorer's pages (no Dash, no file system)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

MAX_WIDTH = 28_000  # px of plot area: every one of 2000 typed characters at 14 px; browsers cap canvases near 32k
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def empty(message: str = "") -> go.Figure:
    """A blank figure carrying ``message`` in its middle."""
    fig = go.Figure()
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=250,
                      annotations=[dict(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")])
    return fig


def compare_curves(curves: dict[str, tuple[Sequence[int], Sequence[float]]], key: str = "loss",
                   log_x: bool = False, log_y: bool = True) -> go.Figure:
    """One line per run: ``{run_id: (steps, values)}`` of metric ``key``."""
    if not curves:
        return empty("select runs in the table to compare their curves")
    fig = go.Figure([go.Scatter(x=list(s), y=list(v), mode="lines", name=rid) for rid, (s, v) in curves.items()])
    fig.update_layout(title=f"{key} (mean over members)", xaxis_title="step", yaxis_title=key, showlegend=True,
                      xaxis_type="log" if log_x else "linear",
                      yaxis_type="log" if log_y and key == "loss" else "linear", height=380, legend_orientation="h")
    return fig


def training(curves: dict[str, dict[int, tuple[list[int], list[float]]]], checkpoints: Sequence[int],
             log_x: bool = False, selected: int | None = None) -> go.Figure:
    """Every metric against step, one panel per metric and one line per member, checkpoints marked.

    ``curves`` is ``{metric: {member: (steps, values)}}``. Checkpoints are dotted vertical
    lines through every panel and clickable markers along the bottom; ``selected`` is drawn solid.
    The lines are one list of shapes set once (``add_vline`` per line and panel copies every
    earlier shape: 13 checkpoints × 9 panels took 18 s).
    """
    keys = list(curves)
    if not keys:
        return empty("no metrics logged yet")
    fig = make_subplots(rows=len(keys), cols=1, shared_xaxes=True, subplot_titles=keys,
                        vertical_spacing=min(0.06, 0.3 / len(keys)))
    for r, key in enumerate(keys, start=1):
        for m, (steps, vals) in sorted(curves[key].items()):
            fig.add_trace(go.Scatter(x=steps, y=vals, mode="lines+markers" if len(steps) < 3 else "lines",
                                     name=f"member {m}", legendgroup=f"m{m}", showlegend=r == 1,
                                     line_color=_COLORS[m % len(_COLORS)]), row=r, col=1)
        fig.update_yaxes(title_text=key.rsplit(".", 1)[-1], type="log" if key == "loss" else "linear", row=r, col=1)
    lines = [dict(type="line", xref="x", yref="paper", x0=s, x1=s, y0=0, y1=1, layer="below",
                  line=dict(dash="solid" if s == selected else "dot", color="black" if s == selected else "#bbb",
                            width=2 if s == selected else 1)) for s in checkpoints]
    fig.add_trace(go.Scatter(x=list(checkpoints), y=[0] * len(checkpoints), mode="markers",
                             marker=dict(symbol="triangle-up", size=10, color="black"), name="checkpoints",
                             yaxis=f"y{len(keys) + 1}", hovertemplate="checkpoint %{x}<extra></extra>"))
    fig.update_layout(shapes=lines, **{f"yaxis{len(keys) + 1}": dict(domain=[0, 0.03], visible=False, anchor="x")})
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_xaxes(title_text="step (click a checkpoint marker to use it)", row=len(keys), col=1)
    # the legend sits just above the first panel, where the eye starts, whatever the figure's height
    fig.update_layout(height=200 * len(keys) + 100, clickmode="event", margin=dict(t=70),
                      legend=dict(orientation="h", x=0, xanchor="left", y=1, yanchor="top", yref="container"))
    return fig


def token_axis(labels: Sequence[str], T: int) -> dict:
    """Width and x-axis ticks that keep every token readable: one tick per step, whitespace as
    glyphs, at least 14 px a step (the figure grows and its container scrolls, never thinned)."""
    from app.textview import glyph

    shown = [glyph(labels[t]) if t < len(labels) else str(t) for t in range(T)]
    longest = max((len(x) for x in shown), default=1)
    px = 14 if longest <= 2 else min(24, 7 * longest + 4)  # a long label stands on end: 24 px is enough
    every = max(1, -(-(px * T) // MAX_WIDTH))  # only past a canvas's width (2000 vectors): a tick every k steps
    return {"width": max(900, 160 + min(px * T, MAX_WIDTH)), "tickvals": list(range(0, T, every)),
            "ticktext": shown[::every], "tickangle": 0 if longest <= 2 else -90, "labels": shown}


def _feature_range(vals: Sequence[float]) -> tuple[float, float, bool]:
    """Colour range of a feature track: at least [0, 1], so a constant track is drawn at its value
    (0 dark, 1 bright) and not in the middle colour; and whether the track is constant."""
    v = np.asarray(vals, dtype=float)
    finite = v[np.isfinite(v)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return min(lo, 0.0), max(hi, 1.0), lo == hi


def states_heatmap(traj: np.ndarray, labels: Sequence[str], features: dict[str, Sequence[float]],
                   hook: str, units: Sequence[int] = (), brush: tuple[int, int] | None = None) -> go.Figure:
    """Unit × time heatmap of one hook, tokens along the time axis, the task's features as tracks beneath.

    ``traj`` is (T, D). Selected ``units`` are marked on the y axis; ``brush`` shades a range.
    Every token is labelled (the figure is as wide as the text needs, see :func:`token_axis`).
    The feature tracks are one heatmap, each row scaled over its own range widened to at least
    [0, 1] (so a constant track reads as its value, not as the middle colour); hover shows the values.
    """
    T, D = traj.shape
    n = len(features)
    fig = make_subplots(rows=2 if n else 1, cols=1, shared_xaxes=True, vertical_spacing=0.02,
                        row_heights=[0.8, 0.2] if n else None)
    axis = token_axis(labels, T)
    lim = float(np.abs(traj).max(initial=0)) or 1.0
    fig.add_trace(go.Heatmap(z=traj.T, x=list(range(T)), y=list(range(D)), colorscale="RdBu", zmid=0, zmin=-lim,
                             zmax=lim, text=[axis["labels"]] * D,
                             hovertemplate="t=%{x} (%{text}) unit %{y}: %{z:.3f}<extra></extra>",
                             colorbar=dict(len=0.7, y=0.65, title="activation")), row=1, col=1)
    # An invisible scatter over the heatmap makes box selection (brushing) report its range.
    fig.add_trace(go.Scatter(x=list(range(T)), y=[D - 0.5] * T, mode="markers", marker_opacity=0,
                             showlegend=False, hoverinfo="skip"), row=1, col=1)
    if n:
        rows, names, raw = [], [], []
        for name, vals in features.items():
            lo, hi, constant = _feature_range(vals)
            v = np.asarray(vals, dtype=float)
            rows.append(((v - lo) / (hi - lo)).tolist())
            names.append(f"{name} (= {vals[0]:g})" if constant and len(vals) else name)
            raw.append(list(vals))
        fig.add_trace(go.Heatmap(z=rows, x=list(range(T)), y=names, customdata=raw, colorscale="Viridis", zmin=0,
                                 zmax=1, showscale=False, hovertemplate="%{y} t=%{x}: %{customdata}<extra></extra>"),
                      row=2, col=1)
    if brush:
        fig.add_vrect(x0=brush[0] - 0.5, x1=brush[1] + 0.5, line_color="black", line_width=2, fillcolor="rgba(0,0,0,0)",
                      row=1, col=1)
    fig.update_layout(shapes=list(fig.layout.shapes) + [
        dict(type="line", xref="x", yref="y", x0=-0.5, x1=T - 0.5, y0=u, y1=u, line=dict(color="gold", width=1))
        for u in units])
    fig.update_xaxes(tickmode="array", tickvals=axis["tickvals"], ticktext=axis["ticktext"],
                     tickangle=axis["tickangle"], title_text="step (token)", row=2 if n else 1, col=1)
    fig.update_yaxes(title_text=f"{hook} unit", row=1, col=1)
    fig.update_layout(height=420 + 24 * n, width=axis["width"], dragmode="select", selectdirection="h",
                      margin=dict(t=30, l=140), title=f"{hook}: drag across to brush steps; click a row to view that unit")
    return fig


def unit_lines(traj: np.ndarray, labels: Sequence[str], units: Sequence[int], hook: str,
               threshold: float | None = None, brush: tuple[int, int] | None = None) -> go.Figure:
    """The selected units' activations as lines over the text (LSTMVis's main view), the
    threshold dashed and the brushed steps shaded; as wide as the heatmap above it."""
    if not len(units):
        return empty("brush steps on the heatmap: the units on there are drawn here as lines")
    T = traj.shape[0]
    axis = token_axis(labels, T)
    fig = go.Figure([go.Scatter(x=list(range(T)), y=traj[:, u], mode="lines", name=f"unit {u}",
                                line_color=_COLORS[i % len(_COLORS)], text=axis["labels"],
                                hovertemplate=f"unit {u} t=%{{x}} (%{{text}}): %{{y:.3f}}<extra></extra>")
                     for i, u in enumerate(list(units)[:20])])
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", line_color="#777")
    if brush:
        fig.add_vrect(x0=brush[0] - 0.5, x1=brush[1] + 0.5, fillcolor="rgba(255,215,0,0.2)", line_width=0)
    fig.update_xaxes(tickmode="array", tickvals=axis["tickvals"], ticktext=axis["ticktext"],
                     tickangle=axis["tickangle"], title_text="step (token)", range=[-0.5, T - 0.5])
    fig.update_layout(height=300, width=axis["width"], yaxis_title=f"{hook} activation", margin=dict(t=30, l=140),
                      title=f"{len(units)} selected unit(s)" + (" (first 20 drawn)" if len(units) > 20 else ""),
                      legend=dict(orientation="h", y=1, yanchor="bottom", x=1, xanchor="right"))
    return fig


def pca_figure(proj: np.ndarray, ratios: Sequence[float], labels: Sequence[str]) -> go.Figure:
    """The state trajectory on its first two principal components, coloured by time."""
    T = proj.shape[0]
    y = proj[:, 1] if proj.shape[1] > 1 else np.zeros(T)
    fig = go.Figure(go.Scatter(x=proj[:, 0], y=y, mode="lines+markers", text=list(labels[:T]),
                               marker=dict(color=list(range(T)), colorscale="Viridis", showscale=True,
                                           colorbar_title="t"),
                               hovertemplate="t=%{marker.color} (%{text})<extra></extra>"))
    pct = [f"{100 * r:.0f}%" for r in ratios] + ["", ""]
    fig.update_layout(title="PCA of the state trajectory", xaxis_title=f"PC1 ({pct[0]})",
                      yaxis_title=f"PC2 ({pct[1]})", height=380)
    return fig


def counterfactual(data: dict, labels: Sequence[str]) -> go.Figure:
    """Original and edited state trajectories, their difference, and the predictions with changes highlighted."""
    o, e = np.asarray(data["orig_state"]), np.asarray(data["edit_state"])  # (T, D)
    T = o.shape[0]
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05, row_heights=[0.3, 0.3, 0.25, 0.15],
                        subplot_titles=["original " + data["state_hook"], "counterfactual", "counterfactual − original",
                                        "predictions (red: changed)"])
    lim = float(max(np.abs(o).max(initial=0), np.abs(e).max(initial=0))) or 1.0
    x = list(range(T))
    fig.add_trace(go.Heatmap(z=o.T, x=x, colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim, showscale=False), row=1, col=1)
    fig.add_trace(go.Heatmap(z=e.T, x=x, colorscale="RdBu", zmid=0, zmin=-lim, zmax=lim, showscale=False), row=2, col=1)
    d = e - o
    dl = float(np.abs(d).max(initial=0)) or 1.0
    fig.add_trace(go.Heatmap(z=d.T, x=x, colorscale="PiYG", zmid=0, zmin=-dl, zmax=dl, showscale=False), row=3, col=1)
    fmt = lambda v: str(v) if isinstance(v, int) else f"{v:.2f}"  # noqa: E731
    fig.add_trace(go.Scatter(x=x, y=[1] * T, mode="text", text=[fmt(v) for v in data["pred_orig"]], name="original",
                             textfont_color="black", hoverinfo="skip"), row=4, col=1)
    fig.add_trace(go.Scatter(x=x, y=[0] * T, mode="text", text=[fmt(v) for v in data["pred_edit"]], name="edited",
                             textfont_color=["red" if c else "#555" for c in data["changed"]], hoverinfo="skip"),
                  row=4, col=1)
    for r in (1, 2, 3):
        fig.add_vline(x=data["step"], line_color="gold", line_width=2, row=r, col=1)
    axis = token_axis(labels, T)
    fig.update_xaxes(tickmode="array", tickvals=axis["tickvals"], ticktext=axis["ticktext"],
                     tickangle=axis["tickangle"], row=4, col=1)
    fig.update_yaxes(tickvals=[0, 1], ticktext=["edited", "original"], range=[-0.5, 1.5], row=4, col=1)
    for r in (1, 2, 3):
        fig.update_yaxes(title_text="unit", row=r, col=1)
    fig.update_xaxes(title_text="step (token)", row=4, col=1)
    fig.update_layout(height=700, width=axis["width"], showlegend=False, margin=dict(t=40),
                      title=f"{data['op']} at step {data['step']} on {data['hook']}, units {data['units'] or 'all'}")
    return fig


MAX_HEADS = 8  # panels of the matrix-state figure


def matrix_state(mats: np.ndarray, shape: dict, hook: str, t: int, token: str) -> go.Figure:
    """The matrix state S_t of one layer, one heatmap per head (value dim × key dim), on a
    diverging colour scale centred on 0 and fitted to the step's largest |entry|.

    ``mats`` is (heads, value dim, key dim), as :func:`app.logic.state_matrices` gives it.
    """
    from app.textview import glyph

    h, R, C = mats.shape
    shown = min(h, MAX_HEADS)
    lim = float(np.abs(mats[:shown]).max(initial=0)) or 1.0
    fig = make_subplots(rows=1, cols=shown, horizontal_spacing=0.04 if shown > 1 else 0.0,
                        subplot_titles=[f"head {i}" for i in range(shown)] if h > 1 else None)
    for i in range(shown):
        fig.add_trace(go.Heatmap(z=mats[i], x=list(range(C)), y=list(range(R)), colorscale="RdBu", zmid=0,
                                 zmin=-lim, zmax=lim, showscale=i == 0, colorbar={"title": "S entry"},
                                 hovertemplate=f"head {i} value %{{y}} key %{{x}}: %{{z:.4g}}<extra></extra>"),
                      row=1, col=i + 1)
        fig.update_xaxes(title_text=shape["col_title"], row=1, col=i + 1)
    fig.update_yaxes(title_text=shape["row_title"], row=1, col=1)
    fig.update_yaxes(autorange="reversed")  # row 0 on top, as a matrix is written
    more = f" (first {shown} of {h} heads)" if h > shown else ""
    fig.update_layout(height=max(320, min(900, 120 + 14 * R)), width=max(500, min(1800, 160 + shown * max(240, 14 * C))),
                      margin={"t": 70},
                      title=f"{hook} ({shape['arch']}) at step {t}, token {glyph(token)!r}: S_t, ±{lim:.3g}{more}")
    return fig
