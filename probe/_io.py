"""Crash-safe files for the run store: atomic writes, tolerant JSON lines, checked safetensors, locks.

Every file in a run folder is written to a temporary file in the same folder, flushed to disk
and then renamed over the target (``os.replace`` is atomic on POSIX), so a process killed at any
moment leaves either the old file or the new one, never half of one. ``metrics.jsonl`` is the
one file that grows in place; a line torn by a kill is skipped on read and dropped on resume.

Checkpoints are safetensors (never pickle). Their metadata carries a SHA-256 of the tensor bytes,
so a truncated *or* bit-flipped file is reported as a ``ValueError`` naming the file.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any, Iterable

_FORMAT = "probe-ckpt-1"


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
    """Write ``data`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
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


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON object; a missing or unreadable file raises ``ValueError`` naming it."""
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read())
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return obj


def append_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Append one JSON line per row and fsync; a kill can tear only the last line."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    if not data:
        return
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines, skipping a torn or unparsable line instead of failing."""
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
    return rows


# ---------------------------------------------------------------------------------------------
# safetensors with a checksum


def _body_digest(data: bytes) -> str:
    (n,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + n:]).hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str]) -> None:
    """Save tensors and string metadata as safetensors, atomically, with a body checksum.

    Parameters
    ----------
    tensors : dict[str, torch.Tensor]
        Any shapes; moved to CPU and made contiguous here.
    metadata : dict[str, str]
        Small scalars (step numbers, JSON strings).
    """
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**metadata, "format": _FORMAT}
    # Tensor offsets do not depend on the metadata, so the body is the same in both passes.
    meta["sha256"] = _body_digest(save(tensors, metadata=meta))
    write_bytes(path, save(tensors, metadata=meta))


def load_tensors(path: str | os.PathLike) -> tuple[dict, dict[str, str]]:
    """Load a checkpoint written by :func:`save_tensors`.

    Returns
    -------
    tensors : dict[str, torch.Tensor]
    metadata : dict[str, str]

    Raises
    ------
    ValueError
        If the file is missing, truncated, not safetensors, or its checksum does not match.
    """
    from safetensors.torch import load

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read checkpoint {path} ({e.strerror})") from None
    bad = f"checkpoint {path} is corrupt or truncated"
    if len(data) < 8:
        raise ValueError(f"{bad} ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{bad} (header of {n} bytes in a file of {len(data)})")
    try:
        header = json.loads(data[8:8 + n])
        meta = header.get("__metadata__") or {}
        tensors = load(data)
    except Exception as e:  # safetensors raises its own error types; the user needs one line
        raise ValueError(f"{bad} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if meta.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a probe checkpoint (format {meta.get('format')!r})")
    if meta.get("sha256") != _body_digest(data):
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
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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


def is_locked(path: str | os.PathLike) -> bool:
    """Whether some process holds the lock at ``path`` right now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
