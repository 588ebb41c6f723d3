"""The cells of a char-level LSTM on source code (Karpathy, Johnson & Fei-Fei 2015, Fig. 2).

    paper_figs.make("charlm_cells", "figs_out")              # or: probe figs --only charlm_cells

The paper's look: held-out text, every character's background coloured by one unit's activation
after reading it (tanh(c) for a cell, h otherwise), one panel per cell found: the best state unit
for "inside a comment or a string", bracket depth, position in the line and "inside an if
condition". Every panel's colour scale is fitted to its unit's range on the text shown (clipped
at the 2nd and 98th percentiles; white is 0 when the range holds 0), and its title names the
unit, its score and the best null.

``profile="full"``: a column for Python (the ``cells.charlm`` claim's quick-profile LSTM) and,
where ``linux-source`` is installed, one for the Linux kernel (the claim's full-profile LSTM),
each trained in ``store`` if missing. ``profile="quick"``: Python only, an LSTM-64 trained as the
claim's (stateful) for 400 steps in a temporary store (:data:`QUICK`): its cells are visible,
not as clean as the claim's.
"""
from __future__ import annotations

import glob
import math
import tempfile
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from paper_figs import Profile, save

NAME = "charlm_cells"
FEATURES = ("in_comment_or_string", "bracket_depth", "column", "in_if")
_WORDS = {"in_comment_or_string": "inside a comment or a string", "bracket_depth": "bracket depth",
          "column": "position in the line", "in_if": "inside an if condition"}
QUICK = {"hidden": 64, "steps": 400, "lr": 5e-3, "n": 16}  # the quick profile's small LSTM and its scoring
_CORPUS = {"python": "Python (CPython stdlib)", "linux": "C (Linux kernel/)"}


def _title(result, feature: str, corpus: str) -> str:
    """What a panel shows: the corpus, the feature, the unit, its score and the best null."""
    from analyses.cells import figures as cf

    unit = result.text["units"][feature]
    i = result.units.index(unit)
    s = result.scores[feature]
    metric = f"AUC {s['auc'][i]:.2f}" if "auc" in s else f"r {s['corr'][i]:+.2f}"
    n = result.nulls[feature]
    null = max(n["shuffle"], 0.0 if math.isnan(n["init"]) else n["init"])
    colour = cf.colour_range(result.text["values"][feature])[2]
    return (f"<b>{_CORPUS.get(corpus, corpus)}: {_WORDS.get(feature, feature)}</b> — {unit}, {metric} "
            f"(best null {null:.2f})<br><sup>background: the unit's activation; {colour}</sup>")


def figure(results: dict, width: int = 80, max_lines: int = 12) -> go.Figure:
    """One column per corpus (``{corpus: CellsResult}``), one row per feature of :data:`FEATURES` found."""
    from analyses.cells import figures as cf

    corpora = list(results)
    feats = [f for f in FEATURES if any(f in r.text.get("values", {}) for r in results.values())]
    if not feats:
        raise ValueError(f"no result has display text for {', '.join(FEATURES)}; are they charlm results?")
    titles = [_title(results[c], f, c) if f in results[c].text.get("values", {}) else ""
              for f in feats for c in corpora]
    fig = make_subplots(rows=len(feats), cols=len(corpora), subplot_titles=titles, vertical_spacing=0.25 / len(feats),
                        horizontal_spacing=0.03)
    for col, c in enumerate(corpora, start=1):
        text = results[c].text
        for row, f in enumerate(feats, start=1):
            if f not in text.get("values", {}):
                continue
            trace = cf.text_heatmap(text["tokens"], text["values"][f], width=width, max_lines=max_lines).data[0]
            trace.update(showscale=False)
            fig.add_trace(trace, row=row, col=col)
            fig.update_yaxes(autorange="reversed", showticklabels=False, row=row, col=col)
            fig.update_xaxes(showticklabels=False, row=row, col=col)
    fig.update_annotations(font_size=12)
    fig.update_layout(template="plotly_white", width=(9 * width + 40) * len(corpora) + 40,
                      height=(19 * max_lines + 80) * len(feats) + 90,
                      title="Cells of char-level LSTMs on held-out source code (after Karpathy et al. 2015, Fig. 2)<br>"
                            "<sup>each character's background is one unit's activation after reading it "
                            "(tanh c for a cell); the units are the best state units per feature</sup>",
                      margin={"t": 100, "l": 10, "r": 10, "b": 10})
    return fig


def quick_point(corpus: str = "python"):
    """The quick figure's LSTM (:data:`QUICK`) as a sweep point: trained statefully as the claim's, small."""
    from probe.sweep import Point

    return Point(task="charlm", arch="lstm", hidden=QUICK["hidden"], steps=QUICK["steps"], seed=0,
                 sets=(("task.length", 100), ("task.corpus", corpus), ("train.batch_size", 32),
                       ("train.lr", QUICK["lr"]), ("train.grad_clip", 5.0), ("train.stateful", True),
                       ("train.n_checkpoints", 2), ("train.eval_splits", ["valid"])))


def results(profile: Profile = "quick", store: str | Path | None = None, corpora: tuple[str, ...] | None = None) -> dict:
    """``{corpus: CellsResult}`` for the figure; see the module docstring. ``store`` is used in full only."""
    import analyses
    from analyses.cells import claims as cells_claims
    from probe import sweep
    from probe.threads import single_thread
    from tasks.charlm import LINUX_TARBALLS

    if corpora is None:
        corpora = ("python", "linux") if profile == "full" and glob.glob(LINUX_TARBALLS) else ("python",)
    out = {}
    with tempfile.TemporaryDirectory(prefix="probe-figs-") as tmp:
        for corpus in corpora:
            if profile == "full":
                claim_profile = "full" if corpus == cells_claims.settings("full").corpus else "quick"
                s = cells_claims.settings(claim_profile)
                run = cells_claims.train_charlm(claim_profile, str(store or "runs"))
                n = s.n
            else:
                s = cells_claims.settings("quick")
                # char-rnn's stateful training, as the claim's, but small: seconds, not minutes
                with single_thread():
                    run = sweep.train_points([quick_point(corpus)], store=tmp, name=NAME)[0]
                n = QUICK["n"]
            # scored as the claim scores: long windows after a burn-in
            out[corpus] = analyses.analyze("cells", run, n=n, causal="none",
                                           overrides={"length": s.score_length}, burn_in=s.burn_in)
    return out


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick", store: str | Path | None = None) -> list[Path]:
    """Train (or load) the models, analyse them, draw the figure, write PNG, SVG and HTML; returns the paths."""
    fig = figure(results(profile, store))
    return save(fig, out_dir, NAME, width=fig.layout.width, height=fig.layout.height)
