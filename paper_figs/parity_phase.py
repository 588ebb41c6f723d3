"""Phase diagram of streaming parity (van Rossem & Saxe 2025): where infinite generalisation appears.

    paper_figs.make("parity_phase", "figs_out")           # or: probe figs --only parity_phase

A grid over the Elman network's init gain and the data fraction p (per length L the run keeps
Binomial(2^L, p) of the 2^L strings of length L, L = 1..10; p = 1 is all 2046). Every cell trains
a few seeds at once and colours the median per-step accuracy on fresh strings of length 10,000;
a cell's text adds how many seeds' extracted automata minimise to the parity automaton.
``profile="quick"`` is a coarse 3 x 3 grid with the quick claim's training (AdamW, 400 steps) in a
temporary store unless one is given; ``profile="full"`` a 6 x 6 grid, four seeds and longer
training, in ``store`` (default ``runs``). The paper's grid is 20 x 20 with cross-entropy and SGD.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from paper_figs import Profile, save
from probe.settings import Settings, profiles, setting, settings_for

NAME = "parity_phase"


@dataclass(frozen=True)
class Grid(Settings):
    """The phase diagram's cells (init gain x fraction of the training strings) and their training."""

    gains: tuple[float, ...] = setting()
    fractions: tuple[float, ...] = setting()
    members: int = setting(ge=1)
    steps: int = setting(ge=1)
    lr: float = setting(3e-3, gt=0)
    hidden: int = setting(100, ge=1)
    long_n: int = setting(8, ge=1)


GRIDS = profiles(
    quick=Grid(gains=(0.1, 1.0, 2.5), fractions=(0.05, 0.2, 1.0), members=2, steps=400),
    full=Grid(gains=(0.05, 0.1, 0.3, 1.0, 2.0, 2.5), fractions=(0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
              members=4, steps=2000),
)


def point(grid: Grid, gain: float, fraction: float):
    """One cell's run as a :class:`probe.sweep.Point` (``probe train --set`` keys, the same run id)."""
    from probe.sweep import Point

    data = (("task.exhaustive", True),) if fraction >= 1 else (("task.fraction", fraction), ("task.data_seed", 0))
    sets = (("task.max_len", 10), *data, ("model.nonlinearity", "relu"), ("model.gain", gain), ("model.h0", "ones"),
            ("model.embedding", "onehot"), ("train.batch_size", 128), ("train.lr", grid.lr),
            ("train.optimizer", "adamw"), ("train.n_checkpoints", 2), ("train.eval_splits", ["train"]))
    return Point("parity", "elman", grid.hidden, members=grid.members, steps=grid.steps, seed=0, sets=sets)


def train_cells(grid: Grid, store: str) -> dict:
    """Train (or load) every cell's seeds through the sweep engine (:func:`probe.sweep.train_points`:
    here, or on ``probe figs``'s ``--workers`` / ``--engine``); returns {(gain, fraction): Run}."""
    from probe.sweep import train_points

    cells = [(g, p) for g in grid.gains for p in grid.fractions]
    runs = train_points([point(grid, g, p) for g, p in cells], store=store, name=NAME)
    return dict(zip(cells, runs))


def train_cell(grid: Grid, gain: float, fraction: float, store: str):
    """Train (or load) one cell's seeds; returns the Run."""
    from probe.sweep import train_points

    return train_points([point(grid, gain, fraction)], store=store, name=NAME)[0]


def measure(run, long_n: int = 8) -> dict:
    """Median length-10,000 accuracy over the seeds and how many seeds' automata are parity's."""
    from analyses import automaton as au
    from analyses.automaton import automata as fa
    from analyses.automaton.claims import long_accuracy

    acc = long_accuracy(run, n=long_n)
    task = run.task()
    truth, equivalent = au.true_automaton(task), 0
    for m in range(int(run.config["model"]["members"])):
        states, labels = au.prefix_states(run.model(m), task)
        equivalent += fa.minimise(fa.extract(states, 0.01, labels, alphabet=(0, 1)).automaton) == truth
    return {"accuracy": float(np.median(acc)), "equivalent": equivalent, "members": len(acc)}


def figure(grid: Grid, cells: dict) -> go.Figure:
    """Heatmap of median accuracy at length 10,000 over (data fraction, init gain).

    Parameters
    ----------
    grid : Grid
    cells : dict (gain, fraction) -> the dict of :func:`measure`
    """
    z = [[cells[g, p]["accuracy"] for p in grid.fractions] for g in grid.gains]  # (gains, fractions)
    text = [[f"{cells[g, p]['accuracy']:.2f}<br>{cells[g, p]['equivalent']}/{cells[g, p]['members']} parity"
             for p in grid.fractions] for g in grid.gains]
    fig = go.Figure(go.Heatmap(z=z, x=[str(p) for p in grid.fractions], y=[str(g) for g in grid.gains],
                               text=text, texttemplate="%{text}", zmin=0.5, zmax=1.0, colorscale="Viridis",
                               colorbar=dict(title="accuracy<br>len 10,000")))
    fig.update_xaxes(title="data fraction p", type="category")
    fig.update_yaxes(title="init gain", type="category")
    return fig.update_layout(template="plotly_white", title=(
        "Streaming parity: where infinite generalisation appears<br><sup>median per-step accuracy at length "
        f"10,000 over {grid.members} seeds; text: seeds whose extracted automaton minimises to parity's</sup>"))


def make(out_dir: str | Path = "figs_out", profile: Profile = "quick", store: str | Path | None = None) -> list[Path]:
    """Train (or load) every cell, draw the phase diagram, write PNG, SVG and HTML; returns the paths."""
    grid = settings_for(GRIDS, profile)
    with tempfile.TemporaryDirectory(prefix="probe-figs-") as tmp:
        where = str(store) if store is not None else ("runs" if profile == "full" else tmp)
        cells = {cell: measure(run, grid.long_n) for cell, run in train_cells(grid, where).items()}
    return save(figure(grid, cells), out_dir, NAME, width=800, height=600)
