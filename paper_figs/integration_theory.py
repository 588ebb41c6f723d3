"""Theory against measurement for a linear RNN learning to integrate (Bordelon et al., arXiv 2503.18754).

    paper_figs.make("integration_theory", "figs_out")       # or: probe figs --only integration_theory

Left: the outlier eigenvalue of W over training — full-batch gradient descent on the exact loss and
SGD on the task's batches (markers) against the reduced flow derived in sympy
(``analyses/theory/integration.py``; lines), time aligned by the learning rate, nothing fitted.
Middle: the loss, likewise. Right: for the damped-oscillator target, the path of the leading
eigenvalue in the complex plane — a real outlier first, then a second, which collide into the
conjugate pair — against the exact reduction to the plane of u and v. ``profile="full"`` draws the
``integration.*`` claims' full-profile networks (seed 0); ``profile="quick"`` a smaller version
(``analyses.spectrum.claims.DEMO``: hidden 32, 800 steps) that takes seconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from paper_figs import Profile, save

NAME = "integration_theory"


def figure(leaky, sampled, oscillator, gamma: float, omega: float) -> go.Figure:
    """The three panels from the claims' Experiments (``analyses.spectrum.claims``)."""
    fig = make_subplots(rows=1, cols=3, column_widths=[0.36, 0.32, 0.32], horizontal_spacing=0.08,
                        subplot_titles=("outlier eigenvalue λ", "loss ½E(y − y*)²", "oscillator: leading eigenvalue"))
    h, p = leaky.history, leaky.prediction
    dot = dict(size=6, opacity=0.8)
    fig.add_trace(go.Scatter(x=h.steps, y=leaky.outlier.real, mode="markers", name="measured, exact-loss GD",
                             marker=dict(color="#1f77b4", **dot)), 1, 1)
    fig.add_trace(go.Scatter(x=sampled.history.steps, y=sampled.outlier.real, mode="markers",
                             name="measured, SGD on task batches", marker=dict(color="#ff7f0e", symbol="x", **dot)), 1, 1)
    fig.add_trace(go.Scatter(x=p.step, y=p.eig.real, mode="lines", name="theory (reduced flow)",
                             line=dict(color="black")), 1, 1)
    fig.add_trace(go.Scatter(x=sampled.prediction.step, y=sampled.prediction.eig.real, mode="lines",
                             name="theory, finite-T loss", line=dict(color="black", dash="dot")), 1, 1)
    fig.add_trace(go.Scatter(x=h.steps, y=leaky.bulk_radius, mode="lines", name="bulk radius",
                             line=dict(color="grey", dash="dash")), 1, 1)
    fig.add_hline(y=gamma, line=dict(color="#2ca02c", width=1), row=1, col=1)
    fig.add_trace(go.Scatter(x=h.steps, y=h.loss, mode="markers", marker=dict(color="#1f77b4", **dot),
                             showlegend=False), 1, 2)
    fig.add_trace(go.Scatter(x=p.step, y=np.maximum(p.loss, 1e-12), mode="lines", line=dict(color="black"),
                             showlegend=False), 1, 2)
    o, q = oscillator.outlier, oscillator.prediction.eig
    fig.add_trace(go.Scatter(x=o.real, y=o.imag, mode="markers", marker=dict(color="#9467bd", **dot),
                             name="measured (oscillator)"), 1, 3)
    fig.add_trace(go.Scatter(x=q.real, y=q.imag, mode="lines", line=dict(color="black"),
                             name="theory (plane reduction)", showlegend=False), 1, 3)
    target = gamma * np.exp(1j * omega)
    fig.add_trace(go.Scatter(x=[target.real], y=[target.imag], mode="markers", name="γ e^{iω}",
                             marker=dict(symbol="star", size=14, color="#2ca02c")), 1, 3)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_yaxes(type="log", exponentformat="power", range=[-6, 1], row=1, col=2)  # theory: 0 once λ = γ
    fig.update_xaxes(title_text="Re", row=1, col=3)
    fig.update_yaxes(title_text="Im", row=1, col=3)
    fig.update_layout(template="plotly_white", legend=dict(orientation="h", y=-0.2),
                      title=f"Learning to integrate pulls one eigenvalue of W out of the bulk to the task's decay "
                            f"γ = {gamma:g}, as the reduced theory predicts",
                      margin=dict(t=80, b=90))
    return fig


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick") -> list[Path]:
    """Train the networks (see the module docstring), draw the figure, write PNG, SVG and HTML."""
    from analyses.spectrum import claims as ic

    s = ic.settings("full") if profile == "full" else ic.DEMO
    seed = s.seeds[0]
    fig = figure(ic.leaky_run(s, seed), ic.leaky_run(s, seed, mode="sampled"), ic.oscillator_run(s, seed),
                 s.gamma, s.frequency)
    return save(fig, out_dir, NAME, width=1350, height=470)
