"""MQAR: values bound to their keys, every key queried once, features, the layout before 0.3."""
from __future__ import annotations

import pytest

import tasks
from tasks.recall import FILLER, KEY, QUERY, VALUE

OLD = {"random_non_queries": False, "echo_values": True, "strict": False}  # probe's layout before 0.3


@pytest.mark.parametrize("params", [{}, {"vocab_size": 40, "seq_len": 30, "num_pairs": 6, "unseen_queries": 2},
                                    {"vocab_size": 40, "seq_len": 36, "num_pairs": 4, "num_passes": 2},
                                    {"vocab_size": 20, "seq_len": 31, "num_pairs": 6, "unseen_queries": 2, **OLD}])
def test_queries_are_answered_with_the_value_bound_to_their_key(params):
    task = tasks.make("recall", **params)
    p, V, passes = task.params["num_pairs"], task.params["vocab_size"], task.params["num_passes"]
    ctx = 2 * p * passes
    batch = task.sample(32, seed=4)
    for i in range(batch.n):
        tokens = batch.inputs[i].tolist()
        keys, values = tokens[0:2 * p:2], tokens[1:2 * p:2]
        assert tokens[:ctx] == tokens[:2 * p] * passes  # the context, read num_passes times
        assert len(set(keys)) == p and len(set(values)) == p  # without replacement
        assert all(1 <= k < V // 2 for k in keys) and all(V // 2 <= v < V for v in values)
        bound = dict(zip(keys, values))
        queried = []
        for t in range(ctx, batch.length):
            if batch.mask[i, t]:
                assert (t - ctx) % 2 == 0 and tokens[t] in bound and batch.targets[i, t] == bound[tokens[t]]
                queried.append(tokens[t])
                if t + 1 < batch.length and params.get("echo_values"):  # teacher forcing: value follows its key
                    assert tokens[t + 1] == bound[tokens[t]]
        assert sorted(queried) == sorted(keys)  # every key queried exactly once
        assert int(batch.mask[i, :ctx].sum()) == 0  # no labels inside the context


@pytest.mark.parametrize("old", [False, True])
def test_features(old):
    extra = OLD if old else {}
    task = tasks.make("recall", vocab_size=40, seq_len=30, num_pairs=4, unseen_queries=2, **extra)
    batch = task.sample(16, seed=0)
    slot, answer = batch.features["slot_type"], batch.features["answer_in_context"]
    zeros = 0
    for i in range(batch.n):
        assert slot[i, :8].tolist() == [KEY, VALUE] * 4
        assert batch.features["pairs_stored"][i, :8].tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
        queries = [t for t in range(batch.length) if slot[i, t] == QUERY]
        assert len(queries) == 6  # 4 stored keys + 2 never stored
        stored = set(batch.inputs[i, :8:2].tolist())
        for t in queries:
            seen = batch.inputs[i, t].item() in stored
            assert answer[i, t] == int(seen) and batch.mask[i, t] == seen
            if t + 1 < batch.length:
                assert (slot[i, t + 1] == VALUE) == (old and seen)  # an echoed value, or filler
        fillers = slot[i] == FILLER
        zeros += int((batch.inputs[i][fillers] == 0).sum())
        if old:
            assert (batch.inputs[i][fillers] == 0).all()
        else:
            assert len(set(batch.inputs[i][fillers].tolist())) > 5  # drawn from the whole vocabulary
    assert (answer.bool() == batch.mask).all()
    if not old:
        assert zeros < 0.2 * int((slot == FILLER).sum())


def test_query_positions_favour_early_slots():
    task = tasks.make("recall", vocab_size=256, seq_len=128, num_pairs=4)
    batch = task.sample(256, seed=0)
    where = batch.mask.nonzero()[:, 1].float()
    assert where.mean() < 8 + (128 - 8) / 2  # a power law with a = 0.01 skews to the start


@pytest.mark.parametrize("params, name", [({"seq_len": 63}, "seq_len"), ({"vocab_size": 64}, "vocab_size"),
                                          ({"num_pairs": 8, "num_passes": 4}, "num_passes"),
                                          ({"num_pairs": 17}, "num_pairs")])
def test_what_zoology_refuses_is_refused_by_name(params, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        tasks.make("recall", **params)


def test_strict_false_accepts_the_old_settings_and_splits_stay_valid():
    task = tasks.make("recall", vocab_size=16, seq_len=15, num_pairs=3, **OLD)
    assert task.sample(4, seed=0).inputs.shape == (4, 15)
    assert set(task.splits()) == {"train", "len_30"}
    assert set(tasks.make("recall", vocab_size=100, seq_len=64).splits()) == {"train", "uniform"}  # V <= 2T
    for name, overrides in tasks.make("recall").splits().items():
        assert tasks.make("recall").sample(2, seed=0, **overrides).inputs.shape[1] == 64 * (1 + (name != "train"))
    uniform = tasks.make("recall", vocab_size=100, seq_len=64, num_pairs=4)
    lag = lambda b: b.mask.nonzero()[:, 1].float().mean()
    assert lag(uniform.sample(256, seed=0, power_a=1.0)) > lag(uniform.sample(256, seed=0)) + 5
