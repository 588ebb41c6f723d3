"""The ``fused`` CPU backend of :mod:`probe.scan`: one pass over memory, compiled with numba.

The chunked backend is pure PyTorch, so it runs ~3 sqrt(T) whole-tensor ops that each move a
scattered slice of the data; a compiled loop instead walks every sequence once, keeping the
running state in registers, and so moves exactly the bytes of one elementwise op (read a and
b, write h).

*Exact long scans.* The state is carried in float64 (complex128) whatever the input dtype, and
each step is one fused multiply-add (``llvm.fma``: exact product, one rounding; LLVM emits the
instruction where the CPU has it and a correctly rounded library call where not). A float32
output is thus rounded once, from a state whose own error is ~2^-53 per step, instead of
carrying two float32 roundings per step forward: with gates near 1 those roundings all lean
the same way and add up over thousands of steps.

*Broadcast operands.* ``a``, ``b`` and the incoming gradient may be expanded views (LRU's
time-invariant ``a`` is ``(D,)``; ``h.sum()`` hands back a gradient with every stride 0). Each
is passed to the kernels compacted: its own rows as an ``(Nx, Tx, D)`` array, the row that
every output row reads, and whether it varies over time. Nothing is materialised at full
size, and dL/da of an ``a`` that linear_scan broadcasts is summed inside the kernel (in
float64) instead of being written at full size and reduced by ``.sum()``. (An ``a`` that the
caller expanded to full size itself gets its per-element gradient, as hooks on it expect.)

*Backward.* lambda_t = g_t + conj(a_{t+1}) lambda_{t+1} is a reverse scan, and dL/da_t =
lambda_t conj(h_{t-1}) an elementwise product, or a reduction when ``a`` is broadcast. One
kernel does both, in blocks of time, last block first: lambda descends through the block, then
dL/da ascends through it while the block's lambda is still in cache. On the AMD EPYC this was
measured on (benchmarks/NOTES.md) a reverse pass that read three streams and wrote two in one
sweep ran at under half the speed of two separate passes, and the blocked kernel beats the two
passes by another ~25%. Reverse passes also walk D from the top, so that every stream descends
through memory: mixing a descending time order with ascending rows halved the bandwidth there.

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
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import torch
from torch import Tensor

try:
    import numba
    import numpy as np
    from numba.core import types
    from numba.extending import intrinsic, overload
except ImportError:  # pragma: no cover - numba is a dependency, but keep the library usable
    numba = None

DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)
# below this many elements one thread does the whole scan: handing out work costs ~50 us
_MIN_SPLIT = 1 << 16


def available(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether the fused backend can scan tensors of this dtype on this device."""
    return numba is not None and device.type == "cpu" and dtype in DTYPES


if numba is not None:
    # -- scalar helpers, resolved per dtype when a kernel is compiled ---------------------------
    @intrinsic
    def _fma(typingctx, x, y, z):  # pragma: no cover - runs compiled
        """x * y + z with one rounding (three float64)."""
        return x(x, y, z), lambda context, builder, sig, args: builder.fma(*args)

    def _wide(x):  # pragma: no cover
        """x as float64 or complex128."""

    @overload(_wide, inline="always")
    def _wide_impl(x):
        if isinstance(x, types.Complex):
            return lambda x: np.complex128(x)
        return lambda x: np.float64(x)

    def _wide_zeros(n, like):  # pragma: no cover
        """A zeroed (n,) float64 or complex128 array, for elements like ``like``'s."""

    @overload(_wide_zeros, inline="always")
    def _wide_zeros_impl(n, like):
        if isinstance(like.dtype, types.Complex):
            return lambda n, like: np.zeros(n, np.complex128)
        return lambda n, like: np.zeros(n, np.float64)

    def _muladd(a, h, b):  # pragma: no cover
        """a * h + b for a wide h, each real product fused with its addition."""

    @overload(_muladd, inline="always")
    def _muladd_impl(a, h, b):
        if isinstance(h, types.Complex):
            def complex_muladd(a, h, b):
                ar, ai = np.float64(a.real), np.float64(a.imag)
                re = _fma(ar, h.real, _fma(-ai, h.imag, np.float64(b.real)))
                im = _fma(ar, h.imag, _fma(ai, h.real, np.float64(b.imag)))
                return complex(re, im)
            return complex_muladd
        return lambda a, h, b: _fma(np.float64(a), h, np.float64(b))

    # -- kernels --------------------------------------------------------------------------------
    # Each works on the tile rows n0:n1, units d0:d1 of (N, T, D) outputs. An operand is a tuple
    # (x, rows, tstep): x is (Nx, Tx, D) C-contiguous, output row n reads x[rows[n], t * tstep].
    # Loops run over 1-D row slices with range(W): numba then knows the index is non-negative,
    # drops its negative-index wraparound test and LLVM vectorises the loop. cache=True keeps
    # the machine code between processes (in __pycache__, or numba's user cache when the
    # package folder is read-only).
    @numba.njit(nogil=True, cache=True)
    def _scan_kernel(a, b, h0, has_h0, out, n0, n1, d0, d1, reverse):  # pragma: no cover
        # h_t = a_t h_{t-1} + b_t (h_{t+1} when reverse); without h0 the first step is h = b
        (ax, arows, ats), (bx, brows, bts) = a, b
        T = out.shape[1]
        state = _wide_zeros(d1 - d0, out)
        for n in range(n0, n1):
            ar, br = arows[n], brows[n]
            for i in range(T):
                t = T - 1 - i if reverse else i
                o, bt = out[n, t, d0:d1], bx[br, t * bts, d0:d1]
                W = len(o)  # (not d1 - d0: LLVM vectorises a loop bounded by the slice's length)
                if i == 0 and not has_h0:
                    for d in range(W):
                        state[d] = _wide(bt[d])
                        o[d] = bt[d]
                    continue
                if i == 0:
                    for d in range(W):
                        state[d] = _wide(h0[n, d0 + d])
                at = ax[ar, t * ats, d0:d1]
                if reverse:  # descend through D too: every stream then walks memory downwards
                    for d in range(W - 1, -1, -1):
                        x = _muladd(at[d], state[d], bt[d])
                        state[d] = x
                        o[d] = x
                else:
                    for d in range(W):
                        x = _muladd(at[d], state[d], bt[d])
                        state[d] = x
                        o[d] = x

    @numba.njit(nogil=True, cache=True)
    def _backward_kernel(a, g, h, h0, has_h0, lam, out, rows, tstep, mode,
                         n0, n1, d0, d1, block):  # pragma: no cover
        # lambda_t = g_t + conj(a_{t+1}) lambda_{t+1}, then dL/da_t = lambda_t conj(h_{t-1})
        # (h_{-1} = h0, or 0): mode 0 skips it, 1 writes it to out elementwise, 2 sums it into
        # out[rows[n], t * tstep] (float64/complex128; over time in registers when tstep = 0).
        # Time runs in blocks of `block` steps, last block first: lambda descends through the
        # block, then dL/da ascends through it while the block's lambda is still in cache.
        (ax, arows, ats), (gx, grows, gts) = a, g
        T = lam.shape[1]
        state = _wide_zeros(d1 - d0, lam)
        acc = _wide_zeros(d1 - d0, lam)
        for n in range(n0, n1):
            ar, gr, r = arows[n], grows[n], rows[n]
            hi = T
            while hi > 0:
                lo = max(0, hi - block)
                for t in range(hi - 1, lo - 1, -1):
                    o, gt = lam[n, t, d0:d1], gx[gr, t * gts, d0:d1]
                    W = len(o)  # (not d1 - d0: LLVM vectorises a loop bounded by the slice's length)
                    if t == T - 1:
                        for d in range(W):
                            state[d] = _wide(gt[d])
                            o[d] = gt[d]
                        continue
                    at = ax[ar, (t + 1) * ats, d0:d1]
                    for d in range(W - 1, -1, -1):  # descend through D too (module docstring)
                        x = _muladd(np.conj(at[d]), state[d], gt[d])
                        state[d] = x
                        o[d] = x
                for t in range(lo, hi if mode else lo):
                    lt = lam[n, t, d0:d1]
                    if t == 0 and not has_h0:
                        if mode == 1:
                            o = out[n, 0, d0:d1]
                            for d in range(len(o)):
                                o[d] = 0
                        continue
                    hp = h0[n, d0:d1] if t == 0 else h[n, t - 1, d0:d1]
                    if mode == 1:
                        o = out[n, t, d0:d1]
                        for d in range(len(o)):
                            o[d] = lt[d] * np.conj(hp[d])
                    elif tstep == 0:
                        for d in range(len(lt)):
                            acc[d] += _wide(lt[d]) * np.conj(_wide(hp[d]))
                    else:
                        o = out[r, t, d0:d1]
                        for d in range(len(o)):
                            o[d] += _wide(lt[d]) * np.conj(_wide(hp[d]))
                hi = lo
            if mode == 2 and tstep == 0:
                o = out[r, 0, d0:d1]
                for d in range(len(o)):
                    o[d] += acc[d]
                    acc[d] = 0


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe-scan")


@functools.cache
def _cpus() -> int:
    return os.cpu_count() or 1


def _tiles(N: int, D: int, elements: int) -> list[tuple[int, int, int, int]]:
    """(n0, n1, d0, d1) per thread: rows split when there are enough, else blocks of D."""
    workers = max(1, min(torch.get_num_threads(), _cpus()))
    if workers == 1 or elements < _MIN_SPLIT:
        return [(0, N, 0, D)]
    if N >= workers:
        cuts = [N * i // workers for i in range(workers + 1)]
        tiles = [(cuts[i], cuts[i + 1], 0, D) for i in range(workers)]
    else:  # few long rows: split D (each thread writes whole cache lines when blocks are wide)
        cuts = [D * i // workers for i in range(workers + 1)]
        tiles = [(0, N, cuts[i], cuts[i + 1]) for i in range(workers)]
    return [t for t in tiles if t[0] < t[1] and t[2] < t[3]]


def _run(kernel, tiles: list, args: Callable[[int], tuple], after: tuple) -> None:
    """kernel(*args(i), *tiles[i], *after) for every tile, on the thread pool when several."""
    if len(tiles) == 1:
        kernel(*args(0), *tiles[0], *after)
        return
    futures = [_pool(len(tiles)).submit(kernel, *args(i), *tile, *after) for i, tile in enumerate(tiles)]
    for f in futures:
        f.result()


def _rows(x: Tensor) -> Tensor:
    """A contiguous (..., T, D) tensor as an (N, T, D) view."""
    return x.view((math.prod(x.shape[:-2]),) + x.shape[-2:])


@functools.lru_cache(maxsize=64)
def _arange(n: int) -> "np.ndarray":
    return np.arange(n)


@functools.cache
def _dummy(dtype: torch.dtype) -> "np.ndarray":
    return np.zeros((1, 1), dtype=torch.empty(0, dtype=dtype).numpy().dtype)


def _operand(x: Tensor) -> tuple["np.ndarray", "np.ndarray", int]:
    """A (..., T, D) tensor, maybe an expanded view, as (x (Nx, Tx, D), rows (N,), tstep): its
    own values once (a broadcast D materialised), the row of x each of the N output rows
    reads, and 1 if x varies over time, else 0."""
    x = x.detach().resolve_conj().resolve_neg()
    if x.is_contiguous():  # the common case, kept cheap: scans of short sequences are many
        x3 = _rows(x).numpy()  # (N, T, D)
        return x3, _arange(x3.shape[0]), 1
    own = tuple(slice(0, 1) if s == 0 else slice(None) for s in x.stride()[:-1])
    c = x[own].contiguous()  # (..., Tx, D), 1 where x is expanded
    rows = np.arange(math.prod(c.shape[:-2])).reshape(c.shape[:-2])
    rows = np.broadcast_to(rows, x.shape[:-2]).reshape(-1)  # (N,)
    return _rows(c).numpy(), rows, int(c.shape[-2] > 1)


def _state(x: Optional[Tensor], N: int, dtype: torch.dtype) -> tuple["np.ndarray", bool]:
    """h0 (..., D) as an (N, D) array and True, or a dummy and False."""
    if x is None:
        return _dummy(dtype), False
    return x.detach().resolve_conj().resolve_neg().reshape(N, x.shape[-1]).numpy(), True


def forward(a: Tensor, b: Tensor, h0: Optional[Tensor], out: Tensor, reverse: bool) -> None:
    """Write the scan of (a, b) from h0 into out; the kernel signature of :mod:`probe.scan`.

    ``a`` and ``b`` are (..., T, D) like ``out``, possibly expanded views; h0 is (..., D) or None.
    """
    # out is written through, so it must be a view: .view raises where reshape would copy
    o3 = _rows(out.detach()).numpy()
    N, T, D = o3.shape
    if T == 0 or N == 0 or D == 0:
        return
    h, has_h0 = _state(h0, N, out.dtype)
    ops = (_operand(a), _operand(b))
    _run(_scan_kernel, _tiles(N, D, out.numel()), lambda i: (*ops, h, has_h0, o3),
         (reverse,))


def backward(a: Tensor, g: Tensor, h: Tensor, h0: Optional[Tensor], a_shape: Optional[torch.Size],
             empty) -> tuple[Tensor, Optional[Tensor]]:
    """lambda (= dL/db) and, unless a_shape is None, dL/da for the forward scan h of (a, ·) from h0.

    ``a`` is broadcast to h's shape (..., T, D), typically an expanded view; ``g`` = dL/dh in h's
    dtype, any strides; h0 is (..., D) or None. lambda is a fresh contiguous tensor of h's
    shape from ``empty(shape, dtype, device)``. ``a_shape`` is the shape of the caller's ``a``
    before linear_scan broadcast it: if that is h's shape, dL/da is a fresh tensor like lambda
    (even if ``a`` was an expanded view already: its gradient is then still per element);
    else it is summed over the broadcast dims, in float64 (complex128), with a's own shape
    but for D, which the caller reduces to ``a``'s shape and dtype.
    """
    lam = empty(h.shape, h.dtype, h.device)  # (..., T, D)
    lam3 = _rows(lam).numpy()
    N, T, D = lam3.shape
    wide = torch.complex128 if h.is_complex() else torch.float64
    full = a_shape is not None and torch.Size(a_shape) == h.shape
    if a_shape is not None and not full:  # summed over the dims linear_scan broadcast a along
        sum_shape = (1,) * (h.dim() - len(a_shape)) + tuple(a_shape[:-1]) + (D,)  # (..., Tx, D)
        rows = np.arange(math.prod(sum_shape[:-2])).reshape(sum_shape[:-2])
        rows, tstep = np.broadcast_to(rows, h.shape[:-2]).reshape(-1), int(sum_shape[-2] > 1)
    if T == 0 or N == 0 or D == 0:
        ga = None if a_shape is None else torch.zeros(h.shape if full else sum_shape,
                                                       dtype=h.dtype if full else wide)
        return lam, ga
    tiles = _tiles(N, D, h.numel())
    a_op, g_op = _operand(a), _operand(g)
    h3 = h.detach().view(N, T, D).numpy()
    h0_2, has_h0 = _state(h0, N, h.dtype)
    # a block's lambda (W units of each of its steps) fills 512 KiB: it stays in L2 for dL/da
    block = max(16, (512 << 10) // (lam3.itemsize * (tiles[0][3] - tiles[0][2])))
    if a_shape is None or full:
        ga = empty(h.shape, h.dtype, h.device) if full else None  # (..., T, D)
        out = lam3 if ga is None else ga.view(N, T, D).numpy()  # (never written in mode 0)
        _run(_backward_kernel, tiles, lambda i: (a_op, g_op, h3, h0_2, has_h0, lam3, out, a_op[1],
                                                 1, 1 if full else 0), (block,))
        return lam, ga
    # every thread sums into its own float64 copy of a's shape, then we add those
    parts = torch.zeros((len(tiles), math.prod(sum_shape[:-2])) + sum_shape[-2:], dtype=wide)
    parts_np = parts.numpy()  # (tiles, Nx, Tx, D)
    _run(_backward_kernel, tiles, lambda i: (a_op, g_op, h3, h0_2, has_h0, lam3, parts_np[i], rows,
                                             tstep, 2), (block,))
    return lam, (parts[0] if len(tiles) == 1 else parts.sum(0)).reshape(sum_shape)
