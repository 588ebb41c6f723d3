"""``probe demo``: its runs are the claims' runs where it says so, its goals judge right, and
(slow) every demo run reaches its goal."""
from __future__ import annotations

import pytest

import probe.training
from probe import demo


class _Captured(Exception):
    pass


def _config_of(monkeypatch, train) -> dict:
    """The run config ``train()`` would hash, captured before anything is trained."""
    seen = {}

    def capture(config):
        seen["config"] = config
        raise _Captured

    monkeypatch.setattr(probe.training, "run_id", capture)
    with pytest.raises(_Captured):
        train()
    return seen["config"]


def _spec(task: str) -> demo.DemoRun:
    return next(s for s in demo.QUICK if s.task == task)


def test_the_demo_parity_run_is_the_parity_claims_quick_run(monkeypatch, tmp_path):
    from analyses.automaton import claims
    from probe import runs, sweep

    ours = _config_of(monkeypatch, lambda: demo.train_one(_spec("parity"), str(tmp_path), progress=False))
    # train_parity trains its Point through the sweep engine, which reports a failure, not raises it
    assert runs.run_id(ours) == sweep.build(claims.parity_point("quick"))[3]


def test_the_demo_attention_run_is_the_attention_claims_quick_run(monkeypatch, tmp_path):
    import importlib

    study = importlib.import_module("analyses.attention.study")  # the package exports a function of that name
    s = study.settings("quick")
    ours = _config_of(monkeypatch, lambda: demo.train_one(_spec("icl_regression"), str(tmp_path), progress=False))
    theirs = _config_of(monkeypatch, lambda: study.train(study.make_task("teacher"), "hawk", s.hidden, s.steps,
                                                         str(tmp_path), members=1, seed=0, lr=s.lr))
    assert ours == theirs


def test_a_goal_reads_final_metrics_and_analysis_summaries():
    goal = demo.Goal("ngram:accuracy", above="ngram:baseline.1gram.accuracy", label="legal")
    assert goal.check({"ngram:accuracy": 0.6, "ngram:baseline.1gram.accuracy": 0.43})[1]
    assert not goal.check({"ngram:accuracy": 0.4, "ngram:baseline.1gram.accuracy": 0.43})[1]
    assert not goal.check({"ngram:accuracy": 0.6})[1]  # no baseline measured: not met
    value, met, text = demo.Goal("train.accuracy", at_least=0.9).check({"train.accuracy": 0.85})
    assert (value, met) == (0.85, False) and ">= 0.9" in text
    assert demo.Goal("valid.bits_per_char", at_most=3.5).check({"valid.bits_per_char": 3.1})[1]
    assert demo.Goal("x", at_least=1).check({})[:2] == (None, False)


def test_every_demo_run_names_a_goal_an_analysis_and_a_notebook():
    from pathlib import Path

    import analyses
    import tasks

    notebooks = Path(__file__).resolve().parents[2] / "notebooks"
    assert sorted(s.task for s in demo.QUICK) == sorted(tasks.names())
    for spec in demo.QUICK:
        assert spec.goal is not None and spec.analysis in analyses.names(), spec.task
        assert (notebooks / spec.notebook).is_file(), spec.notebook


@pytest.mark.slow
def test_every_demo_run_reaches_its_goal(tmp_path, capsys):
    from probe.cli import main

    assert main(["demo", "--store", str(tmp_path), "--no-app", "--no-claims"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("  ok ", "  NOT "))]
    assert len(lines) == len(demo.QUICK), out
    assert all(line.startswith("  ok ") for line in lines), "\n".join(lines)


def test_the_readme_shows_the_explorer_screenshot_the_script_refreshes():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    assert "![" in readme and "docs/img/states.png" in readme
    assert (root / "docs/img/states.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "docs/img/$page.png" in (root / "scripts/screenshots.sh").read_text()
