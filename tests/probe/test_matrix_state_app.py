"""The explorer's states page on the matrix-state architectures: every hook draws, hook_S included."""
import pytest
import torch

import probe
import tasks

ARCHS = {"linattn": dict(decay="input"), "deltanet": {}, "mamba": dict(state_dim=4), "based": dict(d_key=2)}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("matrix_store")
    task = tasks.make("recall", vocab_size=40, seq_len=16, num_pairs=2)
    for arch, kw in ARCHS.items():
        model = probe.models.make(arch, task, hidden=8, seed=0, **kw)
        probe.train(task, model, steps=2, batch_size=8, eval_splits=["train"], eval_n=8, n_checkpoints=2,
                    store=root, progress=False)
    return root


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_states_page_draws_every_hook_of_a_matrix_state_model(store, arch):
    import app

    dash_app = app.create_app(store)
    from app.pages import states                               # pages register once the app exists
    run = next(r for r in probe.list_runs(store) if r["arch"] == arch)
    width = None
    with dash_app.server.app_context():
        options, first, _ = states.hooks(run["id"], 0, None, None)
        assert "layers.0.hook_S" in options and first.endswith("hook_h")
        for hook in options:
            heat, *_, error, _ = states.draw(run["id"], 0, hook, "seed", 0, None, None, None, None, 0.3, [], None,
                                             None)
            assert error == "", (hook, error)
            if hook == "layers.0.hook_S":
                width = len(heat.data[0].z)                    # a row per number of the state
    layer = probe.models.make(arch, tasks.make("recall", vocab_size=40, seq_len=16, num_pairs=2), hidden=8,
                              **ARCHS[arch]).layers[0]
    assert width == layer.width("hook_S")
