"""Upper bounds: how big a model, a batch or a run may be, checked before anything is allocated or written.

Sizes that cost memory are bounded by the memory they would take, estimated from the model's
parameter shapes and a one-row sample of the task, against this machine's physical memory (or
``PROBE_MEMORY_BYTES``, for a shared machine); the error says how much was needed. Sizes that
cost time rather than memory (ensemble members, stacked layers, steps, checkpoints) have fixed
caps far above anything the workbench's studies use.
"""
from __future__ import annotations

import functools
import numbers
import os

MAX_MEMBERS = 4096  # members are drawn one by one at init: 10^6 of them take hours
MAX_LAYERS = 256  # each layer is a module with its own hooks; 10^5 of them take minutes to build
MAX_STEPS = 10**9  # ~ 12 days at 1 ms a step
MAX_CHECKPOINTS = 1000  # each one a file with every member's weights and optimizer state
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds

# Training keeps, per parameter, the weight, its gradient and two AdamW moments (float32).
BYTES_PER_PARAM_TRAINED = 16
# Per number an activation holds in a training step: the value, the copy autograd saves, its
# gradient. An estimate: the fused GRU/LSTM paths keep less, a hook-heavy step more.
ACTIVATION_COPIES = 3


@functools.lru_cache(maxsize=1)
def _physical() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def memory_bytes() -> int:
    """The memory a run may take: ``PROBE_MEMORY_BYTES`` if set (a positive integer), else the
    machine's physical memory."""
    text = os.environ.get("PROBE_MEMORY_BYTES", "").strip()
    if text:
        try:
            value = int(float(text))
        except ValueError:
            value = 0
        if value > 0:
            return value
    return _physical()


def fmt_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KB"`` (decimal units, as disks are sold)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # pragma: no cover


def check_fits(what: str, parts: dict[str, float]) -> None:
    """``ValueError`` if the memory in ``parts`` (name -> bytes) exceeds :func:`memory_bytes`.

    The message names ``what`` (the setting at fault), the total and its parts, and the budget.
    """
    need, budget = sum(parts.values()), memory_bytes()
    if need > budget:
        detail = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in parts.items() if v)
        source = "PROBE_MEMORY_BYTES allows" if os.environ.get("PROBE_MEMORY_BYTES", "").strip() else "this machine has"
        raise ValueError(f"{what} needs about {fmt_bytes(need)} of memory ({detail}); "
                         f"{source} {fmt_bytes(budget)}")


def check_int(name: str, value: object, low: int, high: int, why: str = "") -> int:
    """``value`` as an int in ``[low, high]`` (a bool or float is refused); ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}{why}, got {value!r}")
    return int(value)


def _row_bytes(task, **overrides) -> tuple[int, int]:
    """Bytes per row of a sampled batch (inputs, targets, mask, features) and its length T.

    Lengths vary from row to row in some tasks and a batch is as long as its longest row, so
    the sample has up to 64 rows (fewer when rows are large; tasks bound a row's size).
    """
    import torch

    def measure(n):
        batch = task.sample(n=n, seed=0, **overrides)
        tensors = [batch.inputs, batch.targets, batch.mask, *batch.features.values()]
        total = sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))
        return total // n, int(batch.inputs.shape[1])

    row, T = measure(1)
    n = max(1, min(64, (32 << 20) // max(row, 1)))  # at most 32 MB of sample
    return measure(n) if n > 1 else (row, T)


def check_training_fits(task, model_config: dict, cfg, long_after: int) -> None:
    """``ValueError`` if training the model of ``model_config`` on ``task`` with ``cfg`` (a
    TrainConfig) would not fit in memory: weights, gradients and optimizer state, plus the
    larger of one training step and one evaluation, plus the evaluation batches kept for the
    whole run. Nothing is built: parameters and activations are counted from shapes
    (:func:`probe.models.parameter_count`, :func:`probe.models.step_numbers`) and the task is
    sampled one row per split. ``long_after`` is the trainer's length beyond which an evaluation
    batch shrinks.
    """
    from probe.models import parameter_count, step_numbers

    M = int(model_config["members"])
    params = parameter_count(model_config) * M
    per_step = step_numbers(model_config)
    row, T = _row_bytes(task)
    rows = cfg.batch_size * (1 if cfg.shared_batches else M)
    step = 4 * ACTIVATION_COPIES * M * cfg.batch_size * T * per_step + rows * row
    kept, evaluation = 0, 0
    for split, over in task.splits().items():
        if cfg.eval_splits is not None and split not in cfg.eval_splits:
            continue
        srow, sT = _row_bytes(task, **over) if over else (row, T)
        length = int(over.get("length") or 0)
        n = cfg.eval_n if length <= long_after else max(16, cfg.eval_n * long_after // length)
        kept += n * srow
        evaluation = max(evaluation, 4 * 2 * M * n * sT * per_step)
    what = (f"training with batch_size={cfg.batch_size}, eval_n={cfg.eval_n} and {M} member(s) of "
            f"{params // M:,} weights on sequences of length up to about {T}")
    check_fits(what, {"weights, gradients and optimizer state": BYTES_PER_PARAM_TRAINED * params,
                      ("a training step" if step >= evaluation else "an evaluation"): max(step, evaluation),
                      "evaluation batches": kept})
