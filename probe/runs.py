"""The run store: one folder per training run, read back as a :class:`Run`.

::

    runs/<run_id>/run.json                   config (task, model, train), versions, status, final metrics
    runs/<run_id>/metrics.jsonl              one line per logged step and member
    runs/<run_id>/ckpt/step_<N>.safetensors  every member + optimizer + RNG state at step N
    runs/<run_id>/analyses/<name>.json       cached analysis Results (written by ``analyses``)
    runs/index.json                          every run's row, kept by list_runs (:mod:`probe._runindex`)

A run's id is ``<task>-<arch>-h<hidden>-<hash8>``, the hash taken over its whole config (task,
model and training, seed included), so the same command always names the same folder: that is
how ``probe train`` finds an unfinished run to resume. Nothing here is ever unpickled, and nothing
outside the store is read: every path under a run folder goes through :mod:`probe._safepath`
(no links, FIFOs or devices; sizes and JSON nesting bounded). A run whose files cannot be read is
one row saying ``unreadable: <why>`` in :func:`list_runs`, never an error for the whole store.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

from probe import _io, _runindex, _safepath

_CKPT = re.compile(r"^step_(\d+)\.safetensors$")


def config_hash(config: dict) -> str:
    """Eight hex digits of SHA-256 over the canonical JSON of ``config``."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def run_id(config: dict) -> str:
    """``<task>-<arch>-h<hidden>-<hash8>`` for a run config ``{"task", "model", "train"}``."""
    m = config["model"]
    return f"{config['task']['name']}-{m.get('arch', 'model')}-h{m.get('hidden', '?')}-{config_hash(config)}"


def store_dir(store: str | os.PathLike, create: bool = False) -> Path:
    """The store folder, checked (see :func:`probe._safepath.check_store`): an empty path, a
    path with a control character or one that is a file raises ``ValueError``."""
    return _safepath.check_store(store, create)


def ckpt_path(run_path: Path, step: int) -> Path:
    """``<run>/ckpt/step_<step>.safetensors``."""
    return run_path / "ckpt" / f"step_{step}.safetensors"


def ckpt_steps(run_path: Path) -> list[int]:
    """Steps with a checkpoint file in a run folder, ascending (none when ``ckpt`` is missing,
    or is not a real folder)."""
    try:
        folder = _safepath.run_subdir(run_path, "ckpt")
        names = os.listdir(folder)
    except (ValueError, OSError):
        return []
    return sorted(int(m.group(1)) for m in map(_CKPT.match, names) if m)


def read_checkpoint(path: Path, run_path: Path | None = None) -> tuple[dict, dict[str, str]]:
    """Tensors and metadata of a checkpoint file (``step_<N>`` or ``resume_<N>``), checked.

    Besides the file's own checksum (:func:`probe._io.load_tensors`), its recorded step must be
    the ``N`` of its name, and with ``run_path`` the file must be a regular file in the run's
    real ``ckpt`` folder. Every failure is one ``ValueError`` naming the file.
    """
    path = Path(path)
    if run_path is not None:
        _safepath.under(_safepath.check_run_dir(run_path), path, "file")
    tensors, meta = _io.load_tensors(path)
    named = re.match(r"^(?:step|resume)_(\d+)\.safetensors$", path.name)
    if named and meta.get("step") != named.group(1):
        raise ValueError(f"checkpoint {path} is corrupt (it records step {meta.get('step')!r}, "
                         f"its name says {named.group(1)})")
    return tensors, meta


def check_info(info: dict, where: Path) -> dict:
    """``info`` (a parsed ``run.json``) if it has the structure the store relies on, else
    ``ValueError`` naming ``where``.

    Enough that listing, opening and resuming cannot trip over a damaged file; the model config
    itself is checked in full when a model is built (:func:`probe.models.check_config`).
    """
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"{where} is not a probe run ({what})")

    cfg = info.get("config")
    need(isinstance(cfg, dict), "no 'config' object")
    need(isinstance(cfg.get("task"), dict) and isinstance(cfg["task"].get("name"), str)
         and isinstance(cfg["task"].get("params"), dict), "config.task needs a name and params")
    need(isinstance(cfg.get("model"), dict), "config.model is not an object")
    need(isinstance(cfg.get("train"), dict), "config.train is not an object")
    for key, kind in (("final", dict), ("diverged", dict), ("id", str), ("status", str)):
        need(key not in info or isinstance(info[key], kind), f"{key} is not a {kind.__name__}")
    for key in ("members", "layers", "hidden"):
        v = cfg["model"].get(key, 1)
        need(isinstance(v, int) and not isinstance(v, bool) and v > 0, f"config.model.{key} is {v!r}")
    need(all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in info.get("diverged", {}).values()),
         "diverged steps are not numbers")
    return info


def _is_alive(run_path: Path, info: dict) -> str:
    # A run killed mid-training still says "running" in run.json; its lock tells the truth.
    status = info.get("status", "unknown")
    if status == "running" and not _io.is_locked(run_path / ".lock"):
        return "stopped"
    return status


class Run:
    """A training run on disk.

    Parameters
    ----------
    path : str or Path
        The run folder (holding ``run.json``).

    Attributes
    ----------
    path : Path
    id : str
    info : dict
        The whole ``run.json``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = _safepath.check_run_dir(path)
        file = _safepath.under(self.path, self.path / "run.json", "file")
        self.info = check_info(_io.read_json(file), file)
        self.id = self.info.get("id", self.path.name)

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r}, steps={self.checkpoint_steps[-1:]})"

    @property
    def config(self) -> dict:
        """``{"task": {"name", "params"}, "model": model.config, "train": {...}}``."""
        return self.info["config"]

    @property
    def status(self) -> str:
        """``"running"``, ``"stopped"`` (killed; rerun to resume), ``"done"`` or ``"diverged"``."""
        return _is_alive(self.path, self.info)

    @property
    def diverged(self) -> dict[int, int]:
        """Members whose loss turned NaN/inf, mapped to the step at which they were frozen."""
        return {int(k): v for k, v in self.info.get("diverged", {}).items()}

    @property
    def final(self) -> dict[str, float]:
        """Metrics at the last logged step, averaged over the members that did not diverge."""
        return dict(self.info.get("final", {}))

    @property
    def metrics(self) -> list[dict]:
        """Every ``metrics.jsonl`` line: ``{"step", "member", "loss", "lr", "<split>.<metric>"...}``."""
        path = _safepath.under(self.path, self.path / "metrics.jsonl", "file", missing_ok=True)
        return [] if path is None else _io.read_jsonl(path)

    def curve(self, key: str, member: int | None = None) -> tuple[list[int], list[float]]:
        """Steps and values of one metric, for one member or averaged over all of them."""
        by_step: dict[int, list[float]] = {}
        for row in self.metrics:
            v, step = row.get(key), row.get("step")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(step, int) \
                    and (member is None or row.get("member") == member):
                by_step.setdefault(step, []).append(v)
        steps = sorted(by_step)
        return steps, [sum(by_step[s]) / len(by_step[s]) for s in steps]

    @property
    def checkpoint_steps(self) -> list[int]:
        """Steps with a checkpoint file, ascending."""
        return ckpt_steps(self.path)

    def _resolve_step(self, step: int | None) -> int:
        steps = self.checkpoint_steps
        if not steps:
            raise ValueError(f"run {self.id} has no checkpoints")
        if step is None:
            return steps[-1]
        if step not in steps:
            raise ValueError(f"run {self.id} has no checkpoint at step {step}; steps: {steps}")
        return step

    def load_checkpoint(self, step: int | None = None) -> tuple[dict, dict[str, str]]:
        """Tensors and metadata of one checkpoint (``None`` = last); ``ValueError`` if corrupt."""
        return read_checkpoint(ckpt_path(self.path, self._resolve_step(step)), self.path)

    def ensemble(self, step: int | None = None, device: str = "cpu"):
        """All members as one model at a checkpoint (``None`` = last)."""
        import probe.models

        model = probe.models.from_config(self.config["model"])  # a damaged config fails before any read
        tensors, _ = self.load_checkpoint(step)
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"checkpoint of run {self.id} does not fit its model config "
                             f"({str(e).splitlines()[0]})") from None
        return model.to(device)

    def model(self, member: int = 0, step: int | None = None, device: str = "cpu"):
        """One member as a plain single model at a checkpoint (``None`` = last)."""
        m = int(self.config["model"].get("members", 1))
        if isinstance(member, bool) or not isinstance(member, int):
            raise TypeError(f"member must be an integer, got {member!r}")
        if not 0 <= member < m:
            raise ValueError(f"member {member} out of range: run {self.id} has {m} member(s), 0..{m - 1}")
        model = self.ensemble(step, device)
        return model.member(member) if m > 1 else model

    def task(self):
        """The task, rebuilt from the config."""
        import tasks

        name = self.config["task"]["name"]
        if name not in tasks.names():
            raise ValueError(f"run {self.id} is of unknown task {name!r}; valid tasks: {', '.join(tasks.names())}")
        return tasks.make(name, **self.config["task"]["params"])


def _row(path: Path, info: dict) -> dict[str, Any]:
    cfg = info["config"]
    m, t = cfg["model"], cfg["train"]
    return {
        "id": info.get("id", path.name),
        "task": cfg["task"]["name"],
        "arch": m.get("arch"),
        "hidden": m.get("hidden"),
        "layers": m.get("layers", 1),
        "members": m.get("members", 1),
        "seed": t.get("seed"),
        "steps": t.get("steps"),
        "step": info.get("step", 0),
        "status": info.get("status", "unknown"),  # as written: list_runs asks the lock (_is_alive)
        "diverged": len(info.get("diverged", {})),
        **{str(k): v for k, v in info.get("final", {}).items()
           if v is None or isinstance(v, (int, float, str)) and not isinstance(v, bool)},
    }


def unreadable_row(name: str, why: str) -> dict[str, Any]:
    """The row of a folder that looks like a run but cannot be read: its status says why."""
    return {"id": name, "task": None, "arch": None, "hidden": None, "layers": None, "members": None,
            "seed": None, "steps": None, "step": None, "status": f"unreadable: {why}", "diverged": 0}


def _read_row(root: Path, name: str) -> dict[str, Any] | None:
    path = root / name
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):  # a link to a folder elsewhere is not a run of this store: say so
            return unreadable_row(name, "a symbolic link (the store follows no links)") if path.is_dir() else None
        if not stat.S_ISDIR(mode) or not os.path.lexists(path / "run.json"):
            return None  # not a run folder at all (a claims report, a scratch folder)
        run = Run(path)
        return _row(run.path, run.info)
    except (ValueError, OSError, KeyError, TypeError, AttributeError) as e:
        why = str(e).replace(f"{path}{os.sep}", "").replace(str(path), "the folder")
        return unreadable_row(name, " ".join(why.split()))


def _indexed_row(root: Path, entry: os.DirEntry, old: dict, new: dict, racy_ns: int) -> dict[str, Any] | None:
    # The row of one store entry: from the index if its run.json has not changed since (and was
    # not modified just before the index's listing: racy), else read and entered into ``new``.
    if entry.is_dir(follow_symlinks=False):  # d_type from scandir: no system call
        try:
            st = os.lstat(os.path.join(entry.path, "run.json"))
        except OSError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            key = _runindex.stat_key(st)
            cached = old.get(entry.name)
            if cached is not None and cached["stat"] == key and st.st_mtime_ns < racy_ns:
                new[entry.name] = cached
                return cached["row"]
            row = _read_row(root, entry.name)  # read after the stat: a later change changes the stat
            if row is not None and not row["status"].startswith("unreadable"):
                new[entry.name] = {"stat": key, "row": row}
            return row
    return _read_row(root, entry.name)


def list_runs(store: str | os.PathLike = "runs", update_index: bool = True) -> list[dict[str, Any]]:
    """One row per run in ``store``, from the store's index and the ``run.json`` files changed since.

    The index (``<store>/index.json``, see :mod:`probe._runindex`) is checked against a stat of
    every ``run.json`` and brought up to date atomically, so a 1,000-run store lists in a few
    milliseconds once indexed, and the rows are always those the ``run.json`` files give.
    ``update_index=False`` leaves the store as it is (the index is used, not rewritten): how a
    failed command names the runs it could have meant without touching the store.

    Returns
    -------
    list of dict
        ``id, task, arch, hidden, layers, members, seed, steps, step, status, diverged`` and the
        final metrics (``"<split>.<metric>"``, mean over members), sorted by id. A folder with a
        ``run.json`` that cannot be read (damaged, a link, not JSON) is a row whose status is
        ``"unreadable: <why>"`` and whose other fields are None; folders that are not runs are
        skipped.
    """
    root = store_dir(store)
    if not root.exists():
        return []
    scan_ns = time.time_ns()
    (old, old_scan_ns), new = _runindex.load(root), {}
    racy_ns = old_scan_ns - int(_runindex.RACY_S * 1e9)
    with os.scandir(root) as entries:
        found = [(e.name, _indexed_row(root, e, old, new, racy_ns)) for e in entries if not e.name.startswith(".")]
    if update_index:
        _runindex.save(root, new, old, scan_ns)
    # A run.json saying "running" whose lock nobody holds is a killed run: "stopped".
    rows = [dict(r, status=_is_alive(root / name, r)) for name, r in found if r is not None]
    return sorted(rows, key=lambda r: r["id"])


def format_runs(rows: list[dict]) -> str:
    """The runs table as fixed-width text (what ``probe runs`` prints)."""
    if not rows:
        return "(no runs)"
    head = ["id", "task", "arch", "hidden", "members", "step", "status", "final"]
    lines = []
    show = lambda v: "?" if v is None else str(v)  # noqa: E731
    for r in rows:
        status = r["status"] + (f" ({r['diverged']}/{r['members']} diverged)" if r["diverged"] else "")
        final = " ".join(f"{k}={_fmt(v)}" for k, v in r.items() if k.rpartition(".")[2] in ("accuracy", "mse"))
        lines.append([show(r["id"]), show(r["task"]), show(r["arch"]), show(r["hidden"]), show(r["members"]),
                      f"{show(r['step'])}/{show(r['steps'])}", status, final])
    widths = [max(len(head[i]), *(len(l[i]) for l in lines)) for i in range(len(head) - 1)]
    fmt = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths + [0])).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths] + ["-----"]), *map(fmt, lines)])


WHERE_KEYS = ("id", "task", "arch", "hidden", "layers", "members", "seed", "steps", "step", "status", "diverged")


def filter_runs(rows: list[dict], where: str) -> list[dict]:
    """The rows matching ``where``, ``"key=value[,key=value...]"`` (what ``probe runs --where`` takes).

    Every key must match; a key given twice matches either value (``arch=gru,arch=lstm``). ``id``
    matches a prefix of the id, ``status`` the word before any ``:`` or ``(`` too (``unreadable``);
    the other keys (:data:`WHERE_KEYS`) compare the value's text exactly (``hidden=16``). A pair
    without ``=`` or an unknown key raises ``ValueError`` naming it and the valid keys.
    """
    wanted: dict[str, set[str]] = {}
    for pair in where.split(","):
        key, eq, value = (p.strip() for p in pair.partition("="))
        if not eq or not key or not value:
            raise ValueError(f"--where takes key=value pairs separated by commas, got {pair.strip()!r}; "
                             f"keys: {', '.join(WHERE_KEYS)}")
        if key not in WHERE_KEYS:
            from probe._suggest import choices

            raise ValueError(f"unknown --where key {key!r}; {choices(key, list(WHERE_KEYS), 'keys')}")
        wanted.setdefault(key, set()).add(value)

    def match(key: str, value: Any, values: set[str]) -> bool:
        text = "" if value is None else str(value)
        if key == "id":
            return any(text.startswith(v) for v in values)
        if key == "status":
            return text in values or re.split(r"[:( ]", text, maxsplit=1)[0] in values
        return text in values

    return [r for r in rows if all(match(k, r.get(k), vs) for k, vs in wanted.items())]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def _looks_like_run(path: Path) -> bool:
    try:
        return os.path.lexists(path / "run.json")
    except (OSError, ValueError):  # a name too long, a NUL byte
        return False


def open_run(path_or_id: str | os.PathLike, store: str | os.PathLike = "runs") -> Run:
    """Open a run by folder path, or by id (or unique id prefix) inside ``store``.

    Raises
    ------
    ValueError
        If no such run exists (the message names the nearest runs in the store), the id is not a plain
        folder name, or the run cannot be read (the message says why).
    """
    text = os.fspath(path_or_id) if isinstance(path_or_id, os.PathLike) else path_or_id
    if not isinstance(text, str) or not text:
        raise ValueError(f"a run is a non-empty id or folder path, got {path_or_id!r}")
    path = Path(text)
    if _looks_like_run(path):
        return Run(path)
    root = store_dir(store)
    shown = repr(text[:80]) + ("..." if len(text) > 80 else "")
    _safepath.check_name(text)
    if _looks_like_run(root / text):
        return Run(root / text)
    ids = [r["id"] for r in list_runs(root, update_index=False)] if root.is_dir() else []
    # Let a unique prefix stand for the whole id, as git does for commits.
    matches = [i for i in ids if i.startswith(text)]
    if len(matches) == 1:
        return Run(root / matches[0])
    from probe._suggest import choices

    raise ValueError(f"unknown run {shown} in store {str(store)!r}; "
                     f"{choices(text, ids, 'runs', f'probe runs --store {store} lists them')}")
