"""The lsrl claims are registered and hold on a small study; the figures build from it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from analyses.lsrl import claims as lsrl_claims
from analyses.lsrl import figures, study
from analyses.lsrl.compile import compile
from analyses.lsrl.library import library
from probe.claims import registered


@pytest.fixture(scope="module")
def small_study():
    from analyses.lsrl import checks
    with checks.single_thread():
        small = study.LsrlSettings(random_len=50, n_random=8, sym_budget=32, sym_random=1, lengths=(10, 100), noise=1e-4)
        return study.measure(small, programs=["counter", "parity", "lookup", "lookup_relu"])


def test_claims_are_registered():
    ids = {c.id for c in registered()}
    assert {"lsrl.exact", "lsrl.ground_truth"} <= ids


def test_small_study_holds_and_reports_support_and_state_size(small_study):
    measured, ok = study.verdict(small_study)
    assert ok
    rows = {(r["program"], r["target"]): r for r in small_study["rows"]}
    assert rows[("counter", "elman")]["state_size"] == 1 and rows[("counter", "elman")]["symbolic_model"] is True
    assert not rows[("parity", "hawk")]["supported"] and "ReLUState" in rows[("parity", "hawk")]["reason"]
    assert measured["programs"]["lookup"]["elman"] == "unsupported"
    gates = small_study["gate_stability"]                          # a gate read is far less noise-sensitive
    assert max(gates["lookup/lstm"]) < 0.01 * min(gates["lookup_relu/lstm"])


def test_verdict_fails_when_a_pair_misses_the_tolerance(small_study):
    broken = dict(small_study, rows=[dict(r, error=1.0) if r["supported"] else r for r in small_study["rows"]])
    assert study.verdict(broken)[1] is False
    with pytest.raises(ValueError, match="profile"):
        study.measure("huge")


def test_figures_build(small_study):
    prec = figures.precision_figure(small_study)
    assert {t.name for t in prec.data} >= {"elman float64", "gru float32", "lookup/hawk", "lookup_relu/elman"}
    support = figures.support_figure(small_study)
    assert support.data[0].y == ("counter", "parity", "lookup", "lookup_relu") or list(support.data[0].y)
    lp = library(["majority"])["majority"]
    c = compile(lp.program, "gru")
    stack = figures.stack_figure(c)
    names = {t.text[0] for t in stack.data if t.mode == "markers+text"}
    assert {"ones", "zeros", "more"} <= names
    traj = figures.trajectory_figure(c, lp.sample(np.random.default_rng(0), 1, 15))
    heat = [t for t in traj.data if t.type == "heatmap"]
    assert len(heat) == 2 and "ones" in heat[0].y and any(lab.endswith(":switch") for lab in heat[1].y)
    assert figures.stack_figure(c.chain).layout.title.text.startswith("majority")


def test_precision_sweep_bound_covers_measured_and_figure_builds():
    sweep = study.precision_sweep(scales=(1, 1000), lengths=(10, 40), targets=("lstm", "gru"), n=4)
    for key in ("by_scale", "by_length"):
        for name, row in sweep[key].items():
            assert all(e <= b for e, b in zip(row["error"], row["bound"])), (key, name, row)
    official, hardened = sweep["by_scale"]["lstm/official"], sweep["by_scale"]["lstm/hardened"]
    assert official["bound"][-1] > 100 * official["bound"][0]          # precision falls with the scale ...
    assert hardened["bound"][-1] <= 1e-9                               # ... unless hardened
    fig = figures.sweep_figure(sweep)
    assert {t.name for t in fig.data} >= {"gru/official measured", "gru/hardened bound"}


@pytest.mark.slow
def test_lsrl_exact_claim_quick_profile(tmp_path):
    spec = lsrl_claims.lsrl_exact
    result = spec(profile="quick", store=str(tmp_path))          # an empty store: measured, not read back
    assert result.passed, result.measured


@pytest.mark.slow
def test_lsrl_ground_truth_claim_quick_profile():
    spec = lsrl_claims.lsrl_ground_truth
    result = spec(profile="quick")
    assert result.passed, result.measured


def test_one_symbolic_truth_serves_every_target_as_each_computed_its_own():
    # study.measure computes the symbolic interpreter's outputs once per program and hands them to
    # every target's checks: the verdicts must be those each check reaches on its own
    from analyses.lsrl import checks
    lp = library(["official_counters"])["official_counters"]     # rotation counter: irrational symbolic values
    L = lp.max_exhaustive_len(32)
    truth = checks.symbolic_truth(lp, L)
    for target in ("linear", "lstm"):
        c = compile(lp.program, target, horizon=50, tolerance=None)
        assert checks.symbolic_check(c, lp, L, truth=truth) == checks.symbolic_check(c, lp, L)
        assert checks.exact_error(c, lp, L, truth=truth) == checks.exact_error(c, lp, L)
    with pytest.raises(ValueError, match="levels"):
        checks.exact_error(c, lp, L + 1, truth=truth)


def test_nan_to_num_is_numpys_with_or_without_non_finite_entries():
    from analyses.lsrl.analysis import nan_to_num
    for x in (np.array([1.0, -2.5, 0.0]), np.array([np.nan, np.inf, -np.inf, 3.0])):
        for kw in ({"nan": -np.inf}, {"nan": 0.0}, {"nan": np.inf, "posinf": np.inf}):
            np.testing.assert_array_equal(nan_to_num(x.copy(), **kw), np.nan_to_num(x, **kw))


def test_a_second_verify_reads_the_study_back_from_the_store(small_study, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(study, "measure", lambda profile: calls.append(profile) or small_study)
    first = lsrl_claims.measure_cached("quick", str(tmp_path))
    second = lsrl_claims.measure_cached("quick", str(tmp_path))
    assert calls == ["quick"] and first == second
    assert study.verdict(first) == study.verdict(small_study)     # the JSON round trip keeps the verdict
    changed = study.SETTINGS["quick"].replace(n_random=5)
    monkeypatch.setitem(study.SETTINGS, "quick", changed)          # other settings: measured again
    lsrl_claims.measure_cached("quick", str(tmp_path))
    assert calls == ["quick", "quick"]


def test_a_changed_compiler_file_measures_the_study_again(small_study, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(study, "measure", lambda profile: calls.append(profile) or small_study)
    lsrl_claims.measure_cached("quick", str(tmp_path))
    path = tmp_path / "lsrl.exact.quick.json"
    stale = json.loads(path.read_text())
    stale["key"]["source"] = "0" * 64                               # as if written by other code
    path.write_text(json.dumps(stale))
    lsrl_claims.measure_cached("quick", str(tmp_path))
    assert calls == ["quick", "quick"]
