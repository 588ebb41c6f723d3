"""The run store never leaves itself: every path under a run folder is checked before it is opened.

One module decides what the store may touch, for the store itself (:mod:`probe.runs`), the
trainer, the command line, the analyses cache and the explorer:

* a run id is a plain folder name: no separator, no ``..``, no control character, at most 255
  bytes (``check_name``);
* on disk, every component from a run folder down is a real folder (``lstat``: a symbolic link
  is refused, wherever it points) and the last one is a regular file or a folder as asked, never
  a FIFO, socket or device (``under``); the run folder itself is no link either, so a store entry
  that links to a folder elsewhere is not a run of this store;
* files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked again with ``fstat`` (the entry
  may have changed since it was checked), and reads are bounded in size (``read_bytes``), so a
  FIFO cannot hang a reader and ``/dev/zero`` cannot fill the memory.

Everything refused raises ``ValueError`` naming the path and why. The store folder itself may
be anywhere, a link included: it is the user's choice, named on the command line.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Literal

Kind = Literal["file", "dir"]

MAX_NAME = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs)
MAX_JSON_BYTES = 64 << 20  # run.json, analysis caches, claims reports
MAX_JSONL_BYTES = 1 << 30  # metrics.jsonl
MAX_JSON_DEPTH = 64  # nesting of a JSON document; run.json needs 4


def _describe(mode: int) -> str:
    for test, what in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return what
    return "not a regular file"


def check_name(name: object, what: str = "run id") -> str:
    """``name`` if it is a plain folder name inside the store, else ``ValueError``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    shown = repr(name[:80]) + ("..." if len(name) > 80 else "")
    if name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"invalid {what} {shown}: it must be a plain name, not a path")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"invalid {what} {shown}: it holds a control character")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        raise ValueError(f"invalid {what} {shown}: longer than {MAX_NAME} bytes")
    return name


def check_store(store: object, create: bool = False) -> Path:
    """The store folder, checked: a non-empty path without control characters, a folder if it
    exists (created, with its parents, if ``create``). ``ValueError`` otherwise."""
    if isinstance(store, os.PathLike):
        store = os.fspath(store)
    if not isinstance(store, str) or not store.strip():
        raise ValueError(f"store must be a folder path, got {store!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in store):
        raise ValueError(f"store path {store!r} holds a control character (a newline?)")
    path = Path(store)
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"store {store!r} is a file, not a directory")
        if create:
            path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"store {store!r} cannot be used: {e.strerror or e}") from None
    return path


def check_run_dir(path: str | os.PathLike) -> Path:
    """A run folder: a real folder, not a link to one elsewhere."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise ValueError(f"run folder {path} does not exist") from None
    except OSError as e:
        raise ValueError(f"run folder {path} cannot be read: {e.strerror}") from None
    if not stat.S_ISDIR(mode):
        raise ValueError(f"run folder {path} is {_describe(mode)}, not a folder; the store follows no links")
    return path


def under(root: str | os.PathLike, path: str | os.PathLike, kind: Kind | None = None,
          missing_ok: bool = False) -> Path | None:
    """``path``, checked to lie below ``root`` through real folders only.

    Parameters
    ----------
    root : the folder the path must stay in (a run folder, or the store).
    path : ``root / <relative parts>``; ``..`` anywhere is refused.
    kind : what the last component must be ("file": a regular file, "dir": a folder), if it exists.
    missing_ok : return ``None`` for a missing component instead of raising.

    Raises
    ------
    ValueError
        If a component is a symbolic link, FIFO, socket or device, a folder on the way is a file,
        or the path is not below ``root``.
    """
    root, path = Path(root), Path(path)
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise ValueError(f"{path} lies outside {root}") from None
    if ".." in rel.parts:
        raise ValueError(f"{path} climbs out of {root} ('..')")
    here = root
    for i, part in enumerate(rel.parts):
        here = here / part
        last = i == len(rel.parts) - 1
        try:
            mode = os.lstat(here).st_mode
        except (FileNotFoundError, NotADirectoryError):
            if missing_ok:
                return None
            raise ValueError(f"{here} does not exist") from None
        except OSError as e:
            raise ValueError(f"{here} cannot be read: {e.strerror}") from None
        want = kind if last else "dir"
        if stat.S_ISLNK(mode):
            raise ValueError(f"{here} is a symbolic link; the store follows no links")
        if want == "dir" and not stat.S_ISDIR(mode) or want == "file" and not stat.S_ISREG(mode) \
                or want is None and not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            expected = {"dir": "a folder", "file": "a regular file", None: "a regular file or folder"}[want]
            raise ValueError(f"{here} is {_describe(mode)}, not {expected}")
    return path


def run_subdir(run_path: str | os.PathLike, name: str, create: bool = False) -> Path:
    """``<run>/<name>`` (``ckpt``, ``analyses``), checked to be a real folder in a real run folder;
    made if ``create`` (and missing). Whether it exists is the caller's to ask."""
    run_path = check_run_dir(run_path)
    path = run_path / check_name(name, "folder name")
    if under(run_path, path, "dir", missing_ok=True) is None and create:
        try:
            path.mkdir(exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot make {path} ({e.strerror})") from None
        under(run_path, path, "dir")
    return path


def read_bytes(path: str | os.PathLike, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    The last component is opened without following a link and without blocking (a FIFO gives
    no writer to wait for), then checked to be a regular file. ``FileNotFoundError`` passes
    through (callers decide what a missing file means); everything else is ``ValueError``.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ValueError(f"{what} {path} is a symbolic link; the store follows no links") from None
        raise ValueError(f"cannot read {what} {path} ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{what} {path} is {_describe(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{what} {path} is {st.st_size} bytes, more than the {limit} allowed")
        chunks, total = [], 0
        while True:  # the size may grow while we read: stop at the limit, not at memory's end
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ValueError(f"{what} {path} is more than the {limit} bytes allowed")
        return b"".join(chunks)
    except OSError as e:
        raise ValueError(f"cannot read {what} {path} ({e.strerror})") from None
    finally:
        os.close(fd)


def json_depth(obj: object) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            depth = max(depth, d)
            if d > MAX_JSON_DEPTH:
                return d
            stack.extend((v, d + 1) for v in value if isinstance(v, (dict, list)))
    return depth


def clean_stale_tmp(folder: str | os.PathLike, older_than_s: float = 0.0) -> list[Path]:
    """Remove the temporary files an atomic write killed halfway left in ``folder``.

    Only names of the form ``.<name>.<random>.tmp`` that are regular files (not links) and were
    last modified at least ``older_than_s`` seconds ago; call with 0 only under the lock of the
    only process that writes there. Returns what was removed.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime >= older_than_s:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed
