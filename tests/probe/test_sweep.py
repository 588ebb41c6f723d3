"""probe sweep: grid expansion and exclusion, run ids, resume, failing points, bad files, engines."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import json
import os
from pathlib import Path

import pytest
import torch

import probe
from probe import sweep
from probe.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sweep_parity.toml"

# Tiny points: a few steps, a small batch, only the train split evaluated.
TINY = """
task = "parity"
arch = "gru"
hidden = [4, 6]
seeds = 0
steps = 8
[set]
"train.batch_size" = 8
"train.eval_n" = 16
"train.eval_splits" = [["train"], ["nope"]]
"""


def _write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _weights(store: Path, rid: str) -> dict[str, torch.Tensor]:
    return probe.open_run(rid, store=store).load_checkpoint()[0]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_issue_example_is_the_product_of_its_axes():
    spec = sweep.load_spec(EXAMPLE)
    assert len(spec.points) == 2 * 2 * 2 * 2 and spec.excluded == 0
    assert spec.varying == ["arch", "hidden", "train.lr", "seed"]
    got = sorted((p.arch, p.hidden, p.seed, dict(p.sets)["train.lr"]) for p in spec.points)
    assert got == sorted(itertools.product(["gru", "elman"], [4, 16], [0, 1], [1e-3, 3e-3]))
    assert {(p.members, p.steps, p.task, p.layers) for p in spec.points} == {(1, 200, "parity", 1)}
    ids = [sweep.build(p)[3] for p in spec.points]
    assert len(set(ids)) == 16  # one run per point
    assert ids == [sweep.build(p)[3] for p in sweep.load_spec(EXAMPLE).points]  # stable across loads


def test_every_point_of_the_issue_example_trains_with_tiny_steps(tmp_path):
    # The example as written, with 2 steps and a small evaluation instead of 200 steps.
    text = EXAMPLE.read_text().replace("steps = 200", "steps = 2")
    text += '"train.batch_size" = 8\n"train.eval_n" = 16\n"train.eval_splits" = [["train", "len_50"]]\n'
    spec = sweep.load_spec(_write(tmp_path, text))
    assert len(spec.points) == 16
    results = [sweep.run_point(p, str(tmp_path / "store"), "cpu") for p in spec.points]
    assert [r["status"] for r in results] == ["done"] * 16
    assert [r["id"] for r in results] == [row["id"] for row in sweep.plan(spec, tmp_path / "store")]
    assert all(0 <= r["final"]["len_50.accuracy"] <= 1 for r in results)


def test_excluded_rows_leave_the_grid_and_nothing_else(tmp_path):
    text = EXAMPLE.read_text() + '\n[[exclude]]\narch = "elman"\nhidden = 4\n\n[[exclude]]\nseeds = 1\n"train.lr" = [1e-3, 3e-3]\narch = "gru"\n'
    spec = sweep.load_spec(_write(tmp_path, text))
    full = {(p.arch, p.hidden, p.seed, p.sets) for p in sweep.load_spec(EXAMPLE).points}
    kept = {(p.arch, p.hidden, p.seed, p.sets) for p in spec.points}
    gone = {k for k in full if (k[0] == "elman" and k[1] == 4) or (k[0] == "gru" and k[2] == 1)}
    assert kept == full - gone and spec.excluded == len(gone) == 8 and len(spec.points) == 16 - 8


@pytest.mark.parametrize("text, line, key", [
    ('task = "parity"\narch = "gru"\nhidden = "4"\n', 3, "hidden"),
    ('task = "parity"\narch = ["gru", "rnn"]\nhidden = 4\n', 2, "arch"),
    ('task = "parity"\narch = "gru"\nhidden = 4\nseeds = [0, 0]\n', 4, "seeds"),
    ('task = "parity"\narch = "gru"\nhidden = 4\nwidth = 3\n', 4, "width"),
    ('task = "parity"\narch = "gru"\nhidden = []\n', 3, "hidden"),
    ('task = "parity"\narch = "gru"\nhidden = 4\n[set]\n"train.lr" = 0.1\n"train.lrr" = 0.1\n', 6, "train.lrr"),
    ('task = "parity"\narch = "gru"\nhidden = 4\n[set]\n"train.lr" = [0.1, -1]\n', 5, "train.lr"),
    ('task = "parity"\narch = "gru"\nhidden = 4\n[set]\ntrain.steps = 3\n', 5, "train.steps"),
    ('task = "parity"\narch = "gru"\nhidden = [4, 8]\nexclude = [{hidden = 5}]\n', 4, "exclude row 1"),
    ('task = "parity"\narch = "gru"\nhidden = 4\n\n[[exclude]]\nhidden = 4\n', 5, "exclude"),
    ('task = "parity"\narch = "gru"\nhidden = 4\nsteps = 10\n[set]\n"train.warmup" = 20\n', 6, "train.warmup"),
    ('task = "parity"\narch = "gru"\nhidden = = 4\n', 3, "TOML"),
    ('task = "parity"\narch = "gru"\nhidden = 4\nseed = 1\nseeds = [0, 1]\n', 5, "seeds"),
])
def test_a_bad_file_is_one_error_naming_its_key_and_line(tmp_path, capsys, text, line, key):
    path = _write(tmp_path, text)
    with pytest.raises(sweep.SpecError) as e:
        sweep.load_spec(path)
    message = str(e.value)
    assert key in message and (f"{path}:{line}:" in message or f"line {line}" in message), message
    assert main(["sweep", str(path), "--store", str(tmp_path / "store"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err and not (tmp_path / "store").exists()


def test_a_sweep_file_that_is_not_a_readable_file_is_one_error(tmp_path, capsys):
    os.mkfifo(tmp_path / "fifo.toml")  # reading it would block for ever
    (tmp_path / "binary.toml").write_bytes(bytes(range(128, 256)))
    for name in ["missing.toml", "fifo.toml", "binary.toml", "."]:
        assert main(["sweep", str(tmp_path / name), "--store", str(tmp_path / "store"), "--dry-run"]) == 2
        assert capsys.readouterr().err.startswith("probe: error: ")


def test_dry_run_prints_the_grid_and_its_cost(tmp_path, capsys):
    assert main(["sweep", str(EXAMPLE), "--store", str(tmp_path / "store"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    spec = sweep.load_spec(EXAMPLE)
    assert all(sweep.build(p)[3] in out for p in spec.points)
    assert "16 points (0 excluded), 0 finished, 16 to train" in out and "TFLOP" in out
    rows = sweep.plan(spec, tmp_path / "store")
    # Cost grows with the weights: a 16-wide GRU costs more than a 4-wide one, same for Elman.
    cost = {(r["arch"], r["hidden"]): r["flop"] for r in rows}
    assert cost["gru", 16] > cost["gru", 4] > 0 and cost["elman", 16] > cost["elman", 4] > 0
    assert not (tmp_path / "store").exists()  # a dry run writes nothing


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The TINY grid (4 points, 2 of which fail on an unknown eval split) swept on 2 local
    workers, after one of its points was interrupted at step 3."""
    root = tmp_path_factory.mktemp("sweep")
    spec = sweep.load_spec(_write(root, TINY))
    store = root / "store"
    first = spec.points[0]
    assert dict(first.sets)["train.eval_splits"] == ["train"]
    from probe._trainer import Trainer

    real = Trainer.step

    def interrupted(self, step, lr):
        if step == 3:
            raise KeyboardInterrupt
        return real(self, step, lr)

    Trainer.step = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            sweep.run_point(first, str(store), "cpu")
    finally:
        Trainer.step = real
    rid = sweep.build(first)[3]
    early = {p.name: p.stat().st_mtime_ns for p in (store / rid / "ckpt").iterdir()}
    assert sweep.plan(spec, store)[0]["status"] == "partial" and early
    # The command, recording what run_sweep returns to it.
    out, err, recorded, real_run = io.StringIO(), io.StringIO(), [], sweep.run_sweep
    heartbeat, sweep._HEARTBEAT_S = sweep._HEARTBEAT_S, 0.2  # workers take longer than this to start
    sweep.run_sweep = lambda *a, **kw: recorded.append(real_run(*a, **kw)) or recorded[-1]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["sweep", str(root / "spec.toml"), "--store", str(store), "--workers", "2"])
    finally:
        sweep._HEARTBEAT_S, sweep.run_sweep = heartbeat, real_run
    (rows, failed), = recorded
    return {"spec": spec, "store": store, "rows": rows, "failed": failed, "out": out.getvalue(),
            "err": err.getvalue(), "rc": rc, "early": early, "root": root}


def test_local_engine_trains_every_point_and_isolates_failures(swept):
    rows, failed = swept["rows"], swept["failed"]
    # The command goes on past the failing points, names them on stderr and exits 1.
    assert swept["rc"] == 1 and "2 of 4 points finished, 2 failed" in swept["out"]
    assert swept["err"].count("FAILED") == 2 and swept["err"].count("unknown eval split 'nope'") == 2
    # Points in grid order: hidden 4 then 6, each with eval_splits ["train"] then ["nope"].
    assert [r["status"] for r in rows] == ["done", "failed", "done", "failed"]
    assert len(failed) == 2 and all("unknown eval split 'nope'" in f["error"] for f in failed)
    assert all(f["train.eval_splits"] == ["nope"] for f in failed)
    lines = [line for line in swept["out"].splitlines() if line.startswith("[")]
    assert len(lines) == 4 and sum("FAILED" in line for line in lines) == 2 and "ETA" in lines[0]
    threads = max(1, len(os.sched_getaffinity(0)) // 2)  # the cores split between the 2 workers
    assert f"engine: 2 worker process(es) x {threads} thread(s)" in swept["out"] and " waiting" in swept["out"]
    # Each finished run has the id its configuration predicts, and the weights of the same run
    # trained here in this process (a worker process changes nothing).
    for point, row in zip(swept["spec"].points, rows):
        if row["status"] == "done":
            run = probe.open_run(row["id"], store=swept["store"])
            assert run.id == sweep.build(point)[3] and run.checkpoint_steps[-1] == 8
    single = swept["root"] / "single"
    result = sweep.run_point(swept["spec"].points[2], str(single), "cpu")
    assert result["status"] == "done" and _same(_weights(single, result["id"]), _weights(swept["store"], rows[2]["id"]))


def test_an_interrupted_point_resumes_to_the_weights_of_an_uninterrupted_run(swept):
    rid = swept["rows"][0]["id"]
    ckpt = swept["store"] / rid / "ckpt"
    # The checkpoints written before the interruption were kept, not rewritten: it resumed.
    assert {name: (ckpt / name).stat().st_mtime_ns for name in swept["early"]} == swept["early"]
    whole = swept["root"] / "whole"
    assert sweep.run_point(swept["spec"].points[0], str(whole), "cpu")["status"] == "done"
    assert _same(_weights(whole, rid), _weights(swept["store"], rid))
    assert probe.open_run(rid, store=whole).metrics == probe.open_run(rid, store=swept["store"]).metrics


def test_a_rerun_skips_finished_points(swept):
    spec = swept["spec"]
    done = sweep.load_spec(_write(swept["root"], TINY.replace('[["train"], ["nope"]]', '[["train"]]'), "done.toml"))
    before = {p: p.stat().st_mtime_ns for p in swept["store"].rglob("*") if p.is_file()}
    out = io.StringIO()
    rows, failed = sweep.run_sweep(done, swept["store"], out=out)
    assert failed == [] and [r["status"] for r in rows] == ["done", "done"]
    assert "2 points, 2 finished, 0 to train" in out.getvalue()
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert len(spec.points) == 4


def test_report_writes_the_grid_as_csv_and_a_figure(swept):
    csv_path, html_path = sweep.report(swept["spec"], swept["store"], x="hidden")
    assert csv_path.parent == swept["store"] / "sweeps" and html_path.exists()
    import csv

    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert [r["id"] for r in table] == [r["id"] for r in swept["rows"]]
    finals = {r["id"]: r["train.accuracy"] for r in swept["rows"] if r["status"] == "done"}
    assert {r["id"]: float(r["train.accuracy"]) for r in table if r["status"] == "done"} == finals
    fig = sweep.figure(sweep.plan(swept["spec"], swept["store"]), "train.accuracy", "hidden", ["train.eval_splits"])
    (trace,) = fig.data  # the failed points have no metric, so one line
    assert list(trace.x) == [4, 6] and list(trace.y) == [finals[swept["rows"][0]["id"]], finals[swept["rows"][2]["id"]]]
    with pytest.raises(ValueError, match="valid metrics"):
        sweep.report(swept["spec"], swept["store"], metric="train.nope")


def test_a_store_the_workers_cannot_see_is_refused_before_any_point_starts(tmp_path):
    (tmp_path / "store").mkdir()
    token = ".sweep-check-test"
    assert "is not shared with worker" in sweep.check_store_from_worker(str(tmp_path / "store"), token)
    (tmp_path / "store" / token).write_text(token)
    assert sweep.check_store_from_worker(str(tmp_path / "store"), token) is None

    class ElsewhereEngine:  # a worker on a node that mounts another folder at the store's path
        def check_store(self, store, token):
            return [e for e in [sweep.check_store_from_worker(str(tmp_path / "other"), token)] if e]

    with pytest.raises(ValueError, match="not shared with worker.*no point was started"):
        sweep._check_store(ElsewhereEngine(), tmp_path / "store")
    assert os.listdir(tmp_path / "store") == [token]  # the driver's own token is cleaned up, not the test's


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_engine_without_ray_says_how_to_install_it(tmp_path, capsys):
    path = _write(tmp_path, TINY)
    assert main(["sweep", str(path), "--store", str(tmp_path / "store"), "--engine", "ray"]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err


def _start_ray(ray, **kw) -> None:
    # Ray gives its raylet 30 s to start (ray/_private/node.py); on an oversubscribed machine
    # that can pass, so try twice before failing.
    try:
        ray.init(**kw)
    except Exception:  # noqa: BLE001 ("The current node timed out during startup")
        ray.shutdown()
        ray.init(**kw)


def test_ray_engine_on_a_local_ray(tmp_path):
    ray = pytest.importorskip("ray")
    spec = sweep.load_spec(_write(tmp_path, TINY))
    _start_ray(ray, num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = io.StringIO()
        rows, failed = sweep.run_sweep(spec, tmp_path / "store", engine="ray", num_cpus=1, out=out)
    finally:
        ray.shutdown()
    assert [r["status"] == "done" for r in rows] == [dict(p.sets)["train.eval_splits"] == ["train"] for p in spec.points]
    assert len(failed) == 2 and all("unknown eval split" in f["error"] for f in failed)
    local = tmp_path / "local"
    result = sweep.run_point(spec.points[0], str(local), "cpu")
    assert _same(_weights(local, result["id"]), _weights(tmp_path / "store", rows[0]["id"]))
    assert json.loads((tmp_path / "store" / "sweeps" / "spec.json").read_text())["points"][0]["id"] == rows[0]["id"]


def _long_spec(tmp_path: Path, steps: int = 400) -> sweep.Spec:
    return sweep.load_spec(_write(tmp_path, TINY.replace("hidden = [4, 6]", "hidden = 16")
                                  .replace("steps = 8", f"steps = {steps}")
                                  .replace('[["train"], ["nope"]]', '[["train"]]'), "long.toml"))


def _kill_mid_run(store: Path, pids, min_step: int = 20, timeout: float = 300) -> int:
    # Wait for a checkpoint at min_step or later (run.json is written after it), then SIGKILL.
    import signal
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [json.loads(f.read_text()).get("step", 0) for f in store.glob("*/run.json")]
        if steps and steps[0] >= min_step:
            break
        time.sleep(0.05)
    killed = pids()
    assert killed, "no worker process to kill"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    return steps[0]


@pytest.mark.slow
def test_a_killed_local_worker_is_replaced_and_its_point_resumed(tmp_path):
    import multiprocessing
    import threading

    spec, store, out, result = _long_spec(tmp_path), tmp_path / "store", io.StringIO(), {}
    thread = threading.Thread(target=lambda: result.update(rows_failed=sweep.run_sweep(spec, store, workers=1, out=out)))
    thread.start()
    step = _kill_mid_run(store, lambda: [p.pid for p in multiprocessing.active_children()])
    thread.join()
    rows, failed = result["rows_failed"]
    assert failed == [] and rows[0]["status"] == "done" and "died" in out.getvalue() and step < 400
    whole = tmp_path / "whole"
    sweep.run_point(spec.points[0], str(whole), "cpu")
    assert _same(_weights(whole, rows[0]["id"]), _weights(store, rows[0]["id"]))


@pytest.mark.slow
def test_ray_engine_on_a_two_node_cluster_resumes_a_point_whose_worker_was_killed(tmp_path):
    ray = pytest.importorskip("ray")
    import threading

    from ray.cluster_utils import Cluster

    def ray_workers():  # the worker process running a point is titled "ray::run_point"
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if b"ray::run_point" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
            except OSError:
                pass
        return found

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        spec, store, out, result = _long_spec(tmp_path), tmp_path / "store", io.StringIO(), {}
        nodes = [n for n in ray.nodes() if n["Alive"]]
        assert len(nodes) == 2
        thread = threading.Thread(target=lambda: result.update(rows_failed=sweep.run_sweep(
            spec, store, engine="ray", out=out)))
        thread.start()
        step = _kill_mid_run(store, ray_workers)
        thread.join()
    finally:
        ray.shutdown()
        cluster.shutdown()
    rows, failed = result["rows_failed"]
    assert failed == [] and rows[0]["status"] == "done" and step < 400
    whole = tmp_path / "whole"
    sweep.run_point(spec.points[0], str(whole), "cpu")
    assert _same(_weights(whole, rows[0]["id"]), _weights(store, rows[0]["id"]))


def test_train_points_returns_the_runs_of_finished_points_without_training(swept):
    points = [p for p in swept["spec"].points if dict(p.sets)["train.eval_splits"] == ["train"]]
    before = {p: p.stat().st_mtime_ns for p in swept["store"].rglob("*.safetensors")}
    runs = sweep.train_points(points, swept["store"], name="claim")
    assert [r.id for r in runs] == [sweep.build(p)[3] for p in points] and {r.status for r in runs} == {"done"}
    assert {p: p.stat().st_mtime_ns for p in before} == before
