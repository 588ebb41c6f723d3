"""In-context regular languages: strings accepted, features, disjoint automaton pools, metrics."""
from __future__ import annotations

import itertools
from collections import deque

import numpy as np
import pytest
import torch

import tasks
from tasks.dfa import DFA, N_LETTERS, random_dfa
from tasks.regular import PAD, SEP

SMALL = {"n_train_automata": 200, "n_test_automata": 50, "max_strings": 6, "max_len": 8}


def strings_of(tokens: list[int]) -> list[list[int]]:
    """The strings between separators of one row (pads dropped)."""
    tokens = [t for t in tokens if t != PAD]
    assert tokens[0] == SEP
    out, current = [], []
    for t in tokens[1:]:
        if t == SEP:
            out.append(current)
            current = []
        else:
            current.append(t)
    return out


def equivalent(d1: DFA, d2: DFA, q1: int = 0, q2: int = 0) -> bool:
    """Language equivalence from (q1, q2) by a breadth-first walk of the product automaton."""
    seen, todo = {(q1, q2)}, deque([(q1, q2)])
    while todo:
        a, b = todo.popleft()
        for letter in range(N_LETTERS):
            ta, tb = d1.delta[a][letter], d2.delta[b][letter]
            if (ta < 0) != (tb < 0):
                return False
            if ta >= 0 and (ta, tb) not in seen:
                seen.add((ta, tb))
                todo.append((ta, tb))
    return True


def accepted_up_to(dfa: DFA, length: int) -> frozenset:
    out, frontier = {()}, {((), 0)}
    for _ in range(length):
        frontier = {(s + (a,), t) for s, q in frontier for a, t in enumerate(dfa.delta[q]) if t >= 0}
        out |= {s for s, _ in frontier}
    return frozenset(out)


@pytest.mark.parametrize("pool", ["train", "test"])
def test_every_string_is_accepted_by_its_automaton(pool):
    task = tasks.make("regular", **SMALL, automata=pool)
    batch = task.sample(48, seed=0)
    assert batch.info["automata"] == pool
    for i in range(batch.n):
        dfa = task.automaton(int(batch.info["automaton"][i]), pool)
        assert dfa == task.automaton_of(batch, i)
        row = [batch.inputs[i, 0].item()] + batch.targets[i][batch.mask[i]].tolist()  # the whole row
        assert row[-1] == SEP and batch.inputs[i][batch.mask[i]].tolist() == row[:-1]
        strings = strings_of(row)
        assert 1 <= len(strings) <= 6
        assert all(1 <= len(s) <= 8 and dfa.accepts(s) for s in strings)


def test_features_match_a_slow_reference():
    task = tasks.make("regular", **SMALL)
    batch = task.sample(16, seed=3)
    for i in range(batch.n):
        dfa = task.automaton(int(batch.info["automaton"][i]))
        current = []
        for t in range(batch.length):
            token = batch.inputs[i, t].item()
            if token == PAD:
                assert batch.features["dfa_state"][i, t] == -1 and not batch.mask[i, t]
                continue
            current = [] if token == SEP else current + [token]
            state = dfa.run(current)
            legal = len(dfa.legal(state)) + (token != SEP)  # | may follow a letter, not a |
            assert batch.features["dfa_state"][i, t] == state
            assert batch.features["position"][i, t] == len(current)
            assert batch.features["n_legal"][i, t] == legal
            last = t + 1 == batch.length or batch.inputs[i, t + 1] == PAD
            assert batch.mask[i, t] == (not last or token != SEP)  # no target after the row's final |


def test_legal_next_and_metrics_against_the_uniform_legal_distribution():
    task = tasks.make("regular", **SMALL)
    batch = task.sample(16, seed=1)
    legal = task.legal_next(batch)  # (B, T, 20)
    assert (legal.sum(-1) == batch.features["n_legal"].clamp(min=0)).all()
    assert legal.gather(-1, batch.targets[..., None])[batch.mask].all()  # the sampled next token is legal
    uniform = torch.log(legal.float() / legal.sum(-1, keepdim=True).clamp(min=1) + 1e-12)
    metrics = task.evaluate(uniform, batch)
    assert metrics["tvd"] < 1e-6 and metrics["accuracy"] == 1.0
    flat = task.evaluate(torch.zeros_like(uniform), batch)  # uniform over all 20 symbols
    assert 0.5 < flat["tvd"] < 1.0


def test_test_automata_are_disjoint_from_training_automata():
    task = tasks.make("regular", **SMALL)
    train, test = task.automata("train"), task.automata("test")
    assert len(train) == 200 and len(test) == 50
    assert not {d.delta for d in train} & {d.delta for d in test}
    # independently of canonical forms: no test automaton accepts the same language as a training one
    by_print: dict[frozenset, list[DFA]] = {}
    for d in train:
        by_print.setdefault(accepted_up_to(d, 3), []).append(d)
    for d in test:
        assert not any(equivalent(d, t) for t in by_print.get(accepted_up_to(d, 3), []))


def test_pools_are_minimal_distinct_and_follow_the_recipe():
    task = tasks.make("regular", **SMALL)
    pool = task.automata("train")
    assert len({d.delta for d in pool}) == len(pool)
    for d in pool[:60]:
        assert 1 <= d.n_states <= 12
        assert all(1 <= len(d.legal(q)) <= 3 for q in range(d.n_states))
        for p, q in itertools.combinations(range(d.n_states), 2):
            assert not equivalent(d, d, p, q)  # minimal: every pair of states distinguishable


def test_test_pool_does_not_depend_on_the_training_pool_size():
    small = tasks.make("regular", **{**SMALL, "n_train_automata": 100})
    large = tasks.make("regular", **SMALL)
    assert small.automata("test") == large.automata("test")
    assert small.automata("train") == large.automata("train")[:100]


def test_batches_sampled_with_pool_overrides_know_their_automata():
    task = tasks.make("regular", **SMALL)
    batch = task.sample(8, seed=0, automata_seed=5, n_train_automata=30)
    assert int(batch.info["automaton"].max()) < 30
    for i in range(8):
        dfa = task.automaton_of(batch, i)
        row = [batch.inputs[i, 0].item()] + batch.targets[i][batch.mask[i]].tolist()
        assert all(dfa.accepts(s) for s in strings_of(row))
    legal = task.legal_next(batch)
    assert legal.gather(-1, batch.targets[..., None])[batch.mask].all()


def test_minimisation_keeps_the_language():
    rng = np.random.default_rng(0)
    for _ in range(30):
        raw = random_dfa(rng)
        assert raw.n_states >= 4
        assert all(q not in {t for t in raw.delta[q]} for q in range(raw.n_states))  # no self-loops
        minimal = raw.minimal()
        assert minimal.n_states <= raw.n_states
        assert accepted_up_to(raw, 5) == accepted_up_to(minimal, 5)
