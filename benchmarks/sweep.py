"""Wall time of a 16-point sweep of small parity runs: 1 local worker, 2 local workers, local Ray.

    python benchmarks/sweep.py                 # the issue's file as written, then 200 and 1000 steps with short evals
    python benchmarks/sweep.py --cases short --steps 50 --no-ray

Each contender trains the same grid into its own fresh store, one after another in this
process (the engines start their own workers; their start-up is part of the time, as it is for
a user). Targets (issue 26), on 2 cores: ``--workers 2`` at least 1.7x faster than one worker;
Ray on this machine (``ray.init(num_cpus=2)``, one CPU per point) within 1.3x of the local
engine with 2 workers. The load average is printed: other jobs on the same cores distort
everything.

Two grids: the issue's example file exactly as written (200 steps, parity's default evaluation
on lengths up to 10,000), and the same grid evaluated on the training split and length 50 only
("short"), at 200 and 1000 steps. Each worker process pays a fixed start (torch, transformer-lens
and torch._dynamo imports, ~3.5 s of CPU) before its first point; on the short 200-step grid that
is a quarter of one worker's whole sweep, so its speed-up shows that start more than the engine.
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
"""
SHORT_EVALS = '"train.eval_splits" = [["train", "len_50"]]\n'


def _time(spec, store: Path, **kw) -> float:
    t0 = time.perf_counter()
    rows, failed = sweep.run_sweep(spec, store, out=io.StringIO(), **kw)
    assert not failed and all(r["status"] == "done" for r in rows), failed
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", choices=["all", "as-written", "short"], default="all",
                        help="the issue's file as written, the short-evaluation grid, or both")
    parser.add_argument("--steps", type=int, nargs="+", default=[200, 1000], help="steps of the short grid")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    if args.cases in ("all", "as-written"):
        _grid(SPEC.format(steps=200), "the issue's file as written", args.no_ray)
    if args.cases in ("all", "short"):
        for steps in args.steps:
            _grid(SPEC.format(steps=steps) + SHORT_EVALS, "short evals (train, len_50)", args.no_ray)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _grid(text: str, label: str, no_ray: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.toml"
        path.write_text(text)
        spec = sweep.load_spec(path)
        print(f"{len(spec.points)} points, {spec.points[0].steps} steps, {label}; load average "
              f"{os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cores")
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
