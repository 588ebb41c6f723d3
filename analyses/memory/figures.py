"""Plotly figures of the memory analysis: the recall frontier, the order asymmetry, the probes."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def frontier(rows: list[dict], title: str = "Recall accuracy against recurrent state size") -> go.Figure:
    """Accuracy against state size, one line per (architecture, pairs); error bars span the seeds.

    x is each model's own state size (``state_size`` of a row, else its target ``state``).
    """
    fig = go.Figure()
    keys = sorted({(r["arch"], r["pairs"]) for r in rows}, key=lambda k: (k[1], k[0]))
    several = len({r["pairs"] for r in rows}) > 1

    def x(r: dict) -> int:
        return r.get("state_size", r["state"])

    for arch, pairs in keys:
        pts = sorted((r for r in rows if (r["arch"], r["pairs"]) == (arch, pairs)), key=x)
        mean = np.array([r["mean"] for r in pts])
        fig.add_trace(go.Scatter(
            x=[x(r) for r in pts], y=mean, mode="lines+markers",
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
    """Grouped bars: accuracy of each (architecture, order), read once against read twice (colour)."""
    fig = go.Figure()
    orders = ["short_first", "long_first"]
    archs = list(dict.fromkeys(r.get("arch") for r in rows))
    label = {"short_first": "short set first", "long_first": "long set first"}
    x = [f"{a}: {label[o]}" if a else label[o] for a in archs for o in orders]
    for twice, name in ((False, "read once"), (True, "read twice")):
        by = {(r.get("arch"), r["order"]): r for r in rows if r["read_twice"] == twice}
        pts = [by[(a, o)] for a in archs for o in orders]
        fig.add_trace(go.Bar(x=x, y=[r["mean"] for r in pts], name=name,
                             error_y={"type": "data", "symmetric": False,
                                      "array": [max(r["accuracy"]) - r["mean"] for r in pts],
                                      "arrayminus": [r["mean"] - min(r["accuracy"]) for r in pts]}))
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


def retrieval(curves: dict[str, dict], title: str = "Stored pairs read back out of the matrix state") -> go.Figure:
    """Pairs retrievable from S_t (solid, one line per model) and pairs written (dotted) against the step.

    ``curves``: {name: {"count": (T,), "stored": (T,)}} from :func:`analyses.memory.readout.pair_readout`.
    """
    fig = go.Figure()
    for name, c in curves.items():
        steps = list(range(len(c["count"])))
        fig.add_trace(go.Scatter(x=steps, y=list(c["count"]), mode="lines+markers", name=f"{name}: retrievable"))
    first = next(iter(curves.values()))
    fig.add_trace(go.Scatter(x=list(range(len(first["stored"]))), y=list(first["stored"]), mode="lines",
                             line={"dash": "dot", "color": "grey"}, name="pairs written"))
    fig.add_hline(y=1.0, line_dash="dash", line_color="lightgrey", annotation_text="chance (one pair)")
    fig.update_layout(title=title, xaxis_title="step t (context, then queries and filler)",
                      yaxis_title="pairs with S_t k closest to their own v", template="plotly_white")
    return fig
