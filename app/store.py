"""Safe access to the run store from the browser.

Every run id, member or step the browser sends goes through :func:`resolve_run` before it
touches the file system: a plain folder name (no ``..``, no absolute path, no separator, no
control character) naming a real folder of the store (no symbolic link, wherever it points);
what is read inside a run goes through :mod:`probe._safepath` as everywhere in the store. Sweep
names are checked the same way (:func:`resolve_sweep`), inside ``<store>/sweeps``.
Models are loaded through a small LRU cache keyed by (run, member, step), so moving between
pages does not read a checkpoint again.
"""
from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_run_id(run_id: object) -> str:
    """``run_id`` if it is a plain run id (letters, digits, ``-``, ``_``, ``.``; no ``..``, at most
    200 characters), else ``ValueError``; whether the run exists is :func:`resolve_run`'s check."""
    from probe import _safepath

    if not isinstance(run_id, str) or not run_id:
        raise ValueError("no run selected")
    if run_id in (".", "..") or ".." in run_id or run_id.startswith(("/", "\\")) or os.path.isabs(run_id) \
            or not set(run_id) <= _ID_CHARS or len(run_id) > 200:
        raise ValueError(f"invalid run id {run_id[:80]!r}")
    return _safepath.check_name(run_id)


def resolve_run(store: str | os.PathLike, run_id: object) -> Path:
    """The folder of run ``run_id`` inside ``store``, checked.

    Raises
    ------
    ValueError
        If ``run_id`` is not a plain folder name, names no run, or leads outside ``store``
        (``..``, an absolute path, a symbolic link).
    """
    check_run_id(run_id)
    root = Path(store).resolve()
    path = root / run_id
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise ValueError(f"unknown run {run_id!r} in this store") from None
    if stat.S_ISLNK(mode):
        raise ValueError(f"run id {run_id!r} leads outside the store (a symbolic link; the store follows no links)")
    if not stat.S_ISDIR(mode) or not os.path.lexists(path / "run.json"):
        raise ValueError(f"unknown run {run_id!r} in this store")
    return path


MAX_SWEEP_BYTES = 4 << 20  # a sweep's index: ~150 bytes a point, so ~25 000 points


def resolve_sweep(store: str | os.PathLike, name: object) -> Path:
    """The index file ``<store>/sweeps/<name>.json`` of sweep ``name`` (what ``probe sweep``
    writes), checked as run ids are: a plain name (no ``..``, separator, absolute path or control
    character), and no symbolic link on the way (``sweeps`` or the file), wherever it points.

    Raises
    ------
    ValueError
        If ``name`` is not such a name or names no sweep of this store.
    """
    from probe import _safepath

    if not isinstance(name, str) or not name:
        raise ValueError("no sweep selected")
    if name in (".", "..") or ".." in name or name.startswith((".", "/", "\\")) or os.path.isabs(name) \
            or "/" in name or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name) or len(name) > 200:
        raise ValueError(f"invalid sweep name {name[:80]!r}")
    _safepath.check_name(name, "sweep name")
    root = Path(store).resolve()
    path = root / "sweeps" / f"{name}.json"
    try:
        _safepath.under(root, path, "file")
    except ValueError as e:
        if not os.path.islink(root / "sweeps") and not os.path.lexists(path):
            raise ValueError(f"unknown sweep {name!r} in this store") from None
        why = "a symbolic link; the store follows no links" if "symbolic link" in str(e) else "not a regular file"
        raise ValueError(f"sweep {name!r} cannot be opened: {why}") from None
    return path


def open_run(store: str | os.PathLike, run_id: object):
    """``probe.Run`` for a checked run id; corrupt runs raise ``ValueError``."""
    from probe.runs import Run

    path = resolve_run(store, run_id)
    try:
        return Run(path)
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise ValueError(f"run {run_id!r} cannot be read: {e}") from None


def check_member(run, member: object) -> int:
    """``member`` as an int in range for ``run``."""
    members = int(run.config["model"].get("members", 1))
    if member is None or member == "":
        member = 0
    if isinstance(member, bool) or not isinstance(member, (int, float, str)):
        raise ValueError(f"member must be an integer, got {member!r}")
    try:
        m = int(member)
        if m != float(member):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"member must be an integer, got {str(member)[:40]!r}") from None
    if not 0 <= m < members:
        raise ValueError(f"member {m} out of range: run {run.id} has members 0..{members - 1}")
    return m


def check_step(run, step: object) -> int | None:
    """``step`` as one of ``run``'s checkpoint steps (``None`` = last)."""
    if step is None or step == "":
        return None
    if isinstance(step, bool) or not isinstance(step, (int, float, str)):
        raise ValueError(f"step must be an integer, got {step!r}")
    try:
        s = int(step)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"step must be an integer, got {str(step)[:40]!r}") from None
    if s not in run.checkpoint_steps:
        raise ValueError(f"run {run.id} has no checkpoint at step {s}")
    return s


class ModelCache:
    """A small thread-safe LRU of models keyed by (store, run, member, step, checkpoint mtime)."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}  # one lock per key being loaded

    def get(self, store, run_id, member=0, step=None):
        """``(run, model, task)`` for a checked run id, member and checkpoint step."""
        run = open_run(store, run_id)
        member, step = check_member(run, member), check_step(run, step)
        steps = run.checkpoint_steps
        if not steps:
            raise ValueError(f"run {run.id} has no checkpoints yet")
        step = steps[-1] if step is None else step
        from probe.runs import ckpt_path

        try:
            mtime = os.lstat(ckpt_path(run.path, step)).st_mtime_ns
        except OSError as e:
            raise ValueError(f"checkpoint at step {step} of run {run.id} cannot be read ({e.strerror})") from None
        key = (str(Path(store).resolve()), run.id, member, step, mtime)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key, threading.Lock())
        # A page asks for its model from several callbacks at once: the first loads it, the others wait.
        with loading:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            model = run.model(member=member, step=step).eval()
            value = (run, model, run.task())
            with self._lock:
                self._items[key] = value
                self._loading.pop(key, None)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return value


MODELS = ModelCache()
