"""Listing a large store: ``probe.list_runs`` with and without the store's index (issue 26).

Builds a store of ``--runs`` runs (default 1,000) whose ``run.json`` is a copy of a real one (a
tiny parity run trained here first, its id changed per copy, dated an hour ago so every entry is
indexed), then times, each the median and the min of ``--repeats``, side by side in this process:

* **no index**: every ``run.json`` read and parsed (what ``list_runs`` did before the index);
* **cold**: no ``index.json`` yet: every ``run.json`` read, and the index written;
* **warm**: the index is valid: one ``scandir``, one ``lstat`` per run, one read of the index;
* **warm, 1% changed**: 1% of the ``run.json`` files rewritten since the index was written;
* **explorer table**: ``app.logic.runs_table`` (what the runs page shows), warm.

The target: 1,000 runs listed in under a second. File contents are in the page cache in every
case (dropping it needs root), so "cold" is the cost of parsing, not of a cold disk.

    python benchmarks/runs_index.py [--runs 1000] [--repeats 5] [--store DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_store(root: Path, n: int) -> None:
    """``n`` runs copied from one real run.json, each with its own id, dated an hour ago."""
    import probe
    import tasks

    seed_store = root / "_seed"
    task = tasks.make("parity")
    probe.train(task, probe.models.make("gru", task, hidden=4, members=2, seed=0), steps=2, batch_size=8,
                eval_splits=["train"], eval_n=16, store=seed_store, progress=False)
    info = json.loads(next(seed_store.glob("*/run.json")).read_text())
    shutil.rmtree(seed_store)
    hour_ago = time.time() - 3600
    for i in range(n):
        rid = f"parity-gru-h4-{i:08x}"
        (root / rid).mkdir()
        info["id"] = rid
        info["config"]["train"]["seed"] = i
        path = root / rid / "run.json"
        path.write_text(json.dumps(info, indent=1, sort_keys=True))
        os.utime(path, (hour_ago, hour_ago))
    print(f"{n} runs, run.json of {path.stat().st_size} bytes each")


def _median(fn, repeats: int, before=lambda: None) -> tuple[float, float]:
    """Median and min seconds of ``fn`` (the min is the figure on a loaded machine)."""
    times = []
    for _ in range(repeats):
        before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--store", help="build the store here (default: a temporary folder)")
    args = p.parse_args(argv)

    from app import logic
    from probe import _runindex
    from probe.runs import list_runs

    tmp = None if args.store else tempfile.TemporaryDirectory()
    root = Path(args.store or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    build_store(root, args.runs)
    index = root / _runindex.NAME
    drop = lambda: index.unlink(missing_ok=True)

    load, save = _runindex.load, _runindex.save
    _runindex.load, _runindex.save = (lambda root: ({}, 0)), (lambda *a: None)
    none = _median(lambda: list_runs(root), args.repeats)
    _runindex.load, _runindex.save = load, save
    cold = _median(lambda: list_runs(root), args.repeats, before=drop)
    list_runs(root)
    warm = _median(lambda: list_runs(root), args.repeats)
    changed = sorted(root.glob("*/run.json"))[:: 100]

    def touch():  # rewrite 1% of the run.json files, dated a minute ago, and index the rest
        drop()
        list_runs(root)
        for f in changed:
            f.write_text(f.read_text())
            os.utime(f, (time.time() - 60,) * 2)

    partial = _median(lambda: list_runs(root), args.repeats, before=touch)
    list_runs(root)
    table = _median(lambda: logic.runs_table(root), args.repeats)
    assert len(list_runs(root)) == args.runs
    print(f"{'listing of ' + str(args.runs) + ' runs':<28} {'median s':>9} {'min s':>9}")
    for name, (med, low) in (("no index", none), ("cold (index written)", cold), ("warm", warm),
                             ("warm, 1% changed", partial), ("explorer table, warm", table)):
        print(f"{name:<28} {med:>9.4f} {low:>9.4f}")
    print(f"warm speed-up over no index (median): {none[0] / warm[0]:.1f}x; index {index.stat().st_size} bytes")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
