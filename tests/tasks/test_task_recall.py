"""MQAR: values bound to their keys, every key queried once, features."""
from __future__ import annotations

import pytest

import tasks
from tasks.recall import FILLER, KEY, QUERY, VALUE


@pytest.mark.parametrize("params", [{}, {"vocab_size": 20, "seq_len": 30, "num_pairs": 6, "unseen_queries": 2}])
def test_queries_are_answered_with_the_value_bound_to_their_key(params):
    task = tasks.make("recall", **params)
    p, V = task.params["num_pairs"], task.params["vocab_size"]
    batch = task.sample(32, seed=4)
    for i in range(batch.n):
        tokens = batch.inputs[i].tolist()
        keys, values = tokens[0:2 * p:2], tokens[1:2 * p:2]
        assert len(set(keys)) == p and len(set(values)) == p  # without replacement
        assert all(1 <= k < V // 2 for k in keys) and all(V // 2 <= v < V for v in values)
        bound = dict(zip(keys, values))
        queried = []
        for t in range(2 * p, batch.length):
            if batch.mask[i, t]:
                assert tokens[t] in bound and batch.targets[i, t] == bound[tokens[t]]
                queried.append(tokens[t])
                if t + 1 < batch.length:  # teacher forcing: the value follows its query key
                    assert tokens[t + 1] == bound[tokens[t]]
        assert sorted(queried) == sorted(keys)  # every key queried exactly once
        assert int(batch.mask[i, :2 * p].sum()) == 0  # no labels inside the context


def test_features():
    task = tasks.make("recall", vocab_size=20, seq_len=30, num_pairs=4, unseen_queries=2)
    batch = task.sample(16, seed=0)
    slot, answer = batch.features["slot_type"], batch.features["answer_in_context"]
    for i in range(batch.n):
        assert slot[i, :8].tolist() == [KEY, VALUE] * 4
        assert batch.features["pairs_stored"][i, :8].tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
        queries = [t for t in range(batch.length) if slot[i, t] == QUERY]
        assert len(queries) == 6  # 4 stored keys + 2 never stored
        stored = set(batch.inputs[i, :8:2].tolist())
        for t in queries:
            seen = batch.inputs[i, t].item() in stored
            assert answer[i, t] == int(seen) and batch.mask[i, t] == seen
        fillers = (slot[i] == FILLER)
        assert (batch.inputs[i][fillers] == 0).all()
    assert (answer.bool() == batch.mask).all()


def test_query_positions_favour_early_slots():
    task = tasks.make("recall", vocab_size=64, seq_len=128, num_pairs=4)
    batch = task.sample(256, seed=0)
    where = batch.mask.nonzero()[:, 1].float()
    assert where.mean() < 8 + (128 - 8) / 2  # a power law with a = 0.01 skews to the start
