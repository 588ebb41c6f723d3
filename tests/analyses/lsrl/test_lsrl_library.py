"""Library programs compute what they say, and the task programs are exact ground truth."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tasks
from analyses.lsrl import library as L
from analyses.lsrl.compile import compile
from tasks.dfa import DFA

RNG = np.random.default_rng(5)


def test_counter_majority_mod_counter_and_parity_on_bits():
    bits = torch.tensor(RNG.integers(0, 2, (16, 40, 1)).astype(float))
    ones = bits.cumsum(1)
    zeros = torch.arange(1, 41).view(1, 40, 1) - ones
    torch.testing.assert_close(L.counter().program.run(bits), ones)
    torch.testing.assert_close(L.majority().program.run(bits), (ones > zeros).double())
    torch.testing.assert_close(L.parity().program.run(bits), ones % 2)
    torch.testing.assert_close(L.mod_counter(4).program.run(bits)[0, :, 0], torch.arange(0, 40).double() % 4)


def test_dfa_simulator_follows_the_transition_table_and_dies_on_a_missing_edge():
    lp = L.dfa()
    x = lp.sample(RNG, 32, 15)                                           # one-hot symbols
    symbols = x.argmax(-1)
    state = lp.program.run(torch.tensor(x)).numpy()                       # (B, T, n) one-hot or zero
    table = DFA(L.EXAMPLE_DFA)
    for b in range(8):
        for t in range(15):
            q = table.run(symbols[b, :t + 1])
            expected = np.eye(len(L.EXAMPLE_DFA))[q] if q >= 0 else np.zeros(len(L.EXAMPLE_DFA))
            np.testing.assert_array_equal(state[b, t], expected)


def test_dfa_simulator_rejects_bad_tables():
    from analyses.lsrl.graph import Input
    with pytest.raises(ValueError, match="3 entries"):
        L.dfa_state(Input(3), [[0, 1]])
    with pytest.raises(ValueError, match="states must lie"):
        L.dfa_state(Input(2), [[0, 5]])


def test_lookup_counts_the_values_stored_under_the_queried_key():
    for gate in ("mul", "relu"):
        lp = L.lookup(3, 2, gate=gate)
        x = lp.sample(RNG, 8, 30)
        out = lp.program.run(torch.tensor(x)).numpy()
        K, V = 3, 2
        memory = np.zeros((8, K, V))
        for t in range(30):
            memory += np.einsum("bk,bv->bkv", x[:, t, :K], x[:, t, K:K + V])
            np.testing.assert_array_equal(out[:, t], np.einsum("bkv,bk->bv", memory, x[:, t, K + V:]))


def test_strings_enumerate_every_string_in_order():
    lp = L.counter()
    s = lp.strings(3)
    assert s.shape == (8, 3, 1) and s[5, :, 0].tolist() == [1.0, 0.0, 1.0]
    assert lp.max_exhaustive_len() == 12 and L.dfa().max_exhaustive_len() == 7
    with pytest.raises(ValueError, match="unknown library program"):
        L.library(["nope"])


@pytest.mark.parametrize("target", ["elman", "lstm", "gru"])
def test_parity_task_ground_truth_is_exact(target):
    task = tasks.make("parity", max_len=12)
    c = compile(L.for_task(task), target, input_kind="tokens")
    for split in ({}, {"length": 300}):
        batch = task.sample(n=32, seed=1, **split)
        assert task.evaluate(c.model(batch.inputs), batch)["accuracy"] == 1.0


@pytest.mark.parametrize("target", ["elman", "gru"])
def test_regular_task_ground_truth_is_exact(target):
    task = tasks.make("regular", n_train_automata=1, n_test_automata=1, max_len=10)
    c = compile(L.for_task(task), target, input_kind="tokens")
    batch = task.sample(n=16, seed=0)
    metrics = task.evaluate(c.model(batch.inputs), batch)
    assert metrics["accuracy"] == 1.0 and metrics["tvd"] < 1e-12
    prog_state = L.regular_task_program(task.automaton(0).delta)
    assert prog_state.d_input == 20
    with pytest.raises(ValueError, match="no ground-truth program"):
        L.for_task(tasks.make("recall"))
