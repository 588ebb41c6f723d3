"""The cells figures: text coloured by a unit on a scale fitted to the unit, never one flat colour."""
from __future__ import annotations

import numpy as np
import pytest

from analyses.cells import figures as cf


def test_a_range_holding_zero_is_symmetric_about_zero_and_clipped_at_percentiles():
    values = np.r_[np.linspace(-0.2, 0.5, 98), -50.0, 50.0]  # two outliers
    lo, hi, words = cf.colour_range(values)
    assert lo == -hi and hi == pytest.approx(np.percentile(values, 98))
    assert hi < 1 and "white 0" in words


def test_a_one_signed_unit_is_fitted_to_its_own_range():
    values = np.r_[np.full(90, 0.999), np.linspace(0.9, 0.99, 10)]  # a saturated cell: the old figure's one colour
    lo, hi, _ = cf.colour_range(values)
    assert lo == pytest.approx(np.percentile(values, 2)) and hi == pytest.approx(np.percentile(values, 98)) and hi > lo
    fig = cf.text_heatmap((["a", "b", "\\n"] * 34)[:100], values.tolist(), width=80, max_lines=34)
    assert (cf.colour_levels(fig.data[0]) > 0).sum() >= 2


def test_a_constant_unit_still_draws():
    lo, hi, _ = cf.colour_range(np.full(10, 0.3))
    assert lo < 0.3 < hi


@pytest.mark.slow
def test_the_quick_figure_has_more_than_one_colour_in_every_panel():
    from paper_figs import charlm_cells

    results = charlm_cells.results("quick")
    fig = charlm_cells.figure(results)
    assert len(fig.data) == len(charlm_cells.FEATURES)
    for trace in fig.data:
        levels = cf.colour_levels(trace)
        assert (levels >= 0.02 * levels.sum()).sum() >= 3, levels  # three of nine levels hold >= 2 % of the text
    assert all("best null" in a.text for a in fig.layout.annotations)


def test_the_quick_figures_point_is_the_run_probe_train_gave():
    # the quick figure trains through probe.sweep.train_points: the same run id as its earlier probe.train call
    import json

    import probe
    import tasks
    from paper_figs import charlm_cells
    from probe import sweep
    from probe.runs import run_id
    from probe.training import TrainConfig

    q = charlm_cells.QUICK
    task = tasks.make("charlm", length=100, corpus="python")
    model = probe.models.make("lstm", task, hidden=q["hidden"], seed=0)
    cfg = TrainConfig(steps=q["steps"], batch_size=32, lr=q["lr"], grad_clip=5.0, stateful=True, n_checkpoints=2,
                      eval_splits=["valid"], seed=0)
    legacy = run_id(json.loads(json.dumps({"task": {"name": task.name, "params": task.params},
                                           "model": dict(model.config), "train": cfg.to_dict()})))
    assert sweep.build(charlm_cells.quick_point("python"))[3] == legacy
