"""The ``fused`` CPU backend of :mod:`probe.scan`: one pass over memory, compiled with numba.

The chunked backend is pure PyTorch, so it runs ~3 sqrt(T) whole-tensor ops that each move a
scattered slice of the data; a compiled loop instead walks every sequence once, keeping the
running state in a register, and so moves exactly the bytes of one elementwise op (read a and
b, write h). The backward is fused the same way: one reverse pass writes dL/db = lambda and
dL/da = lambda * conj(h_{t-1}) together.

Work is split over ``torch.get_num_threads()`` Python threads, each running the compiled loop
with the GIL released on its own rows (or, for few rows, its own block of D). We use plain
threads rather than numba's ``parallel=True`` because its default threading layer aborts when
two threads of the caller launch kernels at once (the explorer runs jobs in threads) and is not
safe across ``fork``.

numba is optional: without it (or for dtypes it does not handle, such as float16) ``available``
says no and :mod:`probe.scan` uses the chunked backend.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import torch
from torch import Tensor

try:
    import numba
    import numpy as np
except ImportError:  # pragma: no cover - numba is a dependency, but keep the library usable
    numba = None

DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)
# below this many elements one thread does the whole scan: handing out work costs ~50 us
_MIN_SPLIT = 1 << 16


def available(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether the fused backend can scan tensors of this dtype on this device."""
    return numba is not None and device.type == "cpu" and dtype in DTYPES


if numba is not None:
    # Each kernel works on the tile rows n0:n1, units d0:d1 of (N, T, D) arrays. Loops run over
    # 1-D row slices with range(W): numba then knows the index is non-negative, drops its
    # negative-index wraparound test and LLVM vectorises the loop (5x faster than indexing the
    # 3-D arrays directly). cache=True keeps the machine code between processes (in
    # __pycache__, or numba's user cache when the package folder is read-only).
    @numba.njit(nogil=True, cache=True)
    def _forward_kernel(a, b, h0, has_h0, out, n0, n1, d0, d1, reverse):  # pragma: no cover
        T, W = out.shape[1], d1 - d0
        first, last, step = (T - 1, -1, -1) if reverse else (0, T, 1)
        for n in range(n0, n1):
            o, bt, at = out[n, first, d0:d1], b[n, first, d0:d1], a[n, first, d0:d1]
            if has_h0:
                h = h0[n, d0:d1]
                for d in range(W):
                    o[d] = at[d] * h[d] + bt[d]
            else:
                for d in range(W):
                    o[d] = bt[d]
            for t in range(first + step, last, step):
                prev = o
                o, at, bt = out[n, t, d0:d1], a[n, t, d0:d1], b[n, t, d0:d1]
                for d in range(W):
                    o[d] = at[d] * prev[d] + bt[d]

    @numba.njit(nogil=True, cache=True)
    def _backward_kernel(a, g, h, h0, has_h0, lam, ga, want_ga, n0, n1, d0, d1, block):  # pragma: no cover
        # lambda_t = g_t + conj(a_{t+1}) lambda_{t+1};  ga_t = lambda_t conj(h_{t-1}).
        # Time runs in blocks of `block` steps, last block first: a forward pass touching one
        # value per cache line of the block's inputs pulls them into cache, then the backward
        # recurrence over the block reads cache. On the 2-core VM this was written on, walking
        # memory backwards streamed at under half the forward speed (measured on a busy machine,
        # before the loops were vectorised); on a quiet one the touch pass changed little.
        T, W = g.shape[1], d1 - d0
        touched = 0.0
        for n in range(n0, n1):
            lt, gt = lam[n, T - 1, d0:d1], g[n, T - 1, d0:d1]
            for d in range(W):
                lt[d] = gt[d]
            hi = T  # this block computes steps lo..hi-1 (hi - 1 = T - 1 is done above)
            while hi > 0:
                lo = max(0, hi - block)
                for t in range(lo, hi):
                    at, gt, ht = a[n, t, d0:d1], g[n, t, d0:d1], h[n, t, d0:d1]
                    for d in range(0, W, 16):
                        touched += (at[d] + gt[d] + ht[d]).real
                if want_ga and hi == T:  # the last step's gradient, lambda known above
                    out, lt, hp = ga[n, T - 1, d0:d1], lam[n, T - 1, d0:d1], h[n, T - 2, d0:d1]
                    if T > 1:
                        for d in range(W):
                            out[d] = lt[d] * np.conj(hp[d])
                for t in range(min(hi, T - 1) - 1, lo - 1, -1):
                    nxt = lam[n, t + 1, d0:d1]
                    lt, gt, at = lam[n, t, d0:d1], g[n, t, d0:d1], a[n, t + 1, d0:d1]
                    if want_ga and t > 0:
                        out, hp = ga[n, t, d0:d1], h[n, t - 1, d0:d1]
                        for d in range(W):
                            lt[d] = gt[d] + np.conj(at[d]) * nxt[d]
                            out[d] = lt[d] * np.conj(hp[d])
                    else:
                        for d in range(W):
                            lt[d] = gt[d] + np.conj(at[d]) * nxt[d]
                hi = lo
            if want_ga:
                out, lt = ga[n, 0, d0:d1], lam[n, 0, d0:d1]
                if has_h0:
                    hp = h0[n, d0:d1]
                    for d in range(W):
                        out[d] = lt[d] * np.conj(hp[d])
                else:
                    for d in range(W):
                        out[d] = 0
        return touched


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe-scan")


def _run(kernel, N: int, D: int, elements: int, args_before: tuple, args_after: tuple = ()) -> None:
    """Call kernel(*args_before, n0, n1, d0, d1, *args_after) on torch's thread count of tiles."""
    workers = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
    if workers == 1 or elements < _MIN_SPLIT:
        kernel(*args_before, 0, N, 0, D, *args_after)
        return
    if N >= workers:  # split the rows
        cuts = [N * i // workers for i in range(workers + 1)]
        tiles = [(cuts[i], cuts[i + 1], 0, D) for i in range(workers)]
    else:  # few long rows: split D (each thread writes whole cache lines when blocks are wide)
        cuts = [D * i // workers for i in range(workers + 1)]
        tiles = [(0, N, cuts[i], cuts[i + 1]) for i in range(workers)]
    futures = [_pool(workers).submit(kernel, *args_before, *tile, *args_after)
               for tile in tiles if tile[0] < tile[1] and tile[2] < tile[3]]
    for f in futures:
        f.result()


def _as3d(x: Tensor) -> "np.ndarray":
    """(..., T, D) tensor as an (N, T, D) numpy view (a copy only if the leading dims can't merge)."""
    return x.detach().reshape((-1,) + tuple(x.shape[-2:])).numpy()


def _as2d(x: Optional[Tensor], N: int, dtype: torch.dtype) -> tuple["np.ndarray", bool]:
    if x is None:
        return np.zeros((1, 1), dtype=torch.empty(0, dtype=dtype).numpy().dtype), False
    return x.detach().reshape(N, x.shape[-1]).numpy(), True


def forward(a: Tensor, b: Tensor, h0: Optional[Tensor], out: Tensor, reverse: bool) -> None:
    """Write the scan of (a, b) from h0 into out; the kernel signature of :mod:`probe.scan`."""
    # out is written through, so it must be a view: .view raises where reshape would copy
    a3, b3, o3 = _as3d(a), _as3d(b), out.detach().view((-1,) + tuple(out.shape[-2:])).numpy()
    N, T, D = o3.shape
    if T == 0 or N == 0 or D == 0:
        return
    h, has_h0 = _as2d(h0, N, out.dtype)
    _run(_forward_kernel, N, D, out.numel(), (a3, b3, h, has_h0, o3), (reverse,))


def backward(a: Tensor, g: Tensor, h: Tensor, h0: Optional[Tensor], want_ga: bool,
             empty) -> tuple[Tensor, Optional[Tensor]]:
    """lambda (= dL/db) and, if want_ga, dL/da for the forward scan h of (a, ·) from h0.

    ``a`` is already conjugation-free and broadcast to h's shape (it may be an expanded view),
    ``g`` = dL/dh in h's dtype. Both results are fresh contiguous tensors of h's shape, from
    ``empty(shape, dtype, device)``.
    """
    lam = empty(h.shape, h.dtype, h.device)
    ga = empty(h.shape, h.dtype, h.device) if want_ga else None
    a3, g3, h3, lam3 = _as3d(a), _as3d(g), _as3d(h), _as3d(lam)
    N, T, D = lam3.shape
    if T == 0 or N == 0 or D == 0:
        return lam, ga
    ga3 = _as3d(ga) if want_ga else np.zeros((1, 1, 1), dtype=lam3.dtype)
    h0_2, has_h0 = _as2d(h0, N, h.dtype)
    # a block's inputs (a, g, h rows of the tile) fill about 96 KiB: well inside L2
    block = max(8, (32 << 10) // max(1, lam3.itemsize * min(D, 512)))
    _run(_backward_kernel, N, D, h.numel(), (a3, g3, h3, h0_2, has_h0, lam3, ga3, want_ga),
         (block,))
    return lam, ga
