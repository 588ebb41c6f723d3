"""Wall time of a 16-point sweep of small parity runs: 1 local worker, 2 local workers, local Ray.

    python benchmarks/sweep.py                 # 16 points (2 archs x 2 sizes x 2 seeds x 2 lrs), 200 then 1000 steps
    python benchmarks/sweep.py --steps 50 --no-ray

Each contender trains the same grid into its own fresh store, one after another in this
process (the engines start their own workers; their start-up is part of the time, as it is for
a user). Targets (issue 26), on 2 cores: ``--workers 2`` at least 1.7x faster than one worker;
Ray on this machine (``ray.init(num_cpus=2)``, one CPU per point) within 1.3x of the local
engine with 2 workers. The load average is printed: other jobs on the same cores distort
everything. Each worker process pays a fixed start (torch, transformer-lens and torch._dynamo
imports, ~3.5 s of CPU) before its first point; at 200 steps (the issue's example file) that is a
third of one worker's whole sweep, so the 1000-step grid (the sweep files' default length) shows
what the engine does with the rest.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/tasks.py would shadow
# the tasks package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from probe import sweep

SPEC = """
task = "parity"
arch = ["gru", "elman"]
hidden = [4, 16]
seeds = [0, 1]
members = 1
steps = {steps}
[set]
"train.lr" = [1e-3, 3e-3]
"train.eval_splits" = [["train", "len_50"]]
"""


def _time(spec, store: Path, **kw) -> float:
    t0 = time.perf_counter()
    rows, failed = sweep.run_sweep(spec, store, out=io.StringIO(), **kw)
    assert not failed and all(r["status"] == "done" for r in rows), failed
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    for steps in args.steps:
        _grid(steps, args.no_ray)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _grid(steps: int, no_ray: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.toml"
        path.write_text(SPEC.format(steps=steps))
        spec = sweep.load_spec(path)
        print(f"{len(spec.points)} points, {steps} steps; load average {os.getloadavg()[0]:.1f} "
              f"on {len(os.sched_getaffinity(0))} cores")
        one = _time(spec, Path(tmp) / "one", workers=1)
        two = _time(spec, Path(tmp) / "two", workers=2)
        print(f"  local, 1 worker : {one:7.1f} s")
        print(f"  local, 2 workers: {two:7.1f} s   speed-up {one / two:.2f}x (target >= 1.7x)")
        if no_ray:
            return
        try:
            import ray
        except ModuleNotFoundError:
            print("  ray: not installed (pip install -e \".[ray]\")")
            return
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            on_ray = _time(spec, Path(tmp) / "ray", engine="ray", num_cpus=1)
        finally:
            ray.shutdown()
        print(f"  ray, 2 CPUs     : {on_ray:7.1f} s   {on_ray / two:.2f}x the local engine (target <= 1.3x)")

if __name__ == "__main__":
    main()
