"""The parity phase diagram trains its cells through the sweep engine (issue 26, item 4)."""
from __future__ import annotations

import pytest

import probe
import probe.training
import tasks
from paper_figs import parity_phase
from probe import sweep


def _before(grid, gain: float, fraction: float, store: str) -> None:
    # the figure's training call before its cells went through probe.sweep.train_points
    data = {"exhaustive": True} if fraction >= 1 else {"fraction": fraction, "data_seed": 0}
    task = tasks.make("parity", max_len=10, **data)
    model = probe.models.make("elman", task, hidden=grid.hidden, nonlinearity="relu", gain=gain, h0="ones",
                              embedding="onehot", members=grid.members, seed=0)
    probe.train(task, model, steps=grid.steps, batch_size=128, lr=grid.lr, optimizer="adamw",
                n_checkpoints=2, eval_splits=["train"], store=store, progress=False)


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_every_cells_point_is_the_run_probe_train_gave(profile, tmp_path, run_id_of):
    grid = parity_phase.GRIDS[profile]
    cells = [(g, p) for g in grid.gains for p in grid.fractions]
    ids = [sweep.build(parity_phase.point(grid, g, p))[3] for g, p in cells]
    assert ids == [run_id_of(lambda g=g, p=p: _before(grid, g, p, str(tmp_path))) for g, p in cells]
    assert len(set(ids)) == len(cells) and not any(tmp_path.iterdir())


def test_the_cells_train_as_one_sweep_in_grid_order(tmp_path, monkeypatch):
    grid = parity_phase.GRIDS["quick"]
    seen = {}
    monkeypatch.setattr(sweep, "train_points", lambda points, store, name: seen.update(
        points=points, store=store, name=name) or [sweep.build(p)[3] for p in points])
    cells = parity_phase.train_cells(grid, str(tmp_path))
    assert seen["name"] == "parity_phase" and seen["store"] == str(tmp_path)
    assert list(cells) == [(g, p) for g in grid.gains for p in grid.fractions]
    assert list(cells.values()) == [sweep.build(parity_phase.point(grid, g, p))[3] for g, p in cells]
