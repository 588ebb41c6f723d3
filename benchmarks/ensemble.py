"""Training steps per second: M ensemble members at once against M models one after another.

    python benchmarks/ensemble.py                  # M in 1, 16, 64; hidden 32, T 64, batch 64, parity
    python benchmarks/ensemble.py --threads 1 --members 1 16
    python benchmarks/ensemble.py --device cuda --members 1 16 64 256   # cuda is the default when present

For the GRU the baseline is what one would write without probe: M separate ``torch.nn.GRU`` +
``torch.nn.Linear`` models (with an ``nn.Embedding`` in front, as probe's GRU has), each trained
by its own AdamW with ``clip_grad_norm_``, one after another. For LRU and Hawk, which have no
torch module, the baseline is probe's own single model (members=1) in the same loop. The
ensemble step is probe's real training step (per-member loss, per-member clipping, AdamW); the
last two columns time the ensemble model alone (forward, loss, backward, AdamW) to show what the
trainer's per-member bookkeeping adds.

All contenders are timed in this process, interleaved, as medians after a warm-up, so the ratios
survive a busy machine better than the absolute numbers; the load average is printed since other
jobs on the same cores distort everything. Targets: on a 2-core CPU, at M=64 the GRU ensemble is
at least 3x faster than the loop of torch.nn.GRU; on a GPU, at M=256 at least 30x (the loop then
runs cuDNN's GRU, one model at a time).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/tasks.py would shadow
# the tasks package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import probe  # noqa: E402
import tasks  # noqa: E402
from probe._trainer import Trainer
from probe.training import TrainConfig

HIDDEN, T, BATCH, LR, CLIP = 32, 64, 64, 1e-3, 1.0


def median_seconds(steps: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median wall time of one call of each ``steps[name]()``, interleaved round by round so that a
    change in the machine's load hits every contender alike; two warm-up calls each first. On a
    GPU each call is timed to the end of its kernels."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for step in steps.values():
        step()
        step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


class TorchGRU(nn.Module):
    """The baseline: embedding, torch.nn.GRU, linear readout."""

    def __init__(self, vocab: int, d_out: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab, HIDDEN)
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.readout = nn.Linear(HIDDEN, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.gru(self.embed(x))[0])  # (B, T, d_out)


def loop_step(models: list[nn.Module], opts: list, batch) -> None:
    """One training step of every model in turn, as a plain loop would do it."""
    mask = batch.mask.float()
    for model, opt in zip(models, opts):
        opt.zero_grad(set_to_none=True)
        logits = model(batch.inputs)  # (B, T, K)
        loss = (F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten(), reduction="none")
                * mask.flatten()).sum() / mask.sum()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()


def ensemble_stepper(task, arch: str, members: int, store: Path, device: torch.device):
    """probe's training step for an ensemble of ``members`` (batches sampled as in training)."""
    model = probe.models.make(arch, task, hidden=HIDDEN, members=members, seed=0).to(device)
    cfg = TrainConfig(steps=10**6, batch_size=BATCH, lr=LR, grad_clip=CLIP, eval_splits=["train"], eval_n=8)
    trainer = Trainer(task, model, cfg, store, device)
    counter = iter(range(10**9))
    return lambda: trainer.step(next(counter), LR)


def bare_stepper(task, arch: str, members: int, device: torch.device):
    """The ensemble model alone: forward, summed loss, backward, AdamW (no per-member bookkeeping)."""
    model = probe.models.make(arch, task, hidden=HIDDEN, members=members, seed=0).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    counter = iter(range(10**9))

    def step():
        batch = task.sample(n=BATCH, seed=next(counter), length=T).to(device)
        opt.zero_grad(set_to_none=True)
        logits = model(batch.inputs)  # (M, B, T, K) or (B, T, K)
        target = batch.targets.expand(logits.shape[:-1])
        F.cross_entropy(logits.flatten(0, -2), target.flatten()).backward()
        opt.step()
    return step


def baseline_stepper(task, arch: str, members: int, device: torch.device):
    if arch == "gru":
        models = [TorchGRU(task.vocab_size, task.d_output, seed=i).to(device) for i in range(members)]
    else:
        models = [probe.models.make(arch, task, hidden=HIDDEN, members=1, seed=i).to(device)
                  for i in range(members)]
    opts = [torch.optim.AdamW(m.parameters(), lr=LR, weight_decay=0.0) for m in models]
    # Batches come from the task as in training (sampling costs ~0.1 ms, the same on both sides).
    counter = iter(range(10**9))
    return lambda: loop_step(models, opts, task.sample(n=BATCH, seed=next(counter), length=T).to(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--archs", nargs="+", default=["gru", "lru", "hawk"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    task = tasks.make("parity", length=T)  # every string has T bits: T = 64 steps
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"hidden {HIDDEN}, T {T}, batch {BATCH}, AdamW + clipping; device {device} ({where}); "
          f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    header = (f"{'arch':<6}{'M':>4}  {'baseline':<22}{'loop steps/s':>13}{'ensemble steps/s':>18}{'ratio':>8}"
              f"{'bare model steps/s':>20}{'trainer overhead':>18}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            base_name = "torch.nn.GRU loop" if arch == "gru" else f"probe {arch} M=1 loop"
            for m in args.members:
                t = median_seconds({"ens": ensemble_stepper(task, arch, m, Path(tmp), device),
                                    "loop": baseline_stepper(task, arch, m, device),
                                    "bare": bare_stepper(task, arch, m, device)}, args.repeats, device)
                ens, loop, bare = t["ens"], t["loop"], t["bare"]
                print(f"{arch:<6}{m:>4}  {base_name:<22}{1 / loop:>13.2f}{1 / ens:>18.2f}{loop / ens:>7.1f}x"
                      f"{1 / bare:>20.2f}{ens / bare - 1:>17.0%}", flush=True)


if __name__ == "__main__":
    main()
