"""Training speed of the README's API snippet against ``probe train``: the same run, both ways.

Each variant is a fresh Python process started without ``OMP_NUM_THREADS`` (as a new user pastes
the snippet), training the README's model (parity, GRU, hidden 64, 4 members) for ``--steps``
steps into its own store; steps per second come from the run's ``elapsed_s`` in ``run.json``,
the same training-loop clock for every variant. Only the training split is evaluated (parity's
length-10,000 splits would otherwise dominate the clock). Variants, run in turn ``--repeats`` times:

    cli       probe train parity --arch gru --hidden 64 --members 4 --steps S
    api       probe.train(task, model, steps=S)              (probe.threads decides: 1 thread)
    api_all   probe.train(..., threads=torch.get_num_threads())   torch's own default, as before

The target: api within 10 % of cli. api_all shows what the API cost before ``probe.threads``.

    python benchmarks/threads.py [--steps 60] [--repeats 3] [--hidden 64]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_API = """
import sys, torch, probe, tasks
steps, hidden, store, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
task = tasks.make("parity")
model = probe.models.make("gru", task, hidden=hidden, members=4, seed=0)
threads = torch.get_num_threads() if mode == "api_all" else None
probe.train(task, model, steps=steps, store=store, progress=False, threads=threads, eval_splits=["train"])
"""


def _command(variant: str, steps: int, hidden: int, store: str) -> list[str]:
    if variant == "cli":
        return [sys.executable, "-m", "probe.cli", "train", "parity", "--arch", "gru", "--hidden", str(hidden),
                "--members", "4", "--steps", str(steps), "--store", store, "--set", 'train.eval_splits=["train"]']
    return [sys.executable, "-c", _API, str(steps), str(hidden), store, variant]


def steps_per_s(variant: str, steps: int, hidden: int) -> float:
    """Train once in a fresh process; the run's steps per second of training-loop time."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PROBE_PROGRESS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as store:
        subprocess.run(_command(variant, steps, hidden, store), env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        info = json.loads(next(Path(store).glob("*/run.json")).read_text())
    return info["step"] / info["elapsed_s"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--variants", nargs="+", default=["cli", "api", "api_all"])
    args = ap.parse_args(argv)
    rates: dict[str, list[float]] = {v: [] for v in args.variants}
    for _ in range(args.repeats):  # in turn, so load changes hit every variant alike
        for v in args.variants:
            rates[v].append(steps_per_s(v, args.steps, args.hidden))
    cpus = os.cpu_count()
    print(f"parity, gru hidden {args.hidden}, 4 members, {args.steps} steps, {args.repeats} repeats, "
          f"{cpus} CPUs seen, no OMP_NUM_THREADS")
    ref = statistics.median(rates["cli"]) if "cli" in rates else None
    for v, xs in rates.items():
        med = statistics.median(xs)
        vs = f"  {med / ref:.2f}x cli" if ref else ""
        print(f"{v:8s} median {med:7.1f} steps/s  (runs: {', '.join(f'{x:.1f}' for x in xs)}){vs}")


if __name__ == "__main__":
    main()
