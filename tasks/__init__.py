"""Synthetic tasks behind one contract (see ``tasks.base``).

::

    import tasks
    tasks.names()                              # every registered task name
    task = tasks.make("parity", max_len=10)    # unknown name or bad param -> ValueError
    batch = task.sample(n=256, seed=0)         # Batch(inputs, targets, mask, features, info)
    task.evaluate(outputs, batch)              # {"accuracy": ..., ...} or {"mse": ..., ...}
    task.splits()                              # {"train": {}, "len_50": {"length": 50}, ...}
    tasks.make("regular", **tasks.paper_params("regular"))   # the paper-scale setting

One module per task; this file only holds the registry.
"""
from __future__ import annotations

from typing import Any

from tasks.base import Batch, Task
from tasks.charlm import CharLM
from tasks.disjointness import Disjointness
from tasks.icl_regression import ICLRegression
from tasks.integration import Integration
from tasks.parity import Parity
from tasks.recall import Recall
from tasks.regular import Regular
from tasks.repetition import Repetition

__all__ = ["Batch", "Task", "names", "make", "get", "paper_params"]

_REGISTRY: dict[str, type[Task]] = {cls.name: cls for cls in (
    Parity, Recall, Disjointness, Regular, Integration, Repetition, CharLM, ICLRegression)}


def names() -> list[str]:
    """Every registered task name."""
    return list(_REGISTRY)


def get(name: str) -> type[Task]:
    """The Task class registered as ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def make(name: str, **params: Any) -> Task:
    """Build the task ``name`` with ``params`` (the rest take their defaults).

    Raises
    ------
    ValueError
        For an unknown task (listing the valid ones) or a bad parameter (naming it, its value
        and what is allowed).
    """
    return get(name)(**params)


def paper_params(name: str) -> dict[str, Any]:
    """The parameters of the paper-scale setting of ``name`` (the defaults are scaled for CPU minutes).

    ``{}`` where the defaults already are the paper's (integration, repetition, charlm).
    """
    return dict(get(name).paper)
