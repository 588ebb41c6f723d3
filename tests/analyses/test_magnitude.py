"""The magnitude analysis tells an onion code from a code with one subspace per position.

Hand-built copiers (``analyses.magnitude.handbuilt``) store the sequence in a known code; the
interventions must succeed exactly where the code allows them to.
"""
import json
import math

import numpy as np
import pytest
import torch

import probe
import probe.training
import tasks
from analyses import magnitude
from analyses.magnitude import claims as magnitude_claims
from analyses.magnitude import sweep as plans
from analyses.magnitude.data import contributions, geometric_fit, sampler
from analyses.magnitude.handbuilt import HandBuiltCopier
from analyses.magnitude.sweep import linear_accuracy, rises
from probe import sweep

V, K = 8, 3
# c(b) fixed to the model's own contribution: a learned E (the default, as the paper's code) with
# per-dimension g, γ, ℓ, β can fit any 3-position code, so it would not tell the codes apart here
FAST = dict(steps=200, lr=3e-2, batch_size=128, n_eval=256, contributions_from="model")



@pytest.fixture(scope="module")
def task():
    return tasks.make("repetition", n_symbols=V, min_len=K, max_len=K, mode="no_input")


@pytest.fixture(scope="module")
def blocks(task):
    return magnitude.analyze(HandBuiltCopier(V, K, "blocks"), task, **FAST)


@pytest.fixture(scope="module")
def onion(task):
    return magnitude.analyze(HandBuiltCopier(V, K, "onion", gamma=0.3), task, **FAST)


def test_hand_built_copiers_copy(task):
    batch = task.sample(200, seed=0, min_len=K, max_len=K)
    for code in ("blocks", "onion"):
        out = HandBuiltCopier(V, K, code)(batch.inputs)
        assert ((out.argmax(-1) == batch.targets) | ~batch.mask).all()


def test_subspace_code_linear_intervention_is_exact_and_no_onion_code(blocks):
    assert blocks.model_accuracy == 1.0
    assert blocks.accuracy["unigram"] == 1.0 and blocks.accuracy["bigram"] == 1.0
    assert abs(blocks.fit["rate"] - 1) < 1e-3                  # every position moves the state equally
    assert blocks.accuracy["onion"] < 0.5                       # c(b) - c(a) reaches the last block only
    assert blocks.per_position["onion"][:-1] == [0.0] * (K - 1)


def test_onion_code_onion_intervention_is_exact_and_linear_fails(onion):
    assert onion.model_accuracy == 1.0
    assert onion.accuracy["onion"] == 1.0
    assert linear_accuracy(onion.accuracy) < 0.5
    assert onion.fit["rate"] == pytest.approx(0.3, abs=1e-3) and onion.fit["r2"] > 0.999


def test_result_round_trips_through_json_and_draws_its_figures(onion):
    again = magnitude.MagnitudeResult.from_dict(json.loads(json.dumps(onion.to_dict())))
    assert again.accuracy == onion.accuracy and again.readout == onion.readout
    figs = again.figures()
    assert set(figs) == {"position_accuracy", "contributions", "readout"}
    assert figs["contributions"].layout.yaxis.type == "log"
    assert [p["name"] for p in again.readout["panels"]] == ["clean input", "token corrupted", "onion repair"]
    probs = np.asarray(again.readout["panels"][2]["probs"])
    assert probs.shape == (K + 1, V + 1)
    assert list(probs.argmax(1)) == again.readout["tokens"] + [V]  # repaired: the clean sequence, then EOS


@pytest.mark.parametrize("kind", ["unigram", "bigram", "onion"])
def test_sampler_corrupts_one_position_and_keeps_the_original_target(task, kind):
    batch = sampler(task, kind)(64, 3)
    L = batch.step + 1
    p = batch.info["position"]
    rows = torch.arange(64)
    original = batch.base.clone()
    original[rows, p] = batch.info["new"]
    assert (batch.base[rows, p] != batch.info["new"]).all() and (batch.base[rows, p] == batch.info["old"]).all()
    assert torch.equal(original[:, :L], batch.targets[:, L:2 * L]) and batch.mask[:, L:].all()
    if kind == "onion":
        assert batch.source is None
        return
    width = 0 if kind == "unigram" else 1
    near = (torch.arange(L)[None] - p[:, None]).abs() <= width
    assert (batch.source[near] == original[:, :L][near]).all()
    swapped = batch.variables.nonzero()[:, 1].view(64, -1) if kind == "unigram" else None
    if kind == "unigram":
        assert torch.equal(swapped[:, 0], p)
    else:  # the bigrams (p-1, p) and (p, p+1) that exist
        assert torch.equal(batch.variables.sum(1), 1 + ((p > 0) & (p < L - 1)).long())


def test_contributions_of_an_onion_are_geometric(task):
    norms = contributions(HandBuiltCopier(V, K, "onion", gamma=0.25), task, n=64)
    np.testing.assert_allclose(norms, math.sqrt(2) * 0.25 ** np.arange(K), rtol=1e-5)


def test_geometric_fit_recovers_the_rate():
    fit = geometric_fit(3.0 * 0.7 ** np.arange(6))
    assert fit["rate"] == pytest.approx(0.7) and fit["r2"] == pytest.approx(1.0)
    assert math.isnan(geometric_fit([1.0])["rate"])


def test_rises_needs_a_real_rise_and_no_real_drop():
    assert rises([0.0, 0.1, 0.3, 0.9])
    assert rises([0.0, 0.3, 0.27, 0.5])          # a drop within the noise tolerance
    assert not rises([0.0, 0.5, 0.2, 0.9])
    assert not rises([0.0, 0.01, 0.02, 0.05])     # flat


def test_bad_input_names_the_valid_choices(task):
    with pytest.raises(ValueError, match="valid kinds: unigram, bigram, onion"):
        sampler(task, "trigram")
    with pytest.raises(ValueError, match="repetition task"):
        sampler(tasks.make("parity"), "onion")
    with pytest.raises(ValueError, match="valid lengths are 2..3"):
        sampler(task, "bigram", lengths=[1])
    with pytest.raises(ValueError, match="valid kinds"):
        magnitude.analyze(HandBuiltCopier(V, K), task, kinds=["nope"])


@pytest.mark.slow
def test_quick_profile_claims_pass(tmp_path):
    for check in (magnitude_claims.onion_small, magnitude_claims.linear_large):
        result = check(profile="quick", store=str(tmp_path))
        assert result.passed, result


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_size_sweeps_points_are_the_runs_probe_train_gave(profile, tmp_path, run_id_of):
    p = plans.settings(profile)
    task = plans.task_for(p)

    def before(h):  # the sweep's training call before its runs went through probe.sweep.train_points
        model = probe.models.make("gru", task, hidden=h, members=p.members, seed=0)
        probe.train(task, model, steps=p.steps_for(h), batch_size=p.batch_size, lr=p.lr, schedule=p.schedule,
                    warmup=p.warmup, weight_decay=p.weight_decay, grad_clip=None, store=str(tmp_path), seed=0,
                    progress=False, eval_splits=["train"])

    ids = [sweep.build(plans.point("gru", h, p))[3] for h in p.sizes]
    assert ids == [run_id_of(lambda h=h: before(h)) for h in p.sizes]
    assert len(set(ids)) == len(p.sizes) and not any(tmp_path.iterdir())


def test_the_quick_sweep_is_a_smaller_version_of_the_full_one():
    quick, full = plans.settings("quick"), plans.settings("full")
    assert set(quick.sizes) < set(full.sizes) and quick.members <= full.members
    assert all(quick.steps_for(h) < full.steps_for(h) for h in quick.sizes)
    assert quick.task["max_len"] < tasks.make("repetition", **full.task).config.max_len
    assert quick.intervention_steps < full.intervention_steps and quick.onion_steps < full.onion_steps
