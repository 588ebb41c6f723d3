"""Safe access to the run store from the browser.

Every run id, member or step the browser sends goes through :func:`resolve_run` before it
touches the file system: no ``..``, no absolute paths, no separators, and no symlink that leads
out of the store. Models are loaded through a small LRU cache keyed by (run, member, step), so
moving between pages does not read a checkpoint again.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def resolve_run(store: str | os.PathLike, run_id: object) -> Path:
    """The folder of run ``run_id`` inside ``store``, checked.

    Raises
    ------
    ValueError
        If ``run_id`` is not a plain folder name, names no run, or resolves outside ``store``
        (``..``, an absolute path, a symlink out of the store).
    """
    if not isinstance(run_id, str) or not run_id:
        raise ValueError("no run selected")
    if run_id in (".", "..") or ".." in run_id or run_id.startswith(("/", "\\")) or os.path.isabs(run_id) \
            or not set(run_id) <= _ID_CHARS or len(run_id) > 200:
        raise ValueError(f"invalid run id {run_id[:80]!r}")
    root = Path(store).resolve()
    path = (root / run_id).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValueError(f"run id {run_id!r} leads outside the store")
    if not (path / "run.json").is_file() or not (path / "run.json").resolve().is_relative_to(root):
        raise ValueError(f"unknown run {run_id!r} in this store")
    return path


def open_run(store: str | os.PathLike, run_id: object):
    """``probe.Run`` for a checked run id; corrupt runs raise ``ValueError``."""
    from probe.runs import Run

    path = resolve_run(store, run_id)
    try:
        return Run(path)
    except (KeyError, TypeError, OSError) as e:
        raise ValueError(f"run {run_id!r} cannot be read: {e}") from None


def check_member(run, member: object) -> int:
    """``member`` as an int in range for ``run``."""
    members = int(run.config["model"].get("members", 1))
    try:
        m = int(member or 0)
    except (TypeError, ValueError):
        raise ValueError(f"member must be an integer, got {member!r}") from None
    if not 0 <= m < members:
        raise ValueError(f"member {m} out of range: run {run.id} has members 0..{members - 1}")
    return m


def check_step(run, step: object) -> int | None:
    """``step`` as one of ``run``'s checkpoint steps (``None`` = last)."""
    if step in (None, ""):
        return None
    try:
        s = int(step)
    except (TypeError, ValueError):
        raise ValueError(f"step must be an integer, got {step!r}") from None
    if s not in run.checkpoint_steps:
        raise ValueError(f"run {run.id} has no checkpoint at step {s}")
    return s


class ModelCache:
    """A small thread-safe LRU of models keyed by (store, run, member, step, checkpoint mtime)."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, store, run_id, member=0, step=None):
        """``(run, model, task)`` for a checked run id, member and checkpoint step."""
        run = open_run(store, run_id)
        member, step = check_member(run, member), check_step(run, step)
        steps = run.checkpoint_steps
        if not steps:
            raise ValueError(f"run {run.id} has no checkpoints yet")
        step = steps[-1] if step is None else step
        from probe.runs import ckpt_path

        key = (str(Path(store).resolve()), run.id, member, step, ckpt_path(run.path, step).stat().st_mtime_ns)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        model = run.model(member=member, step=step).eval()
        value = (run, model, run.task())
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


MODELS = ModelCache()
