"""Training mechanics behind :func:`probe.train`: one step of an ensemble, evaluation, checkpoint state.

Members share nothing but the forward pass: each has its own loss term, gradient norm, clip
factor and, after a NaN/inf, its own freeze. The ensemble's loss is the *sum* of the members'
masked mean losses, so a member's gradient does not depend on how many members there are.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import torch
import torch.nn.functional as F

from probe import _io

# Splits longer than this are "long": a recurrence walks them step by step whatever the batch
# size, so they cost seconds each; they get a small batch (the task contract asks for one) and
# are evaluated only every eval_every steps and at the end, not at every log-spaced step.
_LONG = 256


def derive_seed(*parts) -> int:
    """A 31-bit seed from any parts, the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little") % 2**31


def member_losses(outputs: torch.Tensor, batch, loss: str) -> torch.Tensor:
    """Masked mean loss per member.

    Parameters
    ----------
    outputs : Tensor (M, B, T, K)
    batch : Batch with ``targets`` (B, T) / (B, T, K) or with a leading member axis, ``mask`` likewise.
    loss : "ce" or "mse"

    Returns
    -------
    Tensor (M,)
    """
    lead = outputs.shape[:3]
    mask = batch.mask.expand(lead)  # (M, B, T)
    if loss == "ce":
        target = batch.targets.expand(lead)  # (M, B, T)
        per = F.cross_entropy(outputs.flatten(0, 2), target.flatten(), reduction="none").view(lead)
    else:
        per = (outputs - batch.targets.expand(outputs.shape)).pow(2).mean(-1)  # (M, B, T)
    per = torch.where(mask, per, torch.zeros((), device=per.device))
    return per.sum((1, 2)) / mask.sum((1, 2)).clamp_min(1)  # (M,)


class Trainer:
    """The mechanics of training an ensemble: steps, evaluation, and checkpoint state.

    Parameters
    ----------
    task : Task
    model : nn.Module
        ``members`` M; with M > 1 every parameter has a leading member axis.
    cfg : TrainConfig
    path : Path
        The run folder (``metrics.jsonl`` is appended there).
    device : torch.device
    """

    def __init__(self, task, model, cfg, path, device: torch.device):
        self.task, self.model, self.cfg, self.path, self.device = task, model, cfg, path, device
        self.M = int(getattr(model, "members", 1))
        self.params = list(model.parameters())
        self.alive = torch.ones(self.M, dtype=torch.bool, device=device)
        self.diverged: dict[int, int] = {}
        if cfg.stateful and not callable(getattr(task, "stream", None)):
            raise ValueError(f"train.stateful needs a task that samples contiguous streams (stream()); "
                             f"{task.name} does not")
        self.carry: list | None = None  # stateful: every layer's final state of the last batch, detached
        if cfg.optimizer == "adamw":
            self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:  # momentum 0.9: plain SGD barely moves recurrent nets in a quick profile
            self.opt = torch.optim.SGD(self.params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        splits = task.splits()
        unknown = sorted(set(cfg.eval_splits or ()) - set(splits))
        if unknown:
            raise ValueError(f"unknown eval split {unknown[0]!r} for task {task.name}; valid splits: {', '.join(splits)}")
        self.eval_batches = {}  # split -> (batch, long)
        for split, over in splits.items():
            if cfg.eval_splits is not None and split not in cfg.eval_splits:
                continue
            length = int(over.get("length") or 0)
            n = cfg.eval_n if length <= _LONG else max(16, cfg.eval_n * _LONG // length)
            batch = task.sample(n=n, seed=derive_seed(cfg.seed, "eval", split), **over).to(device)
            self.eval_batches[split] = (batch, length > _LONG)

    # -- one step ------------------------------------------------------------------------------

    def _forward(self, inputs: torch.Tensor, carry: bool = False) -> torch.Tensor:
        if not carry:
            out = self.model(inputs)
        else:  # start from the rows' states at the end of the last batch; keep the new ones
            out, finals = self.model(inputs, state=self.carry, return_state=True)
            self.carry = [tuple(t.detach().clone() for t in f) if isinstance(f, tuple) else f.detach().clone()
                          for f in finals]  # clone: a view would keep the whole trajectory alive
        return out if self.M > 1 else out.unsqueeze(0)  # (M, B, T, K)

    def _batch(self, step: int):
        n = self.cfg.batch_size * (1 if self.cfg.shared_batches else self.M)
        if self.cfg.stateful:  # row b continues row b of the step before: one seed for the whole run
            batch = self.task.stream(n=n, seed=derive_seed(self.cfg.seed, "train"), step=step).to(self.device)
        else:
            batch = self.task.sample(n=n, seed=derive_seed(self.cfg.seed, "train", step)).to(self.device)
        if not self.cfg.shared_batches and self.M > 1:
            per_member = lambda t: t.view(self.M, self.cfg.batch_size, *t.shape[1:])  # noqa: E731
            batch = dataclasses.replace(batch, inputs=per_member(batch.inputs),  # (M, B, T, ...)
                                        targets=per_member(batch.targets), mask=per_member(batch.mask))
        return batch

    def _member_view(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.M > 1 else t.unsqueeze(0)  # (M, ...)

    def step(self, step: int, lr: float) -> torch.Tensor:
        """One update of every live member; returns the loss per member before it, (M,)."""
        batch = self._batch(step)
        self.opt.zero_grad(set_to_none=True)
        losses = member_losses(self._forward(batch.inputs, self.cfg.stateful), batch, self.task.loss)  # (M,)
        bad = ~torch.isfinite(losses) & self.alive
        torch.where(self.alive & ~bad, losses, 0.0).sum().backward()
        sq = sum(self._member_view(p.grad).flatten(1).pow(2).sum(1) for p in self.params if p.grad is not None)
        norm = torch.as_tensor(sq, device=self.device).sqrt()  # (M,)
        bad |= ~torch.isfinite(norm) & self.alive
        if bad.any():
            for i in bad.nonzero().flatten().tolist():
                self.diverged[i] = step
            self.alive &= ~bad
        factor = torch.ones_like(norm)
        if self.cfg.grad_clip is not None:
            factor = (self.cfg.grad_clip / (norm + 1e-6)).clamp(max=1.0)  # (M,)
        for p in self.params:
            if p.grad is not None:
                g = self._member_view(p.grad)  # (M, ...)
                shape = (-1,) + (1,) * (g.dim() - 1)
                # where, not multiply: a frozen member's gradient may hold NaN, and 0 * NaN = NaN
                g.copy_(torch.where(self.alive.view(shape), g * factor.view(shape), 0.0))
        for group in self.opt.param_groups:
            group["lr"] = lr
        frozen = self._snapshot_frozen()
        self.opt.step()
        self._restore_frozen(frozen)
        return losses.detach()

    def _snapshot_frozen(self) -> list:
        # Weight decay and momentum would still move a frozen member; put its slices back after.
        if not self.diverged or self.M == 1:
            return []
        idx = torch.tensor(sorted(self.diverged), device=self.device)
        saved = []
        for p in self.params:
            state = {k: v[idx].clone() for k, v in self.opt.state.get(p, {}).items()
                     if torch.is_tensor(v) and v.shape == p.shape}
            saved.append((p, idx, p.detach()[idx].clone(), state))
        return saved

    def _restore_frozen(self, saved: list) -> None:
        with torch.no_grad():
            for p, idx, value, state in saved:
                p[idx] = value
                for k, v in state.items():
                    self.opt.state[p][k][idx] = v

    # -- evaluation, logging, checkpoints ------------------------------------------------------

    @torch.no_grad()
    def _evaluate(self, long: bool) -> list[dict]:
        rows = [{} for _ in range(self.M)]
        for split, (batch, is_long) in self.eval_batches.items():
            if is_long and not long:
                continue
            out = self._forward(batch.inputs)  # (M, B, T, K)
            losses = member_losses(out, batch, self.task.loss).tolist()
            for i, metrics in enumerate(self.task.evaluate_members(out, batch)):
                rows[i][f"{split}.loss"] = losses[i]
                rows[i].update({f"{split}.{k}": float(v) for k, v in metrics.items()})
        return rows

    def log(self, step: int, losses: list[float] | None, lr: float, long: bool = True) -> list[dict]:
        """Evaluate every member (on the long splits too if ``long``); append one metrics line per member."""
        rows = self._evaluate(long)
        for i, row in enumerate(rows):
            row.update(step=step, member=i, lr=lr, loss=None if losses is None else losses[i])
            if i in self.diverged:
                row["diverged"] = self.diverged[i]
        _io.append_jsonl(self.path / "metrics.jsonl", rows)
        return rows

    def _state(self) -> tuple[dict, dict]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        for i, p in enumerate(self.params):
            for k, v in self.opt.state.get(p, {}).items():
                if v is not None:
                    tensors[f"optim.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
        for i, f in enumerate(self.carry or ()):
            for j, t in enumerate(f if isinstance(f, tuple) else (f,)):
                tensors[f"carry.{i}.{j}" if isinstance(f, tuple) else f"carry.{i}"] = t
        tensors["rng.torch"] = torch.get_rng_state()  # uint8
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return tensors, {"diverged": json.dumps({str(k): v for k, v in self.diverged.items()})}

    def save(self, step: int, file) -> None:
        """Write weights, optimizer and RNG state at ``step`` to ``file`` (atomically)."""
        tensors, meta = self._state()
        _io.save_tensors(file, tensors, {**meta, "step": str(step)})

    def load(self, file) -> int:
        """Restore the state saved by :meth:`save`; returns its step. ``ValueError`` if unusable."""
        from probe.runs import read_checkpoint

        tensors, meta = read_checkpoint(file, self.path)  # checksum, step and path checked
        try:
            self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            state = {}
            for k, v in tensors.items():
                if k.startswith("optim."):
                    _, i, name = k.split(".", 2)
                    state.setdefault(int(i), {})[name] = v
            self.opt.load_state_dict({"state": state, "param_groups": self.opt.state_dict()["param_groups"]})
            torch.set_rng_state(tensors["rng.torch"])
            if self.device.type == "cuda" and "rng.cuda" in tensors:
                torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
            self.diverged = {int(k): v for k, v in json.loads(meta["diverged"]).items()}
            carry: dict[int, dict[int, torch.Tensor]] = {}
            for k, v in tensors.items():
                if k.startswith("carry."):
                    _, i, *j = k.split(".")
                    carry.setdefault(int(i), {})[int(j[0]) if j else -1] = v.to(self.device)
            self.carry = [carry[i][-1] if -1 in carry[i] else tuple(carry[i][j] for j in sorted(carry[i]))
                          for i in sorted(carry)] or None
            step = int(meta["step"])
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise ValueError(f"checkpoint {file} does not fit this run ({str(e).splitlines()[0]})") from None
        self.alive[:] = True
        for i in self.diverged:
            self.alive[i] = False
        return step

