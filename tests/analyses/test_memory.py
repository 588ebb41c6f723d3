"""The memory analysis counts state as the recurrence carries it and probes what a state holds.

State sizes are checked against a hand count per architecture; the membership probe against
hand-built states (a one-hot store of the set: perfect; noise: chance).
"""
import json

import numpy as np
import pytest
import torch

import analyses
import probe
import tasks
from analyses import memory
from analyses.memory import claims as memory_claims
from analyses.memory import plans
from analyses.memory.accounting import hidden_for, state_size
from analyses.memory.plans import gaps, rises, settings
from analyses.memory.probes import (
    first_set_members,
    membership_probe,
    recall_by_lag,
    separator_states,
)
from analyses.memory.readout import pair_readout
from probe.claims import registered

# numbers the recurrence carries per layer, by hand: (h) or (h, c) or (Re h, Im h)
HAND = {"gru": lambda H: H, "elman": lambda H: H, "linear": lambda H: H, "hawk": lambda H: H,
        "lstm": lambda H: 2 * H, "lru": lambda H: 2 * H}



@pytest.fixture(scope="module")
def disjoint():
    return tasks.make("disjointness", vocab_size=24, short=2, long=8, order="long_first")


@pytest.mark.parametrize("arch", sorted(HAND))
@pytest.mark.parametrize("layers", [1, 2])
def test_state_size_matches_a_hand_count(arch, layers):
    task = tasks.make("recall", vocab_size=32, seq_len=16, num_pairs=2)
    model = probe.models.make(arch, task, hidden=6, layers=layers)
    assert state_size(model) == layers * HAND[arch](6) == model.state_size()


def test_lru_state_counts_its_complex_units_not_its_width():
    task = tasks.make("recall", vocab_size=32, seq_len=16, num_pairs=2)
    model = probe.models.make("lru", task, hidden=8, state_dim=3)
    assert state_size(model) == 6


@pytest.mark.parametrize("arch", sorted(HAND))
def test_hidden_for_gives_every_arch_the_same_state(arch):
    task = tasks.make("recall", vocab_size=32, seq_len=16, num_pairs=2)
    assert state_size(probe.models.make(arch, task, hidden=hidden_for(arch, 16))) == 16


def test_hidden_for_rejects_odd_states_for_paired_units_and_unknown_archs():
    with pytest.raises(ValueError, match="must be even"):
        hidden_for("lstm", 5)
    with pytest.raises(ValueError, match="valid choices"):
        hidden_for("transformer", 8)


def test_probe_decodes_a_one_hot_store_perfectly_and_noise_at_chance(disjoint):
    batch = disjoint.sample(800, seed=0)
    members = first_set_members(batch.inputs, disjoint.vocab_size)  # (B, 20)
    assert (members.sum(1) == 8).all()
    one_hot = members.astype(float)  # the set, stored one-hot
    assert membership_probe(one_hot, members)["accuracy"] == 1.0
    noise = np.random.default_rng(0).standard_normal((800, 20))
    chance = membership_probe(noise, members)
    assert chance["n_tokens"] == 20 and abs(chance["accuracy"] - 0.5) < 0.05


def test_probe_from_a_partial_store_decodes_what_is_stored(disjoint):
    batch = disjoint.sample(800, seed=1)
    members = first_set_members(batch.inputs, disjoint.vocab_size)
    half = np.where(np.arange(20) < 10, members, 0.0)  # only tokens 0..9 kept
    per_token = np.array(membership_probe(half, members)["per_token"])
    assert (per_token[:10] == 1.0).all() and np.abs(per_token[10:] - 0.5).max() < 0.1


def test_probe_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="same number of rows"):
        membership_probe(np.zeros((10, 3)), np.zeros((9, 2), bool))


def test_separator_states_are_the_state_after_the_first_set(disjoint):
    model = probe.models.make("lstm", disjoint, hidden=5)
    batch = disjoint.sample(4, seed=0)
    states = separator_states(model, batch.inputs)
    assert states.shape == (4, 10)  # h and c
    _, cache = model.run_with_cache(batch.inputs)
    at = 8 + 1  # "[" then the 8 tokens of the long first set, then "|"
    assert torch.equal(batch.inputs[:, at], torch.full((4,), 2))
    np.testing.assert_allclose(states[:, :5], cache["layers.0.hook_h"][:, at].double().numpy())


@pytest.mark.parametrize("passes", [1, 2])
def test_recall_by_lag_uses_the_position_of_the_stored_key(passes):
    task = tasks.make("recall", vocab_size=32, seq_len=24, num_pairs=3, num_passes=passes)
    ctx = 6 * passes

    class Oracle(torch.nn.Module):  # answers every query from the stored pairs, wrong for the last key
        def forward(self, inputs):
            B, T = inputs.shape
            out = torch.zeros(B, T, 32)
            for b in range(B):
                for t in range(ctx, T):
                    hits = (inputs[b, :4:2] == inputs[b, t]).nonzero()
                    if len(hits):
                        out[b, t, inputs[b, 2 * hits[0, 0] + 1]] = 1
            return out

    curve = recall_by_lag(Oracle(), task, n=64, seed=3)
    batch, expected = task.sample(64, seed=3), {}
    for b, t in batch.mask.nonzero().tolist():  # lag counted by hand from the last copy of the key
        stored = max(s for s in range(0, ctx, 2) if batch.inputs[b, s] == batch.inputs[b, t])
        expected.setdefault(t - stored, []).append(stored % 6 != 4)
    assert curve == {lag: np.mean(hits) for lag, hits in expected.items()}
    assert curve[2] == 0.0 and min(curve) == 2  # only the last key can be queried 2 steps after it


def test_gaps_and_rises():
    rows = [{"order": o, "read_twice": t, "mean": m} for o, t, m in
            [("short_first", False, 0.9), ("long_first", False, 0.5), ("short_first", True, 0.9),
             ("long_first", True, 0.8)]]
    g = gaps(rows)
    assert g["once"] == pytest.approx(0.4) and g["twice"] == pytest.approx(0.1) and g["closed"] == pytest.approx(0.75)
    assert rises([0.1, 0.3, 0.28, 0.6]) and not rises([0.1, 0.5, 0.2, 0.6]) and not rises([0.2, 0.22])


def test_analyze_a_small_model_and_round_trip(disjoint):
    model = probe.models.make("gru", disjoint, hidden=8)
    r = memory.analyze(model, disjoint, sizes=[1, 4, 8], n=128)
    assert r.state_size == 8 and set(r.probe) == {1, 4, 8}
    assert set(r.accuracy) == set(disjoint.splits())
    again = memory.MemoryResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert set(again.figures()) == {"probe"}
    recall = tasks.make("recall", vocab_size=32, seq_len=16, num_pairs=2)
    r = memory.analyze(probe.models.make("hawk", recall, hidden=8), recall, n=64)
    assert r.by_lag and set(r.figures()) == {"by_lag"}


def test_memory_is_a_discovered_analysis_and_its_claims_register():
    assert "memory" in analyses.names()
    analyses.load_all()
    assert {c.id for c in registered(["recall.state_frontier", "recall.delta_rule", "disjointness.order_asymmetry"])} \
        == {"recall.state_frontier", "recall.delta_rule", "disjointness.order_asymmetry"}


def test_bad_input_names_the_valid_choices(disjoint):
    with pytest.raises(ValueError, match="valid profiles: quick, full"):
        settings("medium")
    with pytest.raises(ValueError, match="recall or disjointness"):
        memory.analyze(probe.models.make("gru", tasks.make("parity"), hidden=4), tasks.make("parity"))
    with pytest.raises(ValueError, match="valid sizes are 1..10"):
        memory.analyze(probe.models.make("gru", disjoint, hidden=4), disjoint, sizes=[11])


@pytest.mark.slow
def test_quick_profile_frontier_claim_passes(tmp_path):
    result = memory_claims.state_frontier(profile="quick", store=str(tmp_path))
    assert result.passed, result


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="at the quick MQAR (V 32, T 16, 4 pairs) DeltaNet is ahead of linear attention "
                                       "at state ~60 only (0.79 against 0.72) and both reach the ceiling at ~240 "
                                       "(0.95 against 0.99): mean lead 0.01 < 0.05; analyses/memory/NOTES.md")
def test_quick_profile_delta_rule_claim_passes(tmp_path):
    result = memory_claims.delta_rule(profile="quick", store=str(tmp_path))
    assert result.passed, result


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="at the quick size (16 elements, sets of 2 and 8, 2 layers, state 40) only "
                                       "linear attention learns set disjointness, and its orders differ by < 0.2; JRT's "
                                       "Based and Mamba learn neither order; analyses/memory/NOTES.md; left failing")
def test_quick_profile_order_asymmetry_claim_passes(tmp_path):
    result = memory_claims.order_asymmetry(profile="quick", store=str(tmp_path))
    assert result.passed, result


def test_width_for_gives_the_largest_state_that_fits_as_the_model_counts_it():
    p = settings("quick")
    task = plans.recall_task(p, 4)
    for arch in registered_archs(("gru", "lstm", "lru", "linattn")):
        for state in (64, 256):
            params, size = plans.width_for(arch, state, p, task)
            model = probe.models.make(arch, task, d_embed=p.d_embed, **params)
            assert model.state_size() == size <= state
            knob = plans.KNOB.get(arch, "hidden")
            bigger = probe.models.make(arch, task, d_embed=p.d_embed, **{**params, knob: params[knob] + 1})
            assert bigger.state_size() > state  # the largest that fits
    assert plans.width_for("lru", 64, p, task)[0] == {"hidden": 32, "state_dim": 32}
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        plans.width_for("gru", 64, p.replace(arch_params={"gru": {"nope": 1}}), task)


def registered_archs(archs):
    return [a for a in archs if a in probe.models.names()]


needs_linattn = pytest.mark.skipif("linattn" not in probe.models.names(), reason="linattn is not registered")


@needs_linattn
@pytest.mark.parametrize("kw", [{}, {"conv": 2}, {"heads": 2}, {"feature": "elu", "normalize": True},
                                {"feature": "taylor", "d_key": 2}])
def test_pair_readout_is_s_transposed_times_phi_k(kw):
    """The patched-query readout equals S_tᵀ φ(k) computed by hand from the cached state."""
    from probe.models.chunked import feature_map

    task = tasks.make("recall", vocab_size=32, seq_len=24, num_pairs=3)
    model = probe.models.make("linattn", task, hidden=8, d_embed=16, seed=1, **kw).double()
    batch = task.sample(8, seed=1)
    out = pair_readout(model, task, batch=batch)
    L = model.layers[0]
    _, cache = model.run_with_cache(batch.inputs, names_filter=["layers.0.hook_S", "layers.0.hook_k",
                                                               "layers.0.hook_v"])
    S = cache["layers.0.hook_S"].reshape(8, 24, L.heads, L.F, L.V)
    phi = feature_map(L.feature, cache["layers.0.hook_k"].reshape(8, 24, L.heads, -1))
    v = cache["layers.0.hook_v"]
    for i, w in enumerate(out["write"]):
        r = torch.einsum("bthfv,bhf->bthv", S, phi[:, w])
        if L.normalize:
            r = r[..., :-1] / (r[..., -1:] + L.eps)
        cos = torch.nn.functional.cosine_similarity(r.reshape(8, 24, -1), v[:, w][:, None], dim=-1)
        assert torch.isnan(torch.as_tensor(out["cos"][:, i, :w])).all()
        np.testing.assert_allclose(out["cos"][:, i, w:], cos[:, w:].numpy(), atol=1e-10)
    assert (out["count"] <= out["stored"] + 1e-12).all()


@needs_linattn
@pytest.mark.parametrize("offset", [0, 1])
def test_orthogonal_keys_keep_every_pair_retrievable(offset):
    """One-hot keys and values: S_t = sum of e_x e_xᵀ, so S_tᵀ k_i points at v_i whatever follows."""
    task = tasks.make("recall", vocab_size=16, seq_len=12, num_pairs=3)
    model = probe.models.make("linattn", task, hidden=16, embedding="onehot")
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v"):
            getattr(model.layers[0], name).copy_(torch.eye(16))
            getattr(model.layers[0], "b" + name[1:]).zero_()
    out = pair_readout(model, task, n=32, offset=offset)
    assert out["write"].tolist() == [offset, 2 + offset, 4 + offset]
    np.testing.assert_allclose(out["count"], out["stored"])
    assert out["stored"].tolist() == [int(t >= offset) + int(t >= 2 + offset) + int(t >= 4 + offset)
                                      for t in range(12)]
    np.testing.assert_allclose(out["cos"][~np.isnan(out["cos"])], 1.0)


def test_pair_readout_refuses_what_it_cannot_read():
    task = tasks.make("recall", vocab_size=32, seq_len=16, num_pairs=2)
    with pytest.raises(ValueError, match="no layer with hook_q"):
        pair_readout(probe.models.make("gru", task, hidden=4), task)
    with pytest.raises(ValueError, match="reads recall models"):
        pair_readout(probe.models.make("gru", tasks.make("parity"), hidden=4), tasks.make("parity"))


@needs_linattn
def test_analyze_reads_pairs_out_of_a_matrix_state_and_draws_them():
    task = tasks.make("recall", vocab_size=32, seq_len=16, num_pairs=2)
    r = memory.analyze(probe.models.make("linattn", task, hidden=8, conv=2), task, n=64)
    assert len(r.retrieval["count"]) == 16 and r.retrieval["pairs_stored"] == 2
    assert set(r.figures()) == {"by_lag", "retrieval"} and "retrieval.retrievable_at_end" in r.summary
    again = memory.MemoryResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert set(again.figures()) == {"by_lag", "retrieval"}


def test_lead_over_the_lti_model_counts_only_input_dependent_archs():
    rows = [{"arch": a, "pairs": 4, "state": s, "mean": m} for a, s, m in
            [("lru", 64, 0.2), ("linattn", 64, 0.35), ("gru", 64, 0.9), ("mamba", 64, 0.45),
             ("lru", 256, 0.25), ("deltanet", 256, 0.7)]]
    lead = memory_claims.leads(rows)
    assert lead == {"pairs=4,state=64": {"arch": "mamba", "lead": 0.25},
                    "pairs=4,state=256": {"arch": "deltanet", "lead": 0.45}}
    assert memory_claims.leads([r for r in rows if r["arch"] != "lru"]) == {}


def _train_id(task, model, **kw):
    """The run id ``probe.train(task, model, **kw)`` gives (its config hashed as it hashes it)."""
    from probe.runs import run_id
    from probe.training import TrainConfig

    cfg = TrainConfig(**kw)
    return run_id(json.loads(json.dumps({"task": {"name": task.name, "params": task.params},
                                         "model": dict(model.config), "train": cfg.to_dict()})))


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_sweep_points_have_the_run_ids_of_the_direct_training_calls(profile):
    """Every frontier and asymmetry point builds (probe.sweep.build) the run id that training the
    same model with probe.train gives, so runs trained either way are found by the other."""
    from probe import sweep

    p = settings(profile)
    for arch in plans.registered(p.archs)[:3] + plans.registered(("deltanet",)):
        for pairs in p.pairs[:1]:
            task = plans.recall_task(p, pairs)
            params, _ = plans.width_for(arch, p.states[-1], p, task)
            model = probe.models.make(arch, task, members=p.members, seed=0, d_embed=p.d_embed, **params)
            lr = p.lrs.get(arch, p.lr)
            want = _train_id(task, model, steps=p.recall_steps, batch_size=p.batch_size, lr=lr, schedule="cosine",
                             warmup=p.recall_steps // 20, seed=0, eval_splits=["train"], n_checkpoints=4)
            assert sweep.build(plans.recall_point(arch, p.states[-1], pairs, p))[3] == want
    arch = plans.disjoint_archs(p)[-1]
    task = plans.disjoint_task(p, "long_first", True)
    params, _ = plans.width_for(arch, p.disjoint_state, p, task, p.disjoint_layers,
                                {**p.arch_params, **p.disjoint_arch_params})
    model = probe.models.make(arch, task, members=p.members, seed=0, d_embed=p.d_embed, layers=p.disjoint_layers,
                              **params)
    want = _train_id(task, model, steps=p.disjoint_steps, batch_size=p.batch_size, lr=p.lrs.get(arch, p.lr),
                     schedule="cosine", warmup=p.disjoint_steps // 20, seed=0, eval_splits=["train"], n_checkpoints=4)
    assert sweep.build(plans.disjoint_point("long_first", True, p, arch=arch))[3] == want


def test_quick_sweeps_are_smaller_than_full_and_say_their_setting():
    """The quick profile trains fewer, shorter runs on a smaller task than the full one, and the
    claims' ``setting`` line names it; the smallest quick state is the LRU's and Mamba's only (a
    short convolution of 2 over the embedding already holds d_embed = 32 numbers; Mamba's runs
    over its narrower channels)."""
    q, f = settings("quick"), settings("full")
    assert q.recall_steps < f.recall_steps and q.disjoint_steps < f.disjoint_steps and q.members < f.members
    assert q.recall["seq_len"] < f.recall["seq_len"] and q.recall["vocab_size"] < f.recall["vocab_size"]
    assert q.disjoint["long"] < f.disjoint["long"] and q.disjoint_state < f.disjoint_state
    assert f.lrs == {} and f.lr == 3e-3  # the full profile keeps one learning rate for all
    task = plans.recall_task(q, 4)
    carried = {a: [s for s in q.states if plans.carries(a, s, q, task)] for a in plans.registered(q.archs)}
    assert carried.get("lru") == [16, 64, 256]
    assert all(states == ([16, 64, 256] if a == "mamba" else [64, 256]) for a, states in carried.items() if a != "lru")
    assert plans.describe_recall(q).startswith("MQAR V=32, T=16, pairs [4], states [16, 64, 256], 1000 steps")
    assert "16 elements, sets of 2 and 8, 2 layers, state 40, 2000 steps" in plans.describe_disjoint(q)
