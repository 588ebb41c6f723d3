"""Time probe.scan.linear_scan against an autograd loop, accelerated-scan's reference scan and
the memory floor of one elementwise pass.

    python benchmarks/scan.py                 # cuda if available, else cpu with 2 threads
    python benchmarks/scan.py --device cpu

All ratios are measured in this process, each a median of several runs after a warm-up, so they
survive a slower machine better than the absolute milliseconds do. They do not survive a busy
one: an op split over 2 threads waits for whichever thread the OS parked, and a scan is hundreds
of small ops while the floor is one. The load average is printed for that reason; on a shared
machine `--stat min` is the better estimate of what the code costs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from accelerated_scan.ref import scan as ref_scan

from probe.scan import choose_backend, linear_scan, set_pool_limit

B, D = 16, 256
TS = (256, 1024, 4096, 16384)


def timer(device: torch.device, repeats: int, stat: str):
    """time(fn, repeats=repeats) -> median (or min) wall time of fn() in ms, after a warm-up."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    reduce = statistics.median if stat == "median" else min

    def time_ms(fn, repeats: int = repeats) -> float:
        fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return 1e3 * reduce(times)

    return time_ms


def loop_scan(a, b):
    # unbind once: indexing a[:, t] inside the loop would make autograd's backward quadratic
    h = torch.zeros_like(b[:, 0])
    states = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states, dim=1)  # (B, T, D)


def forward_backward(scan, a, b, g):
    a.grad = b.grad = None
    scan(a, b).backward(g)


def row(T: int, device: torch.device, time_ms) -> dict:
    gen = torch.Generator(device=device).manual_seed(T)
    # decays in [0.5, 1): the range of LRU's |a| and of most forget gates
    a = (0.5 + 0.5 * torch.rand(B, T, D, generator=gen, device=device)).requires_grad_()
    b = torch.randn(B, T, D, generator=gen, device=device).requires_grad_()
    g = torch.randn(B, T, D, generator=gen, device=device)  # (B, T, D)
    h = torch.empty(B, T, D, device=device)
    # accelerated-scan wants (B, D, T) contiguous; transpose once, outside the timing
    a_ref = a.detach().transpose(1, 2).contiguous().requires_grad_()  # (B, D, T)
    b_ref = b.detach().transpose(1, 2).contiguous().requires_grad_()  # (B, D, T)
    g_ref = g.transpose(1, 2).contiguous()  # (B, D, T)
    assert T & (T - 1) == 0, "accelerated-scan's reference scan pads T to a power of two"

    r = {"T": T, "backend": choose_backend(device, T)}
    with torch.no_grad():
        r["floor"] = time_ms(lambda: torch.mul(a, b, out=h))
        r["floor_alloc"] = time_ms(lambda: torch.mul(a, b))
        r["fwd"] = time_ms(lambda: linear_scan(a, b))
        r["ref_fwd"] = time_ms(lambda: ref_scan(a_ref, b_ref))
    r["fwdbwd"] = time_ms(lambda: forward_backward(linear_scan, a, b, g))
    limit = set_pool_limit(0)  # the same without reusing freed output memory (probe._buffers)
    r["fwdbwd_fresh"] = time_ms(lambda: forward_backward(linear_scan, a, b, g))
    set_pool_limit(limit)
    r["ref_fwdbwd"] = time_ms(lambda: forward_backward(ref_scan, a_ref, b_ref, g_ref), repeats=3)
    # the autograd loop takes seconds at large T: one timed run is enough to see the ratio
    r["loop_fwdbwd"] = time_ms(lambda: forward_backward(loop_scan, a, b, g),
                               repeats=1 if T >= 4096 else 3)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--T", type=int, nargs="+", default=list(TS))
    parser.add_argument("--stat", choices=["median", "min"], default="median")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)

    print(f"B={B} D={D} float32 device={device} threads={torch.get_num_threads()} "
          f"{args.stat} of {args.repeats} torch={torch.__version__} "
          f"load average before={os.getloadavg()[0]:.2f}")
    header = (f"{'T':>6} {'backend':>10} {'floor ms':>9} {'ours fwd':>9} {'fwd/floor':>9} "
              f"{'fwd/alloc-floor':>15} {'ours f+b':>9} {'f+b/floor':>9} {'loop f+b':>9} "
              f"{'loop f+b/ours':>13} {'no-pool f+b':>11} "
              f"{'ref fwd/ours':>12} {'ref f+b/ours':>12}")
    print(header)
    print("-" * len(header))
    rows = {}
    for T in args.T:
        r = rows[T] = row(T, device, timer(device, args.repeats, args.stat))
        print(f"{T:>6} {r['backend']:>10} {r['floor']:>9.2f} {r['fwd']:>9.2f} "
              f"{r['fwd'] / r['floor']:>9.2f} {r['fwd'] / r['floor_alloc']:>15.2f} "
              f"{r['fwdbwd']:>9.2f} {r['fwdbwd'] / r['floor']:>9.2f} {r['loop_fwdbwd']:>9.1f} "
              f"{r['loop_fwdbwd'] / r['fwdbwd']:>13.1f} {r['fwdbwd_fresh']:>11.2f} {r['ref_fwd'] / r['fwd']:>12.2f} "
              f"{r['ref_fwdbwd'] / r['fwdbwd']:>12.2f}", flush=True)
    print("ms are wall times; floor: torch.mul(a, b, out=h); alloc-floor: torch.mul(a, b), which "
          "also pays for fresh output memory (linear_scan reuses freed memory instead); f+b: forward+backward; loop: "
          "autograd through a Python loop over unbind-ed steps; no-pool: ours with set_pool_limit(0), "
          "outputs in fresh memory every call; ref: accelerated_scan.ref.scan")
    print(f"load average after={os.getloadavg()[0]:.2f}")
    if 4096 in rows:
        r = rows[4096]
        fwd_ok = r["fwd"] <= 3 * r["floor"]
        bwd_ok = r["loop_fwdbwd"] >= 10 * r["fwdbwd"]
        print(f"targets at T=4096: forward within 3x of the floor: "
              f"{'yes' if fwd_ok else 'NO'} ({r['fwd'] / r['floor']:.2f}x); forward+backward "
              f">= 10x faster than the autograd loop: {'yes' if bwd_ok else 'NO'} "
              f"({r['loop_fwdbwd'] / r['fwdbwd']:.1f}x)")


if __name__ == "__main__":
    main()
