"""probe.claims: expected times, parallel workers, reports merged by --only, reruns that train nothing."""
from __future__ import annotations

import json
import os

import pytest

import analyses
import probe
import tasks
from probe import claims
from probe._suggest import choices, nearest
from probe._trainer import Trainer
from probe.cli import main


@pytest.fixture
def registry(monkeypatch):
    fresh: dict = {}
    monkeypatch.setattr(claims, "_REGISTRY", fresh)
    monkeypatch.setattr(analyses, "load_all", list)
    return fresh


def _register(id, fn, module="study_a", **times):
    fn.__module__ = module  # the group: claims of one study module share runs
    return claims.claim(id, f"Paper {id}", f"statement of {id}", **times)(fn)


def _pid_claim(value):
    def fn(profile, store):
        return claims.outcome({"value": value, "pid": os.getpid(), "profile": profile}, "any", value > 0)
    return fn


def test_registration_keeps_expected_times_and_list_prints_them(registry):
    _register("a.one", _pid_claim(1), quick_s=42, full_s=3723, measured=("quick", "full"))
    _register("b.two", _pid_claim(2), quick_s=600, full_s=60, measured=("full",))
    _register("c.three", _pid_claim(3))
    spec = claims.registered("a.one")[0]
    assert (spec.quick_s, spec.full_s, spec.measured, spec.expected_s("full")) == (42, 3723, ("quick", "full"), 3723)
    lines = claims.format_list(claims.registered()).splitlines()
    assert lines[0].split() == ["id", "quick", "full", "statement"]
    assert lines[2].split()[:3] == ["a.one", "42", "s"] and "1:02:03" in lines[2] and "~" not in lines[2]
    assert lines[3].split()[:3] == ["b.two", "~10:00", "1:00"]
    assert lines[4].split()[:3] == ["c.three", "?", "?"]
    assert lines[5].startswith("3 claims; expected in all: quick 10:42, full 1:03:03")
    with pytest.raises(ValueError, match="claim 'y': measured must name profiles"):
        claims.claim("y", "P", "s", measured=("fast",))
    with pytest.raises(ValueError, match="claim 'x': quick_s must be a number of seconds >= 0; got -1"):
        claims.claim("x", "P", "s", quick_s=-1)


def test_verify_list_prints_the_claims_and_checks_nothing(tmp_path, registry, capsys):
    ran = []
    _register("a.one", lambda profile, store: ran.append(1) or claims.outcome(1, 1, True), quick_s=5)
    assert main(["verify", "--list", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "a.one" in out and "~5 s" in out and not ran and not (tmp_path / "claims.json").exists()


def test_workers_check_groups_in_other_processes_with_the_same_results(registry):
    import multiprocessing

    # The first claim of each of the three studies waits for the other two: only three
    # processes at once get past it (a barrier in the parent, inherited by the forked workers).
    barrier = multiprocessing.get_context("fork").Barrier(3, timeout=60)

    def waits(i):
        inner = _pid_claim(i)
        return lambda profile, store: (barrier.wait(), inner(profile, store))[1]

    for i, module in enumerate(["study_a", "study_a", "study_b", "study_c"]):
        _register(f"c{i}", waits(i) if i != 1 else _pid_claim(i), module, quick_s=10 * (i + 1))
    specs = claims.registered()
    parallel = claims.run(specs, progress=False, workers=3)
    assert [(c.id, c.source, c.measured["value"], c.measured["profile"], c.passed) for c in parallel] == [
        ("c0", "Paper c0", 0, "quick", False), ("c1", "Paper c1", 1, "quick", True),
        ("c2", "Paper c2", 2, "quick", True), ("c3", "Paper c3", 3, "quick", True)]
    pids = [c.measured["pid"] for c in parallel]
    assert os.getpid() not in pids and pids[0] == pids[1]  # one process per study, in order
    assert len(set(pids)) == 3


def test_a_worker_that_dies_fails_its_claims_and_the_others_go_on(registry):
    _register("dies", lambda profile, store: os._exit(3), "study_a")
    _register("lives", _pid_claim(1), "study_b")
    out = claims.run(claims.registered(), progress=False, workers=2)
    assert [c.passed for c in out] == [False, True]
    assert str(out[0].measured).startswith("error: worker: ")
    with pytest.raises(ValueError, match="workers must be a positive integer; got 0"):
        claims.run([], workers=0)


def test_only_merges_its_rows_into_the_report_of_the_same_profile(tmp_path, registry, capsys):
    _register("a", lambda profile, store: claims.outcome(1, "1", True))
    _register("b", lambda profile, store: claims.outcome(2, "2", True))
    assert main(["verify", "--store", str(tmp_path)]) == 0
    _register("b", lambda profile, store: claims.outcome(0, "2", False))  # b now fails
    assert main(["verify", "--only", "b", "--store", str(tmp_path)]) == 1
    assert "(2 claims)" in capsys.readouterr().out
    report = json.loads((tmp_path / "claims.json").read_text())
    assert [(c["id"], c["passed"]) for c in report["claims"]] == [("a", True), ("b", False)]
    md = (tmp_path / "claims.md").read_text()
    assert "1/2 claims pass." in md and "| a |" in md and "| b |" in md
    # another profile's report is replaced, not mixed
    claims.write_report(claims.run(claims.registered("a"), progress=False, profile="full"), store=tmp_path,
                        profile="full", merge=True)
    assert [c.id for c in claims.read_report(tmp_path)[1]] == ["a"]


def test_an_unknown_claim_among_many_names_the_nearest(registry):
    for study in ["parity", "recall", "regular", "cells", "lsrl", "integration", "attention"]:
        for what in ["automaton", "exact", "frontier"]:
            _register(f"{study}.{what}", _pid_claim(1))
    with pytest.raises(ValueError) as e:
        claims.registered("parity.automata")
    msg = str(e.value)
    assert msg.startswith("unknown claim 'parity.automata'; did you mean parity.automaton")
    assert msg.endswith("(21 claims; probe verify --list shows them)") and "cells.exact" not in msg


def test_nearest_and_choices():
    ids = [f"parity-gru-h{h}-{i:08x}" for i, h in enumerate(range(8, 400, 10))]
    assert len(ids) == 40
    assert nearest("parity-gru-h18", ids)[0] == "parity-gru-h18-00000001"
    msg = choices("parity-gru-h18", ids, "runs", "probe runs lists them")
    assert msg.startswith("did you mean parity-gru-h18-00000001") and msg.endswith("(40 runs; probe runs lists them)")
    assert msg.count("parity-gru") <= 5
    assert choices("x", ["a", "b"], "tasks") == "valid tasks: a, b"
    assert choices("zzz", ids, "runs") == "no runs near it (40 runs)"


def _tiny_claim(profile, store):
    task = tasks.make("parity", max_len=6)
    run = probe.train(task, probe.models.make("gru", task, hidden=8), steps=5, batch_size=8, eval_n=8,
                      eval_splits=["train"], store=store, progress=False)
    return claims.outcome(run.id, "a run", True)


def test_a_second_verify_on_the_same_store_trains_nothing(tmp_path, registry, monkeypatch, capsys):
    _register("tiny", _tiny_claim)
    steps = []
    step = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda self, *a, **k: steps.append(1) or step(self, *a, **k))
    assert main(["verify", "--store", str(tmp_path)]) == 0
    assert len(steps) == 5
    assert main(["verify", "--store", str(tmp_path)]) == 0
    assert len(steps) == 5


def test_every_registered_claim_declares_its_expected_times():
    analyses.load_all()
    missing = [s.id for s in claims.registered() if s.quick_s is None or s.full_s is None]
    assert not missing, f"claims without quick_s/full_s in their @claim(...): {missing}"
