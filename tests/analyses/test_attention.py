"""Gated linear RNNs and linear self-attention: the construction is exact, recovery undoes its invariances."""
import numpy as np
import pytest
import torch

import probe
from analyses import attention as att
from analyses.attention import claims as att_claims
from analyses.attention.construct import Neurons, construction_neurons, hawk_from_neurons
from analyses.attention.layer import gd_loss_closed_form, gd_step_size
from analyses.attention.recover import identifiable, neurons_from_hawk


def _run(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _scrambled(neurons: Neurons, seed: int) -> Neurons:
    """The same function: neurons permuted, rescaled (with sign flips) and some A/B swapped."""
    rng = np.random.default_rng(seed)
    n = neurons.n
    c1, c2, c3 = (rng.uniform(0.2, 5.0, n) * rng.choice([-1.0, 1.0], n) for _ in range(3))
    A, B = neurons.A * c1[:, None], neurons.B * c2[:, None]
    swap = rng.random(n) < 0.5
    A, B = np.where(swap[:, None], B, A), np.where(swap[:, None], A, B)
    out = Neurons(A, B, neurons.G * c3[:, None], neurons.R / (c1 * c2 * c3), neurons.decay)
    return out.permuted(rng.permutation(n))


@pytest.mark.parametrize("method", ["direct", "symmetric"])
@pytest.mark.parametrize("d, heads, d_out", [(1, 1, None), (2, 1, None), (3, 2, None), (4, 3, 1), (5, 1, 2)])
def test_construct_matches_attention_on_random_layers(method, d, heads, d_out):
    layer = att.random_attention(d, heads=heads, d_out=d_out, seed=d + 10 * heads)
    model = att.construct(layer, method)
    rng = np.random.default_rng(d)
    for T in (1, 4, 17, 40):
        x = rng.standard_normal((3, T, d))
        np.testing.assert_allclose(_run(model, x), layer(x), rtol=0, atol=1e-5)


def test_construct_accepts_unequal_key_and_value_sizes_and_a_weight_dict():
    layer = att.random_attention(3, d_k=2, d_v=5, heads=2, d_out=3, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 9, 3))
    for method in ("direct", "symmetric"):
        np.testing.assert_allclose(_run(att.construct(layer, method), x), layer(x), atol=1e-5)
    as_dict = {"W_Q": layer.W_Q[0], "W_K": layer.W_K[0], "W_V": torch.from_numpy(layer.W_V[0])}
    single = att.LinearAttention(layer.W_Q[0], layer.W_K[0], layer.W_V[0])
    np.testing.assert_allclose(_run(att.construct(as_dict), x), single(x), atol=1e-5)


def test_neuron_counts_are_d_squared_direct_and_d_d_plus_1_over_2_per_output_symmetric():
    d = 4
    one_head = att.random_attention(d, seed=0)                         # d_v = d_k = d_out = d
    assert att.neuron_counts(one_head) == {"direct": d * d, "symmetric": d * d * (d + 1) // 2}
    w = np.random.default_rng(0).standard_normal((d, d))               # values are keys: symmetric memory
    scalar = att.LinearAttention(w, w, w, W_O=np.ones((1, d)))
    assert att.neuron_counts(scalar)["symmetric"] == d * (d + 1) // 2
    many = att.random_attention(d, heads=4, d_out=d, seed=0)           # heads share the key/value span
    counts = att.neuron_counts(many)
    assert counts["symmetric"] < counts["direct"]
    assert att.construct(many).config["hidden"] == counts["symmetric"]
    assert att.construct(one_head).config["hidden"] == d * d


@pytest.mark.parametrize("method", ["direct", "symmetric"])
def test_construction_equals_attention_symbolically_for_d_2(method):
    assert att.symbolic_check(d=2, T=3, heads=1, method=method)
    assert att.symbolic_check(d=2, T=2, heads=2, method=method)


def test_the_symbolic_reference_recurrence_is_the_hawk_model():
    layer = att.random_attention(3, heads=2, seed=4)
    neurons = construction_neurons(layer, "direct")
    neurons = Neurons(neurons.A, neurons.B, neurons.G, neurons.R, np.linspace(0.5, 1.0, neurons.n))
    x = np.random.default_rng(1).standard_normal((2, 6, 3))
    np.testing.assert_allclose(_run(hawk_from_neurons(neurons), x), neurons.forward(x), atol=1e-12)


@pytest.mark.parametrize("d, heads, method", [(2, 1, "direct"), (3, 2, "direct"), (4, 1, "symmetric"), (3, 3, "auto")])
def test_recover_undoes_permutation_and_rescaling(d, heads, method):
    layer = att.random_attention(d, heads=heads, seed=d * heads)
    original = construction_neurons(layer, method)
    model = hawk_from_neurons(_scrambled(original, seed=d))
    rec = att.recover(model, reference=layer)
    np.testing.assert_allclose(rec.tensor, layer.tensor(), rtol=0, atol=1e-4)
    assert rec.comparison["correlation"] == pytest.approx(1.0, abs=1e-9)
    assert rec.accumulator.all() and rec.tensor_full[:, -1].std() == 0          # no bias channel in use
    # canonical neurons: the scrambled model's match the construction's, one to one
    base = att.recover(hawk_from_neurons(original))
    for i in range(rec.neurons.n):
        a, b, g = rec.neurons.A[i], rec.neurons.B[i], rec.neurons.G[i]
        hits = [j for j in range(base.neurons.n)
                if np.allclose(base.neurons.G[j], g, atol=1e-9)
                and ({tuple(np.round(a, 9)), tuple(np.round(b, 9))}
                     == {tuple(np.round(base.neurons.A[j], 9)), tuple(np.round(base.neurons.B[j], 9))})
                and np.allclose(base.neurons.R[:, j], rec.neurons.R[:, i], atol=1e-9)]
        assert hits, f"canonical neuron {i} has no counterpart in the construction"


def test_recover_leaves_out_neurons_that_are_not_accumulators():
    layer = att.random_attention(3, seed=2)
    neurons = construction_neurons(layer, "direct")
    leaky = Neurons(*(np.concatenate([w, w[:2]]) for w in (neurons.A, neurons.B, neurons.G)),
                    np.concatenate([neurons.R, neurons.R[:, :2]], axis=1), np.r_[neurons.decay, 0.5, 0.7])
    rec = att.recover(hawk_from_neurons(leaky), reference=layer)
    assert rec.accumulator.sum() == neurons.n
    np.testing.assert_allclose(rec.tensor, layer.tensor(), atol=1e-9)


def test_recovered_full_tensor_reproduces_a_random_bilinear_hawk_with_biases_and_embedding():
    dims = {"input_kind": "vectors", "d_input": 3, "d_output": 2}
    model = probe.models.make("hawk", dims, hidden=5, embedding="learned", d_embed=4, seed=3,
                              **{k: v for k, v in att.HAWK_OPTIONS.items() if k != "embedding"}).double()
    with torch.no_grad():
        model.layers[0].Lambda.fill_(1.0)
        for b in (model.layers[0].b_gx, model.layers[0].b_go):
            b.normal_()
    rec = att.recover(model)
    x = np.random.default_rng(0).standard_normal((2, 7, 3))
    np.testing.assert_allclose(rec.predict(x), _run(model, x), atol=1e-10)           # affine attention = model
    assert np.abs(rec.predict(x, affine=False) - _run(model, x)).max() > 1e-3         # the biases do matter


def test_recover_rejects_models_without_the_bilinear_construction():
    dims = {"input_kind": "vectors", "d_input": 2, "d_output": 1}
    with pytest.raises(ValueError, match="gates='linear'"):
        att.recover(probe.models.make("hawk", dims, hidden=3, embedding="onehot"))
    with pytest.raises(ValueError, match="hawk"):
        att.recover(probe.models.make("gru", dims, hidden=3))
    with pytest.raises(ValueError, match="member"):
        att.recover(probe.models.make("hawk", dims, hidden=3, members=2, **att.HAWK_OPTIONS))
    with pytest.raises(ValueError, match="method"):
        att.construct(att.random_attention(2), method="fast")


def test_teacher_reference_is_the_task_teacher():
    task = att.make_task("teacher")
    batch = task.sample(n=8, seed=0)
    y = att.reference_attention(task)(batch.inputs.double().numpy())
    np.testing.assert_allclose(y, batch.targets.double().numpy(), rtol=1e-4, atol=1e-4)


def test_one_step_gd_loss_matches_its_closed_form_and_step_size_is_optimal():
    task = att.make_task("regression")
    batch = task.sample(n=40000, seed=1)
    x, y, W = batch.inputs.double().numpy(), batch.targets.double().numpy(), batch.info["W"].double().numpy()
    gamma = gd_step_size(4, 16)
    ctx = x[:, :16, :4]                                                              # (B, N, d_x)
    S = np.einsum("bnp,bnq->bpq", ctx, ctx)                                          # (B, d, d)
    loss = lambda g: float(((np.einsum("byp,bpq,bq->by", W, g * S - np.eye(4), x[:, -1, :4])) ** 2).mean())  # noqa: E731
    assert loss(gamma) == pytest.approx(gd_loss_closed_form(4, 16), rel=0.03)
    assert loss(gamma) < min(loss(0.8 * gamma), loss(1.2 * gamma))
    ref = att.reference_attention(task)(x)[:, -1]                                    # the LSA form of the same step
    np.testing.assert_allclose(ref, np.einsum("byp,bpq,bq->by", W, gamma * S, x[:, -1, :4]), atol=1e-5)
    assert np.mean((ref - y[:, -1]) ** 2) == pytest.approx(loss(gamma), rel=1e-5)


def test_identifiable_entries_of_regression_exclude_the_query_y_and_y_times_flag():
    task = att.make_task("regression")
    mask = identifiable(task.sample(n=64, seed=0))                                   # channels x0..x3, y, flag
    assert not mask[:, :, 4].any()                                                   # y is 0 at every query
    assert not mask[4, 5].any() and not mask[5, 4].any()                             # y * flag is always 0
    assert mask[4, 0, 0] and mask[0, 0, 5]


@pytest.mark.parametrize("kind", ["teacher", "regression"])
def test_analyze_on_the_construction_of_the_reference_scores_it_exactly(kind):
    task = att.make_task(kind)
    model = att.construct(att.reference_attention(task)).float()
    result = att.analyze(model, task, n=512)
    s = result.summary
    assert s["correlation"] == pytest.approx(1.0, abs=1e-6) and s["scale"] == pytest.approx(1.0, abs=1e-5)
    assert abs(s["excess"]) < 1e-3 and s["construction_neurons"] == 4 == s["used_accumulators"]
    assert s["attention_loss"] == pytest.approx(s["reference_loss"], rel=1e-3, abs=1e-6)
    if kind == "regression":
        assert s["reference_loss"] == pytest.approx(s["gd_loss_closed_form"], rel=0.2)
    back = att.AttentionResult.from_dict(result.to_dict())
    assert set(back.figures()) == {"eigenvalues", "tensor_scatter"}
    back.sweep = [{"task": kind, "arch": "hawk", "hidden": h, "relative_loss": 1.0 / h} for h in (1, 2, 4)]
    assert "loss_vs_hidden" in back.figures()


@pytest.mark.slow
def test_claims_pass_in_the_quick_profile(tmp_path):
    exact = att_claims.construction_exact(profile="quick", store=str(tmp_path))
    assert exact.passed, exact.measured
    found = att_claims.discovered(profile="quick", store=str(tmp_path))
    assert found.passed, found.measured
    assert found.measured["regression"]["excess"] <= 0.05 and found.measured["regression"]["correlation"] >= 0.93


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_studys_points_are_the_runs_its_train_function_trains(profile, tmp_path, run_id_of):
    """Every run of the study, built as a sweep Point, has the id ``study.train`` gives it (issue 26)."""
    import importlib

    from probe import sweep

    study = importlib.import_module("analyses.attention.study")  # the package exports a function of that name
    budget = study.settings(profile)
    plan = study.points(budget)
    widths = {k: [h for k2, role, a, h, _ in plan if k2 == k and a == "hawk"] for k in budget.kinds}
    assert widths == {k: [budget.hidden] + ([h for h in budget.sweep if h != budget.hidden]
                                            if k in budget.sweep_kinds else []) for k in budget.kinds}
    seen = []
    for kind, _, arch, hidden, point in plan:
        seen.append(run_id_of(lambda k=kind, a=arch, h=hidden, n=point.steps: study.train(
            study.make_task(k), a, h, n, str(tmp_path), budget.members, lr=budget.lr)))
        assert seen[-1] == sweep.build(point)[3], (kind, arch, hidden)
    assert len(set(seen)) == len(plan)


def test_a_study_point_trains_the_weights_its_train_function_trains(tmp_path):
    import importlib

    from probe import sweep

    study = importlib.import_module("analyses.attention.study")
    point = study.point("regression", "hawk", 3, steps=4)
    mine = sweep.train_points([point], tmp_path / "points")[0]
    theirs = study.train(study.make_task("regression"), "hawk", 3, 4, str(tmp_path / "train"))
    assert mine.id == theirs.id
    a, b = mine.load_checkpoint()[0], theirs.load_checkpoint()[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="unknown kind 'mixed'; valid choices: teacher, regression"):
        study.point("mixed", "hawk", 3, steps=4)
