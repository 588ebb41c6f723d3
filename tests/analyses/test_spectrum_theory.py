"""The integration theory (analyses/theory/integration.py) against explicit networks and sums."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

import probe
import tasks
from analyses.spectrum import theory as ti
from analyses.spectrum import training as it


def one_outlier_model(task, lam: float, alpha: float, beta: float, hidden: int = 8, seed: int = 0):
    """A linear RNN with W = λ êêᵀ, u = αê, v = βê for a random unit ê (float64)."""
    model = probe.models.make("linear", task, hidden=hidden, embedding="onehot", seed=seed).double()
    e = torch.randn(hidden, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    e /= e.norm()
    with torch.no_grad():
        model.layers[0].W.copy_(lam * torch.outer(e, e))
        model.layers[0].U.copy_(alpha * e[:, None])
        model.readout.W_U.copy_(beta * e[None])
        model.readout.b_U.zero_()
    return model


def truncated(kernel, target, weights=None) -> float:
    w = 1.0 if weights is None else weights
    return 0.5 * float((w * (kernel - target) ** 2).sum())


@pytest.mark.parametrize("lam,g,gamma,noise", [(0.6, 0.8, 0.9, 1.0), (-0.3, 1.5, 0.7, 0.5)])
def test_sympy_loss_equals_monte_carlo_loss_of_a_one_outlier_rnn(lam, g, gamma, noise):
    task = tasks.make("integration", gamma=gamma, length=300, noise_std=noise)
    model = one_outlier_model(task, lam, 2.0, g / 2.0)
    batch = task.sample(400, seed=3)
    with torch.no_grad():
        err = (model(batch.inputs.double()) - batch.targets.double())[:, 100:, 0]  # (B, T - burn-in): stationary
    per_seq = 0.5 * err.pow(2).mean(1).numpy()                                      # (B,)
    predicted = ti.leaky_loss(lam, g, gamma, noise)
    assert abs(per_seq.mean() - predicted) < 4 * per_seq.std() / np.sqrt(len(per_seq))
    # and the closed form is the series it was summed from
    k = np.arange(2000)
    assert predicted == pytest.approx(noise**2 * truncated(g * lam**k, gamma**k), rel=1e-10)


def test_loss_has_its_only_stationary_point_at_gamma_and_unit_gain():
    th = ti.derive_leaky()
    assert sp.solve(th.grad, [th.lam, th.g], dict=True) == [{th.lam: th.gamma, th.g: 1}]
    at = {th.lam: th.gamma, th.g: 1}
    assert sp.simplify(th.loss.subs(at)) == 0
    for gamma in (0.5, 0.9, 0.99):
        H = sp.hessian(th.loss, (th.lam, th.g)).subs(at).subs({th.gamma: gamma, th.sigma: 1})
        assert all(ev > 0 for ev in np.linalg.eigvalsh(np.array(H, dtype=float)))


def test_finite_horizon_loss_is_the_weighted_sum_and_the_tasks_expected_loss():
    k = np.arange(64)
    assert ti.leaky_loss(0.5, 0.7, 0.9, 1.0, 64) == pytest.approx(truncated(0.7 * 0.5**k, 0.9**k, 1 - k / 64))
    assert ti.leaky_loss(0.5, 0.7, 0.9, 1.0, 5000) == pytest.approx(ti.leaky_loss(0.5, 0.7, 0.9), rel=5e-3)  # O(1/((1 - γ)T))
    task = tasks.make("integration", gamma=0.9, length=64)
    model = one_outlier_model(task, 0.5, 1.4, 0.5)
    with torch.no_grad():
        assert float(it.expected_loss(model, task.params, length=64)) == pytest.approx(ti.leaky_loss(0.5, 0.7, 0.9, 1.0, 64))
        assert float(it.expected_loss(model, task.params)) == pytest.approx(ti.leaky_loss(0.5, 0.7, 0.9))


def test_convolution_outputs_equal_the_models_own():
    task = tasks.make("integration", gamma=0.8, length=40)
    model = probe.models.make("linear", task, hidden=12, init_scale=0.9, embedding="onehot", seed=2).double()
    x = task.sample(5, seed=0).inputs.double()
    torch.testing.assert_close(it.outputs(model, x), model(x), rtol=1e-10, atol=1e-10)


def test_pair_and_plane_losses_reduce_to_the_one_outlier_loss_and_vanish_at_the_target():
    po = ti.derive_oscillator()
    leaky = ti.derive_leaky()
    reduced = po.loss.subs({po.theta: 0, po.phi: 0, po.omega: 0})
    same = leaky.loss.subs({leaky.lam: po.rho, leaky.g: po.g, leaky.gamma: po.gamma, leaky.sigma: po.sigma})
    assert sp.simplify(reduced - same) == 0
    at_target = po.loss.subs({po.rho: po.gamma, po.theta: po.omega, po.g: 1, po.phi: 0})
    assert abs(complex(at_target.subs({po.gamma: 0.8, po.omega: 0.4, po.sigma: 1}).evalf())) < 1e-12
    flow, loss = ti._plane_numeric()
    # A = diag(λ, 0), u = (α, 0), v = (β, 0): one outlier
    assert np.real(loss(0.5, 0, 0, 0, 2.0, 0, 0.3, 0, 0.9, 0.0, 1.0)) == pytest.approx(ti.leaky_loss(0.5, 0.6, 0.9))
    # A the rotation-scaling γ R(ω), u = v = e1: the oscillator target itself
    g, w = 0.8, 0.4
    A = g * np.array([[np.cos(w), -np.sin(w)], [np.sin(w), np.cos(w)]])
    assert abs(loss(*A.ravel(), 1, 0, 1, 0, g, w, 1.0)) < 1e-12


def test_plane_loss_equals_the_truncated_series():
    rng = np.random.default_rng(0)
    _, loss = ti._plane_numeric()
    for gamma, omega in [(0.9, 0.0), (0.8, 0.3)]:
        A, a, b = rng.standard_normal((2, 2)) * 0.4, rng.standard_normal(2), rng.standard_normal(2)
        k = np.arange(400)
        kernel = np.array([b @ np.linalg.matrix_power(A, j) @ a for j in k])
        assert np.real(loss(*A.ravel(), *a, *b, gamma, omega, 1.0)) == pytest.approx(
            truncated(kernel, gamma**k * np.cos(omega * k)), rel=1e-9)


def test_reduced_maps_equal_gradient_descent_on_the_full_network_where_they_are_exact():
    """On the invariant sets — W = λêêᵀ with u, v ∥ ê; or W = 0 with any u, v — no approximation is left."""
    task = tasks.make("integration", gamma=0.8)
    steps, lr = list(range(0, 201, 20)), 2e-3
    aligned = one_outlier_model(task, 0.0, 3.0, 0.01, hidden=16)
    h = it.train(aligned, task, 200, lr, steps)
    pred = ti.predict_leaky(ti.leaky_init(h.W[0], h.u[0], h.v[0]), 0.8, lr, steps, method="gd")
    lead = np.array([max(np.linalg.eigvals(W), key=abs) for W in h.W])
    np.testing.assert_allclose(lead.real, pred.eig.real, atol=1e-8)
    np.testing.assert_allclose(h.loss, pred.loss, rtol=1e-8)

    general = probe.models.make("linear", task, hidden=16, embedding="onehot", seed=4).double()
    with torch.no_grad():
        general.layers[0].W.zero_()
        general.readout.b_U.zero_()
    h = it.train(general, task, 200, lr, steps)
    pred = ti.predict_plane(ti.plane_init(h.W[0], h.u[0], h.v[0]), 0.8, lr, steps, method="gd")
    mu = np.linalg.eigvals(h.W)                                      # (n, 16): two nonzero
    top2 = np.take_along_axis(mu, np.argsort(-np.abs(mu), 1), 1)[:, :2]
    np.testing.assert_allclose(np.sort(np.abs(top2), 1), np.sort(np.abs(np.stack([pred.eig, pred.state["second"]], 1)), 1),
                               atol=1e-8)
    np.testing.assert_allclose(h.loss, pred.loss, rtol=1e-8)


def test_flow_and_discrete_predictions_agree_for_a_small_learning_rate():
    init, steps = (0.0, 4.0, 0.05), list(range(0, 3001, 100))
    flow = ti.predict_leaky(init, 0.9, 2e-4, steps)
    gd = ti.predict_leaky(init, 0.9, 2e-4, steps, method="gd")
    assert np.abs(flow.eig - gd.eig).max() < 5e-3
    assert flow.eig[-1].real == pytest.approx(0.9, abs=5e-3)


def test_bad_arguments_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match="method"):
        ti.predict_leaky((0, 1, 1), 0.9, 1e-3, [0, 1], method="euler")
    with pytest.raises(ValueError, match="gamma"):
        ti.predict_leaky((0, 1, 1), 1.0, 1e-3, [0, 1])
    with pytest.raises(ValueError, match="lr"):
        ti.predict_leaky((0, 1, 1), 0.9, 0.0, [0, 1])
    with pytest.raises(ValueError, match="embedding"):
        it.linear_weights(probe.models.make("linear", tasks.make("integration"), hidden=4))
    with pytest.raises(ValueError, match="mode"):
        it.train(one_outlier_model(tasks.make("integration"), 0, 1, 1), tasks.make("integration"), 1, 1e-3, [0], mode="adam")
