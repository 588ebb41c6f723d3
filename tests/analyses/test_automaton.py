"""Automaton extraction: hand-built states and RNNs give known automata; equivalence, mergers, runs."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

import analyses
import probe
import tasks
from analyses import automaton as au
from analyses.automaton import automata as fa
from analyses.automaton import claims as parity_claims

PARITY = fa.moore([[0, 1], [1, 0]], [0, 1])


def all_prefixes(L: int):
    yield ()
    for k in range(1, L + 1):
        yield from itertools.product((0, 1), repeat=k)


def two_state_states(L: int = 6, noise: float = 0.0, seed: int = 0):
    """States of an ideal parity network: one vector per parity (plus optional noise), labels = parity."""
    rng = np.random.default_rng(seed)
    even, odd = np.array([1.0, 0.0, 2.0, 0.5]), np.array([0.0, 1.5, 1.0, 0.5])
    states, labels = {}, {}
    for p in all_prefixes(L):
        direction = rng.normal(size=4)
        states[p] = (odd if sum(p) % 2 else even) + noise * direction / np.linalg.norm(direction)
        if p:
            labels[p] = sum(p) % 2
    return states, labels


def relu_parity_rnn():
    """A 2-unit ReLU Elman net that computes parity exactly with three states.

    u1 = relu(x - u1 - u2), u2 = relu(u1 + u2 - x), parity = u1 + u2; from h0 = 0 the states are
    E = (0, 0) (even), O1 = (1, 0) (odd, just read a 1) and O2 = (0, 1) (odd, just read a 0).
    No one-layer Elman net can merge O1 and O2 (see the module docstring of analyses.automaton).
    """
    task = tasks.make("parity", max_len=6, exhaustive=True)
    model = probe.models.make("elman", task, hidden=2, nonlinearity="relu", h0="zeros", embedding="onehot")
    layer = model.layers[0]
    with torch.no_grad():
        layer.W.copy_(torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))
        layer.U.copy_(torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]))  # columns: tokens 0, 1, pad
        layer.b.zero_()
        model.readout.W_U.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
        model.readout.b_U.copy_(torch.tensor([0.5, 0.0]))
    return model, task


def slow_group(states: np.ndarray, threshold: float) -> list[int]:
    """Reference greedy grouping with explicit norms."""
    reps, group = [], []
    for x in states:
        for g, r in enumerate(reps):
            if np.linalg.norm(x - r) <= threshold:
                group.append(g)
                break
        else:
            group.append(len(reps))
            reps.append(x)
    return group


# --- extraction on hand-built states ------------------------------------------------------------

def test_two_state_states_give_exactly_the_parity_automaton():
    states, labels = two_state_states()
    ex = fa.extract(states, 0.01, labels)
    assert ex.n_states == 2 and ex.finite and ex.label_conflicts == 0
    assert ex.automaton == PARITY
    assert fa.equivalent(ex.automaton, PARITY)


def test_noise_below_the_tolerance_keeps_two_states_and_noise_above_it_adds_states():
    clean, labels = two_state_states()
    threshold = fa.extract(clean, 0.01, labels).threshold
    below = fa.extract(two_state_states(noise=0.4 * threshold)[0], 0.01, labels)
    assert below.n_states == 2 and below.automaton == PARITY
    above = fa.extract(two_state_states(noise=3 * threshold)[0], 0.01, labels)
    assert above.n_states > 2
    assert above.label_conflicts == 0  # the noise splits the two states; it never mixes them


def test_tolerance_zero_groups_only_equal_states():
    states, labels = two_state_states(noise=1e-3)
    assert fa.extract(states, 0.0, labels).n_states == len(states)
    clean, labels = two_state_states()
    assert fa.extract(clean, 0.0, labels).automaton == PARITY


def test_greedy_grouping_matches_a_slow_reference():
    x = np.random.default_rng(1).normal(size=(300, 5))
    x[::7] = x[3]  # exact duplicates join at any threshold
    for threshold in (0.0, 0.5, 1.5, 3.0):
        assert fa.group_states(x, threshold).tolist() == slow_group(x, threshold)


def test_conflicting_and_missing_transitions_are_reported():
    a, b, c = np.eye(3)
    # () and (0,) share a group, but reading 0 from them leads to two different groups
    states = {(): a, (0,): a, (1,): b, (0, 0): c, (0, 1): b}
    ex = fa.extract(states, 0.01, {(0,): 0, (1,): 1, (0, 0): 0, (0, 1): 1})
    assert ex.transition_conflicts == 1 and not ex.consistent and not ex.finite
    assert not ex.automaton.complete  # the groups of (1,) and (0, 0) have no way out


def test_extract_rejects_bad_input():
    with pytest.raises(ValueError, match=r"empty prefix"):
        fa.extract({(0,): [0.0]}, 0.01)
    with pytest.raises(ValueError, match="tolerance"):
        fa.extract({(): [0.0]}, -1)
    with pytest.raises(ValueError, match="alphabet"):
        fa.extract({(): [0.0], (2,): [1.0]}, 0.01, alphabet=(0, 1))


# --- minimisation, equivalence, running ----------------------------------------------------------

def test_equivalence_rejects_an_automaton_that_differs_on_one_transition():
    for q, a in itertools.product(range(2), range(2)):
        delta = [[0, 1], [1, 0]]
        delta[q][a] = 1 - delta[q][a]
        assert not fa.equivalent(fa.moore(delta, [0, 1]), PARITY), (q, a)


def test_equivalence_accepts_a_larger_machine_with_the_same_behaviour():
    # even/odd, each split by the last bit read; an unlabelled start state that behaves like "even"
    bigger = fa.moore([[1, 2], [1, 2], [3, 4], [3, 4], [1, 2]], [None, 0, 1, 1, 0])
    assert fa.minimise(bigger) == PARITY and fa.equivalent(bigger, PARITY)
    assert not fa.equivalent(fa.moore([[1, 2], [1, 2], [2, 1]], [None, 1, 0]), PARITY)


def test_minimise_keeps_an_unlabelled_start_that_behaves_differently():
    odd_start = fa.moore([[1, 1], [1, 2], [2, 1]], [None, 0, 1])  # ignores its first bit
    assert fa.minimise(odd_start).n_states == 3


def test_run_matches_parity_and_flags_missing_transitions():
    bits = np.random.default_rng(0).integers(0, 2, size=(4, 500))
    assert (fa.run(PARITY, bits) == np.cumsum(bits, 1) % 2).all()
    partial = fa.moore([[0, -1]], [0])
    assert fa.run(partial, np.array([[0, 0, 1, 0]])).tolist() == [[0, 0, -1, -1]]


def test_state_changes_count_a_pairwise_merger_as_one_and_a_split_as_none():
    assert fa.state_changes(np.array([0, 1, 2]), np.array([0, 0, 1])) == (2, 1, 1.0)
    assert fa.state_changes(np.array([0, 0, 1]), np.array([0, 1, 2])) == (1, 2, 0.0)
    assert fa.state_changes(np.array([0, 1]), np.array([1, 0])) == (0, 0, 0.0)  # renumbering only


def test_merges_and_splits_count_each_kind_and_are_never_negative():
    assert fa.merges_and_splits(np.array([0, 1, 2]), np.array([0, 0, 1])) == (1, 0)
    assert fa.merges_and_splits(np.array([0, 0, 1]), np.array([0, 1, 2])) == (0, 1)
    assert fa.merges_and_splits(np.array([0, 1]), np.array([1, 0])) == (0, 0)  # renumbering only
    # a three-way split: the paper's formula goes negative, the counts do not
    assert fa.state_changes(np.array([0, 0, 0]), np.array([0, 1, 2]))[2] == pytest.approx(-1 / 3)
    assert fa.merges_and_splits(np.array([0, 0, 0]), np.array([0, 1, 2])) == (0, 2)
    rng = np.random.default_rng(0)
    for _ in range(200):
        before, after = rng.integers(0, 6, 20), rng.integers(0, 6, 20)
        m, s = fa.merges_and_splits(before, after)
        assert m >= 0 and s >= 0
        r, a, mergers = fa.state_changes(before, after)
        if r == 2 * m + s and a == m + 2 * s:  # only pairwise events: the paper's count is exact
            assert mergers == pytest.approx(m)


def test_dynamics_figure_draws_no_negative_counts():
    d = {"steps": [0, 10, 20], "n_states": [1, 5, 3], "n_states_minimal": [1, 3, 2], "removed": [0, 1, 3],
         "added": [0, 3, 1], "mergers": [0.0, -1 / 3, 5 / 3], "model_accuracy_long": [0.5, 0.6, 1.0],
         "long_length": 100}
    old = au.figures.dynamics_figure(d)  # cached before merges/splits were counted
    new = au.figures.dynamics_figure({**d, "merges": [0, 0, 2], "splits": [0, 2, 0]})
    for fig in (old, new):
        counts = [t for t in fig.data if t.name.startswith(("mergers", "splits"))]
        assert len(counts) == 2 and all(min(t.y) >= 0 for t in counts)
    assert list(new.data[0].y) == [0, 0, 2] and list(new.data[1].y) == [0, 2, 0]


def test_a_big_automaton_is_not_drawn_but_noted():
    big = fa.moore([[(q + 1) % 30, q] for q in range(30)], [q % 2 for q in range(30)]).to_dict()
    fig = au.figures.automaton_figure(big)
    assert not fig.data and "30 states" in fig.layout.annotations[0].text
    assert len(au.figures.automaton_figure(PARITY.to_dict()).data) > 0


def _summary(**kw):
    base = {"n_states": 40, "n_states_minimal": 2, "equivalent": True, "missing_transitions": 0,
            "transition_conflicts": 0, "label_conflicts": 0,
            "automaton_accuracy_len_1000": 1.0, "model_accuracy_len_1000": 1.0}
    return {**base, **kw}


def test_the_verdict_says_why_an_extraction_failed_and_what_to_try():
    ok = au.analysis.verdict(_summary(), 1000)
    assert ok.startswith("ok: ")
    failed = au.analysis.verdict(_summary(automaton_accuracy_len_1000=0.0058, model_accuracy_len_1000=0.98,
                                          missing_transitions=3), 1000)
    assert failed.startswith("extraction failed: the extracted automaton scores 0.0058 at length 1000 against "
                             "the model's 0.98")
    assert "3 transition(s)" in failed and "tolerance=0.05" in failed
    chance = au.analysis.verdict(_summary(model_accuracy_len_1000=0.51, automaton_accuracy_len_1000=0.5), 1000)
    assert chance.startswith("nothing to extract") and "gain=0.1" in chance
    other = au.analysis.verdict(_summary(equivalent=False, n_states_minimal=4), 1000)
    assert "not parity's automaton" in other


def test_true_automaton_of_parity_is_the_two_state_machine():
    assert au.true_automaton(tasks.make("parity", max_len=5)) == PARITY


# --- a hand-built RNN -----------------------------------------------------------------------------

def test_hand_built_relu_rnn_gives_its_three_states_and_minimises_to_parity():
    model, task = relu_parity_rnn()
    states, labels = au.prefix_states(model, task)
    assert len(states) == 2 ** 7 - 1
    assert all(labels[p] == sum(p) % 2 for p in labels)
    ex = fa.extract(states, 0.01, labels)
    E, O1, O2 = 0, 1, 2  # numbered as founded: (), (1,), (1, 0)
    assert ex.automaton == fa.moore([[E, O1], [O2, E], [O2, E]], [0, 1, 1])
    assert ex.finite and fa.minimise(ex.automaton) == PARITY

    result = au.analyze(model, task, long_length=300, long_n=4)
    s = result.summary
    assert (s["n_states"], s["n_states_minimal"], s["equivalent"], s["finite"]) == (3, 2, True, True)
    assert s["automaton_accuracy_len_300"] == 1.0 and s["model_accuracy_len_300"] == 1.0
    assert s["missing_transitions"] == 0 and s["verdict"].startswith("ok: ")
    assert set(result.figures()) == {"automaton", "automaton_minimal"}


def test_model_facing_functions_reject_what_they_cannot_handle():
    model, task = relu_parity_rnn()
    with pytest.raises(ValueError, match="supported: parity"):
        au.prefix_states(model, tasks.make("repetition"))
    ensemble = probe.models.make("elman", task, hidden=4, members=2)
    with pytest.raises(ValueError, match="plain model"):
        au.prefix_states(ensemble, task)
    with pytest.raises(ValueError, match="tolerance"):
        au.analyze(model, task, tolerance="big")


def test_chunked_long_accuracy_equals_one_pass():
    task = tasks.make("parity", max_len=6)
    model = probe.models.make("gru", task, hidden=8, members=3, seed=1)
    batch = task.sample(n=4, seed=0, length=60)
    one_pass = [m["accuracy"] for m in task.evaluate_members(model(batch.inputs), batch)]
    assert au.member_accuracies(model, batch, chunk=7) == pytest.approx(one_pass, abs=1e-6)


# --- a real (tiny) run ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    task = tasks.make("parity", max_len=5, exhaustive=True)
    model = probe.models.make("elman", task, hidden=16, nonlinearity="relu", gain=0.1, h0="ones",
                              embedding="onehot", members=2, seed=0)
    return probe.train(task, model, steps=40, lr=3e-3, n_checkpoints=5, eval_splits=["train"],
                       store=tmp_path_factory.mktemp("runs"), progress=False)


def test_analyze_run_tracks_every_checkpoint_and_agrees_with_analyze(tiny_run):
    result = analyses.analyze("automaton", tiny_run, member=1, long_length=200, long_n=2)
    d = result.dynamics
    steps = tiny_run.checkpoint_steps
    assert d["steps"] == steps
    for key in ("n_states", "mergers", "merges", "splits", "model_accuracy_long", "finite", "equivalent"):
        assert len(d[key]) == len(steps), key
    # the stacked-checkpoint path agrees with the single-model path at the last checkpoint
    single = au.analyze(tiny_run.model(1), tiny_run.task(), long_length=200, long_n=2)
    for key in ("n_states", "n_states_minimal", "equivalent", "finite", "transition_conflicts",
                "model_accuracy_len_200", "automaton_accuracy_len_200"):
        assert result.summary[key] == pytest.approx(single.summary[key]), key
    assert result.summary["peak_states"] == max(d["n_states"])
    assert set(result.figures()) == {"dynamics", "automaton", "automaton_minimal", "pca"}
    again = au.AutomatonResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.summary == result.summary and set(again.figures()) == set(result.figures())


@pytest.mark.slow
def test_quick_parity_claims_pass(tmp_path):
    # ~45 s of CPU on one core (training four small runs); minutes of wall time on a busy machine
    for spec in (parity_claims.infinite_generalization, parity_claims.parity_automaton):
        c = spec(profile="quick", store=str(tmp_path))
        assert c.passed, (c.id, c.measured)


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_parity_points_are_the_runs_train_parity_trained(profile, tmp_path, run_id_of):
    """The claims' runs built as sweep Points (issue 26) have the run ids train_parity gave them
    before it trained through the sweep engine, extras included: stores keep their runs."""
    from probe import sweep

    s = parity_claims.settings(profile)

    def before(arch, gain, extra):  # train_parity as it was
        task = tasks.make("parity", max_len=10, exhaustive=True)
        kw = {"nonlinearity": "relu", "gain": gain, "h0": "ones"} if arch == "elman" else {}
        model = probe.models.make(arch, task, hidden=s.hidden, embedding="onehot",
                                  members=s.extra_members if extra else s.members, seed=0, **kw)
        probe.train(task, model, steps=s.steps, batch_size=128, lr=s.lr, optimizer=s.optimizer,
                    grad_clip=s.grad_clip, n_checkpoints=s.extra_checkpoints if extra else s.n_checkpoints,
                    eval_splits=["train", "len_50"], store=str(tmp_path), progress=False)

    cases = [("elman", 0.1, False)] + [(arch, gain, True) for arch, gain in parity_claims._EXTRAS.values()]
    seen = []
    for arch, gain, extra in cases:
        seen.append(run_id_of(lambda a=arch, g=gain, e=extra: before(a, g, e)))
        assert seen[-1] == sweep.build(parity_claims.parity_point(profile, arch, gain, extra=extra))[3], arch
    assert len(set(seen)) == len(cases) == 4
