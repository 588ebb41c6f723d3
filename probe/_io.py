"""Crash-safe files for the run store: atomic writes, tolerant JSON lines, checked safetensors, locks.

Every file in a run folder is written to a temporary file in the same folder, flushed to disk
and then renamed over the target (``os.replace`` is atomic on POSIX), so a process killed at any
moment leaves either the old file or the new one, never half of one (and at most a stale
``.<name>.<random>.tmp``, removed by the next writer: :func:`probe._safepath.clean_stale_tmp`).
``metrics.jsonl`` is the one file that grows in place; a line torn by a kill is skipped on read
and dropped on resume.

Reads go through :mod:`probe._safepath`: no link is followed at the last component, only regular
files are read, and sizes and JSON nesting are bounded.

Checkpoints are safetensors (never pickle). Their metadata carries a SHA-256 of the whole file —
length prefix, header (tensor names, dtypes, shapes, offsets and every metadata value) and
tensor bytes — taken with the digest's own 64 hex digits written as zeros. So a truncated or
bit-flipped file, an edited step number and two swapped tensor names are all reported as one
``ValueError`` naming the file. Checkpoints of the first format (``probe-ckpt-1``, before
this digest) carry a SHA-256 of the tensor bytes alone: they still load, checked against it,
and their step is checked against the file name by the store (:func:`probe.runs.read_checkpoint`);
a resumed run writes its next checkpoints in the new format.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any, Iterable

from probe import _safepath

_FORMAT = "probe-ckpt-2"  # digest over the whole file
_FORMAT_V1 = "probe-ckpt-1"  # digest over the tensor bytes only (still read)
_BLANK = "0" * 64


def _fsync_dir(path: Path) -> None:
    # The rename itself must reach the disk too, or a power cut can undo it.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, ``os.replace``).

    The rename replaces a link at ``path`` by the file itself, never writes through it; the
    folder is the caller's to check (:func:`probe._safepath.under`).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; the file should look like any other
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n").encode())


def parse_json(data: bytes, what: str) -> Any:
    """Parse JSON bytes, nesting bounded; ``ValueError`` naming ``what`` otherwise."""
    try:
        obj = json.loads(data)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} is not valid JSON ({e})") from None
    if _safepath.json_depth(obj) > _safepath.MAX_JSON_DEPTH:
        raise ValueError(f"{what} is nested more than {_safepath.MAX_JSON_DEPTH} levels deep")
    return obj


def read_json(path: str | os.PathLike, limit: int = _safepath.MAX_JSON_BYTES) -> dict:
    """Read a JSON object; a missing, unreadable, oversized or too deeply nested file, or a link,
    FIFO or device in its place, raises ``ValueError`` naming it."""
    try:
        data = _safepath.read_bytes(path, limit)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    obj = parse_json(data, str(path))
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return obj


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append one JSON line per row and fsync; a kill can tear only the last line."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | os.PathLike, limit: int = _safepath.MAX_JSONL_BYTES) -> list[dict]:
    """Read JSON lines, skipping a torn or unparsable line, or one that is not an object."""
    try:
        lines = _safepath.read_bytes(path, limit).split(b"\n")
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = parse_json(line, "line")
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# safetensors with a checksum over the whole file


def _body_digest(data: bytes) -> str:
    (n,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + n:]).hexdigest()


def _field(digest: str) -> bytes:
    # How the safetensors writer spells the digest's metadata entry in the (compact) header. A
    # metadata value or tensor name holding these bytes would be JSON-escaped, so the raw bytes
    # occur only as the entry itself.
    return f'"sha256":"{digest}"'.encode()


def _whole_digest(data: bytes, digest: str) -> str | None:
    """SHA-256 of the file with ``digest`` written as zeros in its header; None if it is not there once."""
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8:8 + n]
    if header.count(_field(digest)) != 1:
        return None
    return hashlib.sha256(data[:8] + header.replace(_field(digest), _field(_BLANK)) + data[8 + n:]).hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str]) -> None:
    """Save tensors and string metadata as safetensors, atomically, with a whole-file checksum.

    Parameters
    ----------
    tensors : dict[str, torch.Tensor]
        Any shapes; moved to CPU and made contiguous here.
    metadata : dict[str, str]
        Small scalars (step numbers, JSON strings).
    """
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    data = save(tensors, metadata={**metadata, "format": _FORMAT, "sha256": _BLANK})
    (n,) = struct.unpack("<Q", data[:8])
    assert data[8:8 + n].count(_field(_BLANK)) == 1  # the writer spells it as _field expects
    digest = hashlib.sha256(data).hexdigest()
    # Same length, so the tensor offsets do not move.
    write_bytes(path, data[:8] + data[8:8 + n].replace(_field(_BLANK), _field(digest)) + data[8 + n:])


def load_tensors(path: str | os.PathLike, limit: int | None = None) -> tuple[dict, dict[str, str]]:
    """Load a checkpoint written by :func:`save_tensors`.

    Parameters
    ----------
    limit : largest file size read, in bytes (default: half the machine's memory).

    Returns
    -------
    tensors : dict[str, torch.Tensor]
    metadata : dict[str, str]

    Raises
    ------
    ValueError
        If the file is missing, truncated, not safetensors, not a regular file (a link, a FIFO, a
        device), larger than ``limit``, or its checksum does not match.
    """
    from safetensors.torch import load

    from probe import _limits

    try:
        data = _safepath.read_bytes(path, _limits.memory_bytes() // 2 if limit is None else limit, "checkpoint")
    except FileNotFoundError:
        raise ValueError(f"cannot read checkpoint {path} (No such file or directory)") from None
    bad = f"checkpoint {path} is corrupt or truncated"
    if len(data) < 8:
        raise ValueError(f"{bad} ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{bad} (header of {n} bytes in a file of {len(data)})")
    try:
        header = parse_json(data[8:8 + n], "header")
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise ValueError("metadata is not a map of strings")
        tensors = load(data)
    except Exception as e:  # safetensors raises its own error types; the user needs one line
        raise ValueError(f"{bad} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    fmt, digest = meta.get("format"), meta.get("sha256")
    if fmt == _FORMAT:
        ok = isinstance(digest, str) and _whole_digest(data, digest) == digest
    elif fmt == _FORMAT_V1:
        ok = digest == _body_digest(data)
    else:
        raise ValueError(f"{path} is not a probe checkpoint (format {fmt!r})")
    if not ok:
        raise ValueError(f"{bad} (checksum mismatch)")
    return tensors, meta


# ---------------------------------------------------------------------------------------------
# one writer per run


class Lock:
    """An exclusive, non-blocking ``flock`` on ``path``; released on ``close`` or process death.

    The lock file stays in place and is never written to, so a failed attempt changes nothing.
    """

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = Path(path)
        self._fd = _open_lock(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ValueError(f"{what} is being written by another process right now "
                             f"(lock {self.path}); wait for it to finish") from None

    def close(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_lock(path: Path, flags: int) -> int:
    # A lock file is a regular file: a folder, link, FIFO or device there is a damaged run.
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        raise ValueError(f"lock file {path} cannot be opened ({e.strerror}); the run folder is damaged") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"lock file {path} is not a regular file; the run folder is damaged")
    return fd


def is_locked(path: str | os.PathLike) -> bool:
    """Whether some process holds the lock at ``path`` right now (False for a missing or bad file)."""
    try:
        fd = _open_lock(Path(path), os.O_RDONLY)
    except ValueError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
