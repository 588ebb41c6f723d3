"""Token repetition: the emitted sequence equals the stored one, in both input modes."""
from __future__ import annotations

import pytest

import tasks


@pytest.mark.parametrize("mode", ["autoregressive", "no_input"])
def test_outputs_equal_the_inputs(mode):
    task = tasks.make("repetition", mode=mode)
    ns = task.params["n_symbols"]
    eos, sep, no_input, pad = ns, ns + 1, ns + 2, ns + 3
    batch = task.sample(64, seed=0)
    lengths = set()
    for i in range(batch.n):
        tokens = batch.inputs[i].tolist()
        L = tokens.index(sep)
        lengths.add(L)
        stored = tokens[:L]
        assert all(0 <= t < ns for t in stored)
        emitted = batch.targets[i][batch.mask[i]].tolist()
        assert emitted == stored + [eos]
        assert batch.mask[i].tolist() == [False] * L + [True] * (L + 1) + [False] * (batch.length - 2 * L - 1)
        decoder = tokens[L + 1:2 * L + 1]
        assert decoder == (stored if mode == "autoregressive" else [no_input] * L)
        assert all(t == pad for t in tokens[2 * L + 1:])
        assert batch.features["emit"][i, L:2 * L + 1].tolist() == stored + [eos]
        assert batch.features["position"][i, :2 * L + 1].tolist() == list(range(L)) + list(range(L + 1))
        assert batch.features["phase"][i, :2 * L + 1].tolist() == [0] * L + [1] * (L + 1)
    assert lengths == set(range(2, 10))


def test_length_splits_are_one_and_two_longer():
    task = tasks.make("repetition")
    assert task.splits()["len_10"] == {"min_len": 10, "max_len": 10}
    batch = task.sample(4, seed=0, **task.splits()["len_11"])
    assert batch.length == 23 and (batch.mask.sum(1) == 12).all()
