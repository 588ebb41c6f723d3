"""Streaming parity: labels, features, the finite data sets and the long splits."""
from __future__ import annotations

import itertools

import pytest
import torch

import tasks
from tasks.parity import PAD


def slow_reference(bits: list[int]) -> tuple[list[int], list[int]]:
    """Prefix parities and prefix counts of ones, by a plain loop."""
    parity, ones, count = [], [], 0
    for b in bits:
        count += b
        ones.append(count)
        parity.append(count % 2)
    return parity, ones


def rows(batch):
    """Each row's real bits (up to its pad)."""
    for row, mask in zip(batch.inputs.tolist(), batch.mask.tolist()):
        yield [b for b, m in zip(row, mask) if m]


@pytest.mark.parametrize("params", [{}, {"max_len": 4, "exhaustive": True}, {"max_len": 8, "fraction": 0.3}])
def test_targets_and_features_match_a_slow_reference(params):
    task = tasks.make("parity", **params)
    batch = task.sample(64, seed=1)
    for i, bits in enumerate(rows(batch)):
        L = len(bits)
        assert 1 <= L <= task.params["max_len"] and set(bits) <= {0, 1}
        parity, ones = slow_reference(bits)
        assert batch.targets[i, :L].tolist() == parity
        assert batch.features["parity"][i, :L].tolist() == parity
        assert batch.features["ones"][i, :L].tolist() == ones
        assert batch.features["position"][i, :L].tolist() == list(range(1, L + 1))
        # the mask is exactly the real steps; pads carry the pad token and -1 features
        assert batch.mask[i].tolist() == [True] * L + [False] * (batch.length - L)
        assert all(t == PAD for t in batch.inputs[i, L:].tolist())
        assert all(f == -1 for f in batch.features["parity"][i, L:].tolist())


def test_length_override_gives_fixed_length_strings():
    task = tasks.make("parity")
    batch = task.sample(4, seed=0, **task.splits()["len_10000"])
    assert batch.inputs.shape == (4, 10000) and batch.mask.all()
    bits = batch.inputs[0].tolist()
    assert batch.targets[0].tolist() == slow_reference(bits)[0]
    assert set(task.splits()) == {"train", "len_50", "len_1000", "len_10000"}


def test_exhaustive_data_set_is_every_string_of_length_1_to_10():
    task = tasks.make("parity", exhaustive=True)
    batch = task.sample(2046, seed=0)
    strings = {tuple(bits) for bits in rows(batch)}
    expected = {s for L in range(1, 11) for s in itertools.product((0, 1), repeat=L)}
    assert len(expected) == 2046 and strings == expected  # each string exactly once
    bigger = task.sample(3000, seed=0)
    assert len({tuple(bits) for bits in rows(bigger)}) == 2046


def test_fraction_keeps_a_fixed_binomial_subset_per_length():
    task = tasks.make("parity", max_len=10, fraction=0.25, data_seed=3)
    bits, lengths = task.dataset()
    kept = {L: int((lengths == L).sum()) for L in range(1, 11)}
    assert 0.15 < kept[10] / 1024 < 0.35  # Binomial(1024, 0.25)
    kept_set = {tuple(b[:L]) for b, L in zip(bits.tolist(), lengths.tolist())}
    for seed in range(3):
        sampled = {tuple(r) for r in rows(task.sample(128, seed=seed))}
        assert sampled <= kept_set  # batches draw only from the kept set
    same = tasks.make("parity", max_len=10, fraction=0.25, data_seed=3).dataset()[0]
    other = tasks.make("parity", max_len=10, fraction=0.25, data_seed=4).dataset()[0]
    assert (same == bits).all() and (other.shape != bits.shape or (other != bits).any())


def test_extra_metrics():
    task = tasks.make("parity")
    batch = task.sample(32, seed=0)
    logits = 5.0 * torch.nn.functional.one_hot(batch.targets, 2).float()
    last = batch.mask.sum(1) - 1
    logits[torch.arange(32), last] = logits[torch.arange(32), last].flip(-1)  # every final step wrong
    metrics = task.evaluate(logits, batch)
    assert metrics["final_accuracy"] == 0.0 and metrics["sequence_accuracy"] == 0.0
    assert 0.0 < metrics["accuracy"] < 1.0
