"""Plotly figures of a SpectrumResult: the complex plane per checkpoint, outliers over training, fixed points.

Pure functions of the Result's JSON-able fields, so the explorer and the paper figures can call
them without recomputing anything.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

_KIND_COLOURS = {"stable": "#2ca02c", "saddle": "#d62728", "unstable": "#9467bd", "line attractor": "#1f77b4"}


def _z(d: dict) -> np.ndarray:
    return np.asarray(d["re"], float) + 1j * np.asarray(d["im"], float)


def _circle(r: float, **line) -> go.Scatter:
    t = np.linspace(0, 2 * np.pi, 181)
    return go.Scatter(x=r * np.cos(t), y=r * np.sin(t), mode="lines", line=line, hoverinfo="skip", showlegend=False)


def spectrum_figure(res) -> go.Figure:
    """Eigenvalues in the complex plane, one frame per checkpoint (slider), with unit and bulk circles."""
    fig = go.Figure()
    fig.add_trace(_circle(1.0, color="grey", dash="dot"))
    per_step = []  # trace indices shown at each checkpoint
    n_layers = len(res.eigvals)
    for c, step in enumerate(res.steps):
        shown = []
        for layer in range(n_layers):
            z, r = _z(res.eigvals[layer][c]), res.bulk_radius[layer][c]
            out = _z(res.outliers[layer][c])
            name = f"layer {layer}" if n_layers > 1 else "eigenvalues"
            fig.add_trace(go.Scatter(x=z.real, y=z.imag, mode="markers", name=name, visible=False,
                                     marker=dict(size=5, opacity=0.7)))
            fig.add_trace(go.Scatter(x=out.real, y=out.imag, mode="markers", name="outliers", visible=False,
                                     marker=dict(size=11, symbol="circle-open", color="#d62728", line=dict(width=2))))
            fig.add_trace(_circle(r, color="#ff7f0e", dash="dash"))
            fig.data[-1].visible = False
            shown += [len(fig.data) - 3, len(fig.data) - 2, len(fig.data) - 1]
        per_step.append(shown)
    if res.init_radius:
        fig.add_trace(_circle(res.init_radius, color="black", width=1))
    always = {0} | ({len(fig.data) - 1} if res.init_radius else set())
    for i in per_step[-1] if per_step else []:
        fig.data[i].visible = True
    slider = [dict(method="update", label=str(step),
                   args=[{"visible": [i in always or i in shown for i in range(len(fig.data))]},
                         {"title": f"{res.arch}: eigenvalues of the recurrent map ({res.kind}), step {step}"}])
              for step, shown in zip(res.steps, per_step)]
    fig.update_layout(
        title=f"{res.arch}: eigenvalues of the recurrent map ({res.kind}), step {res.steps[-1] if res.steps else ''}",
        xaxis=dict(title="Re", scaleanchor="y"), yaxis=dict(title="Im"), template="plotly_white",
        sliders=[dict(active=len(slider) - 1, steps=slider, currentvalue=dict(prefix="step "))] if slider else [])
    return fig


def outlier_figure(res, prediction: dict | None = None) -> go.Figure:
    """Largest outlier (real part and modulus) and the loss against step; the prediction dashed, if any."""
    prediction = prediction if prediction is not None else res.prediction
    fig = make_subplots(rows=1, cols=2, subplot_titles=("outlier eigenvalue", "loss"))
    steps = np.asarray(res.steps, float)
    top = []
    for c in range(len(res.steps)):
        z = _z(res.outliers[0][c]) if res.outliers else np.array([])
        top.append(z[np.abs(z).argmax()] if z.size else np.nan)
    top = np.asarray(top, complex)
    x = np.maximum(steps, 1)  # log axis: step 0 drawn at 1
    fig.add_trace(go.Scatter(x=x, y=top.real, mode="markers+lines", name="measured Re λ"), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=np.abs(top), mode="markers", name="measured |λ|",
                             marker=dict(symbol="x", size=6)), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=res.bulk_radius[0] if res.bulk_radius else [], mode="lines",
                             name="bulk radius", line=dict(color="#ff7f0e", dash="dot")), 1, 1)
    loss = np.array([np.nan if v is None else v for v in res.loss], float)
    fig.add_trace(go.Scatter(x=x, y=loss, mode="markers+lines", name="measured loss"), 1, 2)
    if prediction:
        px = np.maximum(np.asarray(prediction["steps"], float), 1)
        pz = _z(prediction["eig"])
        fig.add_trace(go.Scatter(x=px, y=pz.real, mode="lines", name="predicted Re λ",
                                 line=dict(color="black", dash="dash")), 1, 1)
        if np.abs(pz.imag).max(initial=0) > 0:
            fig.add_trace(go.Scatter(x=px, y=np.abs(pz), mode="lines", name="predicted |λ|",
                                     line=dict(color="grey", dash="dash")), 1, 1)
        fig.add_trace(go.Scatter(x=px, y=np.maximum(prediction["loss"], 1e-10), mode="lines", name="predicted loss",
                                 line=dict(color="black", dash="dash")), 1, 2)
    fig.update_xaxes(type="log", title="step")
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(template="plotly_white", title=f"{res.arch}: outlier eigenvalue and loss over training")
    return fig


def fixed_point_figure(res) -> go.Figure:
    """Fixed and slow points in the first two principal components of the states, coloured by stability."""
    fp = res.fixed_points
    traj = np.asarray(fp["trajectory_pca"], float).reshape(-1, 2)
    fig = go.Figure(go.Scatter(x=traj[:, 0], y=traj[:, 1], mode="markers", name="states on trajectories",
                               marker=dict(size=3, color="lightgrey")))
    pts = np.asarray(fp["pca"], float).reshape(-1, 2)
    kinds = list(fp["kinds"])
    for kind in dict.fromkeys(kinds):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        fig.add_trace(go.Scatter(
            x=pts[idx, 0], y=pts[idx, 1], mode="markers", name=kind,
            marker=dict(size=12, color=_KIND_COLOURS.get(kind, "black"),
                        symbol=["circle" if fp["fixed"][i] else "circle-open" for i in idx]),
            text=[f"q = {fp['speed'][i]:.2e}, max |μ| = {fp['max_abs_eig'][i]:.3f}" for i in idx]))
    ev = fp.get("explained_variance", [])
    lab = lambda i: f"PC{i + 1}" + (f" ({100 * ev[i]:.0f}%)" if i < len(ev) else "")  # noqa: E731
    fig.update_layout(template="plotly_white", xaxis_title=lab(0), yaxis_title=lab(1),
                      title=f"{res.arch}: fixed (filled) and slow (open) points of layer 0")
    return fig
