"""Set disjointness: exactly one shared element, the label, orders and read-twice."""
from __future__ import annotations

import pytest
import torch

import tasks
from tasks.disjointness import ANSWER_SEP, LIST_SEP, PREFIX


def parse(tokens: list[int]) -> tuple[list[int], list[int]]:
    """The two sets of one read of the context ``[ A | B``."""
    assert tokens[0] == PREFIX
    sep = tokens.index(LIST_SEP)
    return tokens[1:sep], tokens[sep + 1:]


@pytest.mark.parametrize("order", ["both", "short_first", "long_first"])
@pytest.mark.parametrize("read_twice", [False, True])
def test_exactly_one_shared_element_is_the_label(order, read_twice):
    task = tasks.make("disjointness", vocab_size=40, short=3, long=9, order=order, read_twice=read_twice)
    batch = task.sample(64, seed=2)
    firsts = set()
    for i in range(batch.n):
        tokens = batch.inputs[i].tolist()
        assert tokens[-1] == ANSWER_SEP
        context = tokens[:-1]
        if read_twice:
            half = len(context) // 2
            assert context[:half] == context[half:]
            context = context[:half]
        a, b = parse(context)
        assert len(set(a)) == len(a) and len(set(b)) == len(b)
        shared = set(a) & set(b)
        assert len(shared) == 1
        assert batch.mask[i].tolist() == [False] * (len(tokens) - 1) + [True]
        assert batch.targets[i, -1].item() == shared.pop()
        assert all(4 <= t < 40 for t in a + b)
        assert batch.features["size_a"][i, 0] == len(a) and batch.features["size_b"][i, 0] == len(b)
        in_a = batch.features["in_a"][i, :len(context)].tolist()
        assert in_a == [0] + [1] * len(a) + [0] + [int(t in a) for t in b]
        assert batch.features["phase"][i, :len(context)].tolist() == [0] + [1] * len(a) + [0] + [2] * len(b)
        firsts.add(len(a))
    expected = {"both": {3, 9}, "short_first": {3}, "long_first": {9}}[order]
    assert firsts == expected


def test_splits_swap_the_order():
    task = tasks.make("disjointness")
    assert task.splits()["short_long"] == {"order": "short_first"}
    assert task.splits()["long_short"] == {"order": "long_first"}
    short_long = task.sample(8, seed=0, **task.splits()["short_long"])
    long_short = task.sample(8, seed=0, **task.splits()["long_short"])
    assert (short_long.features["size_a"] == 4).all() and (long_short.features["size_a"] == 16).all()


def test_num_passes_repeats_the_context_and_read_twice_is_two_passes():
    three = tasks.make("disjointness", vocab_size=40, short=3, long=9, num_passes=3).sample(16, seed=1)
    context = three.inputs[:, :-1]
    C = context.shape[1] // 3
    assert C == 3 + 9 + 2 and torch.equal(context[:, :C], context[:, C:2 * C])
    assert torch.equal(context[:, :C], context[:, 2 * C:])
    assert torch.equal(three.features["in_a"][:, :C], three.features["in_a"][:, 2 * C:3 * C])
    twice = tasks.make("disjointness", vocab_size=40, short=3, long=9, read_twice=True).sample(4, seed=1)
    passes = tasks.make("disjointness", vocab_size=40, short=3, long=9, num_passes=2).sample(4, seed=1)
    assert twice.inputs.shape == passes.inputs.shape == (4, 2 * C + 1)
    with pytest.raises(ValueError, match="'num_passes'"):
        tasks.make("disjointness", read_twice=True, num_passes=3)
