"""Time probe.scan.linear_scan against an autograd loop, accelerated-scan and the memory floor.

    python benchmarks/scan.py                 # cuda if available, else cpu with 2 threads
    python benchmarks/scan.py --device cpu --T 4096 --stat min

Two cases, B=16 D=256 float32, ``a`` and ``b`` leaf tensors that require grad: ``a`` full-size
(B, T, D), as Hawk's and minGRU's gates are, and ``a`` of shape (D,) broadcast over batch and
time, as LRU's decay is. Forward+backward is ``linear_scan(a, b).backward(g)`` with a given
``g`` (the gradients of the call before are cleared untimed); the loop is autograd through a
Python loop over ``unbind``-ed steps. The same code runs on CUDA, where accelerated-scan's fused
kernel (``accelerated_scan.warp``, else the Triton ``accelerated_scan.scalar``) is timed too
when it imports.

Every contender of a row is timed in this process, interleaved round by round (as medians, or
minima with ``--stat min``, after a warm-up), so a change in the machine's load hits them alike
and the ratios survive a slower machine better than the milliseconds do. They do not survive a
busy one: an op split over 2 threads waits for whichever thread the OS parked, and the loop is
thousands of small ops while the floor is one. The load average is printed for that reason.
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
CASES = ("full", "bcast")  # a of shape (B, T, D), or (D,) broadcast over batch and time


def fused_accelerated_scan(device: torch.device):
    """accelerated-scan's fused kernel for this device, as (name, scan(gates, tokens) on
    (B, D, T)), or None: it exists only for CUDA and needs nvcc (warp) or Triton (scalar)."""
    if device.type != "cuda":
        return None
    for name in ("warp", "scalar"):
        try:
            module = __import__(f"accelerated_scan.{name}", fromlist=["scan"])
            return f"accelerated_scan.{name}", module.scan
        except Exception as error:  # a missing compiler fails at import time
            print(f"accelerated_scan.{name} unavailable: {type(error).__name__}: {error}")
    return None


def measure(fns: dict, device: torch.device, repeats: int, stat: str, slow: dict,
            before=lambda: None) -> dict:
    """ms per call of each fns[name](), interleaved round by round after one warm-up call each;
    a name in ``slow`` runs only in the first slow[name] rounds (the autograd loop at large T).
    ``before()`` runs untimed before every call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    reduce = statistics.median if stat == "median" else min
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        before()
        fn()
        sync()
    for i in range(repeats):
        for name, fn in fns.items():
            if i >= slow.get(name, repeats):
                continue
            before()
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * reduce(t) for name, t in times.items()}


def loop_scan(a, b):
    # unbind once: indexing a[:, t] inside the loop would make autograd's backward quadratic
    h = torch.zeros_like(b[:, 0])
    steps = a.unbind(1) if a.dim() == 3 else [a] * b.shape[1]  # a (B, T, D) or (D,)
    states = []
    for a_t, b_t in zip(steps, b.unbind(1)):
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states, dim=1)  # (B, T, D)


def forward_backward(scan, a, b, g):
    scan(a, b).backward(g)


def without_pool(fn):
    def run():
        limit = set_pool_limit(0)  # outputs in fresh memory every call (see probe._buffers)
        try:
            fn()
        finally:
            set_pool_limit(limit)
    return run


def row(T: int, case: str, device: torch.device, args, accelerated) -> dict:
    gen = torch.Generator(device=device).manual_seed(T)
    # decays in [0.5, 1): the range of LRU's |a| and of most forget gates
    a_shape = (B, T, D) if case == "full" else (D,)
    a = (0.5 + 0.5 * torch.rand(a_shape, generator=gen, device=device)).requires_grad_()
    b = torch.randn(B, T, D, generator=gen, device=device).requires_grad_()
    g = torch.randn(B, T, D, generator=gen, device=device)  # (B, T, D)
    out = torch.empty(B, T, D, device=device)
    floor_a = a.detach().expand(B, T, D).contiguous()  # (B, T, D)

    fns = {"floor": lambda: torch.mul(floor_a, b.detach(), out=out),
           "fwd": lambda: linear_scan(a.detach(), b.detach()),
           "fb": lambda: forward_backward(linear_scan, a, b, g),
           "loop": lambda: forward_backward(loop_scan, a, b, g)}
    if case == "full":
        # accelerated-scan wants (B, D, T) contiguous; transpose once, outside the timing
        assert T & (T - 1) == 0, "accelerated-scan's reference scan pads T to a power of two"
        a_ref = a.detach().transpose(1, 2).contiguous().requires_grad_()  # (B, D, T)
        b_ref = b.detach().transpose(1, 2).contiguous().requires_grad_()  # (B, D, T)
        g_ref = g.transpose(1, 2).contiguous()  # (B, D, T)
        fns["ref"] = lambda: forward_backward(ref_scan, a_ref, b_ref, g_ref)
        if accelerated is not None:
            fused = accelerated[1]
            fns["acc_fwd"] = lambda: fused(a_ref.detach(), b_ref.detach())
            fns["acc_fb"] = lambda: forward_backward(fused, a_ref, b_ref, g_ref)
    # the autograd loop takes seconds at large T on a CPU: one timed run shows the ratio
    slow = {"loop": 1 if T >= 4096 and device.type == "cpu" else 3, "ref": 3}
    leaves = [a, b] + ([a_ref, b_ref] if case == "full" else [])

    def clear_grads():
        # untimed: freeing the last contender's 64 MiB gradients (munmap, for the loop's) is no
        # part of the next one's forward+backward
        for x in leaves:
            x.grad = None

    r = measure(fns, device, args.repeats, args.stat, slow, before=clear_grads)
    if device.type == "cpu":  # on its own: it leaves the pool empty for whoever runs next
        r.update(measure({"no_pool": without_pool(fns["fb"])}, device, args.repeats, args.stat, {},
                         before=clear_grads))
    return {"T": T, "case": case, "backend": choose_backend(device, T), **r}


def ratio(r: dict, num: str, den: str) -> str:
    return f"{r[num] / r[den]:.2f}" if num in r and den in r else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--T", type=int, nargs="+", default=list(TS))
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--stat", choices=["median", "min"], default="median")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    accelerated = fused_accelerated_scan(device)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"{torch.get_num_threads()} threads")

    print(f"B={B} D={D} float32 device={device} ({name}) {args.stat} of {args.repeats} "
          f"torch={torch.__version__} load average before={os.getloadavg()[0]:.2f}")
    header = (f"{'T':>6} {'a':>5} {'backend':>10} {'floor ms':>9} {'fwd ms':>8} {'fwd/floor':>9} "
              f"{'f+b ms':>8} {'f+b/fwd':>8} {'loop f+b':>9} {'loop/ours':>9} {'no-pool f+b':>11} "
              f"{'ref f+b/ours':>12} {'ours/acc fwd':>12} {'ours/acc f+b':>12}")
    print(header)
    print("-" * len(header))
    rows = {}
    for T in args.T:
        for case in args.cases:
            r = rows[T, case] = row(T, case, device, args, accelerated)
            print(f"{T:>6} {case:>5} {r['backend']:>10} {r['floor']:>9.2f} {r['fwd']:>8.2f} "
                  f"{ratio(r, 'fwd', 'floor'):>9} {r['fb']:>8.2f} {ratio(r, 'fb', 'fwd'):>8} "
                  f"{r['loop']:>9.1f} {ratio(r, 'loop', 'fb'):>9} "
                  f"{r['no_pool'] if 'no_pool' in r else float('nan'):>11.2f} "
                  f"{ratio(r, 'ref', 'fb'):>12} {ratio(r, 'fwd', 'acc_fwd'):>12} "
                  f"{ratio(r, 'fb', 'acc_fb'):>12}", flush=True)
    print("ms are wall times; floor: torch.mul(a, b, out=h) on full-size a; f+b: forward+backward; "
          "loop: autograd through a Python loop over unbind-ed steps; no-pool: ours with "
          "set_pool_limit(0), outputs in fresh memory every call; ref: accelerated_scan.ref.scan; "
          f"acc: {accelerated[0] if accelerated else 'accelerated-scan fused kernel (CUDA only)'}")
    print(f"load average after={os.getloadavg()[0]:.2f}")

    target_T = 4096 if device.type == "cpu" else 16384
    for case in args.cases:
        r = rows.get((target_T, case))
        if r is None:
            continue
        checks = [("forward+backward >= 10x faster than the autograd loop", r["loop"] / r["fb"] >= 10,
                   f"{r['loop'] / r['fb']:.1f}x")]
        if device.type == "cpu":
            checks.append(("forward+backward <= 3x the forward", r["fb"] / r["fwd"] <= 3,
                           f"{r['fb'] / r['fwd']:.2f}x"))
        if "acc_fb" in r:
            checks.append(("within 1.5x of accelerated-scan's fused kernel (f+b)",
                           r["fb"] / r["acc_fb"] <= 1.5, f"{r['fb'] / r['acc_fb']:.2f}x"))
        print(f"targets at T={target_T}, a {case}: " + "; ".join(
            f"{text}: {'yes' if ok else 'NO'} ({value})" for text, ok, value in checks))


if __name__ == "__main__":
    main()
