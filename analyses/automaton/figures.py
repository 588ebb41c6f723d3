"""Figures of :mod:`analyses.automaton`: state-count dynamics, the automaton as a graph, PCA panels."""
from __future__ import annotations

import numpy as np


def dynamics_figure(d: dict):
    """State count and mergers against step (x = step + 1, log), length-L accuracy on a second axis."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = [s + 1 for s in d["steps"]]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if "merges" in d:
        merges, splits = d["merges"], d["splits"]
    else:  # a result cached before merges and splits were counted: the paper's formula, both ways, clipped
        merges = [max(0.0, (2 * r - a) / 3) for r, a in zip(d["removed"], d["added"])]
        splits = [max(0.0, (2 * a - r) / 3) for r, a in zip(d["removed"], d["added"])]
    # bars would be hairlines on a log axis
    fig.add_trace(go.Scatter(x=x, y=merges, name="mergers since previous checkpoint", mode="lines+markers",
                             line=dict(color="#31a354", dash="dash"), marker=dict(symbol="diamond")))
    fig.add_trace(go.Scatter(x=x, y=splits, name="splits since previous checkpoint", mode="lines+markers",
                             line=dict(color="#969696", dash="dot"), marker=dict(symbol="x")))
    fig.add_trace(go.Scatter(x=x, y=d["n_states"], name="states (groups)", mode="lines+markers",
                             line=dict(color="#08519c")))
    fig.add_trace(go.Scatter(x=x, y=d["n_states_minimal"], name="states (minimised)", mode="lines+markers",
                             line=dict(color="#08519c", dash="dot")))
    fig.add_trace(go.Scatter(x=x, y=d["model_accuracy_long"], name=f"accuracy, length {d['long_length']}",
                             mode="lines+markers", line=dict(color="#d94801")), secondary_y=True)
    fig.update_xaxes(type="log", title="training step + 1")
    fig.update_yaxes(title="states / mergers / splits", rangemode="nonnegative", secondary_y=False)
    fig.update_yaxes(title="accuracy", range=[0, 1.02], tickvals=[0, 0.25, 0.5, 0.75, 1], showgrid=False,
                     secondary_y=True)
    fig.update_layout(title="Memorisation tree collapsing into an automaton", legend=dict(orientation="h", y=-0.2))
    return fig


MAX_DRAWN = 24  # a graph of more states on a circle is a hairball: say so instead


def automaton_figure(a: dict, title: str = "Extracted automaton", max_states: int = MAX_DRAWN):
    """The automaton as a graph: states on a circle coloured by output, arrows labelled by symbol.

    Over ``max_states`` states, a note in place of the graph (the minimised automaton is drawn on its own).
    """
    import plotly.graph_objects as go

    delta, labels, start = a["delta"], a["labels"], a["start"]
    n = len(delta)
    fig = go.Figure()
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    if n > max_states:
        fig.add_annotation(text=f"{n} states: too many to draw legibly (at most {max_states}).<br>"
                                "The minimised automaton is drawn in its own figure; the states' prefixes "
                                "are in the result's groups.", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        return fig.update_layout(title=f"{title}: {n} states (not drawn)")
    angle = np.pi / 2 - 2 * np.pi * np.arange(n) / n
    pos = np.stack([np.cos(angle), np.sin(angle)], 1) * (0 if n == 1 else 1)  # (n, 2)
    r = 0.12 if n <= 12 else 0.05
    edges: dict[tuple[int, int], list] = {}
    for q, row in enumerate(delta):
        for sym, t in zip(a["alphabet"], row):
            if t >= 0:
                edges.setdefault((q, t), []).append(str(sym))
    small = n <= 12  # label edges on small graphs; on big ones colour them by symbol instead
    edge_colour = {"0": "#636363", "1": "#e31a1c"}
    notes = []  # every annotation, set once: plotly's add_annotation copies all the earlier ones
    for (q, t), syms in edges.items():
        text, col = ",".join(syms), edge_colour.get(syms[0], "gray") if len(syms) == 1 else "black"
        if q == t:  # a self-loop: a small circle outside the node
            c = pos[q] * (1 + 2 * r) if n > 1 else np.array([0.0, 2 * r])
            th = np.linspace(0, 2 * np.pi, 30)
            fig.add_trace(go.Scatter(x=c[0] + r * np.cos(th), y=c[1] + r * np.sin(th), mode="lines",
                                     line=dict(color=col, width=1), hoverinfo="skip", showlegend=False))
            if small:
                notes.append(dict(x=c[0] * (1 + 1.5 * r), y=c[1] * (1 + 1.5 * r) + (r if n == 1 else 0),
                                  text=text, showarrow=False))
            continue
        (x0, y0), (x1, y1) = pos[q], pos[t]
        normal = np.array([y0 - y1, x1 - x0]) * 0.06  # bend apart the two directions of a pair
        notes.append(dict(x=x1 + normal[0], y=y1 + normal[1], ax=x0 + normal[0], ay=y0 + normal[1],
                          xref="x", yref="y", axref="x", ayref="y", showarrow=True, arrowhead=2,
                          arrowsize=1.2 if small else 0.8, arrowwidth=1, arrowcolor=col,
                          standoff=14 if small else 6, text=""))
        if small:
            mid = (pos[q] + pos[t]) / 2 + 2 * normal
            notes.append(dict(x=mid[0], y=mid[1], text=text, showarrow=False, font=dict(size=12)))
    fig.update_layout(annotations=notes)
    colour = {0: "#3182bd", 1: "#e6550d", None: "#bdbdbd"}
    sizes = a.get("sizes") or [1] * n
    hover = [f"state {q}, output {labels[q]}, {sizes[q]} prefixes" + (" (start)" if q == start else "")
             for q in range(n)]
    fig.add_trace(go.Scatter(
        x=pos[:, 0], y=pos[:, 1], mode="markers+text" if small else "markers", text=[str(q) for q in range(n)],
        hovertext=hover, hoverinfo="text", showlegend=False,
        marker=dict(size=[28 if small else 9] * n, color=[colour.get(lab, "#756bb1") for lab in labels],
                    line=dict(width=[4 if q == start else 1 for q in range(n)], color="black"))))
    fig.update_xaxes(scaleanchor="y")
    key = "" if small else "; edges: grey on 0, red on 1"
    return fig.update_layout(title=f"{title}: {n} states<br><sup>output 0 blue, 1 orange; thick outline = start{key}</sup>")


def pca_figure(pca: dict):
    """Two panels: PCA of the prefix states, coloured by parity, at an early and a late checkpoint."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = pca["panels"]
    fig = make_subplots(1, len(panels), subplot_titles=[f"step {p['step']} ({p['n_states']} states)" for p in panels])
    parity = np.asarray(pca["parity"])
    for i, p in enumerate(panels):
        xy = np.asarray(p["coords"])  # (N, 2)
        for value, colour in ((0, "#3182bd"), (1, "#e6550d")):
            sel = parity == value
            fig.add_trace(go.Scatter(x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=f"parity {value}",
                                     marker=dict(size=4, color=colour, opacity=0.6), showlegend=i == 0,
                                     hovertext=[pca["prefixes"][j] for j in np.flatnonzero(sel)]),
                          row=1, col=i + 1)
    return fig.update_layout(title="Hidden states after every prefix (PCA)")
