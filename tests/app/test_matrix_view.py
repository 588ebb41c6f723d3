"""The States page's matrix-state panel: S_t reshaped from hook_S to value dim × key dim per head."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import probe
import tasks
from app import figures, logic

torch.set_num_threads(1)


def _model(arch, **kw):
    return probe.models.make(arch, tasks.make("parity"), hidden=4, seed=0, **kw)


def _inputs(T=7):
    return torch.tensor([[1, 0, 1, 1, 0, 0, 1][:T]])  # (1, T)


@pytest.mark.parametrize("arch, kw", [("linattn", {"heads": 2, "d_key": 3}), ("linattn", {"decay": "input", "conv": 2}),
                                      ("based", {"d_key": 2}), ("deltanet", {"heads": 2}), ("mamba", {"state_dim": 3})])
def test_the_matrices_round_trip_the_layers_own_flattening_exactly(arch, kw):
    model = _model(arch, **kw)
    layer = model.layers[0]
    shape = logic.matrix_shapes(model)["layers.0.hook_S"]
    traj = logic.trajectories(model, _inputs(), names_filter=["layers.0.hook_S"])[0]["layers.0.hook_S"]  # (T, width)
    flat = torch.from_numpy(traj)[None]  # (1, T, width): the layer's own unflattening takes (M, B, width)
    for t in (0, 3, 6):
        mats = logic.state_matrices(traj, shape, t)
        if arch == "mamba":
            own = flat[:, t].reshape(layer.hidden, layer.N)[None].numpy()  # (1, D, N), as the layer's readout
        else:
            own = layer._matrix(flat[:, t][None])[0, 0].transpose(-1, -2).numpy()  # (heads, V, F)
        assert mats.shape == (shape["heads"], shape["rows"], shape["cols"])
        assert np.array_equal(mats, own)
        # and back: the matrices flatten to exactly the hook's numbers
        back = mats[0] if arch == "mamba" else mats.transpose(0, 2, 1)
        assert np.array_equal(back.reshape(-1), traj[t])


def test_linear_attention_rows_are_values_and_columns_keys():
    """S_t = Σ_s k_s v_sᵀ (identity feature, no decay): entry [head, i, j] is Σ_s v_s[i] k_s[j]."""
    model = _model("linattn", heads=2, d_key=3)
    names = ["layers.0.hook_S", "layers.0.hook_k", "layers.0.hook_v"]
    trajs = logic.trajectories(model, _inputs(), names_filter=names)[0]
    k, v = trajs["layers.0.hook_k"].reshape(7, 2, 3), trajs["layers.0.hook_v"].reshape(7, 2, 2)  # (T, h, d)
    shape = logic.matrix_shapes(model)["layers.0.hook_S"]
    assert (shape["heads"], shape["rows"], shape["cols"]) == (2, 2, 3)
    for t in (0, 4, 6):
        hand = np.einsum("shi,shj->hij", v[:t + 1], k[:t + 1])  # (h, d_v, d_k)
        np.testing.assert_allclose(logic.state_matrices(trajs["layers.0.hook_S"], shape, t), hand, atol=1e-5)


def test_mambas_first_state_is_delta_times_b_times_u_with_channels_on_rows():
    """h_0[d, n] = Δ_0[d] B_0[n] u_0[d] (the state starts at 0)."""
    model = _model("mamba", state_dim=3)
    names = ["layers.0.hook_S", "layers.0.hook_dt", "layers.0.hook_B", "layers.0.hook_x"]
    trajs = logic.trajectories(model, _inputs(), names_filter=names)[0]
    dt, B, u = trajs["layers.0.hook_dt"][0], trajs["layers.0.hook_B"][0], trajs["layers.0.hook_x"][0]
    mats = logic.state_matrices(trajs["layers.0.hook_S"], logic.matrix_shapes(model)["layers.0.hook_S"], 0)
    np.testing.assert_allclose(mats[0], (dt * u)[:, None] * B[None, :], rtol=1e-5, atol=1e-7)


def test_vector_state_models_have_no_matrix_panel():
    for arch in ("gru", "lru", "hawk"):
        shapes = logic.matrix_shapes(_model(arch))
        assert shapes == {} and logic.matrix_hook(shapes, "layers.0.hook_h") is None


def test_the_layer_of_the_page_hook_is_shown_else_the_first():
    model = probe.models.make("linattn", tasks.make("parity"), hidden=4, layers=2, seed=0)
    shapes = logic.matrix_shapes(model)
    assert list(shapes) == ["layers.0.hook_S", "layers.1.hook_S"]
    assert logic.matrix_hook(shapes, "layers.1.hook_q") == "layers.1.hook_S"
    assert logic.matrix_hook(shapes, "hook_logits") == "layers.0.hook_S"


def test_the_step_is_the_slider_then_the_brush_then_the_last():
    assert logic.pick_step(10, 4, 2) == 4
    assert logic.pick_step(10, None, 2) == 2
    assert logic.pick_step(10, None, None) == 9
    assert logic.pick_step(10, 12, 11) == 9  # both outside the input
    assert logic.pick_step(10, True, -1) == 9
    with pytest.raises(ValueError, match="step 7 outside"):
        logic.state_matrices(np.zeros((7, 4)), {"heads": 1, "rows": 2, "cols": 2, "order": "vk"}, 7)
    with pytest.raises(ValueError, match="width 4"):
        logic.state_matrices(np.zeros((7, 4)), {"heads": 1, "rows": 2, "cols": 3, "order": "vk"}, 0)


def test_the_trajectory_of_s_is_computed_once_per_input(monkeypatch):
    model = _model("deltanet")
    first = logic.state_trajectory(model, _inputs(), "layers.0.hook_S")
    calls = []
    monkeypatch.setattr(logic, "trajectories", lambda *a, **k: calls.append(1) or ({}, None))
    assert logic.state_trajectory(model, _inputs(), "layers.0.hook_S") is first and not calls
    with pytest.raises(KeyError):  # another input is run again
        logic.state_trajectory(model, _inputs(5), "layers.0.hook_S")
    assert calls == [1]


def test_the_figure_is_diverging_around_zero_fitted_to_the_step_and_labelled():
    model = _model("linattn", heads=2, d_key=3)
    shape = logic.matrix_shapes(model)["layers.0.hook_S"]
    traj = logic.state_trajectory(model, _inputs(), "layers.0.hook_S")
    mats = logic.state_matrices(traj, shape, 3)
    fig = figures.matrix_state(mats, shape, "layers.0.hook_S", 3, "1")
    lim = float(np.abs(mats).max())
    assert len(fig.data) == 2 and lim > 0
    for i, tr in enumerate(fig.data):
        assert tr.zmid == 0 and tr.zmin == -lim and tr.zmax == lim
        assert np.array_equal(np.asarray(tr.z), mats[i])
    assert fig.layout.xaxis.title.text.startswith("key dim") and fig.layout.yaxis.title.text.startswith("value dim")
    assert "layers.0.hook_S" in fig.layout.title.text and "step 3" in fig.layout.title.text
    assert "token '1'" in fig.layout.title.text


@pytest.fixture(scope="module")
def matrix_app(tmp_path_factory):
    import app

    root = tmp_path_factory.mktemp("matrix_store")
    task = tasks.make("parity")
    ids = {}
    for arch in ("linattn", "gru"):
        model = probe.models.make(arch, task, hidden=4, seed=0)
        probe.train(task, model, steps=2, batch_size=4, lr=1e-2, eval_splits=["train"], eval_n=4,
                    n_checkpoints=2, store=root, progress=False)
        ids[arch] = next(r["id"] for r in probe.list_runs(root) if r["arch"] == arch)
    return app.create_app(root), ids


def test_the_states_page_shows_the_panel_for_a_matrix_model_only(matrix_app):
    dash_app, ids = matrix_app
    states = sys.modules["app.pages.states"]
    with dash_app.server.test_request_context():
        # matrix_steps(run, member, mode, seed, go, length, t0, text, checkpoint)
        style, top, _, value = states.matrix_steps(ids["linattn"], 0, "seed", 0, None, 9, 3, "", None)
        assert style == {"display": "block"} and top == 8 and value == 3
        assert states.matrix_steps(ids["linattn"], 0, "seed", 0, None, 9, None, "", None)[3] == 8
        assert states.matrix_steps(ids["gru"], 0, "seed", 0, None, 9, 3, "", None)[0] == {"display": "none"}
        # matrix(step, hook, run, member, mode, seed, length, text, checkpoint)
        fig = states.matrix(5, "layers.0.hook_h", ids["linattn"], 0, "seed", 0, 9, "", None)
        assert "step 5" in fig.layout.title.text and len(fig.data) == 1
        # the heatmap of hook_S and the panel share one run of the state
        states.draw(ids["linattn"], 0, "layers.0.hook_S", "seed", 0, None, 9, None, None, 0.0, [], "", None)
        kept = logic._S_LAST[0][2]
        states.matrix(2, "layers.0.hook_S", ids["linattn"], 0, "seed", 0, 9, "", None)
        assert logic._S_LAST[0][2] is kept
        assert len(states.matrix(2, "layers.0.hook_h", ids["gru"], 0, "seed", 0, 9, "", None).data) == 0
