"""Time nonlinear RNN layers run step by step against Newton's method over all steps (probe.newton).

    python benchmarks/parallel_rnn.py                    # cuda if available, else cpu
    python benchmarks/parallel_rnn.py --device cpu --T 256 1024 --repeats 3

Cases (B=16, float32, inputs of width 8 entering one-hot, one layer): ParaRNN's diagonal cells
``gru_diag`` and ``lstm_diag`` at H=64, whose Newton step is an elementwise (2x2-block) scan, and a
dense ``gru`` at H=16, where "deer" scans 16x16 matrices and "quasi" only their diagonal. For each
T, every solver of a case runs the forward (no gradients) and the forward+backward (loss = sum of
outputs); the solvers of a row are timed in this process, interleaved round by round, medians
after one warm-up, so the ratios against "sequential" survive a change in the machine's load.
The Newton iterations of the last call are printed too (they set the cost of a solve).

The same code runs on CUDA unchanged (the scans choose their GPU backends there). The issue's
GPU target, from ParaRNN: >= 10x over the loop at T = 16384 for the diagonal cells.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from probe.models import make

B, D_IN = 16, 8
CASES = {  # arch: (hidden, solvers)
    "gru_diag": (64, ("sequential", "deer")),
    "lstm_diag": (64, ("sequential", "deer", "quasi")),
    "gru": (16, ("sequential", "deer", "quasi")),
}


def measure(fns: dict, sync, repeats: int) -> dict:
    """Median ms per call of each fns[name](), interleaved round by round after one warm-up each."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    sync()
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--T", type=int, nargs="+", default=None, help="sequence lengths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archs", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    device = torch.device(args.device)
    Ts = args.T or ((256, 1024, 4096, 16384) if device.type == "cuda" else (256, 1024, 4096))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load {os.getloadavg()[0]:.2f}, B={B}, float32")
    print(f"{'arch':10s} {'T':>6s} {'solver':10s} {'fwd ms':>10s} {'x seq':>7s} {'fwd+bwd ms':>11s} {'x seq':>7s} {'iters':>5s}")
    dims = {"input_kind": "vectors", "d_input": D_IN, "d_output": 2}
    for arch in args.archs:
        hidden, solvers = CASES[arch]
        models = {s: make(arch, dims, hidden=hidden, seed=0, embedding="onehot", solver=s).to(device)
                  for s in solvers}
        for T in Ts:
            x = torch.randn(B, T, D_IN, generator=torch.Generator().manual_seed(T)).to(device)

            def forward(model=None, x=x):
                with torch.no_grad():
                    model(x)

            def both(model=None, x=x):
                model.zero_grad(set_to_none=True)
                model(x).sum().backward()
            fwd = measure({s: (lambda m=m: forward(m)) for s, m in models.items()}, sync, args.repeats)
            fb = measure({s: (lambda m=m: both(m)) for s, m in models.items()}, sync, args.repeats)
            for s, m in models.items():
                info = m.layers[0].last_solve
                iters = "-" if s == "sequential" or info is None else str(info.iterations)
                print(f"{arch:10s} {T:6d} {s:10s} {fwd[s]:10.1f} {fwd['sequential'] / fwd[s]:7.2f} "
                      f"{fb[s]:11.1f} {fb['sequential'] / fb[s]:7.2f} {iters:>5s}", flush=True)


if __name__ == "__main__":
    main()
