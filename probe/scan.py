"""Linear recurrence scans: h_t = a_t * h_{t-1} + b_t, elementwise, for every t.

This is the state update of diagonal linear RNNs (LRU, diagonal S4/S5, minGRU).
Time is dim -2: ``a`` and ``b`` are ``(..., T, D)`` with any leading dims (batch, ensemble
members), ``a`` may broadcast against ``b`` (LRU's time-invariant ``a`` is ``(D,)``), and the
scan returns every state ``h`` of shape ``(..., T, D)``. Real and complex dtypes both work.

Backends (all compute the same thing; ``reverse=True`` runs h_t = a_t * h_{t+1} + b_t instead):

- ``sequential``: the reference, a Python loop over t. T small ops; best for tiny T.
- ``chunked``: for CPUs. T is cut into C chunks of length L ~ sqrt(T). Pass 1 loops over the
  L positions within a chunk, vectorised across chunks, keeping only each chunk's running state
  and running product of ``a``; pass 2 carries states across the C chunk boundaries; pass 3
  re-runs the within-chunk loop from the right carry, writing ``h`` in place. That is ~3
  sqrt(T) Python-level ops moving 5/3 the bytes of one elementwise op (a and b read twice, h
  written once); as each op reads scattered rows of D values, it takes 3-4x the time of one.
- ``fused``: for CPUs, the default there. A loop compiled with numba walks each sequence
  once, state in registers, so it moves the bytes of one elementwise op; its backward is
  one such kernel too, the reverse scan for lambda with dL/da computed block by block behind
  it, about twice the forward (see ``probe._scan_fused``). It carries the state in float64
  with fused multiply-adds, so a float32 scan is rounded once per output instead of
  accumulating roundings (over thousands of gates near 1 those add up: the other backends'
  float32 error grows with T, the fused one's stays at half an ulp). A broadcast ``a`` (or
  ``b``, or gradient) is read without being expanded, and dL/da of an ``a`` that linear_scan
  broadcasts is summed inside the kernel. Needs numba and a float32/64 or complex64/128
  dtype; otherwise "auto" falls back to ``chunked``.
- ``parallel``: Hillis-Steele scan in log2(T) whole-tensor steps, for GPUs, where per-op
  launch cost dominates and the extra O(T log T) work is cheap. Correct on CPU too.

Gradients come from one ``torch.autograd.Function`` whose backward is itself a reverse linear
scan run by the same backend: with g = dL/dh (PyTorch's conjugate-Wirtinger convention),
lambda_t = g_t + conj(a_{t+1}) lambda_{t+1}, dL/db = lambda, dL/da_t = lambda_t conj(h_{t-1}),
dL/dh0 = conj(a_0) lambda_0.

Outputs of 32 MiB and more on the CPU (h, and lambda and dL/da in the backward) are written into
memory reused from earlier calls once nothing views it, instead of fresh pages that Linux must
zero first (about a third of a forward+backward at T=4096; see ``probe._buffers``).
``set_pool_limit(n)`` caps the idle memory kept for that (1 GiB by default; 0 turns it off).
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from probe import _buffers, _scan_fused

Backend = Literal["auto", "sequential", "chunked", "parallel", "fused"]
BACKENDS = ("sequential", "chunked", "parallel", "fused")

# Below this T the chunked backend's three passes cost more Python-level steps than the plain
# loop saves (measured at B=16, D=256, 2 threads: chunked wins from T = 48 on).
_CPU_CHUNKED_MIN_T = 48
# On a GPU each op is a kernel launch: the loop needs T of them, Hillis-Steele ~5 log2(T), so
# they cross near T = 32. Not measured: no GPU was at hand when this was written.
_GPU_PARALLEL_MIN_T = 32
# How often the chunked backend flushes subnormal decay products to zero (see pass 1).
_FLUSH_EVERY = 8


_empty = _buffers.empty  # large CPU outputs: huge pages, reused memory (see probe._buffers)
set_pool_limit = _buffers.set_pool_limit


# ---------------------------------------------------------------------------------------------
# kernels: each writes the scan of (a, b) from initial state h0 into `out`, all (..., T, D)
# already broadcast to one shape and dtype (a may be an expanded view); h0 is (..., D) or None.
# ---------------------------------------------------------------------------------------------

def _sequential(a: Tensor, b: Tensor, h0: Optional[Tensor], out: Tensor, reverse: bool) -> None:
    T = out.shape[-2]
    a_t, b_t, h_t = a.unbind(-2), b.unbind(-2), out.unbind(-2)  # T views of (..., D)
    steps = range(T - 1, -1, -1) if reverse else range(T)
    prev = h0
    for t in steps:
        if prev is None:
            h_t[t].copy_(b_t[t])
        else:
            torch.addcmul(b_t[t], a_t[t], prev, out=h_t[t])
        prev = h_t[t]


def _chunk_len(T: int) -> int:
    # sqrt(T) balances the L within-chunk steps of passes 1 and 3 against the C carry steps
    # of pass 2; all are Python-level ops, while the bytes moved do not depend on L.
    return max(1, math.isqrt(T))


def _chunked(a: Tensor, b: Tensor, h0: Optional[Tensor], out: Tensor, reverse: bool) -> None:
    T, D = out.shape[-2:]
    L = _chunk_len(T)
    C = T // L
    if C < 2:
        return _sequential(a, b, h0, out, reverse)
    tail = T - C * L
    # the chunks cover the first C*L steps; the leftover `tail` steps are scanned on their own
    # afterwards (before, in reverse), continuing from the chunks' final state
    body = slice(tail, T) if reverse else slice(0, C * L)
    a_c, b_c, h_c = (x[..., body, :].unflatten(-2, (C, L)) for x in (a, b, out))  # (..., C, L, D)
    a_j, b_j, h_j = a_c.unbind(-2), b_c.unbind(-2), h_c.unbind(-2)  # L views of (..., C, D)
    steps = range(L - 1, -1, -1) if reverse else range(L)
    first = steps[0]
    batch = out.shape[:-2]

    # pass 1: each chunk's final state from a zero start, and its total decay prod_j a_j
    state = torch.empty(batch + (C, D), dtype=out.dtype, device=out.device)  # (..., C, D)
    state.copy_(b_j[first])
    time_invariant = a.stride(-2) == 0
    if time_invariant:  # a is a broadcast view: the product over a chunk is a power
        decay = torch.pow(a_j[first], L)  # (..., C, D)
    else:
        decay = a_j[first].clone()  # (..., C, D)
    # A product of many |a| < 1 underflows into subnormal floats. On many Intel cores each
    # SIMD op touching one takes a ~100-cycle microcode assist (the AMD EPYC this was tuned on
    # shows none), so every few steps we flush them to zero, which moves h by < tiny * |carry|.
    tiny = torch.finfo(decay.dtype).tiny
    flat_decay = torch.view_as_real(decay) if decay.is_complex() else decay
    for n, j in enumerate(steps[1:], 1):
        torch.addcmul(b_j[j], a_j[j], state, out=state)
        if not time_invariant:
            decay.mul_(a_j[j])
            if n % _FLUSH_EVERY == 0:
                torch.hardshrink(flat_decay, tiny, out=flat_decay)
    torch.hardshrink(flat_decay, tiny, out=flat_decay)

    # pass 2: carry[c] is the true state just before chunk c
    carry = torch.empty_like(state)  # (..., C, D)
    chunks = range(C - 1, -1, -1) if reverse else range(C)
    s_c, d_c, k_c = state.unbind(-2), decay.unbind(-2), carry.unbind(-2)  # C views of (..., D)
    if h0 is None:
        k_c[chunks[0]].zero_()
    else:
        k_c[chunks[0]].copy_(h0)
    for prev, c in zip(chunks, chunks[1:]):
        torch.addcmul(s_c[prev], d_c[prev], k_c[prev], out=k_c[c])

    # pass 3: rerun the within-chunk scan from the true carries, writing h directly
    prev_h = carry
    for j in steps:
        torch.addcmul(b_j[j], a_j[j], prev_h, out=h_j[j])
        prev_h = h_j[j]

    if tail:
        rest = slice(0, tail) if reverse else slice(C * L, T)
        start = out[..., tail, :] if reverse else out[..., C * L - 1, :]  # (..., D)
        _sequential(a[..., rest, :], b[..., rest, :], start, out[..., rest, :], reverse)


def _parallel(a: Tensor, b: Tensor, h0: Optional[Tensor], out: Tensor, reverse: bool) -> None:
    # Hillis-Steele: after the step with offset k, h[t] holds the scan of the 2k inputs ending
    # at t and A[t] their total decay. Each step reads the previous buffers, so we ping-pong
    # between two pairs instead of updating overlapping slices in place.
    T = out.shape[-2]
    edge = T - 1 if reverse else 0
    h = out
    h.copy_(b)
    if h0 is not None:  # fold the initial state into the first step
        torch.addcmul(h[..., edge, :], a[..., edge, :], h0, out=h[..., edge, :])
    A = a.clone(memory_format=torch.contiguous_format)  # (..., T, D), also if a is broadcast
    h_next, A_next = torch.empty_like(out), torch.empty_like(A)  # (..., T, D)
    k = 1
    while k < T:
        # `cur` positions combine with the state k steps earlier (`src`); `keep` are complete
        cur, src, keep = ((slice(0, T - k), slice(k, T), slice(T - k, T)) if reverse
                          else (slice(k, T), slice(0, T - k), slice(0, k)))
        torch.addcmul(h[..., cur, :], A[..., cur, :], h[..., src, :], out=h_next[..., cur, :])
        h_next[..., keep, :] = h[..., keep, :]
        h, h_next = h_next, h
        if 2 * k < T:  # the last step's decay products are never read
            torch.mul(A[..., cur, :], A[..., src, :], out=A_next[..., cur, :])
            A_next[..., keep, :] = A[..., keep, :]
            A, A_next = A_next, A
        k *= 2
    if h is not out:
        out.copy_(h)


_KERNELS = {"sequential": _sequential, "chunked": _chunked, "parallel": _parallel,
            "fused": _scan_fused.forward}


# ---------------------------------------------------------------------------------------------
# autograd
# ---------------------------------------------------------------------------------------------

def _reduce_to(grad: Tensor, shape: torch.Size, dtype: torch.dtype) -> Tensor:
    """Sum a gradient over the dims its input was broadcast along; drop the imaginary part
    for a real input promoted to complex (PyTorch's convention for real leaves)."""
    if grad.is_complex() and not dtype.is_complex:
        grad = grad.real
    lead = grad.dim() - len(shape)
    if lead:
        grad = grad.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if dims:
        grad = grad.sum(dim=dims, keepdim=True)
    return grad.to(dtype)


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Optional[Tensor], shape: torch.Size,
                dtype: torch.dtype, backend: str) -> Tensor:
        h = _scan(a, b, h0, shape, dtype, backend)  # (..., T, D)
        ctx.save_for_backward(a, h, h0)
        ctx.shapes = (a.shape, b.shape, None if h0 is None else h0.shape)
        ctx.dtypes = (a.dtype, b.dtype, None if h0 is None else h0.dtype)
        ctx.backend = backend
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        a, h, h0 = ctx.saved_tensors
        shape, dtype = h.shape, h.dtype
        T = shape[-2]
        a = a.to(dtype)
        if not h.numel():
            return _gradients(ctx, a, torch.zeros_like(h), torch.zeros_like(h), shape, dtype)
        if ctx.backend == "fused":  # one kernel for lambda and dL/da (summed there over the
            # dims linear_scan broadcast a along, so ga may already have a's shape)
            if h0 is not None:
                h0 = h0.to(dtype).expand(shape[:-2] + shape[-1:])  # (..., D)
            lam, ga = _scan_fused.backward(a.expand(shape), g.to(dtype), h, h0,
                                           ctx.shapes[0] if ctx.needs_input_grad[0] else None, _empty)
            return _gradients(ctx, a, lam, ga, shape, dtype)
        a_conj = a.conj().resolve_conj()  # materialised once: ops on conj views are slow
        a_full = a_conj.expand(shape)  # (..., T, D)

        # lambda_t = g_t + conj(a_{t+1}) lambda_{t+1}: a reverse scan from lambda_{T-1} = g_{T-1}
        lam = _empty(shape, dtype, h.device)  # (..., T, D)
        lam[..., -1, :] = g[..., -1, :]
        if T > 1:
            _KERNELS[ctx.backend](a_full[..., 1:, :], g[..., :-1, :].to(dtype), lam[..., -1, :],
                                  lam[..., :-1, :], reverse=True)

        ga = None
        if ctx.needs_input_grad[0]:
            ga = _empty(shape, dtype, h.device)  # (..., T, D)
            if dtype.is_complex:  # conj(h_{t-1}) into the buffer, then scaled: ops on conj
                torch.conj_physical(h[..., :-1, :], out=ga[..., 1:, :])  # views are slow
                ga[..., 1:, :].mul_(lam[..., 1:, :])
            else:
                torch.mul(lam[..., 1:, :], h[..., :-1, :], out=ga[..., 1:, :])
            if h0 is None:
                ga[..., 0, :] = 0
            else:
                ga[..., 0, :] = lam[..., 0, :] * h0.to(dtype).conj()
        return _gradients(ctx, a, lam, ga, shape, dtype)


def _gradients(ctx, a: Tensor, lam: Tensor, ga: Optional[Tensor], shape: torch.Size,
               dtype: torch.dtype) -> tuple:
    """_LinearScan.backward's return value from lambda (= dL/db) and dL/da, both (..., T, D)."""
    grad_a = grad_b = grad_h0 = None
    if ctx.needs_input_grad[0]:
        grad_a = _reduce_to(ga, ctx.shapes[0], ctx.dtypes[0])
    if ctx.needs_input_grad[1]:
        grad_b = _reduce_to(lam, ctx.shapes[1], ctx.dtypes[1])
    if ctx.needs_input_grad[2]:
        if shape[-2]:
            gh0 = a.expand(shape)[..., 0, :].conj() * lam[..., 0, :]  # (..., D)
        else:  # T = 0: h0 reaches no output
            gh0 = torch.zeros(shape[:-2] + shape[-1:], dtype=dtype, device=lam.device)
        grad_h0 = _reduce_to(gh0, ctx.shapes[2], ctx.dtypes[2])
    return grad_a, grad_b, grad_h0, None, None, None


def _scan(a: Tensor, b: Tensor, h0: Optional[Tensor], shape: torch.Size, dtype: torch.dtype,
          backend: str) -> Tensor:
    # mixed real/complex ops run on a slow path, so convert once up front; expand is a view,
    # so a time-invariant a is never materialised
    a = a.to(dtype).expand(shape)  # (..., T, D)
    b = b.to(dtype).expand(shape)  # (..., T, D)
    if h0 is not None:
        h0 = h0.to(dtype).expand(shape[:-2] + shape[-1:])  # (..., D)
    out = _empty(shape, dtype, b.device)  # (..., T, D)
    if out.numel():
        _KERNELS[backend](a, b, h0, out, reverse=False)
    return out


# ---------------------------------------------------------------------------------------------
# public
# ---------------------------------------------------------------------------------------------

def choose_backend(device: torch.device | str, T: int, dtype: torch.dtype = torch.float32) -> str:
    """The backend ``linear_scan(..., backend="auto")`` uses for length T of dtype on device."""
    device = torch.device(device)
    if device.type == "cpu":
        if _scan_fused.available(dtype, device):
            return "fused"
        return "chunked" if T >= _CPU_CHUNKED_MIN_T else "sequential"
    return "parallel" if T >= _GPU_PARALLEL_MIN_T else "sequential"


def linear_scan(a: Tensor, b: Tensor, h0: Optional[Tensor] = None,
                backend: Backend = "auto") -> Tensor:
    """All states of the elementwise linear recurrence h_t = a_t * h_{t-1} + b_t.

    Parameters
    ----------
    a : Tensor, broadcastable against b, e.g. (..., T, D), (..., 1, D) or (D,)
        Decay. Real or complex.
    b : Tensor, (..., T, D)
        Input. Real or complex; a real a with a complex b (or the reverse) is promoted.
    h0 : Tensor, (..., D) broadcastable, optional
        State before t = 0; zero when omitted.
    backend : {"auto", "sequential", "chunked", "parallel", "fused"}
        "auto" picks per device and T, see ``choose_backend``. All backends agree to rounding
        and share one hand-written backward (a reverse scan on the same backend).

    Returns
    -------
    h : Tensor, (..., T, D)
        h[..., t, :] is the state after step t, with the broadcast shape of a and b and
        their promoted dtype.
    """
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {('auto',) + BACKENDS}")
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"a of shape {tuple(a.shape)} does not broadcast against "
                         f"b of shape {tuple(b.shape)}") from None
    if len(shape) < 2:
        raise ValueError(f"a of shape {tuple(a.shape)} and b of shape {tuple(b.shape)} have no "
                         "time dim: expected (..., T, D)")
    tensors = (a, b) if h0 is None else (a, b, h0)
    if not all(t.is_floating_point() or t.is_complex() for t in tensors):
        raise TypeError(f"linear_scan needs floating or complex tensors, got "
                        f"{[t.dtype for t in tensors]}")
    if h0 is not None:
        state_shape = shape[:-2] + shape[-1:]
        try:
            ok = torch.broadcast_shapes(h0.shape, state_shape) == state_shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"h0 of shape {tuple(h0.shape)} does not broadcast to the state "
                             f"shape {tuple(state_shape)} of a {tuple(a.shape)}, "
                             f"b {tuple(b.shape)}")
    dtype = a.dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if backend == "auto":
        backend = choose_backend(b.device, shape[-2], dtype)
    elif backend == "fused" and not _scan_fused.available(dtype, b.device):
        raise ValueError(f"backend 'fused' needs numba and a CPU tensor of dtype "
                         f"{', '.join(str(d) for d in _scan_fused.DTYPES)}; got {dtype} on "
                         f"{b.device.type}{'' if _scan_fused.numba else ' (numba is not installed)'}; "
                         f"use 'chunked' or 'auto'")

    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _LinearScan.apply(a, b, h0, shape, dtype, backend)
    # no autograd graph: skip the Function so nothing is saved
    return _scan(a, b, h0, shape, dtype, backend)
