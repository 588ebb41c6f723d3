"""Train every member of an ensemble at once, checkpointing into the run store.

    run = probe.train(task, model, steps=2000, lr=1e-3, store="runs")

Each member has its own init (the model's), its own gradient clipping and weight decay, and may
diverge alone: a member whose loss or gradient turns NaN/inf is frozen where it was and the rest
go on. Batches are a pure function of ``(seed, step)``, learning rates a pure function of the
step, and checkpoints hold weights, optimizer state and the torch RNG state, so a run killed at
any point and started again ends with the same weights, bit for bit on CPU, as one never stopped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from typing import Literal, get_args

import torch

import probe
from probe import _io, _limits, _safepath
from probe import threads as _threads
from probe._resume import load_latest, make_run_dir, read_info, resume_points
from probe._trainer import _LONG, Trainer, derive_seed
from probe.progress import Progress
from probe.runs import Run, ckpt_path, run_id, store_dir

Optimizer = Literal["adamw", "sgd"]
Schedule = Literal["constant", "cosine"]
Device = Literal["auto", "cpu", "cuda"]

_RESUME_EVERY_S = 60.0  # between log-spaced checkpoints, also keep a resume point this often


@dataclass(frozen=True)
class TrainConfig:
    """Everything about training that is not the task or the model; stored in ``run.json``."""

    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: Optimizer = "adamw"
    weight_decay: float = 0.0
    schedule: Schedule = "constant"
    warmup: int = 0
    grad_clip: float | None = 1.0  # per member: clipping the stacked norm would couple members
    eval_every: int | None = None  # None: steps // 10; long splits are evaluated only this often
    eval_n: int = 256
    eval_splits: tuple[str, ...] | None = None  # None: every split in task.splits()
    shared_batches: bool = True  # False: every member sees its own batch each step
    seed: int = 0
    n_checkpoints: int = 30  # log-spaced, so learning-dynamics analyses see the early steps
    # Truncated BPTT over contiguous streams, as char-rnn trains: batch row b of step s+1
    # continues the text where row b of step s stopped, and starts from that row's final state
    # (detached). Needs a task with ``stream(n, seed, step)``; off by default, and left out of
    # the stored config while off, so the ids of other runs do not change.
    stateful: bool = False

    def __post_init__(self):
        # Upper bounds: batch_size and eval_n are bounded by memory, checked with the model and
        # task in train(); these caps only keep the numbers sane before that.
        for name, low, high in [("steps", 1, _limits.MAX_STEPS), ("batch_size", 1, 2**31 - 1),
                                ("eval_n", 1, 2**31 - 1), ("n_checkpoints", 2, _limits.MAX_CHECKPOINTS),
                                ("warmup", 0, _limits.MAX_STEPS), ("seed", 0, _limits.MAX_SEED),
                                ("eval_every", 1, _limits.MAX_STEPS)]:
            v = getattr(self, name)
            if not (v is None and name == "eval_every") and (
                    isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high):
                raise ValueError(f"train.{name} must be an integer in {low}..{high}; got {v!r}")
        for name, low in [("lr", 0.0), ("weight_decay", None), ("grad_clip", 0.0)]:
            v = getattr(self, name)
            if not (v is None and name == "grad_clip") and (
                    isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or v < 0 or (low is not None and v <= low)):
                raise ValueError(f"train.{name} must be a {'positive' if low is not None else 'non-negative'}"
                                 f" number; got {v!r}")
        for name, kind in [("optimizer", Optimizer), ("schedule", Schedule)]:
            if getattr(self, name) not in get_args(kind):
                raise ValueError(f"train.{name} must be one of {', '.join(get_args(kind))}; "
                                 f"got {getattr(self, name)!r}")
        if self.eval_splits is not None:
            if not isinstance(self.eval_splits, (list, tuple)) or not all(isinstance(x, str) for x in self.eval_splits):
                raise ValueError(f"train.eval_splits must be a list of split names; got {self.eval_splits!r}")
            object.__setattr__(self, "eval_splits", tuple(self.eval_splits))
        if not isinstance(self.stateful, bool):
            raise ValueError(f"train.stateful must be true or false; got {self.stateful!r}")
        if not isinstance(self.shared_batches, bool):
            raise ValueError(f"train.shared_batches must be true or false; got {self.shared_batches!r}")
        if self.warmup >= self.steps:
            raise ValueError(f"train.warmup must be smaller than train.steps ({self.steps}); got {self.warmup}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["eval_every"] = self.eval_every or max(1, self.steps // 10)
        if not self.stateful:
            del d["stateful"]
        return d


def field_names() -> list[str]:
    """The training keys ``--set train.<key>=...`` accepts."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def checkpoint_steps(steps: int, n: int = 30) -> list[int]:
    """Step 0, about ``n`` log-spaced steps in ``1..steps``, and ``steps`` itself."""
    return sorted({0, steps} | {round(steps ** (i / max(n - 1, 1))) for i in range(n)})


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for the update that takes the model from ``step`` to ``step + 1``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    # Decay to a tenth rather than zero, as nanoGPT does: the last steps still learn.
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _device(device: str) -> torch.device:
    if device not in get_args(Device):
        raise ValueError(f"device must be one of {', '.join(get_args(Device))}; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available; use auto or cpu")
    return torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                        "cpu" if device == "auto" else device)


def check_fits(task, model_config: dict, cfg: TrainConfig) -> None:
    """``ValueError`` (saying how much) if this training would not fit in memory; see
    :func:`probe._limits.check_training_fits`. The command line calls it before building the model."""
    _limits.check_training_fits(task, model_config, cfg, _LONG)


def _check_interface(task, model) -> None:
    # A model built for another task fails deep inside its first forward pass; say it here.
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, dict) or "input_kind" not in cfg:
        raise TypeError(f"model must come from probe.models.make, got {type(model).__name__}")
    want = {"input_kind": task.input_kind, "d_output": task.d_output,
            **({"vocab_size": task.vocab_size} if task.input_kind == "tokens" else {"d_input": task.d_input})}
    have = {k: cfg.get(k) for k in want}
    if have != want:
        raise ValueError(f"the model was built for {have}, but task {task.name} has {want}; "
                         f"build it with probe.models.make(arch, task, ...)")


def _summary(rows: list[dict], diverged: dict) -> dict:
    keep = [r for r in rows if r["member"] not in diverged] or rows
    keys = [k for k in rows[0] if "." in k]
    return {k: sum(r[k] for r in keep) / len(keep) for k in keys}


def _loop(tr: Trainer, cfg: TrainConfig, start: int, path, info: dict, progress: bool | None) -> None:
    ckpts = set(checkpoint_steps(cfg.steps, cfg.n_checkpoints))
    every = cfg.to_dict()["eval_every"]
    logs = ckpts | set(range(0, cfg.steps + 1, every))
    metric = "train.accuracy" if tr.task.loss == "ce" else "train.mse"
    bar = Progress(total=cfg.steps, initial=start, desc=f"train {info['id']} ({tr.task.name})", unit="step",
                   mode=progress)
    note = None
    t0, last_save = time.monotonic(), time.monotonic()
    for step in range(start, cfg.steps):
        losses = tr.step(step, lr_at(cfg, step)).tolist()
        s, stop = step + 1, not bool(tr.alive.any())
        bar.update(1, note)
        if s in logs or stop:
            long = stop or s == cfg.steps or s % every == 0
            rows = tr.log(s, losses, lr_at(cfg, min(s, cfg.steps - 1)), long=long)
            info["final"].update(_summary(rows, tr.diverged))
            note = (f"loss {info['final'].get('train.loss', math.nan):.4g}, "
                    f"{metric[6:9]} {info['final'].get(metric, math.nan):.3f}")
        if s in ckpts or stop:
            tr.save(s, ckpt_path(path, s))
            for old in (path / "ckpt").glob("resume_*.safetensors"):
                old.unlink()
            info.update(step=s, diverged={str(k): v for k, v in tr.diverged.items()},
                        elapsed_s=info.get("elapsed_s", 0.0) + time.monotonic() - t0, updated=time.time())
            t0 = last_save = time.monotonic()
            if stop:
                info["status"] = "diverged"
                break
            _io.write_json(path / "run.json", info)
        elif time.monotonic() - last_save > _RESUME_EVERY_S:
            old = list((path / "ckpt").glob("resume_*.safetensors"))
            tr.save(s, path / "ckpt" / f"resume_{s}.safetensors")
            for f in old:
                f.unlink()
            last_save = time.monotonic()
    bar.close(f"{bar.n - start} steps" + (f", {note}" if note else ""))


def train(task, model, steps: int = 1000, batch_size: int = 128, lr: float = 1e-3,
          optimizer: Optimizer = "adamw", weight_decay: float = 0.0, schedule: Schedule = "constant",
          warmup: int = 0, grad_clip: float | None = 1.0, eval_every: int | None = None,
          eval_n: int = 256, eval_splits: list[str] | None = None, shared_batches: bool = True,
          n_checkpoints: int = 30, stateful: bool = False,
          store: str = "runs", seed: int | None = None, device: Device = "auto",
          progress: bool | None = None, from_step: int | None = None, threads: int | None = None) -> Run:
    """Train ``model`` (every member at once) on ``task``, saving into ``store``; resume if unfinished.

    The run's id is a hash of the task, the model config and the training config below, so
    calling this again with the same arguments resumes an interrupted run from its last
    checkpoint, or just loads a finished one. Either way ``model`` ends up holding the final
    weights (on ``device``).

    Parameters
    ----------
    task : Task
    model : nn.Module from ``probe.models.make`` (``members`` M >= 1, ``config`` dict)
    steps, batch_size, lr, optimizer, weight_decay, schedule, warmup, grad_clip
        As usual; clipping and weight decay act on every member separately. ``batch_size`` is
        per member.
    eval_every : int, optional
        Evaluate every this many steps (default ``steps // 10``) as well as at the log-spaced
        checkpoint steps; splits longer than 256 steps only at multiples of ``eval_every``.
    eval_n : int
        Evaluation batch size (smaller for long splits).
    eval_splits : list of str, optional
        Which of ``task.splits()`` to evaluate (default all).
    shared_batches : bool
        All members see the same batch (True) or each its own (False).
    n_checkpoints : int
        About this many log-spaced checkpoints, plus step 0 and the last.
    stateful : bool
        Truncated BPTT over contiguous text (char-rnn's training): every batch row continues
        where it stopped at the previous step, from its final state there (kept in checkpoints,
        so a resumed run is still bit-identical). Needs a task with ``stream`` (``charlm``).
    store : path
        The run store; the run goes to ``<store>/<run_id>/``.
    seed : int, optional
        Seed of the batch stream (default: the model's own seed).
    device : "auto", "cpu" or "cuda"
    progress : bool, optional
        Report progress on stderr (:mod:`probe.progress`): a bar with the loss and an ETA on a
        terminal, a line when training starts and ends otherwise; False: silent. Default: on.
    from_step : int, optional
        Resume from the checkpoint at this step instead of the newest one, deleting the later
        ones (for a run whose newest checkpoint is damaged: the error names the last good step).
    threads : int, optional
        Torch threads while training (default :func:`probe.threads.count`: 1 unless
        ``OMP_NUM_THREADS`` is set, as ``probe train`` does); the caller's setting is restored.

    Returns
    -------
    Run

    Raises
    ------
    ValueError
        For a bad setting (checked, with the memory the run would take, before anything is
        written), a model built for another task, or a damaged run (left as it was). A call
        that fails before its first training step leaves no run folder behind.
    """
    if seed is None:
        seed = int(getattr(model, "config", {}).get("seed", 0))
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer,
                      weight_decay=weight_decay, schedule=schedule, warmup=warmup, grad_clip=grad_clip,
                      eval_every=eval_every, eval_n=eval_n, eval_splits=eval_splits,
                      shared_batches=shared_batches, seed=seed, n_checkpoints=n_checkpoints, stateful=stateful)
    if from_step is not None:
        _limits.check_int("from_step", from_step, 0, cfg.steps)
    if threads is not None:
        _limits.check_int("threads", threads, 1, 4096)
    dev = _device(device)
    root = store_dir(store)
    _check_interface(task, model)
    config = json.loads(json.dumps({"task": {"name": task.name, "params": task.params},
                                    "model": dict(model.config), "train": cfg.to_dict()}))
    rid = run_id(config)
    path = root / rid
    if root.exists():
        _safepath.under(root, path, "dir", missing_ok=True)  # a link or a file there is refused
    info = read_info(path)
    if info is not None and info.get("config") != config:
        raise ValueError(f"run folder {path} holds a different config (hash collision?); move it away")
    check_fits(task, model.config, cfg)
    tr = Trainer(task, model.to(dev), cfg, path, dev)  # before touching the store: may fail
    made = [p for p in (root, path) if not p.exists()]
    store_dir(store, create=True)
    make_run_dir(path)
    with _threads.limited(threads), _io.Lock(path / ".lock", f"run {rid}"), torch.random.fork_rng(
            devices=[dev] if dev.type == "cuda" else [], device_type=dev.type):
        try:
            return _train_locked(tr, cfg, path, rid, config, seed, dev, progress, from_step)
        except BaseException:
            # A run that never finished a training step holds nothing worth resuming: leave no
            # folder behind (only one this call made, and only while holding its lock).
            if made and not any(s > 0 for s, _ in resume_points(path)):
                shutil.rmtree(path, ignore_errors=True)
                if root in made:
                    with contextlib.suppress(OSError):
                        root.rmdir()
            raise


def _train_locked(tr: Trainer, cfg: TrainConfig, path, rid: str, config: dict, seed: int, dev, progress: bool | None,
                  from_step: int | None) -> Run:
    # Only the lock holder writes here, so a temporary file left by a killed writer is stale.
    _safepath.clean_stale_tmp(path)
    if _safepath.under(path, path / "ckpt", "dir", missing_ok=True) is not None:  # a link there is refused
        _safepath.clean_stale_tmp(path / "ckpt")
    # Re-read under the lock: another process may have finished this run meanwhile.
    info = read_info(path)
    points = resume_points(path)
    if info is not None and info.get("status") in ("done", "diverged") and from_step is None:
        if not points:
            raise ValueError(f"run {rid} is {info['status']} but its checkpoints are gone")
        load_latest(tr, path, rid, None)
        return Run(path)
    if points and info is not None:
        start = load_latest(tr, path, rid, from_step)
        rows = [r for r in _io.read_jsonl(path / "metrics.jsonl") if isinstance(r.get("step", 0), int)
                and r.get("step", 0) <= start]
        # Lines logged after that checkpoint (and a line torn by the kill) are logged again.
        _io.write_bytes(path / "metrics.jsonl",
                        "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
        if from_step is not None:
            info.update(step=start, status="running")
    else:
        if from_step is not None:
            raise ValueError(f"run {rid} has not started: there is no checkpoint at step {from_step} to resume from")
        start = 0
        _safepath.run_subdir(path, "ckpt", create=True)
        info = {"id": rid, "config": config, "seed": seed, "created": time.time(), "step": 0,
                "diverged": {}, "final": {}}
        torch.manual_seed(derive_seed(seed, "torch"))
        _io.write_bytes(path / "metrics.jsonl", b"")
    info.update(status="running", device=str(dev), updated=time.time(),
                versions={"probe": probe.__version__, "torch": torch.__version__,
                          "python": platform.python_version()})
    _io.write_json(path / "run.json", info)
    if start == 0:
        info["final"] = _summary(tr.log(0, None, lr_at(cfg, 0), long=False), {})
        tr.save(0, ckpt_path(path, 0))
    _loop(tr, cfg, start, path, info, progress)
    if info["status"] == "running":
        info["status"] = "done"
    _io.write_json(path / "run.json", info)
    return Run(path)
