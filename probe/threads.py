"""How many threads torch runs on: the one place the library and the command decide it.

Small recurrent models are many tiny ops, and torch's intra-op thread pool costs more than it
gains on them; on shared cores (more busy threads than cores) a second thread mostly spins and
a step can take many times longer (``benchmarks/threads.py``; figures in ``benchmarks/NOTES.md``).
So probe runs torch on **one thread unless** ``OMP_NUM_THREADS`` says otherwise::

    import probe.threads
    probe.threads.count()          # 1, or OMP_NUM_THREADS when it is set (e.g. 4)
    with probe.threads.limited():  # torch on count() threads inside, restored afterwards
        ...
    probe.threads.apply()          # the same for the whole process (what ``probe ...`` does)

``probe.train`` trains inside ``limited(threads)`` (its ``threads`` argument, default
``count()``), so the README's API snippet runs as fast as ``probe train``; pass
``threads=torch.get_num_threads()`` to keep a setting of your own. On CUDA the count only
matters for the host-side work.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def count() -> int:
    """Threads probe runs torch on: ``OMP_NUM_THREADS`` when set to a positive integer, else 1."""
    raw = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # "4,2" (nested levels) -> 4
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def apply() -> int:
    """Set torch's thread count to :func:`count` for the whole process; returns it."""
    n = count()
    torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def limited(n: int | None = None) -> Iterator[int]:
    """Run torch on ``n`` threads (default :func:`count`) inside the block, restoring the setting after."""
    n = count() if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer; got {n!r}")
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, restoring the setting afterwards."""
    with limited(1):
        yield
