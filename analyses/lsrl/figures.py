"""Plotly figures: the compiled layer stack, labelled state trajectories, precision against length.

All builders are pure functions of a :class:`Compiled` / :class:`Chain` or of the study dict, so
they are tested without a server and reused by the notebook, the paper figure and the explorer.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np
import torch

from analyses.lsrl.backends import float_array
from analyses.lsrl.chain import Chain, Stage
from analyses.lsrl.compile import TARGETS, Compiled

COLOURS = {"input": "#444444", "lin": "#3182bd", "pass": "#bdbdbd", "relu": "#e6550d", "relustate": "#a50f15",
           "ind": "#fdae6b", "mul": "#31a354", "output": "#756bb1"}
TARGET_COLOURS = dict(zip(TARGETS, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")))
FLOOR = 1e-18          # exact zeros on a log axis


def _groups(stage: Stage) -> list[dict]:
    """Consecutive units of one block and kind, as one box."""
    out, rec = [], stage.recurrent
    for r in range(stage.n):
        kind = "pass" if stage.is_pass[r] else ("relustate" if stage.kind[r] == "relu" and rec[r] else stage.kind[r])
        if out and out[-1]["node"] == stage.node[r] and out[-1]["kind"] == kind:
            out[-1]["units"].append(r)
        else:
            out.append({"node": stage.node[r], "kind": kind, "units": [r], "recurrent": rec[r]})
    return out


def _edges(M, rows: list[dict], cols: list[dict]) -> set[tuple[int, int]]:
    row_of = {u: i for i, g in enumerate(rows) for u in g["units"]}
    col_of = {u: j for j, g in enumerate(cols) for u in g["units"]}
    return {(col_of[j], row_of[i]) for (i, j), v in M.todok().items() if v != 0}


def stack_figure(compiled: Union[Compiled, Chain], title: Optional[str] = None):
    """The compiled layer stack as a graph: one column per stage, one box per program block.

    Box colour is the unit kind (LinState, pass-through, ReLU, ReLUState, gate), its size grows
    with the number of units, and lines join blocks connected by a non-zero weight.
    """
    import plotly.graph_objects as go

    chain = compiled.chain if isinstance(compiled, Compiled) else compiled
    cols = [[{"node": "input", "kind": "input", "units": list(range(chain.d_input)), "recurrent": False}]]
    cols += [_groups(s) for s in chain.stages]
    cols.append([{"node": lab, "kind": "output", "units": [i], "recurrent": False}
                 for i, lab in enumerate(chain.output_labels)])
    pos = {(c, i): (c, -(i - (len(col) - 1) / 2)) for c, col in enumerate(cols) for i, _ in enumerate(col)}
    fig = go.Figure()
    mats = [(s.W, s.G) for s in chain.stages] + [(chain.W_out, None)]
    for c, (W, G) in enumerate(mats, start=1):
        edges = _edges(W, cols[c], cols[c - 1]) | (_edges(G, cols[c], cols[c - 1]) if G is not None else set())
        for a, b in sorted(edges):
            (x0, y0), (x1, y1) = pos[(c - 1, a)], pos[(c, b)]
            fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", line=dict(color="#cccccc", width=1),
                                     hoverinfo="skip", showlegend=False))
    seen = set()
    for c, col in enumerate(cols):
        for i, g in enumerate(col):
            x, y = pos[(c, i)]
            n = len(g["units"])
            name = {"lin": "LinState", "pass": "pass-through", "relu": "ReLU", "relustate": "ReLUState",
                    "ind": "switch", "mul": "gate", "input": "input", "output": "output"}[g["kind"]]
            fig.add_trace(go.Scatter(
                x=[x], y=[y], mode="markers+text", text=[f"{g['node']} ({n})" if n > 1 else g["node"]],
                textposition="top center", name=name, legendgroup=name, showlegend=name not in seen,
                marker=dict(size=10 + 6 * math.sqrt(n), color=COLOURS[g["kind"]],
                            symbol="circle-dot" if g["recurrent"] else "circle", line=dict(width=1, color="black")),
                hovertext=[f"{g['node']}: {n} unit(s), {name}" + (", recurrent" if g["recurrent"] else "")],
                hoverinfo="text"))
            seen.add(name)
    ticks = ["input"] + [f"layer {i}" for i in range(len(chain.stages))] + ["readout"]
    if isinstance(compiled, Compiled):
        ticks[1:-1] = [f"layer {i}<br>{u} units" for i, u in enumerate(compiled.units)]
        title = title or f"{chain.name} compiled to {compiled.target}: {len(chain.stages)} layers, " \
                         f"state size {compiled.state_size}"
    fig.update_xaxes(tickvals=list(range(len(ticks))), ticktext=ticks, showgrid=False, zeroline=False)
    fig.update_yaxes(visible=False)
    return fig.update_layout(title=title or f"{chain.name}: {len(chain.stages)} stages", plot_bgcolor="white",
                             height=max(350, 60 * max(len(c) for c in cols)))


def trajectory_figure(c: Compiled, x, max_units: int = 60):
    """State trajectories of a compiled model on one input string, rows labelled by program variable.

    One heatmap per layer of ``layers.{i}.hook_h`` (the architecture's own hidden state), hover
    showing the program value each unit carries; the first panel shows the input and the output.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = torch.as_tensor(np.asarray(x, dtype=np.float64) if not torch.is_tensor(x) else x)[:1]   # (1, T, d)
    with torch.no_grad():
        _, cache = c.model.run_with_cache(c.inputs(x))
    values = c.channels(x)
    y = c(x)[0].double().numpy()                                                   # (T, d_out)
    T, L = x.shape[1], len(c.plans)
    heights = [1.0] + [min(max_units, p.hidden) / 8 + 0.5 for p in c.plans]
    fig = make_subplots(L + 1, 1, shared_xaxes=True, row_heights=heights, vertical_spacing=0.04,
                        subplot_titles=["input and output"] + [f"layer {i} hook_h ({c.target})" for i in range(L)])
    steps = np.arange(1, T + 1)
    for j in range(x.shape[2]):
        fig.add_trace(go.Scatter(x=steps, y=x[0, :, j].numpy(), mode="lines", line=dict(shape="hv", dash="dot"),
                                 name=f"x[{j}]"), 1, 1)
    for j, lab in enumerate(c.chain.output_labels):
        fig.add_trace(go.Scatter(x=steps, y=y[:, j], mode="lines+markers", line=dict(shape="hv"), name=lab), 1, 1)
    for i, plan in enumerate(c.plans):
        h = cache[f"layers.{i}.hook_h"][0, :, :plan.hidden].double().numpy()[:, :max_units]  # (T, H_i)
        D = plan.out.D if isinstance(plan.out.D, np.ndarray) else None
        hover = None
        if D is not None or True:
            stage_vals = values[i][0]                                              # (T, n)
            unit_stage = _unit_to_stage(plan, c.chain.stages[i])[:h.shape[1]]
            hover = np.array([[f"{plan.labels[u]} = {stage_vals[t, s]:.4g}" if s is not None else plan.labels[u]
                               for t in range(T)] for u, s in enumerate(unit_stage)])
        fig.add_trace(go.Heatmap(z=h.T, x=steps, y=plan.labels[:h.shape[1]], colorscale="RdBu", zmid=0,
                                 showscale=False, hovertext=hover, hoverinfo="text"), i + 2, 1)
    fig.update_xaxes(title_text="step", row=L + 1, col=1)
    return fig.update_layout(title=f"{c.program.name} on {c.target}: hidden states labelled by program variable",
                             height=250 + 180 * L)


def _unit_to_stage(plan, stage: Stage) -> list[Optional[int]]:
    """For each hidden unit, the stage unit whose value it (partly) carries, or None (constant units)."""
    D = plan.out.D if isinstance(plan.out.D, np.ndarray) else float_array(plan.out.D)   # (n, H)
    out = []
    for u in range(D.shape[1]):
        nz = np.flatnonzero(D[:, u])
        out.append(int(nz[0]) if len(nz) else None)
    return out


def _curve(v) -> list[float]:
    return [max(float(e), FLOOR) if e == e else None for e in v]


def precision_figure(study: dict):
    """Error against sequence length per target (left), and under input noise: gate vs ReLU (right)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lengths = study["lengths"]
    fig = make_subplots(1, 2, horizontal_spacing=0.12, subplot_titles=[
        "worst program per target (solid float64, dashed float32)",
        f"memory read by a gate (solid) or ReLU conditional (dotted), input noise {study['noise']:g}"])
    for target in TARGETS:
        rows = [r for r in study["rows"] if r["target"] == target and r["supported"]]
        if not rows:
            continue
        for key, dash, tag in (("error_vs_length", "solid", "float64"), ("error_vs_length_f32", "dash", "float32")):
            # a program measured at fewer lengths (a shorter declared horizon) leaves a gap, not an error
            table = np.full((len(rows), len(lengths)), np.nan)
            for i, r in enumerate(rows):
                v = np.asarray([np.nan if e is None else e for e in r[key]], dtype=float)[:len(lengths)]
                table[i, :len(v)] = v
            worst = np.array([np.nanmax(c) if np.isfinite(c).any() else np.nan for c in table.T])
            fig.add_trace(go.Scatter(x=lengths, y=_curve(worst), mode="lines+markers", name=f"{target} {tag}",
                                     line=dict(color=TARGET_COLOURS[target], dash=dash)), 1, 1)
    for key, errs in study["gate_stability"].items():
        prog, target = key.split("/")
        fig.add_trace(go.Scatter(x=lengths, y=_curve(errs), mode="lines+markers", name=key,
                                 line=dict(color=TARGET_COLOURS[target], dash="solid" if prog == "lookup" else "dot"),
                                 marker=dict(symbol="circle" if prog == "lookup" else "x")), 1, 2)
    fig.add_hline(y=study["tolerance"], line=dict(color="grey", dash="dot"), row=1, col=1)
    fig.update_xaxes(type="log", title_text="sequence length")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text=f"max abs error ({FLOOR:g} = exact 0)", row=1, col=1)
    return fig.update_layout(title="Precision of compiled programs against length", height=520, width=1050,
                             legend=dict(orientation="h", y=-0.22), margin=dict(t=90))


def sweep_figure(sweep: dict):
    """Error against step scale (left) and against length (right), per target, measured for the
    official construction (solid) and the hardened one (dashed), with the compile-time bound drawn
    over it (dotted) (see :func:`analyses.lsrl.study.precision_sweep`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(1, 2, subplot_titles=(f"error vs step scale (length {sweep['lengths'][-1]})",
                                              "error vs length (scale 1000)"))
    for col, (key, xs) in enumerate((("by_scale", sweep["scales"]), ("by_length", sweep["lengths"])), start=1):
        for name, row in sweep[key].items():
            target, construction = name.split("/")
            colour = TARGET_COLOURS.get(target, "#444444")
            dash = "dash" if construction == "hardened" else "solid"
            fig.add_trace(go.Scatter(x=xs, y=_curve(row["error"]), mode="lines+markers", name=f"{name} measured",
                                     line={"color": colour, "dash": dash}, legendgroup=name,
                                     showlegend=col == 1), 1, col)
            fig.add_trace(go.Scatter(x=xs, y=_curve(row["bound"]), mode="lines", name=f"{name} bound",
                                     line={"color": colour, "dash": "dot", "width": 1}, legendgroup=name,
                                     opacity=0.7 if construction == "hardened" else 0.4, showlegend=col == 1), 1, col)
        fig.update_xaxes(type="log", title_text="step scale" if col == 1 else "length", row=1, col=col)
        fig.update_yaxes(type="log", title_text="max |model - interpreter| (float64)", row=1, col=col)
    return fig.update_layout(title="More ones than zeros: the official construction (solid) loses precision as the "
                                   "step scale grows, the hardened one (dashed) stays exact; dotted: the compile-time "
                                   "bound", height=480)


def support_figure(study: dict):
    """Program x target: the state size each target needs, or why it cannot take the program."""
    import plotly.graph_objects as go

    programs = list(dict.fromkeys(r["program"] for r in study["rows"]))
    z, text, hover = [], [], []
    for p in programs:
        row = {r["target"]: r for r in study["rows"] if r["program"] == p}
        z.append([math.log2(row[t]["state_size"]) if t in row and row[t]["supported"] else None for t in TARGETS])
        text.append([(f"{row[t]['state_size']}" + (" exact" if row[t]["symbolic_model"] else "")) if t in row and
                     row[t]["supported"] else "–" for t in TARGETS])
        hover.append([row[t].get("reason", f"error {row[t].get('error', 0):.1e}") if t in row else "" for t in TARGETS])
    fig = go.Figure(go.Heatmap(z=z, x=list(TARGETS), y=programs, text=text, texttemplate="%{text}",
                               hovertext=hover, hoverinfo="text", colorscale="Blues", showscale=False))
    fig.update_yaxes(autorange="reversed")
    return fig.update_layout(title="State size per target (exact: the exported weights checked symbolically; "
                                   "–: the target cannot express the program)", title_font_size=13,
                             height=120 + 40 * len(programs))


__all__ = ["precision_figure", "stack_figure", "support_figure", "trajectory_figure"]
