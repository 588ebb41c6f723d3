"""In-context regression: targets equal W x; the teacher equals causal linear attention."""
from __future__ import annotations

import pytest
import torch

import tasks


def test_targets_equal_w_x_and_the_queries_hide_y():
    task = tasks.make("icl_regression", d_x=3, d_y=2, n_examples=5, n_queries=2)
    batch = task.sample(8, seed=0)
    assert task.d_input == 3 + 2 + 1 and batch.length == 7
    for i in range(8):
        W = batch.info["W"][i]
        for t in range(7):
            x = batch.inputs[i, t, :3]
            y = [sum(W[r, c].item() * x[c].item() for c in range(3)) for r in range(2)]
            assert batch.targets[i, t].tolist() == pytest.approx(y, abs=1e-5)
            query = t >= 5
            assert batch.mask[i, t] == query and batch.inputs[i, t, -1] == float(query)
            if query:
                assert batch.inputs[i, t, 3:5].abs().sum() == 0
            else:
                assert batch.inputs[i, t, 3:5].tolist() == pytest.approx(y, abs=1e-5)
        assert batch.features["examples"][i].tolist() == [1, 2, 3, 4, 5, 5, 5]


def test_regression_matrices_have_variance_one_over_d():
    batch = tasks.make("icl_regression", d_x=8).sample(512, seed=0)
    assert batch.info["W"].var().item() == pytest.approx(1 / 8, rel=0.1)


def test_teacher_targets_equal_a_slow_linear_attention():
    task = tasks.make("icl_regression", kind="teacher", d_x=3, d_y=2, n_examples=6)
    batch = task.sample(3, seed=0)
    w = task.teacher_weights()
    assert batch.mask.all() and task.d_input == 3 and task.d_output == 2
    for i in range(3):
        z = batch.inputs[i].double()
        for t in range(6):
            y = torch.zeros(2, dtype=torch.float64)
            for s in range(t + 1):
                score = (w["W_K"].double() @ z[s]) @ (w["W_Q"].double() @ z[t])
                y += (w["W_V"].double() @ z[s]) * score
            assert batch.targets[i, t].tolist() == pytest.approx((y / 3 ** 0.5).tolist(), abs=1e-4)
    # the teacher is one fixed function of the params: the same for every row and every batch
    again = tasks.make("icl_regression", kind="teacher", d_x=3, d_y=2, n_examples=6)
    assert all(torch.equal(a, b) for a, b in zip(again.teacher_weights().values(), w.values()))
