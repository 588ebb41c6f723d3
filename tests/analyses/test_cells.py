"""Cells analysis: scores against sklearn, a hand-built parity unit found first, saturation by direct count."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import probe
import tasks
from analyses import cells
from analyses.base import Result
from analyses.cells import claims as cells_claims
from analyses.cells import scores as sc
from analyses.cells.claims import WIDE_MARGIN
from probe.claims import registered

# -- scores ------------------------------------------------------------------------------------

def test_vectorised_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    acts = np.column_stack([rng.normal(size=500), labels + rng.normal(size=500),
                            rng.integers(0, 3, 500).astype(float), -labels.astype(float)])  # ties in 2 and 3
    expected = [roc_auc_score(labels, acts[:, u]) for u in range(acts.shape[1])]
    np.testing.assert_allclose(sc.auc(acts, labels), expected, atol=1e-12)


def test_ranks_and_bins_computed_once_give_the_same_scores():
    rng = np.random.default_rng(3)
    acts = rng.normal(size=(400, 6)).round(1)  # ties
    for feature in (rng.integers(0, 2, 400), rng.integers(0, 5, 400)):
        plain = sc.score_units(acts, feature)
        cached = sc.score_units(acts, feature, ranks=sc.unit_ranks(acts), binned=sc.quantile_bins(acts))
        assert plain.keys() == cached.keys() and all(np.array_equal(plain[k], cached[k]) for k in plain)


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        sc.auc(np.zeros((5, 2)), np.ones(5))


def test_pearson_matches_numpy_and_constant_units_score_zero():
    rng = np.random.default_rng(1)
    f = rng.normal(size=300)
    acts = np.column_stack([f * 2 + rng.normal(size=300), np.ones(300), rng.normal(size=300)])
    r = sc.pearson(acts, f)
    assert r[0] == pytest.approx(np.corrcoef(acts[:, 0], f)[0, 1])
    assert r[1] == 0.0 and r[2] == pytest.approx(np.corrcoef(acts[:, 2], f)[0, 1])


def test_mutual_information_equals_sklearn_on_the_bins_and_nears_the_entropy_for_a_copy():
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(2)
    f = rng.integers(0, 4, 20000)
    acts = np.column_stack([f + 0.01 * rng.normal(size=f.size), rng.normal(size=f.size)])
    mi = sc.mutual_information(acts, f, bins=16)
    bins = sc.quantile_bins(acts, 16)
    np.testing.assert_allclose(mi, [mutual_info_score(bins[:, u], f) for u in range(2)], atol=1e-12)
    p = np.bincount(f) / f.size
    assert 0.9 * -(p * np.log(p)).sum() < mi[0] <= -(p * np.log(p)).sum() + 1e-9
    assert mi[1] < 0.01


def test_shuffle_moves_whole_feature_tracks():
    f = np.arange(20).reshape(4, 5)
    mask = np.ones((4, 5), dtype=bool)
    mask[2, 3:] = False
    g, ok = sc.shuffle_rows(f, mask, seed=0)
    assert sorted(map(tuple, g)) == sorted(map(tuple, f))  # rows kept intact, only their order changes
    assert (ok <= mask).all()


def test_saturation_fractions_equal_a_direct_count():
    rng = np.random.default_rng(3)
    gate = rng.uniform(size=(200, 6))
    gate[:, 0] = 0.95  # always right-saturated
    gate[:, 1] = 0.05  # always left-saturated
    left, right = sc.saturation(gate)
    for u in range(6):
        assert left[u] == sum(g < 0.1 for g in gate[:, u]) / 200
        assert right[u] == sum(g > 0.9 for g in gate[:, u]) / 200
    assert (left[0], right[0], left[1], right[1]) == (0.0, 1.0, 1.0, 0.0)


# -- a hand-built parity unit ------------------------------------------------------------------

def _hand_built(task):
    """2-layer ReLU Elman: layer 0 units 0, 1 compute parity as u1 + u2, layer 1 unit 3 = relu(u1 + u2)
    is running parity itself; every other unit keeps its random weights (noise). The readout reads unit 3."""
    model = probe.models.make("elman", task, hidden=8, layers=2, nonlinearity="relu", embedding="onehot", seed=0)
    l0, l1 = model.layers
    with torch.no_grad():
        l0.W[:2].zero_()
        l0.W[:2, :2] = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
        l0.U[:2] = torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])  # tokens 0, 1, pad
        l0.b[:2].zero_()
        l1.U[3].zero_()
        l1.U[3, :2] = 1.0
        l1.W[3].zero_()
        l1.b[3] = 0.0
        model.readout.W_U.zero_()
        model.readout.W_U[1, 3] = 8.0
        model.readout.b_U.copy_(torch.tensor([4.0, 0.0]))
    return model


@pytest.fixture(scope="module")
def hand_result():
    task = tasks.make("parity", max_len=10)
    model = _hand_built(task)
    init = probe.models.make("elman", task, hidden=8, layers=2, nonlinearity="relu", embedding="onehot", seed=0)
    return cells.analyze(model, task, n=256, init_model=init, n_shuffles=2)


def test_the_copying_unit_ranks_first_with_auc_one(hand_result):
    # the state and its pre-activation (never negative here) are the same unit, tied at AUC 1
    top = hand_result.top["parity"]
    assert {r["unit"] for r in top[:2]} == {"layers.1.hook_h:3", "layers.1.hook_pre:3"}
    assert top[0]["auc"] == top[1]["auc"] == pytest.approx(1.0) and top[2]["score"] < 0.99
    assert hand_result.kinds["parity"] == "binary" and hand_result.kinds["position"] == "graded"


def test_the_nulls_stay_near_chance_and_the_unit_beats_them(hand_result):
    n = hand_result.nulls["parity"]
    assert 0.5 <= n["shuffle"] < 0.6
    assert n["init"] < 0.8
    assert n["n_interpretable"] >= 2


def test_ablating_the_unit_hurts_where_parity_drops_and_a_random_unit_does_not(hand_result):
    c = hand_result.causal["parity"]
    assert c["unit"] == "layers.1.hook_h:3" and c["n_steps"] > 0
    assert c["delta_logprob"] < -0.5  # from ~0 to about log(1/2): the mean of parity says nothing
    assert abs(c["control_delta_logprob"]) < 1e-9  # the readout ignores every other unit


def test_the_probe_reads_parity_from_the_state(hand_result):
    assert hand_result.probes["parity"]["probe"] > 0.95


def test_result_round_trips_through_json_and_draws(hand_result):
    back = cells.CellsResult.from_dict(json.loads(json.dumps(hand_result.to_dict())))
    assert back.top == hand_result.top and isinstance(back, Result)
    figs = back.figures()
    assert {"scores", "saturation", "probe", "text_parity"} <= set(figs)
    assert len(figs["text_parity"].data[0].z) >= 1


# -- gates, models and parameters --------------------------------------------------------------

def test_lstm_forget_gates_with_a_huge_bias_are_always_right_saturated():
    task = tasks.make("parity", max_len=6)
    model = probe.models.make("lstm", task, hidden=4, seed=0)
    with torch.no_grad():
        model.layers[0].b_ih[4:8] = 30.0  # gate order (i, f, g, o): the forget gate's bias
    r = cells.analyze(model, task, n=16, causal="none", n_shuffles=1)
    assert r.saturation["layers.0.hook_f"]["right"] == [1.0] * 4
    assert r.saturation["layers.0.hook_f"]["left"] == [0.0] * 4
    assert {"layers.0.hook_i", "layers.0.hook_o"} <= set(r.saturation) and "layers.0.hook_g" not in r.saturation
    assert len(r.units) == 6 * 4  # i f g o c h


def test_charlm_scores_every_feature_of_an_untrained_model():
    task = tasks.make("charlm", length=50)
    model = probe.models.make("lstm", task, hidden=8, seed=0)
    r = cells.analyze(model, task, n=8, n_shuffles=1, causal="none", text_length=120)
    assert {"column", "in_string", "in_comment_or_string"} <= set(r.features) <= set(task.feature_names)
    assert r.kinds["column"] == "graded" and r.kinds["in_string"] == "binary"
    assert all(len(r.scores[f]["score"]) == len(r.units) == 6 * 8 for f in r.features)
    assert len(r.text["tokens"]) == 120


def test_burn_in_steps_are_run_but_not_scored():
    task = tasks.make("charlm", length=30)
    model = probe.models.make("lstm", task, hidden=4, seed=0)
    r = cells.analyze(model, task, n=8, n_shuffles=1, causal="mean", text_length=40, burn_in=20)
    assert r.summary["n_steps"] == 8 * 10
    with pytest.raises(ValueError, match="leaves no valid step"):
        cells.analyze(model, task, n=8, n_shuffles=1, causal="none", burn_in=30)


@pytest.mark.parametrize("kw, match", [({"n": 2}, "n must be"), ({"margin": 1.5}, "margin"),
                                       ({"burn_in": -1}, "burn_in must be"),
                                       ({"n_shuffles": 0}, "n_shuffles"), ({"causal": "zero"}, "causal must be one of"),
                                       ({"split": "nope"}, "unknown split 'nope'.*valid splits")])
def test_bad_parameters_are_value_errors(kw, match):
    task = tasks.make("parity", max_len=4)
    with pytest.raises(ValueError, match=match):
        cells.analyze(probe.models.make("gru", task, hidden=4), task, **kw)


def test_an_ensemble_is_refused():
    task = tasks.make("parity", max_len=4)
    with pytest.raises(ValueError, match="member"):
        cells.analyze(probe.models.make("gru", task, hidden=4, members=2), task)


@pytest.mark.slow
def test_the_claims_run_and_report_their_numbers(tmp_path):
    saturation, charlm = (spec(profile="quick", store=str(tmp_path))
                          for spec in (cells_claims.charlm_saturation, cells_claims.charlm_cells))
    assert saturation.passed, saturation.measured
    # cells.charlm's quick LSTM (64 streams, 1500 steps, lr 3e-3) has the paper's two cells:
    # comment-or-string AUC 0.912, bracket depth |r| 0.726 (analyses/cells/NOTES.md)
    assert not str(charlm.measured).startswith("error"), charlm.measured
    assert charlm.passed, charlm.measured
    for feature in ("in_comment_or_string", "bracket_depth", "in_string"):
        assert charlm.measured[feature]["beats_null_by"] >= WIDE_MARGIN, charlm.measured[feature]
    assert {"column", "in_if"} <= set(charlm.measured) and "gru" not in charlm.measured["report_only"]
    assert {"parity", "repetition"} <= set(charlm.measured["report_only"])
    assert charlm.measured["setting"] == saturation.measured["setting"] and "LSTM-128" in charlm.measured["setting"]


def _fake(scores: dict) -> cells.CellsResult:
    """A result whose best unit per feature has ``score`` and whose nulls are all 0.6."""
    top = {f: [{"unit": "layers.0.hook_c:0", "score": v, ("auc" if f.startswith("in_") else "corr"): v}]
           for f, v in scores.items()}
    return cells.CellsResult(summary={}, features=list(scores), top=top,
                             nulls={f: {"init": 0.6, "shuffle": 0.55} for f in scores},
                             probes={f: {"probe": 0.9} for f in scores})


@pytest.mark.parametrize("comment_or_string, depth, in_string, passes", [
    (0.92, 0.75, 0.70, True),    # the paper's comment-and-quote cell: a weak string-only unit does not matter
    (0.89, 0.75, 0.95, False),   # nor does a strong one: the rule is on comments and strings together
    (0.92, 0.69, 0.95, False),
    (0.92, 0.74, 0.95, False),   # |r| >= 0.7 but only 0.14 above the best null (0.6)
])
def test_the_pass_rule_is_the_comment_or_string_cell_and_the_depth_cell(comment_or_string, depth, in_string, passes):
    measured, ok = cells_claims._cells_ok(_fake({"in_comment_or_string": comment_or_string, "bracket_depth": depth,
                                                 "in_string": in_string, "column": 0.5, "in_if": 0.7}))
    assert ok is passes
    assert {"in_comment_or_string", "bracket_depth", "in_string", "column", "in_if"} <= set(measured)
    assert measured["in_string"]["null_init"] == 0.6 and measured["in_if"]["auc"] == 0.7


def test_the_claims_are_registered():
    assert [s.id for s in registered(["cells.charlm", "cells.saturation"])] == ["cells.charlm", "cells.saturation"]


def _train_id(task, model, **kw) -> str:
    """The run id probe.train gives (task, model, training keywords), without training."""
    from probe.runs import run_id
    from probe.training import TrainConfig

    cfg = TrainConfig(seed=int(model.config.get("seed", 0)), **kw)
    return run_id(json.loads(json.dumps({"task": {"name": task.name, "params": task.params},
                                         "model": dict(model.config), "train": cfg.to_dict()})))


def test_the_claims_points_are_the_runs_probe_train_gave():
    # cells.charlm trains through probe.sweep.train_points now: each point must be the run the
    # claim's earlier direct probe.train call made, so stores trained before are reused
    from probe import sweep

    s = cells_claims.settings("quick")
    task = tasks.make("charlm", length=s.length, corpus=s.corpus)
    legacy = [_train_id(task, probe.models.make(arch, task, hidden=s.hidden, layers=s.layers, seed=0), steps=s.steps,
                        batch_size=s.batch_size, lr=s.lr, schedule=s.schedule, warmup=s.warmup, grad_clip=s.grad_clip,
                        stateful=s.stateful, n_checkpoints=4, eval_splits=["valid"]) for arch in s.archs]
    for name in cells_claims.REPORT_TASKS:
        t = tasks.make(name)
        legacy.append(_train_id(t, probe.models.make("lstm", t, hidden=32, seed=0), steps=s.report_steps, batch_size=64,
                                lr=1e-2, n_checkpoints=2, eval_splits=["train"]))
    pts = cells_claims.points("quick")
    assert [sweep.build(p)[3] for p in pts] == legacy
    assert [p.arch for p in pts[:len(s.archs)]] == list(s.archs) and s.archs[0] == "lstm"


def test_the_quick_setting_is_no_larger_than_the_full_one():
    q, f = cells_claims.settings("quick"), cells_claims.settings("full")
    assert set(q.archs) <= set(f.archs) and q.steps * q.batch_size <= f.steps * f.batch_size  # characters read
    assert q.hidden <= f.hidden and q.n <= f.n
    assert (q.length, q.score_length, q.burn_in, q.stateful) == (f.length, f.score_length, f.burn_in, f.stateful)
    with pytest.raises(ValueError, match="archs must start with 'lstm'"):
        q.replace(archs=("gru",))
