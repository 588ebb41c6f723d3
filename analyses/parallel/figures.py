"""Plotly builders for the parallel study: Newton iterations against length or training step."""
from __future__ import annotations

import plotly.graph_objects as go

COLORS = {"deer": "#1f77b4", "quasi": "#ff7f0e"}
LABELS = {"deer": "DEER (dense Jacobian)", "quasi": "quasi-DEER (diagonal)"}


def iterations_figure(x: list, by_method: dict[str, list[int]], x_title: str, log_x: bool = False,
                      title: str = "") -> go.Figure:
    """Iterations to convergence per method (lines with markers) against ``x``."""
    fig = go.Figure()
    for method, ys in by_method.items():
        fig.add_trace(go.Scatter(x=x, y=ys, mode="lines+markers", name=LABELS.get(method, method),
                                 line=dict(color=COLORS.get(method))))
    fig.update_layout(template="plotly_white", title=title or None, xaxis_title=x_title,
                      yaxis_title="Newton iterations to tolerance", margin=dict(t=40 if title else 20))
    if log_x:
        fig.update_xaxes(type="log")
    return fig
