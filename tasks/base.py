"""The Task contract every task implements, and the Batch it returns.

A task is a validated parameter dataclass plus a pure, seeded generator::

    task = tasks.make("parity", max_len=10)
    batch = task.sample(n=256, seed=0)              # or task.sample(n, seed, **task.splits()["len_50"])
    metrics = task.evaluate(outputs, batch)         # outputs (B, T, d_output) or (M, B, T, d_output)

Subclasses set the class attributes ``name``, ``Params`` (a frozen dataclass built with
:func:`tasks.params.param`), ``input_kind``, ``loss`` and ``feature_names``, and implement
``_dims`` (vocabulary / input and output sizes from the params), ``_sample`` and, where they
need them, ``_check`` (cross-parameter constraints), ``_setup`` (precomputation at construction),
``_metrics`` (extra metrics), ``_labels`` (token names) and ``splits``; ``paper`` lists the
parameters of the paper-scale setting (``tasks.make(name, **tasks.paper_params(name))``).

Conventions shared by all tasks
-------------------------------
- ``mask`` is the single source of truth for where loss and metrics apply; targets where it is
  False hold a valid value (0 for token targets), never -100.
- Variable-length sequences are padded to the batch's longest with the task's pad token, mask
  False there; integer features are -1 at padded steps.
- Randomness: ``sample`` builds a local ``numpy.random.Generator`` from the seed and a
  ``hashlib`` hash of the task's name and full (overridden) parameters; nothing is seeded globally.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from tasks.params import bad_param, build_params, doc_table, stable_hash

__all__ = ["Batch", "Task", "as_long", "as_float", "standard_normal"]


@dataclass
class Batch:
    """One batch of a task.

    Attributes
    ----------
    inputs : LongTensor (B, T) or FloatTensor (B, T, d_input)
    targets : LongTensor (B, T) or FloatTensor (B, T, d_output)
    mask : BoolTensor (B, T)
        Where loss and metrics apply.
    features : dict[str, Tensor (B, T)]
        Ground-truth latent variables (running parity, DFA state, bracket depth, ...).
    info : dict[str, Any]
        Task-specific extras that are not per-step, e.g. the automaton index of each row
        ``(B,)`` or the regression matrix ``(B, d_y, d_x)``.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Batch size B."""
        return self.mask.shape[0]

    @property
    def length(self) -> int:
        """Sequence length T."""
        return self.mask.shape[1]

    def to(self, device: torch.device | str) -> "Batch":
        """A copy with every tensor (including those in ``features`` and ``info``) on ``device``."""
        move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v  # noqa: E731
        return Batch(inputs=move(self.inputs), targets=move(self.targets), mask=move(self.mask),
                     features={k: move(v) for k, v in self.features.items()},
                     info={k: move(v) for k, v in self.info.items()})

    def rows(self, index: slice | list[int] | torch.Tensor) -> "Batch":
        """The sub-batch of the given rows (tensors in ``info`` with B rows are sliced too)."""
        pick = lambda v: (v[index] if isinstance(v, torch.Tensor) and v.dim() > 0  # noqa: E731
                          and v.shape[0] == self.n else v)
        return Batch(inputs=self.inputs[index], targets=self.targets[index], mask=self.mask[index],
                     features={k: v[index] for k, v in self.features.items()},
                     info={k: pick(v) for k, v in self.info.items()})


def _writable(a: np.ndarray) -> np.ndarray:
    # torch refuses to share memory with a read-only array (it warns, then shares it anyway):
    # copy those, such as a view of a memory-mapped corpus.
    return a if a.flags.writeable else a.copy()


def as_long(a: np.ndarray) -> torch.Tensor:
    """numpy integer array -> LongTensor without an extra copy where possible."""
    return torch.from_numpy(_writable(np.ascontiguousarray(a, dtype=np.int64)))


def as_float(a: np.ndarray) -> torch.Tensor:
    """numpy array -> FloatTensor (float32)."""
    return torch.from_numpy(_writable(np.ascontiguousarray(a, dtype=np.float32)))


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normals (float32) drawn by torch from a generator seeded by ``rng``.

    Several times faster than ``rng.standard_normal`` for the few thousand values of a batch,
    and still a pure function of ``rng``'s state.
    """
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2 ** 63)))
    return torch.randn(shape, generator=generator).numpy()


class Task:
    """Base class of every task; see the module docstring for the contract."""

    name: ClassVar[str]
    Params: ClassVar[type]
    input_kind: ClassVar[Literal["tokens", "vectors"]]
    loss: ClassVar[Literal["ce", "mse"]]
    feature_names: ClassVar[tuple[str, ...]]
    paper: ClassVar[dict[str, Any]] = {}  # the parameters that turn the scaled defaults into the paper's setting

    def __init__(self, **params: Any) -> None:
        self.config = build_params(self.Params, self.name, params)
        self._check(self.config)
        self.params: dict[str, Any] = dataclasses.asdict(self.config)
        dims = self._dims(self.config)
        self.vocab_size: int | None = dims.get("vocab_size")
        self.d_input: int | None = dims.get("d_input")
        self.d_output: int = dims["d_output"]
        self._resolved: dict[tuple, tuple[Any, int]] = {}
        self._setup(self.config)

    # --- for subclasses -------------------------------------------------------------------
    def _check(self, cfg: Any) -> None:
        """Raise ``bad_param(...)`` for cross-parameter constraints."""

    def _dims(self, cfg: Any) -> dict[str, int]:
        raise NotImplementedError

    def _setup(self, cfg: Any) -> None:
        """Precompute whatever does not depend on the seed."""

    def _sample(self, cfg: Any, n: int, rng: np.random.Generator) -> Batch:
        raise NotImplementedError

    def _labels(self) -> list[str]:
        """Readable name of every token id (token tasks)."""
        return [str(i) for i in range(self.vocab_size or 0)]

    def _metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Metrics of one member. outputs: (B, T, d_output), float, same device as batch."""
        mask = batch.mask
        count = int(mask.sum())
        if count == 0:
            return {"accuracy": math.nan, "loss": math.nan} if self.loss == "ce" else {"mse": math.nan}
        if self.loss == "ce":
            picked = outputs[mask]  # (N, d_output)
            target = batch.targets[mask]  # (N,)
            return {"accuracy": float((picked.argmax(-1) == target).float().mean()),
                    "loss": float(F.cross_entropy(picked, target))}
        err = (outputs - batch.targets)[mask]  # (N, d_output)
        mse = float(err.pow(2).mean())
        power = float(batch.targets[mask].pow(2).mean())
        return {"mse": mse, "relative_mse": mse / power if power > 0 else math.nan}

    # --- the contract -----------------------------------------------------------------------
    def splits(self) -> dict[str, dict]:
        """Named evaluation settings: overrides to pass to :meth:`sample`."""
        return {"train": {}}

    def sample(self, n: int = 256, seed: int = 0, **overrides: Any) -> Batch:
        """Draw a batch of ``n`` sequences, deterministic in (params, n, seed, overrides).

        Parameters
        ----------
        n : int
            Batch size B (>= 1).
        seed : int
            Non-negative seed; combined with a stable hash of the task's parameters.
        **overrides
            Any parameter of the task that does not change its vocabulary or input/output
            sizes, e.g. ``length=10000`` for parity. Validated like parameters.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise bad_param(self.name, "n", n, "an int >= 1")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise bad_param(self.name, "seed", seed, "an int >= 0")
        cfg, key = self._resolve(overrides)
        rng = np.random.default_rng([key, int(seed)])
        return self._sample(cfg, int(n), rng)

    def evaluate(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Task metrics; always includes ``"accuracy"`` (ce) or ``"mse"`` (mse).

        Parameters
        ----------
        outputs : Tensor (B, T, d_output) or (M, B, T, d_output)
            Logits (ce) or predictions (mse). For an ensemble, each metric is the mean over the
            M members; see :meth:`evaluate_members` for per-member values.
        batch : Batch
        """
        members = self.evaluate_members(outputs, batch)
        return {k: float(np.mean([m[k] for m in members])) for k in members[0]}

    def evaluate_members(self, outputs: torch.Tensor, batch: Batch) -> list[dict[str, float]]:
        """Per-member metrics: a list of M dicts (one dict for (B, T, d_output) outputs)."""
        outputs = torch.as_tensor(outputs)
        if outputs.dim() == 3:
            outputs = outputs.unsqueeze(0)  # (1, B, T, d_output)
        if outputs.dim() != 4 or tuple(outputs.shape[1:]) != (batch.n, batch.length, self.d_output):
            raise ValueError(f"{self.name}: outputs of shape {tuple(outputs.shape)} do not match the batch; "
                             f"expected (B, T, d_output) = {(batch.n, batch.length, self.d_output)} "
                             "or (M, B, T, d_output)")
        if batch.mask.device != outputs.device:
            batch = batch.to(outputs.device)
        with torch.no_grad():
            return [self._metrics(member.detach().float(), batch) for member in outputs]

    def decode(self, tokens: Any) -> list[str]:
        """Readable labels of one sequence: token ids (T,) for token tasks, vectors (T, d_input) otherwise."""
        t = torch.as_tensor(tokens)
        if self.input_kind == "vectors":
            if t.dim() == 1:
                t = t.unsqueeze(-1) if self.d_input == 1 else t.unsqueeze(0)
            if t.dim() != 2 or t.shape[-1] != self.d_input:
                raise ValueError(f"{self.name}: decode expects vectors (T, {self.d_input}), got {tuple(t.shape)}")
            return [self._vector_label(row) for row in t.tolist()]
        if t.dim() == 0:
            t = t.unsqueeze(0)
        if t.dim() != 1 or t.is_floating_point():
            raise ValueError(f"{self.name}: decode expects token ids (T,), got shape {tuple(t.shape)}")
        labels = self._labels()
        ids = t.tolist()
        bad = [i for i in ids if not 0 <= i < len(labels)]
        if bad:
            raise ValueError(f"{self.name}: token id {bad[0]} is outside the vocabulary [0, {len(labels)})")
        return [labels[i] for i in ids]

    def _vector_label(self, row: list[float]) -> str:
        return "(" + ", ".join(f"{v:+.2f}" for v in row) + ")"

    # --- helpers --------------------------------------------------------------------------
    def _resolve(self, overrides: dict[str, Any]) -> tuple[Any, int]:
        """Validated params after overrides, and their stable hash (cached per overrides)."""
        try:
            key = tuple(sorted((k, type(v).__name__, v) for k, v in overrides.items()))  # True is not 1
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self._resolved:
            return self._resolved[key]
        cfg = build_params(self.Params, self.name, {**self.params, **overrides}) if overrides else self.config
        if overrides:
            self._check(cfg)
            if self._dims(cfg) != self._dims(self.config):
                name = next(iter(overrides))
                raise ValueError(f"{self.name}: override {overrides} changes the model interface "
                                 f"{self._dims(self.config)} -> {self._dims(cfg)}; make a new task instead "
                                 f"(e.g. tasks.make({self.name!r}, {name}=...))")
        resolved = (cfg, stable_hash(self.name, dataclasses.asdict(cfg)))
        if key is not None:
            self._resolved[key] = resolved
        return resolved

    @classmethod
    def param_help(cls) -> str:
        """One line per parameter: name, type, default and what it does (for ``--help`` texts)."""
        return doc_table(cls.Params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"tasks.make({self.name!r}, {args})"
