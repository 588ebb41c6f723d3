"""The run store: one folder per training run, read back as a :class:`Run`.

::

    runs/<run_id>/run.json                   config (task, model, train), versions, status, final metrics
    runs/<run_id>/metrics.jsonl              one line per logged step and member
    runs/<run_id>/ckpt/step_<N>.safetensors  every member + optimizer + RNG state at step N
    runs/<run_id>/analyses/<name>.json       cached analysis Results (written by ``analyses``)

A run's id is ``<task>-<arch>-h<hidden>-<hash8>``, the hash taken over its whole config (task,
model and training, seed included), so the same command always names the same folder: that is
how ``probe train`` finds an unfinished run to resume. Nothing here is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from probe import _io

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
    """The store folder, checked: a path that is a file raises ``ValueError``."""
    path = Path(store)
    if path.exists() and not path.is_dir():
        raise ValueError(f"store {str(store)!r} is a file, not a directory")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def ckpt_path(run_path: Path, step: int) -> Path:
    """``<run>/ckpt/step_<step>.safetensors``."""
    return run_path / "ckpt" / f"step_{step}.safetensors"


def ckpt_steps(run_path: Path) -> list[int]:
    """Steps with a checkpoint file in a run folder, ascending."""
    try:
        names = os.listdir(Path(run_path) / "ckpt")
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_CKPT.match, names) if m)


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
        self.path = Path(path)
        self.info = _io.read_json(self.path / "run.json")
        if "config" not in self.info:
            raise ValueError(f"{self.path / 'run.json'} is not a probe run (no 'config')")
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
        return _io.read_jsonl(self.path / "metrics.jsonl")

    def curve(self, key: str, member: int | None = None) -> tuple[list[int], list[float]]:
        """Steps and values of one metric, for one member or averaged over all of them."""
        by_step: dict[int, list[float]] = {}
        for row in self.metrics:
            if key in row and row[key] is not None and (member is None or row["member"] == member):
                by_step.setdefault(row["step"], []).append(row[key])
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
        return _io.load_tensors(ckpt_path(self.path, self._resolve_step(step)))

    def ensemble(self, step: int | None = None, device: str = "cpu"):
        """All members as one model at a checkpoint (``None`` = last)."""
        import probe.models

        tensors, _ = self.load_checkpoint(step)
        model = probe.models.from_config(self.config["model"])
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
        if not 0 <= member < m:
            raise ValueError(f"member {member} out of range: run {self.id} has {m} member(s), 0..{m - 1}")
        model = self.ensemble(step, device)
        return model.member(member) if m > 1 else model

    def task(self):
        """The task, rebuilt from the config."""
        import tasks

        return tasks.make(self.config["task"]["name"], **self.config["task"]["params"])


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
        "status": _is_alive(path, info),
        "diverged": len(info.get("diverged", {})),
        **{k: v for k, v in info.get("final", {}).items()},
    }


def list_runs(store: str | os.PathLike = "runs") -> list[dict[str, Any]]:
    """One row per run in ``store``, read from the ``run.json`` files alone.

    Returns
    -------
    list of dict
        ``id, task, arch, hidden, layers, members, seed, steps, step, status, diverged`` and the
        final metrics (``"<split>.<metric>"``, mean over members), sorted by id. Folders that are
        not runs are skipped.
    """
    root = store_dir(store)
    if not root.exists():
        return []
    rows = []
    with os.scandir(root) as entries:
        for entry in entries:
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                info = _io.read_json(path / "run.json")
                rows.append(_row(path, info))
            except (ValueError, KeyError, TypeError):
                continue
    return sorted(rows, key=lambda r: r["id"])


def format_runs(rows: list[dict]) -> str:
    """The runs table as fixed-width text (what ``probe runs`` prints)."""
    if not rows:
        return "(no runs)"
    head = ["id", "task", "arch", "hidden", "members", "step", "status", "final"]
    lines = []
    for r in rows:
        status = r["status"] + (f" ({r['diverged']}/{r['members']} diverged)" if r["diverged"] else "")
        final = " ".join(f"{k}={_fmt(v)}" for k, v in r.items() if k.rpartition(".")[2] in ("accuracy", "mse"))
        lines.append([r["id"], r["task"], str(r["arch"]), str(r["hidden"]), str(r["members"]),
                      f"{r['step']}/{r['steps']}", status, final])
    widths = [max(len(head[i]), *(len(l[i]) for l in lines)) for i in range(len(head) - 1)]
    fmt = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths + [0])).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths] + ["-----"]), *map(fmt, lines)])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def open_run(path_or_id: str | os.PathLike, store: str | os.PathLike = "runs") -> Run:
    """Open a run by folder path, or by id inside ``store``.

    Raises
    ------
    ValueError
        If no such run exists; the message lists the runs in the store.
    """
    path = Path(path_or_id)
    if (path / "run.json").is_file():
        return Run(path)
    root = store_dir(store)
    if (root / str(path_or_id) / "run.json").is_file():
        return Run(root / str(path_or_id))
    ids = [r["id"] for r in list_runs(root)] if root.is_dir() else []
    # Let a unique prefix stand for the whole id, as git does for commits.
    matches = [i for i in ids if i.startswith(str(path_or_id))]
    if len(matches) == 1:
        return Run(root / matches[0])
    choices = ", ".join(ids[:20]) + (" ..." if len(ids) > 20 else "") if ids else "none"
    raise ValueError(f"unknown run {str(path_or_id)!r} in store {str(store)!r}; runs: {choices}")
