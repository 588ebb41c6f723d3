"""Finding and restoring a run's resume point, for :func:`probe.train`.

A run folder holds log-spaced checkpoints ``ckpt/step_<N>.safetensors`` and, between them, at most
one time-based ``ckpt/resume_<N>.safetensors``. Training resumes from the newest; if that one is
damaged, nothing is changed and the error names the newest step that still reads, which
``from_step`` (``probe train --from-step N``) resumes from, deleting the later ones.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from probe import _io, _safepath
from probe.runs import check_info, ckpt_path, ckpt_steps, read_checkpoint


def resume_points(path: Path) -> list[tuple[int, Path]]:
    """Every resume point ``(step, file)``, newest first: log-spaced checkpoints and the
    time-based resume file (none when ``ckpt`` is missing or not a real folder)."""
    found = [(s, ckpt_path(path, s)) for s in ckpt_steps(path)]
    try:
        names = os.listdir(_safepath.run_subdir(path, "ckpt"))
    except (OSError, ValueError):
        names = []
    found += [(int(m.group(1)), path / "ckpt" / m.group(0))
              for m in map(re.compile(r"^resume_(\d+)\.safetensors$").match, names) if m]
    return sorted(found, key=lambda x: -x[0])


def load_latest(tr, path: Path, rid: str, from_step: int | None) -> int:
    """Restore the newest resume point (or step ``from_step``, dropping every later one); a
    corrupt one is an error that names it and the last good step, changing nothing."""
    points = resume_points(path)
    if from_step is not None:
        chosen = [f for s, f in points if s == from_step and f.name.startswith("step_")]
        if not chosen:
            raise ValueError(f"run {rid} has no checkpoint at step {from_step}; "
                             f"steps: {sorted(s for s, f in points if f.name.startswith('step_'))}")
        step = tr.load(chosen[0])
        for s, f in points:  # later states are recomputed; a damaged one must not be picked again
            if s > from_step or f.name.startswith("resume_"):
                f.unlink()
        return step
    try:
        return tr.load(points[0][1])
    except ValueError as e:
        good = next((s for s, f in points[1:] if f.name.startswith("step_") and _readable(f, path)), None)
        hint = (f"rerun with --from-step {good} (probe.train(..., from_step={good})) to resume from the last "
                f"good checkpoint" if good is not None else "no earlier checkpoint is readable either")
        raise ValueError(f"{e}; run {rid} is left as it was: {hint}") from None


def _readable(file: Path, path: Path) -> bool:
    try:
        read_checkpoint(file, path)
        return True
    except ValueError:
        return False


def read_info(path: Path) -> dict | None:
    """The run's ``run.json``, checked (:func:`probe.runs.check_info`); None if there is none."""
    file = path / "run.json"
    if not os.path.lexists(file):
        return None
    return check_info(_io.read_json(_safepath.under(path, file, "file")), file)


def make_run_dir(path: Path) -> Path:
    """Make the run folder (its store exists); a link or file in its place is a ``ValueError``."""
    try:
        path.mkdir(exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot make run folder {path} ({e.strerror})") from None
    return _safepath.check_run_dir(path)
