"""Fuzz of the ``probe`` command: every bad argument is one line ``probe: error: ...``, exit 2,
the store byte for byte as it was, and nothing outside it touched.

Cases run in-process through ``probe.cli.main`` (one import of torch for all of them); a few
run as real subprocesses, where a hang or a traceback would show as the user sees it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from _fuzz import one_error_line, run_cli, snapshot, train_argv, train_tiny


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("fuzz_cli_store")
    train_tiny(root, seed=0)
    train_tiny(root, seed=1, arch="elman")
    torch.set_num_threads(before)
    return root


@pytest.fixture(scope="module")
def run_id(store):
    return sorted(p.name for p in store.iterdir() if p.is_dir())[0]


NAN, INF = "NaN", "Infinity"
BAD_SETS = {
    # training parameters: types, ranges, NaN and infinities, and what memory would not hold
    "train.lr": [NAN, INF, "-Infinity", "-1", "0", '"fast"', "true", "[1]", "null"],
    "train.batch_size": ["0", "-1", "1e8", "100000000", "100000000000", "true", '"8"', "2.5", NAN],
    "train.eval_n": ["0", "1e9", "1000000000", "1000000000000", "-5", "false"],
    "train.n_checkpoints": ["1e9", "1000000000", "1", "0", "1.5"],
    "train.warmup": ["-1", "6", "1000000", "0.5"],
    "train.optimizer": ["adam", "5", "null", '["sgd"]'],
    "train.schedule": ["linear", "0"],
    "train.grad_clip": ["-1", NAN, INF, "0", '"x"'],
    "train.eval_every": ["0", "-3", "1.5", "10000000000000"],
    "train.eval_splits": ["5", '["nope"]', '"train"', '[1, 2]', "{}"],
    "train.shared_batches": ["1", '"yes"', "null"],
    "train.stateful": ["true", "2"],  # parity has no streams
    "train.weight_decay": ["-1", NAN, INF],
    # task parameters
    "task.max_len": ["0", "-1", "1e9", "1000000000", '"ten"', NAN, "true", "null"],
    "task.fraction": ["0", "2", NAN, "-0.5"],
    "task.length": ["0", "10000000000"],
    "task.data_seed": ["-1", "1e30", "100000000000000000000000"],
    "task.exhaustive": ["1", '"yes"'],
    # model parameters that the GRU has not, and model sizes
    "model.gain": ["1"],
    "model.embedding": ["sparse", "1", "null"],
    "model.d_embed": ["0", "-1", "1e8", "100000000", '"x"', "true", "2.5"],
}
ARCH_SETS = {
    "elman": {"gain": [NAN, INF, "-Infinity", "0", "-1", '"x"', "true", "null"],
              "nonlinearity": ["sigmoid", "1", "true"], "h0": ["twos", "0"]},
    "linear": {"init_scale": [NAN, INF, "-1", '"x"'], "scan": ["fast", "0"]},
    "lru": {"r_min": ["2", "1", "-0.1", NAN], "r_max": [NAN, "1", "1.5", "-1", INF], "state_dim": ["0", "-1", "1.5", '"x"', "true", "1e12"],
            "max_phase": ["0", "-1", NAN, INF]},
    "hawk": {"c": [NAN, "0", "-1", INF, "true"], "a_min": ["2", "0", "1", NAN], "a_max": ["1", "0", INF, "2"],
             "conv": ["-1", "1.5", "true", "100000", '"4"'], "gates": ["tanh", "0"], "decay": ["none"],
             "normalize": ["1", '"yes"']},
}


def _bad_argvs(store, run_id, a_file) -> list[list[str]]:
    s = str(store)
    argvs: list[list[str]] = []
    for key, values in BAD_SETS.items():
        argvs += [train_argv(store, "--set", f"{key}={v}") for v in values]
    for arch, params in ARCH_SETS.items():
        for key, values in params.items():
            argvs += [train_argv(store, "--set", f"model.{key}={v}", arch=arch) for v in values]
    argvs += [train_argv(store, "--set", "model.r_min=0.9", "--set", "model.r_max=0.5", arch="lru"),
              train_argv(store, "--set", "model.a_min=0.95", "--set", "model.a_max=0.9", arch="hawk")]
    flags = {"--hidden": ["0", "-1", "1e3", "abc", "1000000", "99999999999999999999", ""],
             "--layers": ["0", "-3", "100000", "x"], "--members": ["0", "1000000", "5000", "-2"],
             "--steps": ["0", "-1", "1e12", "1000000000000", "2.5"],
             "--seed": ["-1", "x", "99999999999999999999999"], "--device": ["tpu", ""],
             "--from-step": ["-1", "x", "3"], "--store": ["", "/proc/x", "a\nb", "/dev/null", str(a_file)]}
    for flag, values in flags.items():
        for v in values:
            argv = train_argv(store)
            if flag in argv:
                argv[argv.index(flag) + 1] = v
            else:
                argv += [flag, v]
            argvs.append(argv)
    argvs += [["train", name, "--arch", "gru", "--hidden", "4", "--store", s]
              for name in ["", "nope", "PARITY", "parity;rm -rf /", "x" * 5000, "../parity"]]
    argvs += [["train", "parity", "--arch", arch, "--hidden", "4", "--store", s] for arch in ["", "nope", "GRU", "gru "]]
    argvs += [train_argv(store, "--set", kv) for kv in ["=", "x", "a b=1", "train.lr", "nope.x=1", "steps=5",
                                                        "hidden=4", "model.nope=1", "train.nope=1", "task.nope=1",
                                                        "lr=" + "[" * 100000]]
    argvs += [["train", "recall", "--arch", "gru", "--hidden", "4", "--store", s, "--set", "task.num_pairs=1000"],
              ["train", "icl_regression", "--arch", "gru", "--hidden", "4", "--store", s,
               "--set", "task.n_examples=1000000", "--set", "task.d_x=4096"],
              ["train", "icl_regression", "--arch", "gru", "--hidden", "4", "--store", s,
               "--set", "task.kind=teacher", "--set", "task.n_examples=100000", "--set", "task.d_x=4096"]]
    long_id = "x" * 5000
    argvs += [["analyze", rid, "fake", "--store", s]
              for rid in [long_id, "../" + run_id, "/etc/passwd", "", "nope", "a\nb", run_id + "/..", "."]]
    argvs += [["analyze", run_id, name, "--store", s] for name in ["nope", "", "../fake"]]
    argvs += [["analyze", run_id, "fake", "--member", m, "--store", s] for m in ["-1", "99", "x", "1.5"]]
    argvs += [["analyze", run_id, "fake", "--store", st] for st in ["", str(a_file), "/proc/x\n"]]
    argvs += [["runs", "--store", st] for st in ["", str(a_file), "a\nb", "/dev/null"]]
    argvs += [["app", "--store", s, "--host", h] for h in ["", "not a host!", "999.1.1.1", "a\nb"]]
    argvs += [["app", "--store", s, "--port", p] for p in ["0", "70000", "x", "-1"]]
    argvs += [["app", "--store", st] for st in ["", str(a_file), str(store / "no-such-store")]]
    argvs += [["verify", "--only", "nope", "--store", s], ["verify", "--profile", "huge"],
              ["figs", "--only", "nope"], ["figs", "--out", str(a_file)], ["bogus"], [],
              ["demo", "--store", str(a_file)], ["train"], ["runs", "--nope"]]
    return argvs


@pytest.fixture
def fake_analysis(monkeypatch):
    import analyses
    from analyses.base import Result

    calls = []
    monkeypatch.setitem(analyses._REGISTERED, "fake", lambda run, member=0: calls.append(member) or Result(summary={}))
    return calls


def test_every_bad_argument_is_one_line_exit_2_and_touches_nothing(tmp_path, store, run_id, fake_analysis,
                                                                  monkeypatch, capsys):
    import analyses

    from probe import claims

    monkeypatch.setattr(claims, "_REGISTRY", {})
    monkeypatch.setattr(analyses, "load_all", lambda: [])
    monkeypatch.chdir(tmp_path)  # a relative path that escaped would land here
    # The same memory on every machine, so that a size refused here is refused everywhere (and
    # a size this machine could hold is never built).
    monkeypatch.setenv("PROBE_MEMORY_BYTES", str(2 * 10**9))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a store")
    argvs = _bad_argvs(store, run_id, a_file)
    assert len(argvs) >= 250, len(argvs)
    before, around = snapshot(store), snapshot(tmp_path)
    failures = []
    for argv in argvs:
        code, _, err = run_cli(argv, capsys)
        if not one_error_line(code, err):
            failures.append((argv[:12], code, err[-300:]))
    assert not failures, f"{len(failures)} of {len(argvs)} cases broke the promise: {failures[:5]}"
    assert snapshot(store) == before and snapshot(tmp_path) == around
    assert not fake_analysis


def test_memory_bounds_say_how_much_is_needed(store, capsys):
    code, _, err = run_cli(train_argv(store, hidden="1000000"), capsys)
    assert one_error_line(code, err) and "needs about" in err and "TB of memory" in err and "has" in err
    code, _, err = run_cli(train_argv(store, "--set", "train.batch_size=100000000"), capsys)
    assert one_error_line(code, err) and "batch_size=100000000" in err and "needs about" in err


def test_a_host_beyond_loopback_warns_that_the_explorer_has_no_authentication(store, monkeypatch, capsys):
    import app

    served = []
    monkeypatch.setattr(app, "run", lambda *a, **kw: served.append(kw))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    code, _, err = run_cli(["app", "--store", str(store), "--host", "0.0.0.0", "--port", str(free)], capsys)
    assert code == 0 and served and "no authentication" in err and err.count("\n") == 1
    code, _, err = run_cli(["app", "--store", str(store), "--port", str(free)], capsys)
    assert code == 0 and err == ""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = run_cli(["app", "--store", str(store), "--port", str(busy.getsockname()[1])], capsys)
    assert one_error_line(code, err) and "cannot serve" in err and len(served) == 2


def test_a_fifo_run_json_does_not_hang_the_console_script(tmp_path):
    # The one case run as a real subprocess in the fast suite: a hang here would be the user's hang.
    store = tmp_path / "store"
    (store / "parity-gru-h4-00000000").mkdir(parents=True)
    os.mkfifo(store / "parity-gru-h4-00000000" / "run.json")
    out = subprocess.run([sys.executable, "-m", "probe.cli", "runs", "--store", str(store)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "unreadable: " in out.stdout and "FIFO" in out.stdout and not out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("argv", [
    ["train", "parity", "--arch", "gru", "--hidden", "1000000"],
    ["train", "parity", "--arch", "gru", "--hidden", "4", "--members", "1000000"],
    ["train", "parity", "--arch", "gru", "--hidden", "4", "--layers", "100000"],
    ["train", "parity", "--arch", "gru", "--hidden", "4", "--set", "train.n_checkpoints=1000000000"],
    ["train", "parity", "--arch", "hawk", "--hidden", "4", "--set", "model.c=0"],
    ["analyze", "x" * 5000, "automaton"],
    ["app", "--host", "not a host!"],
])
def test_the_console_script_answers_bad_input_with_one_line_in_seconds(tmp_path, argv):
    out = subprocess.run([sys.executable, "-m", "probe.cli", *argv, "--store", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert one_error_line(out.returncode, out.stderr), out.stderr
    assert not (tmp_path / "s").exists()


def test_a_corrupt_newest_checkpoint_names_the_last_good_step_and_from_step_resumes(tmp_path, capsys):
    argv = train_argv(tmp_path)
    assert run_cli(argv, capsys)[0] == 0
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))  # as if killed at the end
    last = run / "ckpt" / "step_6.safetensors"
    data = bytearray(last.read_bytes())
    at = data.index(b'"step":"6"')
    data[at:at + 10] = b'"step":"2"'  # an edited step: the whole-file digest sees it
    last.write_bytes(bytes(data))
    before = snapshot(tmp_path)
    code, _, err = run_cli(argv, capsys)
    assert one_error_line(code, err) and "checksum mismatch" in err and "step_6" in err and "--from-step" in err
    assert snapshot(tmp_path) == before
    good = int(err.split("--from-step ")[1].split()[0])
    code, _, err = run_cli(argv + ["--from-step", str(good)], capsys)
    assert code == 0, err
    from probe.runs import open_run

    resumed = open_run(run)
    assert resumed.status == "done" and resumed.checkpoint_steps[-1] == 6
    resumed.load_checkpoint(6)  # rewritten, readable
