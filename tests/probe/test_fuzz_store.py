"""Fuzz of the run store: one damaged or hostile run folder is one bad row, never a crash, a
hang, a read or write outside the store, or a change to the other runs.

Every case copies a finished run (and a healthy neighbour) into a fresh store, damages the
copy, and then lists the store, runs ``probe runs``, ``probe analyze`` and ``probe train`` on it
and loads its model through the API. Next to the store lies a decoy run whose metrics carry a
marker: links pointing there must never bring the marker into an answer.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch

from _fuzz import one_error_line, run_cli, snapshot, train_argv, train_tiny
from probe import _io
from probe.runs import list_runs, open_run

MARK = "leak.marker"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("fuzz_store_template")
    run = train_tiny(root, seed=0)
    other = train_tiny(root, seed=1, arch="elman")
    torch.set_num_threads(before)
    return run.path, other.path


@pytest.fixture
def fake_analysis(monkeypatch):
    import analyses
    from analyses.base import Result

    def fake(run, member=0):
        run.model(member)  # reads the checkpoint
        return Result(summary={"keys": " ".join(sorted({k for r in run.metrics for k in r})), "final": str(run.final)})

    monkeypatch.setitem(analyses._REGISTERED, "fake", fake)


def _info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _set_info(run: Path, **changes) -> None:
    (run / "run.json").write_text(json.dumps({**_info(run), **changes}))


def _set_model(run: Path, **changes) -> None:
    info = _info(run)
    info["config"]["model"].update(changes)
    (run / "run.json").write_text(json.dumps(info))


def _last(run: Path) -> Path:
    return max((run / "ckpt").glob("step_*.safetensors"), key=lambda p: int(p.stem[5:]))


def _header(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _write_header(path: Path, header: dict, body: bytes) -> None:
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def _swap_same_shape_tensors(path: Path) -> None:
    header, body = _header(path)
    names = [k for k in header if k != "__metadata__"]
    a, b = next((a, b) for i, a in enumerate(names) for b in names[i + 1:]
                if header[a]["shape"] == header[b]["shape"] and header[a]["dtype"] == header[b]["dtype"])
    header[a]["data_offsets"], header[b]["data_offsets"] = header[b]["data_offsets"], header[a]["data_offsets"]
    _write_header(path, header, body)


def _edit_step(path: Path) -> None:
    header, body = _header(path)
    header["__metadata__"]["step"] = str(int(header["__metadata__"]["step"]) + 7)
    _write_header(path, header, body)


def _as_v1(path: Path) -> None:
    # The format written before the whole-file digest: a digest of the tensor bytes only.
    from safetensors.torch import save

    tensors, meta = _io.load_tensors(path)
    meta = {k: v for k, v in meta.items() if k != "sha256"} | {"format": "probe-ckpt-1"}
    meta["sha256"] = _io._body_digest(save(tensors, metadata=meta))
    path.write_bytes(save(tensors, metadata=meta))


def _link(target: Path, at: Path) -> None:
    if at.is_dir() and not at.is_symlink():
        shutil.rmtree(at)
    elif os.path.lexists(at):
        at.unlink()
    os.symlink(target, at)


def _fifo(at: Path) -> None:
    if at.is_dir():
        shutil.rmtree(at)
    elif os.path.lexists(at):
        at.unlink()
    os.mkfifo(at)


def _folder(at: Path) -> None:
    at.unlink()
    at.mkdir()


def _sparse(at: Path, size: int) -> None:
    with open(at, "r+b") as f:
        f.truncate(size)


def _interrupted(run: Path) -> None:
    _set_info(run, status="running")


A, T, P = "analyze", "train", "api"  # what may still work on the damaged run: the rest must refuse it
# name -> (damage(run, outside_run), the operations that may succeed)
CASES = {
    # run.json
    "run.json not JSON": (lambda r, o: (r / "run.json").write_text("{not json"), set()),
    "run.json empty": (lambda r, o: (r / "run.json").write_text(""), set()),
    "run.json a list": (lambda r, o: (r / "run.json").write_text("[1, 2]"), set()),
    "config.model a string": (lambda r, o: _set_info(r, config={**_info(r)["config"], "model": "gru"}), set()),
    "config.train a list": (lambda r, o: _set_info(r, config={**_info(r)["config"], "train": [1]}), set()),
    "no config": (lambda r, o: (r / "run.json").write_text('{"id": "x"}'), set()),
    "deep nesting": (lambda r, o: (r / "run.json").write_text('{"config": ' + "[" * 100000 + "]" * 100000 + "}"), set()),
    "run.json of 100 MB": (lambda r, o: _sparse(r / "run.json", 100 << 20), set()),
    "run.json a FIFO": (lambda r, o: _fifo(r / "run.json"), set()),
    "run.json a folder": (lambda r, o: _folder(r / "run.json"), set()),
    "run.json links outside": (lambda r, o: _link(o / "run.json", r / "run.json"), set()),
    "run.json links to /dev/zero": (lambda r, o: _link(Path("/dev/zero"), r / "run.json"), set()),
    "unknown arch": (lambda r, o: _set_model(r, arch="transformer"), set()),
    "hidden a string": (lambda r, o: _set_model(r, hidden="4"), set()),
    "hidden of a billion": (lambda r, o: _set_model(r, hidden=10**9), set()),
    "members zero": (lambda r, o: _set_model(r, members=0), set()),
    "members true": (lambda r, o: _set_model(r, members=True), set()),
    "arch params of another arch": (lambda r, o: _set_model(r, arch_params={"gain": float("nan")}), set()),
    "unknown task": (lambda r, o: _set_info(r, config={**_info(r)["config"], "task": {"name": "nope", "params": {}}}), {A, P}),
    "bad task params": (lambda r, o: _set_info(r, config={**_info(r)["config"],
                                                          "task": {"name": "parity", "params": {"max_len": -1}}}), {A, P}),
    "final a list": (lambda r, o: _set_info(r, final=[1]), set()),
    "diverged a list": (lambda r, o: _set_info(r, diverged=[1]), set()),
    "status a number": (lambda r, o: _set_info(r, status=5), set()),
    "id a number": (lambda r, o: _set_info(r, id=5), set()),
    # metrics.jsonl
    "metrics lines not objects": (lambda r, o: (r / "metrics.jsonl").write_text('5\n"x"\n[1]\nnull\n{"step": "a"}\n'), {A, T, P}),
    "metrics links outside": (lambda r, o: _link(o / "metrics.jsonl", r / "metrics.jsonl"), {T, P}),
    "metrics a FIFO": (lambda r, o: _fifo(r / "metrics.jsonl"), {T, P}),
    "metrics a folder": (lambda r, o: _folder(r / "metrics.jsonl"), {T, P}),
    "metrics binary garbage": (lambda r, o: (r / "metrics.jsonl").write_bytes(os.urandom(4096)), {A, T, P}),
    "metrics nested deeply": (lambda r, o: (r / "metrics.jsonl").write_text("[" * 100000 + "\n"), {A, T, P}),
    # checkpoints
    "ckpt a file": (lambda r, o: (shutil.rmtree(r / "ckpt"), (r / "ckpt").write_text("x")), set()),
    "ckpt links outside": (lambda r, o: _link(o / "ckpt", r / "ckpt"), set()),
    "ckpt missing": (lambda r, o: shutil.rmtree(r / "ckpt"), set()),
    "checkpoint a FIFO": (lambda r, o: _fifo(_last(r)), set()),
    "checkpoint links to /dev/zero": (lambda r, o: _link(Path("/dev/zero"), _last(r)), set()),
    "checkpoint links outside": (lambda r, o: _link(_last(o), _last(r)), set()),
    "checkpoint truncated": (lambda r, o: _last(r).write_bytes(_last(r).read_bytes()[:300]), set()),
    "checkpoint empty": (lambda r, o: _last(r).write_bytes(b""), set()),
    "checkpoint a folder": (lambda r, o: _folder(_last(r)), set()),
    "checkpoint of a terabyte (sparse)": (lambda r, o: _sparse(_last(r), 1 << 40), set()),
    "checkpoint bit flipped": (lambda r, o: _last(r).write_bytes(_last(r).read_bytes()[:-9] + b"\x01" + _last(r).read_bytes()[-8:]), set()),
    "checkpoint step edited, run interrupted": (lambda r, o: (_edit_step(_last(r)), _interrupted(r)), set()),
    "checkpoint tensors swapped, run interrupted": (lambda r, o: (_swap_same_shape_tensors(_last(r)), _interrupted(r)), set()),
    "checkpoint step edited, run done": (lambda r, o: _edit_step(_last(r)), set()),
    "checkpoint in the first format": (lambda r, o: _as_v1(_last(r)), {A, T, P}),
    "first-format checkpoint, step edited": (lambda r, o: (_as_v1(_last(r)), _edit_step(_last(r))), set()),
    # lock
    ".lock a folder": (lambda r, o: _folder(r / ".lock"), {A, P}),
    ".lock a FIFO": (lambda r, o: _fifo(r / ".lock"), {A, P}),
    ".lock links outside": (lambda r, o: _link(o / "sentinel", r / ".lock"), {A, P}),
    # analyses cache
    "analyses links outside": (lambda r, o: _link(o / "analyses", r / "analyses"), {T, P}),
    "analyses a file": (lambda r, o: (r / "analyses").write_text("x"), {T, P}),
    "cached result 5": (lambda r, o: ((r / "analyses").mkdir(), (r / "analyses" / "fake.json").write_text(json.dumps(
        {"analysis": "fake", "member": 0, "params": {}, "step": 6, "class": "x", "result": 5}))), {A, T, P}),
    "cached summary 5": (lambda r, o: ((r / "analyses").mkdir(), (r / "analyses" / "fake.json").write_text(json.dumps(
        {"analysis": "fake", "member": 0, "params": {}, "step": 6, "result": {"summary": 5}}))), {A, T, P}),
    "cache a FIFO": (lambda r, o: ((r / "analyses").mkdir(), os.mkfifo(r / "analyses" / "fake.json")), {A, T, P}),
    "cache links outside": (lambda r, o: ((r / "analyses").mkdir(), os.symlink(o / "analyses" / "fake.json",
                                                                              r / "analyses" / "fake.json")), {A, T, P}),
    # leftovers of a kill mid-write: harmless, and cleaned by the next writer
    "stale temporary files": (lambda r, o: ((r / ".run.json.x1.tmp").write_text("{"),
                                            (r / "ckpt" / ".step_6.safetensors.x2.tmp").write_bytes(b"\0" * 10)), {A, T, P}),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_run_is_one_bad_row_and_changes_nothing_else(case, template, tmp_path, fake_analysis,
                                                              monkeypatch, capsys):
    damage, may_work = CASES[case]
    run_src, other_src = template
    store, outside = tmp_path / "store", tmp_path / "outside"
    shutil.copytree(run_src, store / run_src.name, symlinks=True)
    shutil.copytree(other_src, store / other_src.name, symlinks=True)
    decoy = outside / "decoy"
    shutil.copytree(run_src, decoy, symlinks=True)
    _set_info(decoy, final={MARK: 0.5})
    (decoy / "metrics.jsonl").write_text(json.dumps({"step": 1, "member": 0, MARK: 0.5}) + "\n")
    (decoy / "analyses").mkdir()
    (decoy / "analyses" / "fake.json").write_text(json.dumps({"analysis": "fake", "member": 0, "params": {}, "step": 6,
                                                              "result": {"summary": {MARK: 1}}}))
    (decoy / "sentinel").write_text("outside")
    monkeypatch.chdir(tmp_path)
    run = store / run_src.name
    damage(run, decoy)
    neighbour, around = snapshot(store / other_src.name), snapshot(outside)

    rows = {r["id"]: r for r in list_runs(store)}
    assert rows[other_src.name]["status"] == "done"
    mine = rows.get(run_src.name) or rows.get(5)  # "id a number" keeps its own id in the row
    assert mine is not None and (mine["status"] == "done" or mine["status"].startswith(("unreadable: ", "stopped"))), mine

    code, out, err = run_cli(["runs", "--store", store], capsys)
    assert code == 0 and other_src.name in out and not err, err
    answers = [out]
    for op, argv in ((A, ["analyze", run_src.name, "fake", "--store", store]), (T, train_argv(store))):
        before = snapshot(store)
        code, out, err = run_cli(argv, capsys)
        answers += [out, err]
        if code != 0:
            assert one_error_line(code, err), (op, code, err)
            assert snapshot(store) == before, f"{op} failed but changed the store"
        else:
            assert op in may_work, f"{op} accepted a damaged run: {out}"
    try:
        open_run(run).model()
    except ValueError as e:
        answers.append(str(e))
    else:
        assert P in may_work, "the API loaded a damaged run"

    assert snapshot(store / other_src.name) == neighbour
    assert snapshot(outside) == around
    assert not any(MARK in a for a in answers), "something outside the store was read"
    if case == "stale temporary files":
        assert not list(store.rglob("*.tmp")), "the next writer cleans stale temporary files"


def test_a_store_entry_linking_to_a_run_elsewhere_is_not_listed_as_a_run(template, tmp_path, capsys):
    run_src, _ = template
    store = tmp_path / "store"
    store.mkdir()
    os.symlink(run_src, store / "elsewhere")
    rows = list_runs(store)
    assert [r["status"].split(" (")[0] for r in rows] == ["unreadable: a symbolic link"]
    with pytest.raises(ValueError, match="symbolic link"):
        open_run("elsewhere", store=store)
    code, _, err = run_cli(["analyze", "elsewhere", "fake", "--store", store], capsys)
    assert one_error_line(code, err)


def test_a_failed_train_leaves_no_folder(tmp_path, monkeypatch):
    import probe
    import tasks
    from probe._trainer import Trainer

    def broken(self, step, lr):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(Trainer, "step", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        train_tiny(tmp_path / "store")
    assert not (tmp_path / "store").exists()
    recall, parity = tasks.make("recall"), tasks.make("parity")
    with pytest.raises(ValueError, match="built for"):
        probe.train(recall, probe.models.make("gru", parity, hidden=4), store=tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()


def test_a_run_interrupted_at_a_first_format_checkpoint_resumes_and_writes_the_new_format(template, tmp_path):
    run_src, _ = template
    run = tmp_path / "store" / run_src.name
    shutil.copytree(run_src, run)
    for f in (run / "ckpt").glob("step_*.safetensors"):
        if int(f.stem[5:]) > 2:
            f.unlink()
    _interrupted(run)
    _as_v1(run / "ckpt" / "step_2.safetensors")
    assert _io.load_tensors(run / "ckpt" / "step_2.safetensors")[1]["format"] == "probe-ckpt-1"
    resumed = train_tiny(tmp_path / "store", seed=0)
    assert resumed.status == "done" and _io.load_tensors(run / "ckpt" / "step_6.safetensors")[1]["format"] == "probe-ckpt-2"
    a, b = resumed.load_checkpoint(6)[0], open_run(run_src).load_checkpoint(6)[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical to the run never stopped
