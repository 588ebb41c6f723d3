"""Newton solvers (probe/newton.py): DEER and quasi-DEER reach the sequential trajectory, and their
implicit-function-theorem gradients equal backpropagation through the loop.

References: DEER, Lim et al. 2024 (machine-discovery/deer, deer/deer_iter.py: stop when the
largest change is <= tol, 1e-4 in float32; max_iter 100; backward = one linear solve with the
transposed Jacobians, then a VJP through f); ParaRNN, Danieli et al. 2025 (apple/ml-pararnn, read
as xaviergonzalez/ml-pararnn: first guess f(0, x), diagonal GRU and CIFG-LSTM cells, whose
Jacobians are diagonal and 2x2 block-diagonal).
"""
import warnings

import pytest
import torch

import probe
import tasks
from probe import newton
from probe.models import make

TOKENS = {"input_kind": "tokens", "vocab_size": 5, "d_output": 3}
CASES = {  # every nonlinear architecture with a solver, and its options
    "gru": {}, "lstm": {}, "elman": {}, "elman_relu": {"nonlinearity": "relu", "gain": 0.5, "h0": "learned"},
    "gru_diag": {}, "lstm_diag": {},
}


def tokens(B=3, T=60, seed=0):
    return torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(seed))


def pair(case, solver, scale=1.0, **kw):
    """The same weights twice (float64): the sequential loop and ``solver``."""
    arch = case.split("_relu")[0]
    ref = make(arch, TOKENS, hidden=5, members=2, seed=3, solver="sequential", **CASES[case], **kw).double()
    new = make(arch, TOKENS, hidden=5, members=2, seed=3, solver=solver, **CASES[case], **kw).double()
    with torch.no_grad():
        for p, q in zip(ref.parameters(), new.parameters(), strict=True):
            p.mul_(scale)
            q.copy_(p)
    return ref, new


def initial_state(case, M=2, B=3, H=5):
    g = torch.Generator().manual_seed(7)
    h = torch.randn(M, B, H, generator=g, dtype=torch.float64) * 0.5
    return (h, torch.randn(M, B, H, generator=g, dtype=torch.float64)) if "lstm" in case else h


@pytest.mark.parametrize("backend", ["sequential", "parallel"])
@pytest.mark.parametrize("reverse", [False, True])
def test_matrix_scan_equals_the_loop(backend, reverse):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(2, 3, 77, 4, 4, generator=g, dtype=torch.float64) * 0.5
    b = torch.randn(2, 3, 77, 4, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    steps = range(76, -1, -1) if reverse else range(77)
    want, h = torch.empty_like(b), h0
    for t in steps:
        h = A[..., t, :, :] @ h.unsqueeze(-1)
        h = h.squeeze(-1) + b[..., t, :]
        want[..., t, :] = h
    torch.testing.assert_close(newton.matrix_scan(A, b, h0, reverse, backend), want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("solver", ["deer", "quasi"])
def test_newton_reaches_the_sequential_trajectory_and_gradients(case, solver):
    ref, new = pair(case, solver, scale=2.0)   # scaled up: strongly nonlinear, contracting or not
    x, y = tokens(), tokens(seed=1) % 3
    state = [initial_state(case)]
    (out_r, loss_r), cache_r = ref.run_with_cache(x, state=state, return_type="both", targets=y)
    (out_n, loss_n), cache_n = new.run_with_cache(x, state=state, return_type="both", targets=y)
    info = new.layers[0].last_solve
    assert info.method == solver and info.converged and not info.fallback and 1 <= info.iterations <= 60
    for key in cache_r:   # every hook's trajectory, states and gates
        torch.testing.assert_close(cache_n[key], cache_r[key], atol=1e-6, rtol=0, msg=key)
    torch.testing.assert_close(out_n, out_r, atol=1e-8, rtol=0)
    # gradients of the weights, the embedding and the initial state: IFT vs the loop's backward
    h0s = [tuple(s.clone().requires_grad_() for s in st) if isinstance(st, tuple) else st.clone().requires_grad_()
           for st in (state[0], state[0])]
    grads = []
    for model, h0 in zip((ref, new), h0s, strict=True):
        model.zero_grad()
        model(x, state=[h0], return_type="loss", targets=y).backward()
        leaves = list(h0) if isinstance(h0, tuple) else [h0]
        grads.append([p.grad for p in model.parameters()] + [v.grad for v in leaves])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, atol=1e-8, rtol=1e-8)


def test_dense_newton_converges_faster_than_its_diagonal():
    # DEER is Newton (quadratic); quasi-DEER drops the off-diagonal Jacobian (linear convergence)
    iters = {}
    for solver in ("deer", "quasi"):
        _, model = pair("gru", solver, scale=2.0)
        model(tokens(T=200))
        iters[solver] = model.layers[0].last_solve.iterations
    assert iters["deer"] < iters["quasi"], iters


def test_solve_on_a_plain_function_with_gradients_and_info():
    g = torch.Generator().manual_seed(1)
    W = (torch.randn(4, 4, generator=g, dtype=torch.float64) * 1.5).requires_grad_()
    x = torch.randn(2, 50, 4, generator=g, dtype=torch.float64).requires_grad_()
    h0 = torch.randn(2, 4, generator=g, dtype=torch.float64).requires_grad_()

    def f(hp, x, W):
        return torch.tanh(hp @ W.T + x)
    hs, h = [], h0
    for t in range(50):
        h = torch.tanh(h @ W.T + x[:, t])
        hs.append(h)
    want = torch.stack(hs, 1)
    cot = torch.randn(want.shape, generator=g, dtype=torch.float64)
    want_grads = torch.autograd.grad(want, (x, W, h0), cot)
    for method in ("deer", "quasi"):
        info = []
        got = newton.solve(f, h0, 50, x, W, method=method, info=info)
        assert info[0].converged and info[0].iterations <= 50
        torch.testing.assert_close(got, want, atol=1e-9, rtol=0)
        for a, b in zip(torch.autograd.grad(got, (x, W, h0), cot), want_grads, strict=True):
            torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-8)


def test_non_convergence_falls_back_to_the_loop_with_one_warning():
    ref, new = pair("gru", "quasi", scale=3.0)
    new.layers[0].newton_max_iter = 2
    x = tokens(T=80)
    with pytest.warns(RuntimeWarning, match="did not converge in 2 iterations.*sequential") as caught:
        out = new(x)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    info = new.layers[0].last_solve
    assert info.fallback and not info.converged and info.iterations == 2
    torch.testing.assert_close(out, ref(x), atol=1e-12, rtol=0)


def test_edits_and_gradient_hooks_take_the_loop_and_agree():
    ref, new = pair("gru", "deer")
    x = tokens(T=20)
    edit = [probe.Edit("layers.0.hook_h", 6, probe.scale(2.0))]
    torch.testing.assert_close(probe.intervene(new, x, edit)[0], probe.intervene(ref, x, edit)[0],
                               atol=1e-10, rtol=0)
    y = tokens(T=20, seed=1) % 3
    _, c_new = new.run_with_cache(x, return_type="loss", targets=y, incl_bwd=True)
    _, c_ref = ref.run_with_cache(x, return_type="loss", targets=y, incl_bwd=True)
    torch.testing.assert_close(c_new["layers.0.hook_z_grad"], c_ref["layers.0.hook_z_grad"], atol=1e-10, rtol=0)


def test_solver_option_is_checked_and_kept_out_of_configs_at_its_default():
    with pytest.raises(ValueError, match=r"solver 'newton'.*sequential, deer, quasi, auto"):
        make("gru", TOKENS, solver="newton")
    with pytest.raises(ValueError, match="unknown newton method"):
        newton.solve(lambda h: h, torch.zeros(1, 2), 3, method="jacobi")
    # run ids of existing GRU / LSTM / Elman runs do not change
    assert "solver" not in make("gru", TOKENS).config["arch_params"]
    model = make("lstm", TOKENS, solver="quasi")
    assert model.config["arch_params"] == {"solver": "quasi"}
    assert probe.models.from_config(model.config).layers[0].solver == "quasi"
    assert newton.resolve("auto", "cpu", 16384, 8, True) == "sequential"      # the CPU loop wins (NOTES)


def test_a_diagonal_gru_trained_with_deer_matches_sequential_on_parity(tmp_path):
    task = tasks.make("parity", max_len=10)
    accuracy, loss = {}, {}
    for solver in ("sequential", "deer"):
        model = make("gru_diag", task, hidden=16, seed=0, solver=solver)
        run = probe.train(task, model, store=tmp_path, progress=False, steps=100, batch_size=64, lr=1e-2,
                          eval_splits=["train"], eval_n=256)
        accuracy[solver], loss[solver] = run.curve("train.accuracy")[1][-1], run.curve("train.loss")[1][-1]
    assert accuracy["sequential"] >= 0.95 and accuracy["deer"] == accuracy["sequential"], accuracy
    assert abs(loss["deer"] - loss["sequential"]) < 1e-3 * max(loss["sequential"], 1e-2), loss


def test_auto_warns_nothing_on_short_sequences():
    model = make("gru_diag", TOKENS, hidden=4, solver="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(tokens(T=5))
    assert model.layers[0].last_solve is None     # CPU: "auto" ran the loop


@pytest.mark.parametrize("arch", ["mingru", "minlstm", "gru_diag", "lstm_diag"])
def test_the_explorer_shows_and_edits_the_new_architectures(arch):
    import numpy as np

    from app import logic
    task = tasks.make("parity", max_len=10)
    model = make(arch, task, hidden=6, seed=0)
    x = logic.make_input(task, "seed", 0, length=12)
    trajs, out = logic.trajectories(model, x["inputs"])
    assert set(trajs) == set(model.hook_dict) and out.shape == (12, 2)
    d = logic.counterfactual(model, task, x["inputs"], "layers.0.hook_h", 4, None, "zero")
    diff = np.asarray(d["diff"])
    assert diff[:4].max() < 1e-6 and diff[4] > 1e-3


@pytest.mark.parametrize("reverse", [False, True])
def test_the_2x2_block_scan_equals_the_matrix_scan(reverse):
    g = torch.Generator().manual_seed(0)
    J = torch.randn(2, 3, 70, 5, 2, 2, generator=g, dtype=torch.float64) * 0.6   # (..., T, H, 2, 2)
    b = torch.randn(2, 3, 70, 10, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 3, 10, generator=g, dtype=torch.float64)
    as_matrices = newton.matrix_scan(J.movedim(-3, -4), b.unflatten(-1, (2, -1)).movedim(-1, -3),
                                     h0.unflatten(-1, (2, -1)).transpose(-1, -2), reverse, "sequential")
    want = as_matrices.movedim(-3, -1).flatten(-2)                                # (..., T, 2H)
    torch.testing.assert_close(newton._scan(J, b, h0, 2, reverse), want, atol=1e-12, rtol=1e-12)
