"""Plotly figures of the n-gram analysis: pure functions of a result's JSON-able fields."""
from __future__ import annotations

import plotly.graph_objects as go

_COLOURS = {"dfa": "black", "1": "#9467bd", "2": "#1f77b4", "3": "#2ca02c"}
_NAMES = {"dfa": "true DFA", "1": "1-gram", "2": "2-gram", "3": "3-gram"}


def _label_at(baselines: dict, metric: str) -> dict:
    """Where each baseline's label goes: the highest line's above it, the lowest's below it, the
    others at its end, so that close lines (2- and 3-gram) keep their labels apart in either panel."""
    order = sorted(baselines, key=lambda k: baselines[k][metric])
    return {k: "bottom right" if k == order[0] else "top right" if k == order[-1] else "right" for k in order}

_ARCH_COLOURS = ["#d62728", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def tvd_by_position(scores: dict, baselines: dict, counts: list, title: str) -> go.Figure:
    """The model's TVD to each reference against position in the context (positions with >= 10 rows)."""
    fig = go.Figure()
    keep = [t for t, c in enumerate(counts) if c >= 10]
    for key, values in scores.get("tvd_by_position", {}).items():
        fig.add_trace(go.Scatter(x=keep, y=[values[t] for t in keep], mode="lines",
                                 name=f"model vs {_NAMES.get(key, key)}", line={"color": _COLOURS.get(key)}))
    for key, b in baselines.items():
        values = b.get("tvd_by_position", [])
        fig.add_trace(go.Scatter(x=keep, y=[values[t] for t in keep], mode="lines",
                                 name=f"{_NAMES.get(key, key)} vs true DFA",
                                 line={"color": _COLOURS.get(key), "dash": "dot"}))
    fig.update_layout(title=title, xaxis_title="position in context (tokens read)",
                      yaxis_title="total-variation distance", yaxis_range=[0, 1], template="plotly_white")
    return fig


def over_training(rows: list, title: str) -> go.Figure:
    """TVD to each reference and accuracy against training step (log-spaced checkpoints)."""
    fig = go.Figure()
    steps = [max(r["step"], 1) for r in rows]
    for key in (rows[0]["tvd"] if rows else {}):
        fig.add_trace(go.Scatter(x=steps, y=[r["tvd"][key] for r in rows], mode="lines+markers",
                                 name=f"TVD to {_NAMES.get(key, key)}", line={"color": _COLOURS.get(key)}))
    fig.add_trace(go.Scatter(x=steps, y=[r["accuracy"] for r in rows], mode="lines+markers", name="accuracy",
                             line={"color": "#d62728", "dash": "dash"}))
    fig.update_layout(title=title, xaxis_title="training step", xaxis_type="log", yaxis_range=[0, 1],
                      template="plotly_white")
    return fig


def example(ex: dict, title: str) -> go.Figure:
    """One context as strips of tokens, each cell coloured by whether the next letter predicted
    there is legal: the model's (top row, with the token read and the model's letter) and, below,
    the in-context n-gram predictors'."""
    T = len(ex["tokens"])
    strips = [("model", ex["legal"])] + [(f"{k[6:-4]}-gram", ex[k]) for k in sorted(ex) if k.startswith("legal_")
                                          and k.endswith("gram")]
    z = [[1.0 if ok else 0.0 for ok in legal] for _, legal in strips][::-1]
    text = [[""] * T for _ in strips[1:]] + [[f"{tok}<br>→{g}" for tok, g in zip(ex["tokens"], ex["greedy"])]]
    hover = [[f"read {tok}; next {tgt}; model's letter {g}; legal: {{{s}}}"
              for tok, tgt, g, s in zip(ex["tokens"], ex["targets"], ex["greedy"], ex["legal_sets"])]] * len(strips)
    fig = go.Figure(go.Heatmap(z=z, y=[name for name, _ in strips][::-1], text=text, texttemplate="%{text}",
                               customdata=hover, hovertemplate="%{y}: %{customdata}<extra></extra>", zmin=0, zmax=1,
                               showscale=False, colorscale=[[0, "#f4a6a6"], [1, "#a6e3a6"]], xgap=1, ygap=2))
    fig.update_layout(title=title, xaxis_title="position in context", height=120 + 50 * len(strips),
                      width=max(700, 30 * T), template="plotly_white")
    return fig


def versus_automata(rows: list[dict], baselines: dict, metric: str, title: str) -> go.Figure:
    """Mean over seeds of ``metric`` ("accuracy" or "tvd" to the DFA) against the number of training
    automata, one line per architecture (over the numbers it was trained on: a champion row is a
    single point), the in-context n-gram baselines as horizontal lines."""
    fig = go.Figure()
    archs = sorted({r["arch"] for r in rows})
    for i, arch in enumerate(archs):
        counts = sorted({r["n_train_automata"] for r in rows if r["arch"] == arch})
        means, spread = [], []
        for c in counts:
            v = [r[metric] for r in rows if r["arch"] == arch and r["n_train_automata"] == c]
            means.append(sum(v) / len(v))
            spread.append((max(v) - min(v)) / 2)
        single = len(counts) == 1  # a champion: a star, so it stands out at the edge of the axis
        fig.add_trace(go.Scatter(x=counts, y=means, error_y={"type": "data", "array": spread}, mode="lines+markers",
                                 name=arch, line={"color": _ARCH_COLOURS[i % len(_ARCH_COLOURS)]},
                                 marker={"symbol": "star", "size": 14} if single else None))
    at = _label_at(baselines, metric)
    for key, b in sorted(baselines.items()):
        fig.add_hline(y=b[metric], line={"color": _COLOURS.get(key, "grey"), "dash": "dot"},
                      annotation_text=f"in-context {_NAMES.get(key, key)}", annotation_position=at[key])
    fig.update_layout(title=title, xaxis_title="number of training automata", xaxis_type="log",
                      yaxis_title="greedy letter legal" if metric == "accuracy" else "TVD to the true distribution",
                      yaxis_range=[0, 1], template="plotly_white")
    return fig


def sweep_figure(rows: list[dict], baselines: dict, title: str) -> go.Figure:
    """The paper's main plot: accuracy (left) and TVD to the DFA (right) against the number of
    training automata, one line per architecture, the in-context n-gram baselines dotted."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("accuracy (greedy letter legal)", "TVD to the true DFA"))
    for col, metric in ((1, "accuracy"), (2, "tvd")):
        panel = versus_automata(rows, baselines, metric, "")
        for trace in panel.data:
            trace.showlegend = col == 1
            fig.add_trace(trace, row=1, col=col)
        at = _label_at(baselines, metric)
        for key, b in sorted(baselines.items()):
            fig.add_hline(y=b[metric], line={"color": _COLOURS.get(key, "grey"), "dash": "dot"}, row=1, col=col,
                          annotation_text=f"{_NAMES.get(key, key)}", annotation_position=at[key])
        fig.update_xaxes(title_text="number of training automata", type="log", row=1, col=col)
        fig.update_yaxes(range=[0, 1], row=1, col=col)
    fig.update_layout(title=title, template="plotly_white")
    return fig
