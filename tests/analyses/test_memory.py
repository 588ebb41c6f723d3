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
from analyses.memory.accounting import hidden_for, state_size
from analyses.memory.plans import gaps, rises, settings
from analyses.memory.probes import (
    first_set_members,
    membership_probe,
    recall_by_lag,
    separator_states,
)
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
    assert {c.id for c in registered(["recall.state_frontier", "disjointness.order_asymmetry"])}


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
@pytest.mark.xfail(strict=True, reason="a GRU does not use the second reading: in the quick profile the gap is "
                                       "0.17 read once and 0.19 read twice, and four searches found no setting where "
                                       "reading twice lifts long-first accuracy by half the gap (analyses/memory/NOTES.md); "
                                       "left failing, not loosened, until the matrix-state models of issue 22")
def test_quick_profile_order_asymmetry_claim_passes(tmp_path):
    result = memory_claims.order_asymmetry(profile="quick", store=str(tmp_path))
    assert result.passed, result
