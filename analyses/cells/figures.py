"""Figures of the cells analysis: text coloured by a unit, unit x feature scores, saturation, probes."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

_GATE_COLORS = {"hook_i": "#1f77b4", "hook_f": "#d62728", "hook_o": "#2ca02c", "hook_r": "#9467bd",
                "hook_z": "#ff7f0e"}


def _lines(tokens: list[str], width: int) -> list[list[int]]:
    """Token indices grouped into display lines: a newline token (``\\n``) ends a line, and so does ``width``."""
    lines, cur = [], []
    for i, tok in enumerate(tokens):
        cur.append(i)
        if tok == "\\n" or len(cur) == width:
            lines.append(cur)
            cur = []
    return lines + ([cur] if cur else [])


def colour_range(values, low: float = 2.0, high: float = 98.0) -> tuple[float, float, str]:
    """The colour scale of a unit's text panel: (zmin, zmax, description), fitted to the unit's range.

    The scale is clipped at the ``low`` and ``high`` percentiles of ``values``, so one outlier
    does not wash the rest out to a single colour. When that range holds 0 it is made symmetric
    about 0 (white is 0, red positive, blue negative: the paper's diverging look); otherwise it
    is the range itself (blue its low end, red its high end).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return -1.0, 1.0, "no values"
    lo, hi = (float(x) for x in np.percentile(v, [low, high]))
    if lo < 0 < hi:
        m = max(-lo, hi)
        return -m, m, f"white 0, blue -{m:.2g}, red +{m:.2g} (clipped at percentiles {low:g}/{high:g})"
    if hi - lo < 1e-6:  # a constant unit: one colour is the truth
        lo, hi = lo - 1e-3, hi + 1e-3
    return lo, hi, f"blue {lo:.2g}, red {hi:.2g} (percentiles {low:g}/{high:g})"


def colour_levels(trace, n: int = 9) -> np.ndarray:
    """How many characters of a text panel fall in each of ``n`` equal bins of its colour scale: (n,)."""
    z = np.asarray(trace.z, dtype=np.float64)
    z = z[np.isfinite(z)]
    t = np.clip((z - trace.zmin) / (trace.zmax - trace.zmin), 0, 1)
    return np.bincount(np.minimum((t * n).astype(int), n - 1), minlength=n)


def text_heatmap(tokens: list[str], values: list[float], title: str = "", width: int = 80,
                 max_lines: int = 30) -> go.Figure:
    """The text with every character's background coloured by a unit's activation (the paper's look).

    Parameters
    ----------
    tokens : (T,) display labels (``task.decode``), newlines as ``\\n``, tabs as ``\\t``.
    values : (T,) the unit's activation after reading each token (tanh(c) for a cell).

    The colour scale is :func:`colour_range` of the characters shown.
    """
    if len(tokens) != len(values):
        raise ValueError(f"tokens and values differ in length: {len(tokens)} vs {len(values)}")
    lines = _lines(tokens, width)[:max_lines]
    cols = max((len(line) for line in lines), default=1)
    z = np.full((len(lines), cols), np.nan)                                 # (lines, cols)
    text = [[""] * cols for _ in lines]
    shown = {"\\n": "↵", " ": "·", "\\t": "→"}
    for r, line in enumerate(lines):
        for c, i in enumerate(line):
            z[r, c] = values[i]
            text[r][c] = shown.get(tokens[i], tokens[i])
    lo, hi, _ = colour_range(z)
    fig = go.Figure(go.Heatmap(z=z, text=text, texttemplate="%{text}", textfont={"family": "monospace", "size": 11},
                               colorscale="RdBu_r", zmin=lo, zmax=hi, xgap=0, ygap=1,
                               hovertemplate="line %{y} col %{x}: %{text}<br>activation %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(template="plotly_white", title=title, width=max(400, 11 * cols + 120),
                      height=max(200, 20 * len(lines) + 90), margin={"t": 50, "l": 10, "r": 10, "b": 10})
    return fig


def score_heatmap(result, per_feature: int = 5) -> go.Figure:
    """Scores of the top units of every feature (rows) against every feature (columns)."""
    feats = result.features
    rows = list(dict.fromkeys(r["unit"] for f in feats for r in result.top[f][:per_feature]))
    index = {u: i for i, u in enumerate(result.units)}
    z = np.array([[result.scores[f]["score"][index[u]] for f in feats] for u in rows])  # (rows, F)
    fig = go.Figure(go.Heatmap(z=z, x=[f"{f} ({'AUC' if result.kinds[f] == 'binary' else '|r|'})" for f in feats],
                               y=rows, colorscale="Viridis", zmin=0, zmax=1, texttemplate="%{z:.2f}",
                               hovertemplate="%{y}<br>%{x}: %{z:.3f}<extra></extra>"))
    nulls = ", ".join(f"{f} {max(result.nulls[f]['shuffle'], 0 if math.isnan(result.nulls[f]['init']) else result.nulls[f]['init']):.2f}"
                      for f in feats)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(template="plotly_white", title=f"Unit x feature scores<br><sup>best null: {nulls}</sup>",
                      height=max(300, 22 * len(rows) + 120), width=700, margin={"l": 180})
    return fig


def saturation_scatter(saturation: dict) -> go.Figure:
    """Per layer: fraction left-saturated (x) against right-saturated (y), one point per gate unit."""
    layers = sorted({int(h.split(".")[1]) for h in saturation})
    fig = make_subplots(rows=1, cols=max(1, len(layers)), subplot_titles=[f"layer {i}" for i in layers],
                        shared_yaxes=True)
    seen = set()
    for hook, s in saturation.items():
        layer, gate = int(hook.split(".")[1]), hook.split(".")[-1]
        fig.add_trace(go.Scatter(x=s["left"], y=s["right"], mode="markers", name=gate[5:] + " gate",
                                 legendgroup=gate, showlegend=gate not in seen,
                                 marker={"size": 6, "opacity": 0.7, "color": _GATE_COLORS.get(gate)}),
                      row=1, col=layers.index(layer) + 1)
        seen.add(gate)
    for c in range(1, len(layers) + 1):
        fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0], mode="lines", line={"color": "#bbb", "dash": "dot"},
                                 showlegend=False, hoverinfo="skip"), row=1, col=c)
        fig.update_xaxes(range=[0, 1], title_text="fraction left-saturated (< 0.1)", row=1, col=c)
    fig.update_yaxes(range=[0, 1], title_text="fraction right-saturated (> 0.9)", row=1, col=1)
    fig.update_layout(template="plotly_white", title="Gate saturation", width=380 * max(1, len(layers)) + 100,
                      height=420)
    return fig


def probe_bars(result) -> go.Figure:
    """Per feature: the linear probe's held-out score beside the best single unit and the best null."""
    feats = result.features
    null = [max(result.nulls[f]["shuffle"], 0 if math.isnan(result.nulls[f]["init"]) else result.nulls[f]["init"])
            for f in feats]
    fig = go.Figure([go.Bar(x=feats, y=[result.probes[f]["probe"] for f in feats], name="linear probe (whole state)"),
                     go.Bar(x=feats, y=[result.probes[f]["best_unit"] for f in feats], name="best single unit"),
                     go.Bar(x=feats, y=null, name="best null (init / shuffled)")])
    fig.update_layout(template="plotly_white", barmode="group", yaxis={"range": [0, 1], "title": "AUC or |r|"},
                      title="Population (probe) against single units", width=700, height=400)
    return fig
