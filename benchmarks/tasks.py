"""Sampling cost of every task, as a fraction of one training step of a 64-unit GRU.

For each task with default parameters: the median time to sample one training batch
(n=128, a fresh seed each time) and the median time of one training step on such a batch
(forward, masked loss, backward, AdamW step) of ``probe.models.make("gru", task, hidden=64)``,
measured side by side in the same process. The target is a ratio below 0.10 for every task.
Where ``probe.models`` cannot be imported, the step uses a ``torch.nn.GRU`` with an embedding
(tokens) or linear (vectors) input and a linear readout instead, and the table says so;
``--model torch`` asks for that fused-kernel GRU on purpose, the strictest baseline.

    python benchmarks/tasks.py [--repeats 20] [--tasks parity charlm] [--model auto|probe|torch] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

# Run as a script, this file's folder comes first on sys.path and would shadow the real
# ``tasks`` package with this very file; drop it before importing.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import tasks  # noqa: E402

TARGET = 0.10
BATCH = 128
HIDDEN = 64


class TorchGRU(torch.nn.Module):
    """Fallback model: embedding / linear input, one ``nn.GRU`` layer, linear readout."""

    def __init__(self, task: tasks.Task, hidden: int) -> None:
        super().__init__()
        if task.input_kind == "tokens":
            self.embed = torch.nn.Embedding(task.vocab_size, hidden)
        else:
            self.embed = torch.nn.Linear(task.d_input, hidden)
        self.gru = torch.nn.GRU(hidden, hidden, batch_first=True)
        self.readout = torch.nn.Linear(hidden, task.d_output)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.embed(inputs))  # (B, T, hidden)
        return self.readout(h)  # (B, T, d_output)


def build_model(task: tasks.Task, kind: str = "auto") -> tuple[torch.nn.Module, str]:
    if kind == "torch":
        return TorchGRU(task, HIDDEN), "torch.nn.GRU (fused kernel; the strictest baseline)"
    try:
        import probe.models

        return probe.models.make("gru", task, hidden=HIDDEN), "probe.models.make('gru', hidden=64)"
    except Exception as error:  # noqa: BLE001 - any failure means the other engineer's module is not ready
        if kind == "probe":
            raise
        return TorchGRU(task, HIDDEN), f"torch.nn.GRU fallback ({type(error).__name__}: {error})"


def masked_loss(task: tasks.Task, outputs: torch.Tensor, batch: tasks.Batch) -> torch.Tensor:
    if task.loss == "ce":
        return F.cross_entropy(outputs[batch.mask], batch.targets[batch.mask])
    return (outputs - batch.targets)[batch.mask].pow(2).mean()


def measure(task: tasks.Task, repeats: int, model_kind: str = "auto", warmup: int = 3) -> dict[str, float]:
    model, label = build_model(task, model_kind)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sample_times, step_times = [], []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        batch = task.sample(n=BATCH, seed=i)
        sampled = time.perf_counter()
        loss = masked_loss(task, model(batch.inputs), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        stepped = time.perf_counter()
        if i >= warmup:
            sample_times.append(sampled - start)
            step_times.append(stepped - sampled)
    sample_ms, step_ms = 1e3 * statistics.median(sample_times), 1e3 * statistics.median(step_times)
    return {"sample_ms": sample_ms, "step_ms": step_ms, "ratio": sample_ms / step_ms, "model": label}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tasks", nargs="*", default=tasks.names(), choices=tasks.names())
    parser.add_argument("--model", choices=("auto", "probe", "torch"), default="auto",
                        help="auto: probe.models if it imports, else torch.nn.GRU")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rows, models = [], set()
    for name in args.tasks:
        start = time.perf_counter()
        task = tasks.make(name)
        build_s = time.perf_counter() - start
        result = measure(task, args.repeats, args.model)
        models.add(result["model"])
        rows.append((name, result, build_s))

    print(f"batch {BATCH}, median of {args.repeats}, {torch.get_num_threads()} torch threads; "
          f"step: {'; '.join(sorted(models))}")
    header = f"{'task':<16}{'sample ms':>11}{'step ms':>10}{'ratio':>8}  {'target <0.10':<13}{'build s':>8}"
    print(header)
    print("-" * len(header))
    for name, r, build_s in rows:
        met = "yes" if r["ratio"] < TARGET else "NO"
        print(f"{name:<16}{r['sample_ms']:>11.2f}{r['step_ms']:>10.1f}{r['ratio']:>8.3f}  {met:<13}{build_s:>8.2f}")
    return 0 if all(r["ratio"] < TARGET for _, r, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
