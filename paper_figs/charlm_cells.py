"""The quote and bracket cells of a char-level LSTM on Python source (Karpathy, Johnson & Fei-Fei 2015, Fig. 3).

    paper_figs.make("charlm_cells", "figs_out")              # or: probe figs --only charlm_cells

Two panels of held-out text, every character's background coloured by one cell's tanh(c) (or h):
the best unit for ``in_string`` and the best for ``bracket_depth``. ``profile="full"`` uses the
``cells.charlm`` claim's own run (its full profile, in ``store``, trained there if missing);
``profile="quick"`` trains a small LSTM for a few hundred steps in a temporary store, enough for
the figure to draw, not for the cells to be clean.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from paper_figs import Profile, save

NAME = "charlm_cells"
FEATURES = ("in_string", "bracket_depth")


def figure(result, width: int = 80, max_lines: int = 14) -> go.Figure:
    """Stacked text panels, one per feature in :data:`FEATURES`, from a :class:`analyses.cells.CellsResult`."""
    from analyses.cells import figures as cf

    feats = [f for f in FEATURES if f in result.text.get("values", {})]
    if not feats:
        raise ValueError(f"the result has no display text for {', '.join(FEATURES)}; is it a charlm result?")
    titles = []
    for f in feats:
        top = result.top[f][0]
        metric = f"AUC {top['auc']:.2f}" if "auc" in top else f"r {top['corr']:+.2f}"
        titles.append(f"{f}: {result.text['units'][f]} (best unit: {top['unit']}, {metric})")
    fig = make_subplots(rows=len(feats), cols=1, subplot_titles=titles, vertical_spacing=0.08)
    for row, f in enumerate(feats, start=1):
        panel = cf.text_heatmap(result.text["tokens"], result.text["values"][f], width=width, max_lines=max_lines)
        trace = panel.data[0]
        trace.update(showscale=False)
        fig.add_trace(trace, row=row, col=1)
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=row, col=1)
        fig.update_xaxes(showticklabels=False, row=row, col=1)
    fig.update_layout(template="plotly_white", width=11 * width + 120, height=(20 * max_lines + 60) * len(feats) + 60,
                      title="Char-level LSTM cells on held-out Python source (red high, blue low)",
                      margin=dict(t=90, l=10, r=10, b=10))
    return fig


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick", store: str | Path | None = None) -> list[Path]:
    """Train (or load) the model, analyse it, draw the figure, write PNG, SVG and HTML; returns the paths."""
    import analyses
    import probe
    import tasks
    from analyses.cells import claims as cells_claims

    with tempfile.TemporaryDirectory(prefix="probe-figs-") as tmp:
        where = str(store) if store is not None else ("runs" if profile == "full" else tmp)
        if profile == "full":
            run = cells_claims.train_charlm("full", where)
        else:
            task = tasks.make("charlm", length=100)
            model = probe.models.make("lstm", task, hidden=32, seed=0)
            run = probe.train(task, model, steps=150, batch_size=32, lr=1e-2, n_checkpoints=2,
                              eval_splits=["valid"], store=where, progress=False)
        s = cells_claims.settings(profile)  # score as the claim does: windows, burn-in
        result = analyses.analyze("cells", run, n=32 if profile == "quick" else s.n, causal="none",
                                  overrides={"length": s.score_length}, burn_in=s.burn_in)
        fig = figure(result)
    return save(fig, out_dir, NAME, width=fig.layout.width, height=fig.layout.height)
