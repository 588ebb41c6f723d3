"""The probe command: each subcommand, bad input (one line, exit 2, store untouched), concurrency."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import analyses
from analyses.base import Result
from probe import claims, demo
from probe.cli import main

QUICK = ["--set", 'train.eval_splits=["train"]', "--set", "train.eval_n=32", "--set", "batch_size=16"]


def _train_argv(store, *extra: str, steps: int = 10, seed: int = 0) -> list[str]:
    return ["train", "parity", "--arch", "gru", "--hidden", "8", "--members", "2", "--steps", str(steps),
            "--seed", str(seed), "--store", str(store), *QUICK, *extra]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("store")
    assert main(_train_argv(root)) == 0
    torch.set_num_threads(before)
    return root


@pytest.fixture
def run_id(store):
    return next(p.name for p in store.iterdir() if p.is_dir())


@pytest.fixture
def fake_analysis(monkeypatch):
    calls = []

    def fake(run, member=0):
        model = run.model(member)
        calls.append(member)
        return Result(summary={"n_params": sum(p.numel() for p in model.parameters()), "member": member})

    monkeypatch.setitem(analyses._REGISTERED, "fake", fake)
    return calls


@pytest.fixture
def registry(monkeypatch):
    # An empty claim registry, and verify not importing the real analyses (their claims train).
    fresh: dict = {}
    monkeypatch.setattr(claims, "_REGISTRY", fresh)
    monkeypatch.setattr(analyses, "load_all", lambda: [])
    return fresh


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys; from probe.cli import main; rc = main(['--help']); "
            "assert rc == 0 and 'torch' not in sys.modules and 'tasks' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for command in ["train", "runs", "analyze", "verify", "figs", "demo"]:
        assert command in out.stdout


def test_train_prints_the_run_and_runs_lists_it(store, run_id, capsys):
    assert main(["runs", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert run_id in out and "done" in out and "train.accuracy=" in out
    assert main(_train_argv(store)) == 0  # the same command again: loads the finished run
    assert run_id in capsys.readouterr().out
    assert len([p for p in store.iterdir() if p.is_dir()]) == 1


def test_a_run_being_trained_elsewhere_is_refused(store, run_id, capsys):
    from probe._io import Lock

    before = _snapshot(store)
    with Lock(store / run_id / ".lock", "test"):
        assert main(_train_argv(store)) == 2
    err = capsys.readouterr().err
    assert "being written by another process" in err and err.count("\n") == 1
    assert _snapshot(store) == before


def test_set_sorts_keys_into_task_model_and_train(tmp_path, capsys):
    argv = _train_argv(tmp_path, "--set", "task.max_len=6", "--set", "model.embedding=onehot",
                       "--set", "train.optimizer=sgd", "--set", "grad_clip=null", steps=3)
    assert main(argv) == 0
    info = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    cfg = info["config"]
    assert cfg["task"]["params"]["max_len"] == 6 and cfg["model"]["embedding"] == "onehot"
    assert cfg["train"]["optimizer"] == "sgd" and cfg["train"]["grad_clip"] is None


def test_analyze_computes_once_and_then_reads_the_cache(store, run_id, fake_analysis, capsys):
    assert main(["analyze", run_id, "fake", "--member", "1", "--store", str(store)]) == 0
    assert "n_params" in capsys.readouterr().out
    assert main(["analyze", run_id, "fake", "--member", "1", "--store", str(store)]) == 0
    assert fake_analysis == [1]
    assert (store / run_id / "analyses" / "fake.m1.json").is_file()


def test_verify_with_nothing_registered_prints_an_empty_table(tmp_path, registry, capsys):
    assert main(["verify", "--store", str(tmp_path)]) == 0
    assert "(no claims registered)" in capsys.readouterr().out
    assert json.loads((tmp_path / "claims.json").read_text())["claims"] == []


def test_verify_exits_1_when_a_claim_fails_and_writes_the_report(tmp_path, registry, capsys):
    claims.claim("good", "Paper A, Fig. 1", "two is even")(lambda profile, store: claims.outcome(2, "even", True))
    claims.claim("bad", "Paper B, Tab. 2", "one is even")(lambda profile, store: claims.outcome(1, "even", False))
    assert main(["verify", "--store", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" in out and "1/2 claims pass" in out
    assert "| bad | Paper B, Tab. 2 | one is even | 1 | even | FAIL |" in (tmp_path / "claims.md").read_text()
    assert main(["verify", "--only", "good", "--store", str(tmp_path)]) == 0


def test_claims_returning_the_old_dict_or_tuple_still_work_with_a_deprecation_warning(registry):
    as_dict = claims.claim("d", "P", "s")(lambda profile, store: {"measured": 1, "expected": 2, "passed": 0})
    as_tuple = claims.claim("t", "P", "s")(lambda profile, store: (1, 2, True))
    with pytest.warns(DeprecationWarning, match="outcome"):
        assert (as_dict().id, as_dict().measured, as_dict().passed) == ("d", 1, False)
    with pytest.warns(DeprecationWarning, match="outcome"):
        assert (as_tuple().statement, as_tuple().expected, as_tuple().passed) == ("s", 2, True)
    wrong = claims.claim("w", "P", "s")(lambda profile, store: 0.5)()
    assert not wrong.passed and "expected a Claim" in wrong.measured


def test_a_claim_that_raises_fails_instead_of_crashing(registry):
    spec = claims.claim("boom", "-", "raises")(lambda profile, store: 1 / 0)
    result = spec()
    assert not result.passed and "ZeroDivisionError" in result.measured


def test_demo_trains_its_plan_and_prints_the_table(tmp_path, capsys):
    plan = (demo.DemoRun("parity", "gru", steps=5, hidden=8, members=2),
            demo.DemoRun("integration", "lru", steps=5, hidden=8, members=2))
    runs = demo.run(store=str(tmp_path), plan=plan, progress=False)
    out = capsys.readouterr().out
    assert [r.status for r in runs] == ["done", "done"]
    assert all(r.id in out for r in runs) and "train.mse=" in out


def _bad_inputs(store: Path, run_id: str, file: Path) -> list[list[str]]:
    s = str(store)
    return [
        _train_argv(s)[:1] + ["nope"] + _train_argv(s)[2:],
        ["train", "parity", "--arch", "transformer", "--hidden", "8", "--store", s],
        _train_argv(s, "--set", "lr"),
        _train_argv(s, "--set", "bogus=1"),
        _train_argv(s, "--set", "solver.lr=1"),
        _train_argv(s, "--set", "task.max_len=-1"),
        _train_argv(s, "--set", "train.optimizer=adam"),
        _train_argv(s, "--set", "model.nonsense=1"),
        _train_argv(s, "--set", "hidden=9"),
        _train_argv(s, steps=0),
        _train_argv(s, steps=-5),
        ["train", "parity", "--arch", "gru", "--hidden", "0", "--store", s],
        ["train", "parity", "--arch", "gru", "--store", s],
        _train_argv(file),
        ["runs", "--store", str(file)],
        ["analyze", "nope", "fake", "--store", s],
        ["analyze", run_id, "nope", "--store", s],
        ["analyze", run_id, "fake", "--member", "5", "--store", s],
        ["verify", "--only", "nope", "--store", s],
        ["figs", "--only", "nope"],
        ["figs", "--out", str(file)],
        ["bogus"],
    ]


def test_every_bad_input_is_one_line_exit_2_and_leaves_the_store_alone(tmp_path, store, run_id, fake_analysis,
                                                                       registry, capsys):
    file = tmp_path / "a_file"
    file.write_text("not a store")
    before = _snapshot(store)
    for argv in _bad_inputs(store, run_id, file):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert err.startswith("probe: error: ") and err.count("\n") == 1, (argv, err)
        assert "Traceback" not in err
    assert _snapshot(store) == before and file.read_text() == "not a store"
    assert not fake_analysis


def test_a_corrupt_checkpoint_is_one_line_exit_2_and_changes_nothing(tmp_path, fake_analysis, capsys):
    assert main(_train_argv(tmp_path)) == 0
    capsys.readouterr()  # the training's progress lines
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))  # as if killed
    last = max((run / "ckpt").iterdir(), key=lambda p: int(p.stem[5:]))
    last.write_bytes(last.read_bytes()[:100])
    before = _snapshot(tmp_path)
    for argv in [_train_argv(tmp_path), ["analyze", run.name, "fake", "--store", str(tmp_path)]]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "corrupt or truncated" in err and last.name in err and err.count("\n") == 1
    assert _snapshot(tmp_path) == before


def test_the_console_script_prints_one_line_and_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "probe.cli", "train", "nope", "--arch", "gru", "--hidden", "8",
                          "--store", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [out.stderr.strip()] and "unknown task 'nope'" in out.stderr
    assert "parity" in out.stderr and not list(tmp_path.iterdir())


def test_two_trainings_into_one_store_at_once_both_finish(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "probe.cli", *_train_argv(tmp_path, steps=40, seed=seed)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert main(["runs", "--store", str(tmp_path)]) == 0
    from probe.runs import list_runs

    rows = list_runs(tmp_path)
    assert len(rows) == 2 and {r["seed"] for r in rows} == {1, 2} and {r["status"] for r in rows} == {"done"}


@pytest.mark.slow
def test_the_full_demo_runs_to_the_end(tmp_path):
    # its time against the 5-minute budget is measured by benchmarks/demo.py, not asserted here
    out = subprocess.run([sys.executable, "-m", "probe.cli", "demo", "--store", str(tmp_path)],
                         capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr
    from probe.runs import list_runs

    # the demo's own runs (one per task), then the parity claims' runs in the same store
    rows = list_runs(tmp_path)
    ours = {(r["task"], r["arch"]) for r in rows if r["status"] == "done"}
    assert {(s.task, s.arch) for s in demo.QUICK} <= ours, sorted(ours)
    assert "2/2 claims pass" in out.stdout, out.stdout
    assert (tmp_path / "claims.md").is_file()


def test_train_help_lists_every_task_and_architecture_with_their_defaults(capsys):
    import probe.models
    import tasks

    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and not line.startswith("  -")}
    for name in tasks.names():
        params = tasks.make(name).params
        assert all(f"{k}={json.dumps(v)}" in rows[name] for k, v in params.items()), name
    for arch in probe.models.names():
        assert all(f"{k}={json.dumps(v)}" in rows[arch] for k, v in probe.models.arch_params(arch).items()), arch
    flat = " ".join(out.split())
    for flag, default in [("--steps", "1000"), ("--layers", "1"), ("--seed", "0"), ("--members", "1")]:
        assert f"{flag} " in flat and f"(default: {default})" in flat.split(flag, 2)[2][:200], flag


def test_an_unknown_task_or_analysis_names_the_valid_ones(tmp_path, capsys):
    assert main(["train", "parityy", "--arch", "gru", "--hidden", "4", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("probe: error: unknown task 'parityy'; valid tasks: parity, ") and err.count("\n") == 1


def test_an_unknown_set_key_names_the_nearest_keys_not_all_of_them(tmp_path, capsys):
    assert main(["train", "parity", "--arch", "gru", "--hidden", "4", "--set", "task.maxlen=3",
                 "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "did you mean task.max_len" in err and "train.warmup" not in err and err.count("\n") == 1
    assert main(["train", "--help"]) == 0
    assert "warmup=0" in capsys.readouterr().out  # the training keys, with defaults, are in the help
