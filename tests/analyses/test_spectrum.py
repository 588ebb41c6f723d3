"""The spectrum analysis: bulk and outliers, the fixed-point finder, every architecture, runs, claims."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import analyses
import probe
import tasks
from analyses import spectrum
from analyses.spectrum import claims as integration_claims
from analyses.spectrum.fixed_point_search import classify, find_fixed_points, jacobians, linear_fixed_point


def bistable(h: torch.Tensor) -> torch.Tensor:
    """x ← x + ½(x − x³), y ← y/2: stable nodes at (±1, 0), a saddle at the origin."""
    x, y = h[:, 0], h[:, 1]
    return torch.stack([x + 0.5 * (x - x**3), 0.5 * y], 1)


def test_fixed_point_finder_recovers_two_stable_points_and_a_saddle():
    starts = torch.rand(24, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4 - 2
    fp = find_fixed_points(bistable, starts, iters=300)
    order = np.argsort(fp.points[:, 0])
    np.testing.assert_allclose(fp.points[order], [[-1, 0], [0, 0], [1, 0]], atol=1e-8)
    assert [fp.kinds[i] for i in order] == ["stable", "saddle", "stable"]
    assert fp.fixed.all()
    eig = [np.sort(np.abs(fp.eigvals[i])) for i in order]
    np.testing.assert_allclose(eig, [[0, 0.5], [0.5, 1.5], [0, 0.5]], atol=1e-8)


def test_classify_and_the_exact_fixed_point_of_an_affine_map():
    assert classify(np.array([0.5, 0.2j])) == "stable"
    assert classify(np.array([1.5, 0.5])) == "saddle"
    assert classify(np.array([1.2, -1.3])) == "unstable"
    assert classify(np.array([1.0, 0.5])) == "line attractor"
    J = torch.tensor([[0.5, 0.2], [0.0, 0.8]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    fp = linear_fixed_point(lambda h: h @ J.T + b, 2)
    np.testing.assert_allclose(fp.points[0], np.linalg.solve(np.eye(2) - J.numpy(), b.numpy()))
    assert fp.kinds == ["stable"] and fp.fixed.all()


def test_bulk_radius_and_one_planted_outlier():
    rng = np.random.default_rng(0)
    N, r = 64, 0.3
    W = rng.standard_normal((N, N)) * r / np.sqrt(N)
    e = rng.standard_normal(N)
    e /= np.linalg.norm(e)
    radius, mask = spectrum.bulk_and_outliers(np.linalg.eigvals(W + 0.9 * np.outer(e, e)))
    assert radius == pytest.approx(r, rel=0.15) and mask.sum() == 1
    with pytest.raises(ValueError, match="edge"):
        spectrum.bulk_and_outliers(np.ones(3), edge=1.0)


def test_jacobian_along_a_gru_trajectory_matches_finite_differences():
    task = tasks.make("integration", length=12)
    model = probe.models.make("gru", task, hidden=6, seed=0).double()
    x = spectrum.layer_inputs(model, task.sample(1, seed=0).inputs.double())[0][0, 0, 3]  # (d_in,)
    F = spectrum.step_function(model, 0, x)
    h = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    J = jacobians(F, h)[0]
    eps = 1e-6
    fd = torch.stack([(F(h + eps * torch.eye(6, dtype=torch.float64)[i]) - F(h - eps * torch.eye(6, dtype=torch.float64)[i]))[0]
                      / (2 * eps) for i in range(6)], 1)
    torch.testing.assert_close(J, fd, atol=1e-7, rtol=1e-6)


# eigenvalue count: H for W and the diagonals; for gru/lstm, the state size (H, 2H) at each of 2 points
@pytest.mark.parametrize("arch,task_name,count", [("linear", "integration", 8), ("elman", "parity", 8),
                                                  ("gru", "integration", 16), ("lstm", "integration", 32),
                                                  ("lru", "integration", 8), ("hawk", "parity", 8)])
def test_every_architecture_gives_a_spectrum_fixed_points_and_figures(arch, task_name, count):
    task = tasks.make(task_name)
    model = probe.models.make(arch, task, hidden=8, seed=0)
    res = spectrum.analyze(model, task, n_points=2, n_starts=8)
    assert len(res.eigvals[0][0]["re"]) == count
    assert res.kind == {"linear": "W", "elman": "W", "lru": "diagonal", "hawk": "diagonal"}.get(arch, "jacobian")
    assert set(res.fixed_points["kinds"]) <= {"stable", "saddle", "unstable", "line attractor"}
    again = spectrum.SpectrumResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert again.to_dict() == res.to_dict()
    figs = again.figures()
    assert set(figs) == {"spectrum", "outliers", "fixed_points"}
    assert len(figs["spectrum"].layout.sliders[0].steps) == 1


def test_linear_model_spectrum_is_that_of_W_with_the_circular_law_radius():
    task = tasks.make("integration")
    model = probe.models.make("linear", task, hidden=64, init_scale=0.5, embedding="onehot", seed=1)
    res = spectrum.analyze(model, task, fixed_points=False)
    z = np.array(res.eigvals[0][0]["re"]) + 1j * np.array(res.eigvals[0][0]["im"])
    np.testing.assert_allclose(np.sort_complex(z), np.sort_complex(np.linalg.eigvals(model.layers[0].W.detach().numpy())),
                               atol=1e-5)
    assert res.summary["bulk_radius"] == pytest.approx(0.5, rel=0.15) and res.summary["outliers"] == 0
    assert res.summary["init_radius"] == 0.5


def test_analyze_run_covers_every_checkpoint(tmp_path):
    task = tasks.make("integration", length=16)
    model = probe.models.make("linear", task, hidden=8, init_scale=0.1, embedding="onehot", seed=0)
    run = probe.train(task, model, steps=6, batch_size=8, lr=1e-2, store=str(tmp_path), n_checkpoints=3,
                      eval_n=8, progress=False)
    res = spectrum.analyze_run(run, fixed_points=False)
    assert res.steps == run.checkpoint_steps and len(res.eigvals[0]) == len(run.checkpoint_steps)
    assert res.loss[-1] is not None
    cached = analyses.analyze("spectrum", run, fixed_points=False)  # through the registry and its JSON cache
    assert cached.to_dict() == analyses.analyze("spectrum", run, fixed_points=False).to_dict() == res.to_dict()
    with pytest.raises(ValueError, match="no checkpoint"):
        spectrum.analyze_run(run, steps=[12345])
    with pytest.raises(ValueError, match="plain model"):
        spectrum.analyze(probe.models.make("linear", task, hidden=4, members=2), task)


@pytest.mark.slow
def test_quick_integration_claims_pass():
    for spec in (integration_claims.outlier_eigenvalue, integration_claims.theory_match):
        result = spec(profile="quick")
        assert result.passed, (result.id, result.measured)


def test_claims_keep_trained_histories_in_the_store_and_a_rerun_loads_them(tmp_path, monkeypatch):
    import numpy as np

    import tasks
    from analyses.spectrum import claims as sc
    from analyses.spectrum import training as it

    calls = []
    train = it.train
    monkeypatch.setattr(it, "train", lambda *a, **k: calls.append(1) or train(*a, **k))
    task = tasks.make("integration", gamma=0.9, length=8)
    model = lambda seed: sc.build(task, 6, 0.02, 0.01, seed)
    with sc.stored_in(tmp_path):
        first = sc._train(model(0), task, 5, 0.01, sc._record(5))
        again = sc._train(model(0), task, 5, 0.01, sc._record(5))
        other = sc._train(model(1), task, 5, 0.01, sc._record(5))  # other initial weights: trained
    assert len(calls) == 2 and len(list((tmp_path / ".cache" / "spectrum").iterdir())) == 2
    for k in ("steps", "W", "u", "v", "loss"):
        assert np.array_equal(getattr(first, k), getattr(again, k)) and getattr(first, k).dtype == getattr(again, k).dtype
    assert (first.lr, first.mode) == (again.lr, again.mode) and not np.array_equal(first.W, other.W)
    sc._train(model(0), task, 5, 0.01, sc._record(5))  # outside stored_in: no store, trains
    assert len(calls) == 3
