"""Large CPU output buffers for the scans: huge pages, and a small pool of reused memory.

glibc serves buffers of 32 MiB and more (its largest mmap threshold) with fresh pages every
time, and Linux zeroes every fresh page on first write. For a scan that streams its bytes once,
that zeroing is a large share of the cost: at B=16, T=4096, D=256 float32 (64 MiB per tensor,
2-core VM) the fused forward kernel takes 5 ms on memory it has written before and ~8 ms on
fresh memory; forward+backward writes three such tensors (h, dL/db, dL/da) and spends ~9 of
its ~25 ms on page zeroing.

Two remedies, both only for buffers of at least ``POOL_MIN_BYTES`` on the CPU:

- *Huge pages.* Fresh buffers are advised MADV_HUGEPAGE before first touch, so a 64 MiB buffer
  costs ~32 page faults instead of ~16k (PyTorch does the same for every allocation under
  THP_MEM_ALLOC_ENABLE=1; we do it only for our own buffers, and only as advice).
- *A pool.* Buffers come from numpy arrays that stay alive in this module after the last tensor
  viewing them is freed, and are handed out again for the next request of the same byte size.
  It is the CPU analogue of PyTorch's CUDA caching allocator, for the scans' own outputs only:
  a training loop that scans the same shapes every step then writes into memory it already
  owns. A buffer is reused only after every tensor and view of it is gone (a weak reference to
  the ndarray that the tensor's storage holds tells), so no live tensor ever aliases another.
  Idle buffers are kept up to ``max_idle_bytes`` (default 1 GiB), oldest dropped first;
  :func:`set_pool_limit` changes that, ``set_pool_limit(0)`` turns the pool off and frees them.

Tensors from the pool are ordinary CPU tensors, except that their storage cannot be resized
(``Tensor.resize_`` to a larger size raises), as for any tensor made by ``torch.from_numpy``.
"""
from __future__ import annotations

import ctypes
import functools
import sys
import threading
import weakref
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor

HUGE_PAGE = 2 << 20
POOL_MIN_BYTES = 32 << 20  # glibc's largest mmap threshold: smaller buffers recycle heap memory
MADV_HUGEPAGE = 14


@functools.cache
def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return fn


def _advise_huge_pages(address: int, nbytes: int) -> None:
    madvise = _madvise()
    if madvise is None:
        return
    start = -(-address // HUGE_PAGE) * HUGE_PAGE
    end = (address + nbytes) // HUGE_PAGE * HUGE_PAGE
    if end > start:
        madvise(start, end - start, MADV_HUGEPAGE)  # a failure only loses the speed-up


class _Pool:
    """Idle numpy byte buffers by size, and weak references to the views lent out."""

    def __init__(self, max_idle_bytes: int):
        self.max_idle_bytes = max_idle_bytes
        self.idle: OrderedDict[int, np.ndarray] = OrderedDict()  # id -> buffer, oldest first
        self.idle_bytes = 0
        self.lent: dict[int, weakref.ref] = {}  # id(buffer) -> weak ref to the view lent out
        # re-entrant: a weak-reference callback can run inside a locked section when the
        # garbage collector frees a tensor there
        self.lock = threading.RLock()

    def take(self, nbytes: int) -> np.ndarray:
        """A view of an idle buffer of exactly nbytes, or of a new one."""
        with self.lock:
            buf = next((b for b in self.idle.values() if b.nbytes == nbytes), None)
            if buf is None:
                buf = np.empty(nbytes, dtype=np.uint8)
                _advise_huge_pages(buf.ctypes.data, nbytes)
            else:
                del self.idle[id(buf)]
                self.idle_bytes -= nbytes
            view = buf.view()  # the tensor's storage holds this view; its death frees buf
            self.lent[id(buf)] = weakref.ref(view, functools.partial(self._give_back, buf))
            return view

    def _give_back(self, buf: np.ndarray, _ref) -> None:
        with self.lock:
            self.lent.pop(id(buf), None)
            if buf.nbytes > self.max_idle_bytes:
                return
            self.idle[id(buf)] = buf
            self.idle_bytes += buf.nbytes
            self._trim()

    def _trim(self) -> None:
        while self.idle_bytes > self.max_idle_bytes:
            _, old = self.idle.popitem(last=False)
            self.idle_bytes -= old.nbytes


_POOL = _Pool(max_idle_bytes=1 << 30)


def set_pool_limit(max_idle_bytes: int) -> int:
    """Keep at most ``max_idle_bytes`` of idle scan buffers for reuse (0: no pool); returns the
    previous limit. Buffers in use are never counted or freed by this."""
    if not isinstance(max_idle_bytes, int) or max_idle_bytes < 0:
        raise ValueError(f"max_idle_bytes must be an int >= 0 (0 turns the pool off); got {max_idle_bytes!r}")
    with _POOL.lock:
        previous, _POOL.max_idle_bytes = _POOL.max_idle_bytes, max_idle_bytes
        _POOL._trim()
    return previous


def pool_stats() -> dict[str, int]:
    """{"idle_buffers", "idle_bytes", "lent_buffers", "max_idle_bytes"} of the scan buffer pool."""
    with _POOL.lock:
        return {"idle_buffers": len(_POOL.idle), "idle_bytes": _POOL.idle_bytes,
                "lent_buffers": len(_POOL.lent), "max_idle_bytes": _POOL.max_idle_bytes}


def empty(shape: torch.Size, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.empty(shape, dtype=dtype, device=device)``; a large CPU buffer comes from the
    pool when it is on, else from torch with huge-page advice (see the module docstring)."""
    device = torch.device(device)
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
    if nbytes < POOL_MIN_BYTES:
        return torch.empty(shape, dtype=dtype)
    if _POOL.max_idle_bytes == 0:
        out = torch.empty(shape, dtype=dtype)
        _advise_huge_pages(out.data_ptr(), nbytes)
        return out
    return torch.from_numpy(_POOL.take(nbytes)).view(dtype).view(shape)
