"""The run store: opening runs, reading checkpoints safely, listing many runs fast, crash-safe files."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import time

import pytest
import torch

import probe
import tasks
from probe import _io
from probe.runs import format_runs, list_runs, open_run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("store")
    task = tasks.make("parity")
    model = probe.models.make("gru", task, hidden=8, members=3, seed=0)
    probe.train(task, model, steps=20, batch_size=16, lr=1e-2, eval_splits=["train"], eval_n=32,
                store=root, progress=False)
    torch.set_num_threads(before)
    return root


@pytest.fixture
def run(store):
    return open_run(next(p for p in store.iterdir() if p.is_dir()))


def test_a_run_is_opened_by_path_by_id_or_by_unique_prefix(store, run):
    assert open_run(run.path).id == run.id
    assert open_run(run.id, store=store).path == run.path
    assert open_run(run.id[:12], store=store).id == run.id
    with pytest.raises(ValueError, match=f"unknown run 'nope'.*{run.id}"):
        open_run("nope", store=store)


def test_a_run_exposes_config_metrics_checkpoints_models_and_task(run):
    assert run.config["task"]["name"] == "parity" and run.config["model"]["members"] == 3
    assert run.status == "done" and run.checkpoint_steps[0] == 0 and run.checkpoint_steps[-1] == 20
    assert {r["member"] for r in run.metrics} == {0, 1, 2}
    assert {"step", "member", "loss", "lr", "train.accuracy", "train.loss"} <= set(run.metrics[-1])
    ens = run.ensemble()
    single = run.model(member=2)
    assert single.members == 1
    inputs = run.task().sample(n=4, seed=1).inputs
    torch.testing.assert_close(single(inputs), ens(inputs)[2])
    first = run.model(member=2, step=0)
    assert not torch.equal(first(inputs), single(inputs))
    with pytest.raises(ValueError, match="no checkpoint at step 999"):
        run.model(step=999)
    with pytest.raises(ValueError, match="member 3 out of range"):
        run.model(member=3)


def test_list_runs_gives_one_row_per_run_with_final_metrics(store, run):
    rows = list_runs(store)
    assert [r["id"] for r in rows] == [run.id]
    row = rows[0]
    assert (row["task"], row["arch"], row["hidden"], row["members"], row["status"]) == ("parity", "gru", 8, 3, "done")
    assert 0 <= row["train.accuracy"] <= 1
    assert run.id in format_runs(rows) and "train.accuracy=" in format_runs(rows)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_a_damaged_checkpoint_is_a_clear_value_error(tmp_path, run, damage):
    path = tmp_path / "step_20.safetensors"
    data = (run.path / "ckpt" / "step_20.safetensors").read_bytes()
    data = {"truncate": data[: len(data) // 2], "flip": data[:-5] + bytes([data[-5] ^ 1]) + data[-4:],
            "garbage": b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!", "empty": b""}[damage]
    path.write_bytes(data)
    with pytest.raises(ValueError, match="corrupt or truncated"):
        _io.load_tensors(path)


def test_loading_never_unpickles(monkeypatch, run):
    def refuse(*a, **k):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    run.model(member=1)
    list_runs(run.path.parent)


def test_a_store_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        list_runs(tmp_path / "file")
    assert list_runs(tmp_path / "missing") == []


def _fake_run(root, i: int) -> None:
    run = root / f"parity-gru-h8-{i:08x}"
    run.mkdir()
    info = {"id": run.name, "status": "done", "step": 100, "diverged": {}, "final": {"train.accuracy": 0.5},
            "config": {"task": {"name": "parity", "params": {"max_len": 10}},
                       "model": {"arch": "gru", "hidden": 8, "layers": 1, "members": 4, "seed": i},
                       "train": {"steps": 100, "seed": i, "lr": 1e-3}}}
    (run / "run.json").write_text(json.dumps(info))


def test_listing_a_thousand_runs_skips_what_is_not_a_run(tmp_path):
    # the listing's speed is measured side by side in benchmarks/runs_index.py, not timed here
    for i in range(1000):
        _fake_run(tmp_path, i)
    (tmp_path / "claims.md").write_text("not a run")
    (tmp_path / "not-a-run").mkdir()
    rows = list_runs(tmp_path)
    assert len(rows) == 1000 and "not-a-run" not in {r["id"] for r in rows}


def _old_fake_runs(root, n: int) -> None:
    # run.json files written an hour ago: a file modified in the last seconds is not indexed yet
    for i in range(n):
        _fake_run(root, i)
    hour_ago = time.time() - 3600
    for f in root.glob("*/run.json"):
        os.utime(f, (hour_ago, hour_ago))


def _count_run_json_reads(monkeypatch) -> list[str]:
    reads, read_json = [], _io.read_json
    monkeypatch.setattr(_io, "read_json", lambda path, *a, **k: (reads.append(str(path)), read_json(path, *a, **k))[1])
    return reads


def test_a_thousand_run_listing_comes_from_the_index(tmp_path, monkeypatch):
    _old_fake_runs(tmp_path, 1000)
    (tmp_path / "claims.md").write_text("not a run")
    reads = _count_run_json_reads(monkeypatch)
    cold = list_runs(tmp_path)
    assert len(cold) == 1000 and sum(r.endswith("run.json") for r in reads) == 1000
    assert (tmp_path / "index.json").is_file() and not list(tmp_path.glob(".*.tmp"))
    reads.clear()
    warm = list_runs(tmp_path)
    assert warm == cold and json.dumps(warm) == json.dumps(cold)  # same rows, same order, same types
    assert reads == [str(tmp_path / "index.json")]  # no run.json read again
    index = (tmp_path / "index.json").stat().st_mtime_ns
    list_runs(tmp_path)
    assert (tmp_path / "index.json").stat().st_mtime_ns == index  # nothing changed: not rewritten


def test_the_index_follows_changed_new_and_removed_runs(tmp_path, monkeypatch):
    _old_fake_runs(tmp_path, 20)
    before = {r["id"]: r for r in list_runs(tmp_path)}
    changed = tmp_path / "parity-gru-h8-00000003" / "run.json"
    info = json.loads(changed.read_text())
    changed.write_text(json.dumps({**info, "step": 50, "status": "running", "final": {"train.accuracy": 0.75}}))
    shutil.rmtree(tmp_path / "parity-gru-h8-00000007")
    _fake_run(tmp_path, 99)
    reads = _count_run_json_reads(monkeypatch)
    rows = {r["id"]: r for r in list_runs(tmp_path)}
    assert sorted(r for r in reads if r.endswith("run.json")) == [str(changed), str(tmp_path / "parity-gru-h8-00000063" / "run.json")]
    assert set(rows) == set(before) - {"parity-gru-h8-00000007"} | {"parity-gru-h8-00000063"}
    assert (rows["parity-gru-h8-00000003"]["step"], rows["parity-gru-h8-00000003"]["train.accuracy"]) == (50, 0.75)
    assert rows["parity-gru-h8-00000003"]["status"] == "stopped"  # "running" in run.json, but nobody holds its lock
    with _io.Lock(changed.parent / ".lock", "run"):
        assert {r["id"]: r for r in list_runs(tmp_path)}["parity-gru-h8-00000003"]["status"] == "running"
    index = json.loads((tmp_path / "index.json").read_text())["runs"]
    assert sorted(index) == sorted(rows) and index["parity-gru-h8-00000003"]["row"]["step"] == 50
    # Modified just before the listing that wrote the index: read again (a same-size in-place edit
    # within one clock tick would keep the stat), the rest not; the index is not rewritten.
    reads.clear()
    written = (tmp_path / "index.json").stat().st_mtime_ns
    assert {r["id"]: r for r in list_runs(tmp_path)} == rows
    assert sorted(r for r in reads if r.endswith("run.json")) == [str(changed), str(tmp_path / "parity-gru-h8-00000063" / "run.json")]
    assert (tmp_path / "index.json").stat().st_mtime_ns == written


def test_a_failed_open_names_the_runs_without_writing_the_index(tmp_path):
    _old_fake_runs(tmp_path, 3)
    with pytest.raises(ValueError, match="unknown run 'nope'.*parity-gru-h8-0000000"):
        open_run("nope", store=tmp_path)
    assert not (tmp_path / "index.json").exists()
    list_runs(tmp_path, update_index=False)
    assert not (tmp_path / "index.json").exists()


@pytest.mark.parametrize("damage", ["garbage", "not an object", "other version", "bad entry", "a link", "a folder",
                                    "lying row, stat changed"])
def test_a_damaged_index_is_ignored_and_rebuilt(tmp_path, damage):
    _old_fake_runs(tmp_path, 5)
    truth = list_runs(tmp_path)
    path = tmp_path / "index.json"
    built, index = json.loads(path.read_text()), json.loads(path.read_text())
    name = "parity-gru-h8-00000002"
    if damage == "garbage":
        path.write_bytes(b"\x00{not json")
    elif damage == "not an object":
        path.write_text("[1, 2]")
    elif damage == "other version":
        path.write_text(json.dumps({**index, "version": 0}))
    elif damage == "bad entry":
        index["runs"][name] = {"stat": "x", "row": {"id": 5}}
        path.write_text(json.dumps(index))
    elif damage == "a link":
        (tmp_path / "elsewhere.json").write_text(json.dumps({**index, "runs": {}}))
        path.unlink()
        path.symlink_to(tmp_path / "elsewhere.json")
    elif damage == "a folder":
        path.unlink()
        path.mkdir()
    else:  # an entry whose row disagrees with a run.json that changed since
        index["runs"][name]["row"]["arch"] = "lstm"
        index["runs"][name]["stat"][1] += 1
        path.write_text(json.dumps(index))
    assert list_runs(tmp_path) == truth
    assert not list(tmp_path.glob(".*.tmp"))
    if damage != "a folder":  # rebuilt in place (a link replaced by a file; what it pointed to untouched)
        assert path.is_file() and not path.is_symlink()
        assert json.loads(path.read_text())["runs"] == built["runs"]
        assert list_runs(tmp_path) == truth


def test_where_keeps_the_rows_matching_every_pair(tmp_path, capsys):
    from probe.cli import main
    from probe.runs import filter_runs

    rows = [{"id": f"{t}-{a}-h{h}-0000000{i}", "task": t, "arch": a, "hidden": h, "status": s}
            for i, (t, a, h, s) in enumerate([("recall", "gru", 16, "done"), ("recall", "elman", 16, "done"),
                                              ("parity", "gru", 16, "diverged"), ("recall", "gru", 8, "unreadable: x")])]
    ids = lambda where: [r["id"][-1] for r in filter_runs(rows, where)]
    assert ids("task=recall,arch=gru") == ["0", "3"]
    assert ids("task=recall, arch=gru ,hidden=16") == ["0"]
    assert ids("arch=gru,arch=elman,task=recall") == ["0", "1", "3"]
    assert ids("status=unreadable") == ["3"] and ids("status=diverged") == ["2"]
    assert ids("id=parity") == ["2"] and ids("hidden=32") == []
    for bad, match in (("tsk=recall", "unknown --where key 'tsk'.*task"), ("task", "key=value pairs.*'task'"),
                       ("task=", "key=value"), ("task=recall,,arch=gru", "key=value")):
        with pytest.raises(ValueError, match=match):
            filter_runs(rows, bad)

    for i in range(3):
        _fake_run(tmp_path, i)
    info = json.loads((tmp_path / "parity-gru-h8-00000001" / "run.json").read_text())
    info["config"]["model"]["arch"] = "elman"
    (tmp_path / "parity-gru-h8-00000001" / "run.json").write_text(json.dumps(info))
    assert main(["runs", "--store", str(tmp_path), "--where", "task=parity,arch=gru"]) == 0
    out = capsys.readouterr().out
    assert "parity-gru-h8-00000000" in out and "parity-gru-h8-00000002" in out and "parity-gru-h8-00000001" not in out
    assert main(["runs", "--store", str(tmp_path / "none"), "--where", "arch=gru,lr=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown --where key 'lr'" in err and "arch" in err


def test_files_are_replaced_atomically_and_a_torn_metrics_line_is_skipped(tmp_path):
    _io.write_json(tmp_path / "a.json", {"x": 1})
    _io.write_json(tmp_path / "a.json", {"x": 2})
    assert _io.read_json(tmp_path / "a.json") == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary files left
    _io.append_jsonl(tmp_path / "m.jsonl", [{"step": 1}, {"step": 2}])
    with open(tmp_path / "m.jsonl", "ab") as f:
        f.write(b'{"step": 3, "lo')  # a kill in the middle of a line
    assert _io.read_jsonl(tmp_path / "m.jsonl") == [{"step": 1}, {"step": 2}]


def test_one_writer_per_run(tmp_path):
    with _io.Lock(tmp_path / ".lock", "run x"):
        assert _io.is_locked(tmp_path / ".lock")
        with pytest.raises(ValueError, match="run x is being written by another process"):
            _io.Lock(tmp_path / ".lock", "run x")
    assert not _io.is_locked(tmp_path / ".lock")


def test_a_killed_run_shows_as_stopped(tmp_path):
    _fake_run(tmp_path, 1)
    path = next(tmp_path.iterdir())
    info = json.loads((path / "run.json").read_text())
    (path / "run.json").write_text(json.dumps({**info, "status": "running"}))
    assert list_runs(tmp_path)[0]["status"] == "stopped"
    with _io.Lock(path / ".lock", "run"):
        assert list_runs(tmp_path)[0]["status"] == "running"
