"""The store's index: ``<store>/index.json`` keeps every run's row, so listing a large store reads
one file instead of one ``run.json`` per run.

::

    {"version": 1, "scan_ns": <time the listing began>, "runs": {"<folder>": {"stat": [ino, size, mtime_ns, ctime_ns], "row": {...}}}}

An entry is the row :func:`probe.runs.list_runs` built from a run's ``run.json`` (its status as
written there; whether a "running" run still holds its lock is asked at every listing) and the
``lstat`` of that file taken just before it was read. The index is a cache, never the truth: a
listing stats every ``run.json`` (one ``scandir`` of the store, one ``lstat`` per run) and
re-reads only those whose stat differs from their entry or that have none; then, if anything
changed, it writes the whole index again in one atomic replace. Writers (``probe.train``, a
sweep's workers) need not know the index exists; a missing, damaged, foreign-version or linked
index is rebuilt; two listings at once both write a valid index and the last one stays; a store
that cannot be written to is listed from its ``run.json`` files as before.

Racy entries (git's word, and its remedy): a ``run.json`` rewritten in place within one tick of a
coarse file-system clock, at the same size, would keep its stat. So the index records when the
listing that wrote it began (``scan_ns``), and an entry whose ``run.json`` was modified less than
:data:`RACY_S` seconds before that is read again at every listing, until the index is next
rewritten for another reason. Every writer of the store replaces ``run.json`` (a new inode), so
this guards only against edits by hand or by other tools.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from probe import _io

NAME = "index.json"
VERSION = 1  # raise when the row of a run.json changes, so older indexes are rebuilt
RACY_S = 2.0  # coarse mtime clocks tick once per 1-2 s (FAT, some network file systems)

Entry = dict[str, Any]  # {"stat": [int, int, int, int], "row": dict}


def stat_key(st: os.stat_result) -> list[int]:
    """What identifies one version of a ``run.json``: inode, size, mtime and ctime (ns)."""
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _valid(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    key, row = entry.get("stat"), entry.get("row")
    return (isinstance(key, list) and len(key) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in key)
            and isinstance(row, dict) and isinstance(row.get("id"), str) and isinstance(row.get("status"), str)
            and all(isinstance(k, str) for k in row))


def load(root: Path) -> tuple[dict[str, Entry], int]:
    """The entries of ``root``'s index and its ``scan_ns``; ``({}, 0)`` when it is missing or
    damaged (a bad entry alone is dropped). Read like any store file: no link followed, size and
    nesting bounded."""
    try:
        data = _io.read_json(root / NAME)
    except ValueError:
        return {}, 0
    runs, scan_ns = data.get("runs"), data.get("scan_ns")
    if data.get("version") != VERSION or not isinstance(runs, dict) or not isinstance(scan_ns, int):
        return {}, 0
    return {name: entry for name, entry in runs.items() if _valid(entry)}, scan_ns


def save(root: Path, entries: dict[str, Entry], old: dict[str, Entry], scan_ns: int) -> None:
    """Write the index atomically if ``entries`` differ from what was read (``old``); ``scan_ns``:
    when the listing that found ``entries`` began (:func:`time.time_ns`)."""
    if entries == old:
        return
    index = {"version": VERSION, "scan_ns": scan_ns, "runs": dict(sorted(entries.items()))}
    try:  # keys unsorted: a row's columns keep their order (the table's columns)
        _io.write_bytes(root / NAME, json.dumps(index, separators=(",", ":"), allow_nan=True).encode())
    except OSError:
        pass  # a read-only store: listed from its run.json files every time, as it was before
