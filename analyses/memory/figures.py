"""Plotly figures of the memory analysis: the recall frontier, the order asymmetry, the probes."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def frontier(rows: list[dict], title: str = "Recall accuracy against recurrent state size") -> go.Figure:
    """Accuracy against state size, one line per (architecture, pairs); error bars span the seeds."""
    fig = go.Figure()
    keys = sorted({(r["arch"], r["pairs"]) for r in rows}, key=lambda k: (k[1], k[0]))
    several = len({r["pairs"] for r in rows}) > 1
    for arch, pairs in keys:
        pts = sorted((r for r in rows if (r["arch"], r["pairs"]) == (arch, pairs)), key=lambda r: r["state"])
        mean = np.array([r["mean"] for r in pts])
        fig.add_trace(go.Scatter(
            x=[r["state"] for r in pts], y=mean, mode="lines+markers",
            name=f"{arch}, {pairs} pairs" if several else arch,
            error_y={"type": "data", "symmetric": False,
                     "array": [max(r["accuracy"]) - m for r, m in zip(pts, mean)],
                     "arrayminus": [m - min(r["accuracy"]) for r, m in zip(pts, mean)]}))
    states = sorted({r["state"] for r in rows})
    fig.update_layout(title=title, xaxis_title="state size (numbers the recurrence carries)",
                      yaxis_title="MQAR accuracy", xaxis_type="log", yaxis_range=[0, 1.02], template="plotly_white",
                      xaxis={"tickvals": states, "ticktext": [str(s) for s in states]})
    return fig


def asymmetry(rows: list[dict], state: int | None = None) -> go.Figure:
    """Grouped bars: accuracy of each order (group), read once against read twice (colour)."""
    fig = go.Figure()
    orders = ["short_first", "long_first"]
    for twice, name in ((False, "read once"), (True, "read twice")):
        by = {r["order"]: r for r in rows if r["read_twice"] == twice}
        fig.add_trace(go.Bar(x=["short set first", "long set first"], y=[by[o]["mean"] for o in orders], name=name,
                             error_y={"type": "data", "symmetric": False,
                                      "array": [max(by[o]["accuracy"]) - by[o]["mean"] for o in orders],
                                      "arrayminus": [by[o]["mean"] - min(by[o]["accuracy"]) for o in orders]}))
    at = f" at state size {state}" if state else ""
    fig.update_layout(barmode="group", title=f"Set disjointness: order and reading twice{at}",
                      yaxis_title="accuracy", yaxis_range=[0, 1.02], template="plotly_white")
    return fig


def probe_vs_size(curves: dict[str, dict], title: str = "What the state holds at the separator") -> go.Figure:
    """Membership-probe balanced accuracy against the first set's size, one line per model."""
    fig = go.Figure()
    for name, curve in curves.items():
        sizes = sorted(int(k) for k in curve)
        fig.add_trace(go.Scatter(x=sizes, y=[curve[k] if k in curve else curve[str(k)] for k in sizes],
                                 mode="lines+markers", name=name))
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    fig.update_layout(title=title, xaxis_title="size of the first set", yaxis_title="probe balanced accuracy",
                      yaxis_range=[0.4, 1.02], template="plotly_white")
    return fig


def by_lag(curve: dict, title: str = "Recall accuracy by how long ago the key was seen") -> go.Figure:
    """Accuracy at each query against the lag since its key was stored."""
    lags = sorted(int(k) for k in curve)
    fig = go.Figure(go.Scatter(x=lags, y=[curve[k] if k in curve else curve[str(k)] for k in lags],
                               mode="lines+markers"))
    fig.update_layout(title=title, xaxis_title="steps since the key was stored", yaxis_title="accuracy",
                      yaxis_range=[0, 1.02], template="plotly_white")
    return fig
