"""Figure builders of the attention analysis: pure functions from numbers to plotly figures."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go

_COLORS = {"teacher": "#1f77b4", "regression": "#d62728"}


def loss_vs_hidden(sweep: Sequence[dict], construction: dict[str, int],
                   references: Optional[dict[str, float]] = None) -> go.Figure:
    """Relative loss (loss / zero-predictor loss) against hidden size, one line per task and arch.

    Parameters
    ----------
    sweep : rows {"task", "arch", "hidden", "relative_loss"}
    construction : {task kind: neuron count of the exact construction}, drawn as vertical lines
    references : {task kind: relative loss of the linear self-attention solution}, horizontal lines
    """
    fig = go.Figure()
    groups = sorted({(r["task"], r["arch"]) for r in sweep})
    for task, arch in groups:
        rows = sorted((r for r in sweep if (r["task"], r["arch"]) == (task, arch)), key=lambda r: r["hidden"])
        fig.add_trace(go.Scatter(
            x=[r["hidden"] for r in rows], y=[max(r["relative_loss"], 1e-8) for r in rows],
            mode="lines+markers" if len(rows) > 1 else "markers", name=f"{arch} · {task}",
            marker=dict(color=_COLORS.get(task), symbol="circle" if arch == "hawk" else "x", size=9),
            line=dict(dash="solid" if arch == "hawk" else "dot")))
    for count in sorted(set(construction.values())):
        names = [t for t, c in construction.items() if c == count]
        fig.add_vline(x=count, line=dict(color=_COLORS.get(names[0], "gray") if len(names) == 1 else "black", dash="dash"),
                      annotation_text=f"construction: {count} neurons ({', '.join(names)})", annotation_position="top")
    for task, value in (references or {}).items():
        if value > 1e-6:  # the teacher's own loss is 0 (up to rounding): nothing to draw on a log axis
            fig.add_hline(y=value, line=dict(color=_COLORS.get(task, "gray"), dash="dot"),
                          annotation_text=f"1-step GD ({task})", annotation_position="bottom left")
    fig.update_layout(title="Loss against hidden size (bilinear gated RNN)", template="plotly_white",
                      xaxis_title="hidden neurons", yaxis_title="loss / zero-predictor loss")
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def eigenvalues(decay: Sequence[float], importance: Sequence[float], accumulator: Sequence[bool]) -> go.Figure:
    """Each neuron's recurrence eigenvalue Λ against its importance: accumulators sit at 1."""
    decay, importance, acc = np.asarray(decay), np.asarray(importance), np.asarray(accumulator, bool)
    rel = importance / importance.max() if importance.size and importance.max() > 0 else importance
    fig = go.Figure()
    for mask, name, color in ((acc, "accumulator (|Λ-1| small)", "#2ca02c"), (~acc, "other", "#7f7f7f")):
        fig.add_trace(go.Scatter(x=decay[mask], y=np.maximum(rel[mask], 1e-6), mode="markers", name=name,
                                 marker=dict(color=color, size=9)))
    fig.add_vline(x=1.0, line=dict(color="black", dash="dash"))
    fig.update_layout(title="Eigenvalues of the trained recurrence", template="plotly_white",
                      xaxis_title="eigenvalue Λ", yaxis_title="neuron importance (relative)")
    fig.update_yaxes(type="log", exponentformat="power")
    return fig


def tensor_scatter(recovered: Sequence[float], reference: Sequence[float], correlation: float) -> go.Figure:
    """Recovered against constructed tensor entries, with the identity line."""
    rec, ref = np.asarray(recovered), np.asarray(reference)
    lim = float(max(np.abs(rec).max(initial=0), np.abs(ref).max(initial=0))) or 1.0
    fig = go.Figure([go.Scatter(x=ref, y=rec, mode="markers", name="entries", marker=dict(size=6, opacity=0.7)),
                     go.Scatter(x=[-lim, lim], y=[-lim, lim], mode="lines", name="y = x",
                                line=dict(color="black", dash="dash"))])
    fig.update_layout(title=f"Recovered vs constructed tensor entries (r = {correlation:.3f})",
                      template="plotly_white", xaxis_title="construction T[a,p,q,r]",
                      yaxis_title="recovered from trained weights")
    return fig
