"""Time the matrix-state kernels: the chunkwise-parallel form against the step-by-step loop.

    python benchmarks/matrix_state.py                     # cpu, 2 threads, T = 1024 and 4096
    python benchmarks/matrix_state.py --T 1024 --repeats 3 --device cuda

Forward+backward of each kernel of :mod:`probe.models.chunked` (and Mamba's diagonal state on
``probe.scan.linear_scan``) on N = 8 sequences (batch 4 x 2 heads) of width K = V = 64 in
float32, every input a leaf that requires grad: ``out.backward(g)`` and ``S.backward(gS)`` with
fixed ``g``. Mamba's case is the S6 recurrence h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t on
(D = 64) x (N = 16) states for 4 sequences. The step loop is the reference of each kernel.

On CUDA, flash-linear-attention's chunked kernels (``fla.ops``) are timed too when they import.
Contenders of a row are timed in this process, interleaved round by round (medians, or minima
with ``--stat min``, after a warm-up), so that a change in the machine's load hits them alike;
the load average is printed. Numbers go in benchmarks/NOTES.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from probe.models.chunked import (delta_rule_chunked, delta_rule_step, linear_attention_chunked,
                                  linear_attention_step)
from probe.scan import linear_scan

N, K, V = 8, 64, 64            # sequences (batch x heads), key and value width
MB, MD, MN = 4, 64, 16         # Mamba: batch, channels, state per channel


def inputs(case: str, T: int, device, dtype=torch.float32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)

    def leaf(*shape, scale=1.0, shift=0.0):
        x = torch.randn(*shape, generator=g, dtype=dtype) * scale + shift
        return x.to(device).requires_grad_()
    if case == "mamba":
        dt = (torch.rand(MB, T, MD, generator=g) * 0.1 + 0.001).to(device, dtype)
        A = -torch.arange(1, MN + 1, dtype=dtype).expand(MD, MN).to(device)
        a = torch.exp(dt[..., None] * A).flatten(-2).requires_grad_()
        b = (torch.randn(MB, T, MD * MN, generator=g, dtype=dtype) * 0.1).to(device).requires_grad_()
        return {"a": a, "b": b}
    x = {"q": leaf(N, T, K), "k": leaf(N, T, K), "v": leaf(N, T, V)}
    if case == "gla":
        x["log_decay"] = (-torch.rand(N, T, K, generator=g, dtype=dtype) * 0.1).to(device).requires_grad_()
    if case == "delta":
        x["k"] = F.normalize(x["k"].detach(), dim=-1).requires_grad_()
        x["beta"] = torch.rand(N, T, generator=g, dtype=dtype).to(device).requires_grad_()
        x["log_decay"] = (-torch.rand(N, T, generator=g, dtype=dtype) * 0.1).to(device).requires_grad_()
    return x


def mamba_loop(a, b):
    h, out = torch.zeros_like(b[:, 0]), []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out, 1), h


def contenders(case: str, device) -> dict:
    """name -> fn(**inputs) -> (outputs, final state)."""
    if case == "mamba":
        return {"linear_scan": lambda a, b: (lambda h: (h, h[:, -1]))(linear_scan(a, b)), "step loop": mamba_loop}
    if case == "delta":
        fns = {"chunked": lambda **x: delta_rule_chunked(**x, chunk=64), "step loop": delta_rule_step}
    else:
        fns = {"chunked": lambda **x: linear_attention_chunked(**x, chunk=64 if case == "linear" else 32),
               "step loop": linear_attention_step}
    if device.type == "cuda":
        fla = fla_kernel(case)
        if fla is not None:
            fns["fla"] = fla
    return fns


def fla_kernel(case: str):
    """flash-linear-attention's chunked kernel for the case, on our layout (N, T, d), or None."""
    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule
        from fla.ops.gla import chunk_gla
        from fla.ops.simple_gla import chunk_simple_gla
    except Exception as error:  # noqa: BLE001 - fla is optional
        print(f"flash-linear-attention unavailable: {type(error).__name__}: {error}")
        return None

    def run(q, k, v, log_decay=None, beta=None):
        # fla: (B, T, H, d) with H = our N, B = 1; scale 1 (the caller scales q)
        q_, k_, v_ = (x[None].permute(0, 2, 1, 3) for x in (q, k, v))
        if case == "delta":
            o, S = chunk_gated_delta_rule(q_, k_, v_, log_decay[None].transpose(1, 2), beta[None].transpose(1, 2),
                                          scale=1.0, output_final_state=True)
        elif case == "gla":
            o, S = chunk_gla(q_, k_, v_, log_decay[None].permute(0, 2, 1, 3), scale=1.0, output_final_state=True)
        else:
            o, S = chunk_simple_gla(q_, k_, v_, scale=1.0, output_final_state=True)
        return o[0].transpose(0, 1), S[0]
    return run


def measure(case: str, T: int, device, repeats: int, stat: str, skip_loop: bool, clock=time.perf_counter) -> dict:
    x = inputs(case, T, device)
    fns = contenders(case, device)
    if skip_loop:
        fns.pop("step loop")
    g = torch.Generator().manual_seed(1)
    for name, fn in fns.items():                                       # warm-up (the loop's is its own first round)
        if name != "step loop":
            out = fn(**x)
    go, gs = (torch.randn(o.shape, generator=g).to(device) for o in out)  # the grads' shapes
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            for t in x.values():
                t.grad = None
            sync()
            start = clock()
            o, S = fn(**x)
            torch.autograd.backward([o, S], [go.to(o.dtype), gs.to(S.dtype)])
            sync()
            times[name].append(clock() - start)
    reduce = statistics.median if stat == "median" else min
    return {name: 1000 * reduce(v) for name, v in times.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--T", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--cases", nargs="+", default=["linear", "gla", "delta", "mamba"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stat", choices=("median", "min"), default="median")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: this process's CPU time (all its threads), for a machine shared with other jobs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}; N={N} K={K} V={V}, Mamba B={MB} D={MD} N={MN}; fwd+bwd ms ({args.stat} "
          f"of {args.repeats}, {args.clock} clock)")
    print(f"{'case':<8}{'T':>6}  " + "  ".join(f"{n:>12}" for n in ("chunked", "step loop", "fla", "loop/chunked")))
    for case in args.cases:
        for T in args.T:
            clock = time.process_time if args.clock == "cpu" else time.perf_counter
            ms = measure(case, T, device, args.repeats, args.stat, skip_loop=False, clock=clock)
            fast = ms.get("chunked", ms.get("linear_scan"))
            cells = [fast, ms.get("step loop"), ms.get("fla")]
            text = "  ".join(f"{c:12.1f}" if c is not None else f"{'-':>12}" for c in cells)
            print(f"{case:<8}{T:>6}  {text}  {ms['step loop'] / fast:12.1f}x", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
