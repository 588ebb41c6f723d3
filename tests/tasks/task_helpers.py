"""Shared helpers for the task tests (a plain module, not a conftest, so that its name cannot clash)."""
from __future__ import annotations

import pytest
import torch

import tasks

# Small but non-trivial parameters for each task; the contract tests run on these and on defaults.
SMALL = {
    "parity": {"max_len": 6},
    "recall": {"vocab_size": 32, "seq_len": 24, "num_pairs": 4},
    "disjointness": {"vocab_size": 40, "short": 3, "long": 7},
    "regular": {"n_train_automata": 200, "n_test_automata": 50, "max_strings": 6, "max_len": 8},
    "integration": {"length": 20},
    "repetition": {"n_symbols": 10},
    "charlm": {"length": 40},
    "icl_regression": {"n_examples": 6, "n_queries": 2},
}


@pytest.fixture(params=sorted(SMALL))
def task(request) -> tasks.Task:
    return tasks.make(request.param, **SMALL[request.param])


def perfect_outputs(task: tasks.Task, batch: tasks.Batch) -> torch.Tensor:
    """Outputs that are right wherever the mask is True: (B, T, d_output)."""
    if task.loss == "mse":
        return batch.targets.clone()
    return 10.0 * torch.nn.functional.one_hot(batch.targets, task.d_output).float()


def wrong_outputs(task: tasks.Task, batch: tasks.Batch) -> torch.Tensor:
    """Outputs that are wrong wherever the mask is True (for regular: always the never-legal pad)."""
    if task.loss == "mse":
        return batch.targets + 1.0
    if task.name == "regular":
        return 10.0 * torch.nn.functional.one_hot(torch.full_like(batch.targets, task.d_output - 1), task.d_output).float()
    return 10.0 * torch.nn.functional.one_hot((batch.targets + 1) % task.d_output, task.d_output).float()
