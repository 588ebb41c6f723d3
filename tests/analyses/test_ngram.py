"""The n-gram analysis: in-context n-gram predictors, distances to them, the state probe, the claim."""
import json
from collections import Counter

import numpy as np
import pytest
import torch

import probe
import tasks
from analyses import ngram
from analyses.ngram import claims as ngram_claims
from analyses.ngram import sweep as ngram_sweep
from analyses.ngram.counts import N_SYMBOLS, SEP, dfa_probs, greedy_letter_legal, histories, ngram_probs, tvd
from analyses.ngram.measure import state_probe
from analyses.ngram.sweep import GRIFFIN, Champion, Model, NgramSettings, champion, rises, settings, sweep
from tasks.dfa import LETTERS

PAD = SEP + 1


def encode(text: str) -> np.ndarray:
    return np.array([SEP if c == "|" else PAD if c == "." else LETTERS.index(c) for c in text])


def row(text: str):
    """inputs, targets, mask (1, T) of one context written as text, e.g. "|ab|ac|"."""
    seq = encode(text)
    inputs, targets = seq[None, :-1], seq[None, 1:]
    return inputs, np.where(targets == PAD, 0, targets), targets != PAD


def brute_force(text: str, n: int, smoothing: str = "backoff") -> np.ndarray:
    """The definition, spelled out with dictionaries: (T, 20) next-token distributions."""
    seq = encode(text)
    out = np.zeros((len(seq) - 1, N_SYMBOLS + 1))
    for t in range(len(seq) - 1):
        def history(s: int, k: int) -> tuple:
            h = []
            for j in range(k - 1):
                i = s - j
                inside = i >= 0 and all(seq[i2] != SEP for i2 in range(i + 1, s + 1))
                h.append(int(seq[i]) if inside and seq[i] != SEP else SEP)
            return tuple(h)

        def counts(k: int) -> Counter:
            h = history(t, k)
            return Counter(int(seq[s + 1]) for s in range(t) if history(s, k) == h and seq[s + 1] != PAD)

        if smoothing == "add_one":
            c = counts(n)
            total = sum(c.values())
            out[t, :N_SYMBOLS] = [(c[x] + 1) / (total + N_SYMBOLS) for x in range(N_SYMBOLS)]
            continue
        p = {x: 1 / N_SYMBOLS for x in range(N_SYMBOLS)}
        for k in range(1, n + 1):
            c = counts(k)
            total = sum(c.values())
            rest = sum(p[x] for x in range(N_SYMBOLS) if c[x] == 0)
            p = {x: c[x] / (total + 1) if c[x] else p[x] / rest / (total + 1) for x in range(N_SYMBOLS)}
        out[t, :N_SYMBOLS] = [p[x] for x in range(N_SYMBOLS)]
    return out


CONTEXTS = ["|ab|abc|ac|a|bca|ab", "|abab|ba|abb|aab|", "|a|a|a|b|", "|cab|cab|ca|cb|.."]


@pytest.mark.parametrize("text", CONTEXTS)
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("smoothing", ["backoff", "add_one"])
def test_in_context_ngrams_match_a_brute_force_count(text, n, smoothing):
    inputs, targets, mask = row(text)
    fast = ngram_probs(inputs, targets, mask, n, smoothing)[0]
    np.testing.assert_allclose(fast[mask[0]], brute_force(text, n, smoothing)[mask[0]], atol=1e-12)
    np.testing.assert_allclose(fast[mask[0]].sum(-1), 1.0)


def test_bigram_by_hand():
    # "|ab|a": after the second "a" the bigram has seen "a" once, followed by "b", so p(b) = 1/(1+1);
    # the other half goes to the unseen symbols in proportion to the unigram, which has seen
    # a, b, |, a: p1(a) = 2/5 and p1(b) = 1/5, so p(a) = 1/2 * (2/5) / (1 - 1/5)
    inputs, targets, mask = row("|ab|a|")
    p = ngram_probs(inputs, targets, mask, 2)[0, 4]
    a, b = LETTERS.index("a"), LETTERS.index("b")
    assert p[b] == pytest.approx(1 / 2)
    assert p[a] == pytest.approx(1 / 2 * (2 / 5) / (4 / 5))
    # at a string start the bigram predicts from the first letters seen: "a" once
    inputs, targets, mask = row("|ab|ac|")
    assert ngram_probs(inputs, targets, mask, 2)[0, 3, a] == pytest.approx(1 / 2)


def test_histories_stop_at_the_string_start():
    inputs = encode("|abc|d")[None]
    h = histories(inputs, 3)[0]
    a, b, c = (LETTERS.index(x) for x in "abc")
    assert h.tolist() == [SEP + SEP * N_SYMBOLS, a + SEP * N_SYMBOLS, b + a * N_SYMBOLS, c + b * N_SYMBOLS,
                          SEP + SEP * N_SYMBOLS, LETTERS.index("d") + SEP * N_SYMBOLS]
    assert (histories(inputs, 1) == 0).all()


def test_tvd_is_zero_to_itself_and_one_for_disjoint_support():
    task = tasks.make("regular", n_train_automata=20, n_test_automata=20, max_len=6, max_strings=6)
    batch = task.sample(16, seed=0)
    legal = task.legal_next(batch)
    truth = dfa_probs(legal)
    mask = batch.mask.numpy()
    assert np.allclose(truth[mask].sum(-1), 1.0)
    assert np.abs(tvd(truth, truth)).max() == 0.0
    disjoint = dfa_probs(~legal & batch.mask.unsqueeze(-1))  # uniform over the illegal symbols
    np.testing.assert_allclose(tvd(truth, disjoint)[mask], 1.0)
    assert greedy_letter_legal(truth, legal)[mask].all()
    with pytest.raises(ValueError, match="cannot be compared"):
        tvd(truth, truth[..., :3])


def test_state_probe_reads_a_state_written_into_the_model_state():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (40, 30))
    mask = np.ones((40, 30), dtype=bool)
    coded = np.eye(5)[labels] @ rng.normal(size=(5, 16)) + 0.05 * rng.normal(size=(40, 30, 16))
    good = state_probe(coded, labels, mask, tokens=rng.integers(0, 20, (40, 30)))
    assert good["accuracy"] > 0.98 and good["token_control"] < 0.5
    noise = state_probe(rng.normal(size=(40, 30, 16)), labels, mask)
    assert noise["accuracy"] < 0.4 and 0.15 < noise["chance"] < 0.35


def test_rises():
    assert rises([0.1, 0.2, 0.19, 0.4]) and not rises([0.1, 0.3, 0.2, 0.4]) and not rises([0.3, 0.31])


@pytest.mark.parametrize("conv", [False, True])
def test_hand_built_hawk_is_the_in_context_bigram(conv):
    # capacity: hawk can express the bigram (two layers, or one with conv); wherever the bigram's
    # most probable letter is unique, the model's greedy letter is that letter
    from analyses.ngram.construct import bigram_hawk

    task = tasks.make("regular", n_train_automata=16, n_test_automata=16, max_len=8, max_strings=8)
    model = bigram_hawk(task, conv=conv)
    assert len(model.layers) == (1 if conv else 2)
    batch = task.sample(64, seed=3, automata="test")
    mask = batch.mask.numpy()
    with torch.no_grad():
        p = model(batch.inputs).numpy()
    q = ngram_probs(batch.inputs.numpy(), batch.targets.numpy(), mask, 2)[..., :len(LETTERS)]
    top2 = np.sort(q, -1)[..., -2:]
    unique = mask & (top2[..., 1] > top2[..., 0] + 1e-9)
    assert unique[mask].mean() > 0.5
    np.testing.assert_array_equal(p[..., :len(LETTERS)].argmax(-1)[unique], q.argmax(-1)[unique])
    with pytest.raises(ValueError, match="hidden >= 380"):
        bigram_hawk(task, hidden=64)


def test_every_cell_of_a_sweep_is_scored_on_the_same_contexts():
    from analyses.ngram.analysis import _eval_batch

    small, large = (tasks.make("regular", n_train_automata=k, n_test_automata=16, max_len=6) for k in (4, 32))
    (a, _), (b, _) = _eval_batch(small, 8, 0, "test"), _eval_batch(large, 8, 0, "test")
    assert torch.equal(a.inputs, b.inputs)
    assert not torch.equal(small.sample(8, seed=0, automata="test").inputs, large.sample(8, seed=0, automata="test").inputs)


@pytest.fixture(scope="module")
def tiny():
    task = tasks.make("regular", n_train_automata=16, n_test_automata=16, max_len=6, max_strings=6)
    model = probe.models.make("gru", task, hidden=8, seed=0)
    return model, task


def test_analyze_an_untrained_model_and_round_trip(tiny):
    model, task = tiny
    with torch.no_grad():
        result = ngram.analyze(model, task, n=32)
    s = result.summary
    assert {"accuracy", "accuracy_with_sep", "tvd.dfa", "tvd.1gram", "tvd.2gram", "tvd.3gram", "closest_n",
            "probe.dfa_state", "probe.token_control"} <= set(s)
    assert 0 <= s["accuracy"] <= 1 and s["closest_n"] in (1, 2, 3)
    assert len(result.scores["tvd_by_position"]["2"]) == len(result.counts)
    assert set(result.scores["closest_by_position"]) <= {1, 2, 3, None}
    assert result.baselines["3"]["accuracy"] > result.baselines["1"]["accuracy"]
    again = ngram.NgramResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.scores == result.scores
    assert set(again.figures()) == {"tvd_by_position", "example"}
    assert len(result.example["tokens"]) == len(result.example["legal"])


def test_bad_input(tiny):
    model, _ = tiny
    with pytest.raises(ValueError, match="regular task"):
        ngram.analyze(model, tasks.make("parity"))
    with pytest.raises(ValueError, match="valid pools"):
        ngram.analyze(model, tiny[1], pool="nope")
    with pytest.raises(ValueError, match="valid: backoff, add_one"):
        ngram_probs(*row("|ab|"), 2, "kneser")


def test_analyze_run_follows_the_checkpoints(tiny, tmp_path):
    import analyses

    _, task = tiny
    model = probe.models.make("gru", task, hidden=8, members=2, seed=0)
    run = probe.train(task, model, steps=20, batch_size=8, lr=1e-2, n_checkpoints=3, eval_splits=["test"],
                      store=str(tmp_path), progress=False)
    result = analyses.analyze("ngram", run, member=1, n=32, probe=False)
    assert [r["step"] for r in result.training] == run.checkpoint_steps
    assert "training" in result.figures()


@pytest.fixture(scope="module")
def quick_claim(tmp_path_factory):
    return ngram_claims.icll(profile="quick", store=str(tmp_path_factory.mktemp("ngram-store")))


@pytest.mark.slow
def test_quick_profile_accuracy_rises_with_the_number_of_training_automata(quick_claim):
    assert all(quick_claim.measured["rises"].values()), quick_claim.measured
    assert set(quick_claim.measured["rises"]) == {"gru", "lstm", "hawk"}


# The sweep's models stay near the in-context unigram after a few hundred steps; the bigram is
# beaten by the quick plan's champion, a gated DeltaNet (1x128, conv 4) trained for 1500 steps
# (~1.5 CPU minutes; see analyses/ngram/NOTES.md), so the claim takes about three CPU minutes.
@pytest.mark.slow
def test_quick_profile_claim_passes(quick_claim):
    assert quick_claim.passed, quick_claim.measured
    champion = quick_claim.measured["champion"]
    assert champion["gap_to_bigram"] > 0 and len(champion["accuracy"]) == len(plans_quick().champion.seeds)


def plans_quick():
    return settings("quick")


def test_a_champion_is_one_single_member_run_per_seed_scored_like_the_sweep(tmp_path):
    p = NgramSettings(archs=("gru",), automata=(16,), task={"max_len": 6, "max_strings": 6, "n_test_automata": 16},
             hidden=8, layers=1, steps=6, lr=1e-2, members=2, n_checkpoints=2, n_eval=16,
             models={"small": Model("gru", hidden=6, steps=4)}, champion=Champion("small", 32, seeds=(3, 5)))
    rows, base = champion(p, str(tmp_path))
    assert [(r["arch"], r["n_train_automata"], r["member"], r["seed"]) for r in rows] == [
        ("small", 32, 0, 3), ("small", 32, 1, 5)]
    runs = {r["run"]: probe.runs.open_run(r["run"], store=str(tmp_path)) for r in rows}
    assert len(runs) == 2 and all(run.ensemble().members == 1 for run in runs.values())
    # scored on the sweep's held-out contexts: the same baselines as a sweep cell
    _, sweep_base = sweep(p, str(tmp_path))
    assert base == sweep_base
    s = ngram_claims.summarise_champion(rows, base)
    mean = (rows[0]["accuracy"] + rows[1]["accuracy"]) / 2
    assert s["seeds"] == [3, 5] and s["mean"] == round(mean, 4)
    assert s["gap_to_bigram"] == round(mean - base["2"]["accuracy"], 4)
    assert champion(NgramSettings(archs=("gru",), automata=(4,)), str(tmp_path)) == ([], {})  # no champion, nothing trained
    # the figure draws it as one more point, the mean over its seeds

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ngram_sweep.SETTINGS, "quick", p)
        accuracy = ngram.sweep_figures("quick", str(tmp_path), champion=True)["accuracy"]
    traces = {t.name: t for t in accuracy.data}
    assert list(traces["small"].x) == [32] and traces["small"].y[0] == pytest.approx(mean)
    assert list(traces["gru"].x) == [16]


def test_the_quick_setting_is_smaller_than_the_full_one_and_says_so():
    quick, full = settings("quick"), settings("full")
    def longest(p):  # tokens in the longest row
        return p.task["max_strings"] * (p.task["max_len"] + 1)

    assert longest(quick) < longest(full) and quick.task["max_len"] < full.task["max_len"]
    assert set(quick.archs) < set(full.archs) and quick.members < full.members and len(quick.automata) < len(full.automata)
    assert all(quick.model(a).steps < full.model(a).steps for a in quick.archs)
    c = quick.champion
    assert quick.model(c.label).steps < full.steps and len(c.seeds) == 1
    words = quick.describe()  # what the claim's report says it ran
    assert "contexts of 4-8 strings of 1-10 letters" in words and "1 seed," in words
    assert "champion deltanet (deltanet conv=4, 1x128), 1500 steps on 16384 training automata, seed 1" in words


def test_a_plan_fills_a_model_from_its_defaults():
    quick, full = settings("quick"), settings("full")
    assert quick.model("gru") == Model("gru", quick.hidden, quick.layers, {}, quick.steps, quick.lr)
    g = full.model("griffin")
    assert (g.arch, g.hidden, g.layers, g.steps, g.params["conv"]) == ("hawk", GRIFFIN.hidden, 2, full.steps, 4)
    task = tasks.make("regular", n_train_automata=4, n_test_automata=4, max_len=4, min_strings=2, max_strings=4)
    model = probe.models.make(g.arch, task, hidden=8, layers=g.layers, **g.params)  # the options are valid
    assert model.layers[0].conv == 4


def test_the_sweeps_points_have_the_run_ids_of_the_previous_training_code(tmp_path):
    """Issue 26 item 4: the claim's runs, built as probe.sweep Points, keep the ids that the
    previous code (probe.models.make + probe.train, below as it was) gave them, so stores keep them."""
    from probe import sweep as engine

    p = NgramSettings(archs=("gru", "g"), automata=(8,), task={"max_len": 4, "min_strings": 2, "max_strings": 3,
                                                               "n_test_automata": 8},
                      hidden=6, layers=1, steps=2, lr=1e-2, members=2, n_checkpoints=2, n_eval=8,
                      models={"g": Model("hawk", hidden=8, layers=2, lr=2e-3, params={"conv": 4})},
                      champion=Champion("g", 16, seeds=(1, 2)))

    def previous(label, count, seed=0, members=None):
        task = ngram_sweep.task_for(p, count)
        m = p.model(label)
        model = probe.models.make(m.arch, task, hidden=m.hidden, layers=m.layers, members=members or p.members,
                                  seed=seed, **m.params)
        return probe.train(task, model, steps=m.steps, batch_size=p.batch_size, lr=m.lr, schedule="cosine",
                           warmup=int(p.warmup_fraction * m.steps), weight_decay=p.weight_decay,
                           n_checkpoints=p.n_checkpoints, eval_splits=["test"], store=str(tmp_path), seed=seed,
                           progress=False).id

    before = [previous("gru", 8), previous("g", 8), previous("g", 16, seed=1, members=1),
              previous("g", 16, seed=2, members=1)]
    assert [engine.build(pt)[3] for pt in ngram_sweep.points(p)] == before
    # and training them through the engine finds those runs in the store
    assert [run.id for run in ngram_sweep.train(p, str(tmp_path))] == before
