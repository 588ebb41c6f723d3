"""A small run store for the explorer's tests: a parity GRU ensemble, a linear-RNN integration run
and a char-LM GRU (a few steps: its alphabet has whitespace, for the text view)."""
from __future__ import annotations

import json

import pytest
import torch

import probe
import tasks


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("app_store")
    task = tasks.make("parity")
    model = probe.models.make("gru", task, hidden=8, members=2, seed=0)
    probe.train(task, model, steps=40, batch_size=16, lr=1e-2, eval_every=20, eval_splits=["train"], eval_n=32,
                n_checkpoints=4, store=root, progress=False)
    task = tasks.make("integration")
    model = probe.models.make("linear", task, hidden=6, seed=0)
    probe.train(task, model, steps=20, batch_size=16, lr=1e-2, eval_splits=["train"], eval_n=32,
                n_checkpoints=3, store=root, progress=False)
    task = tasks.make("charlm", length=40)
    model = probe.models.make("gru", task, hidden=8, seed=0)
    probe.train(task, model, steps=4, batch_size=8, lr=1e-2, eval_splits=["train"], eval_n=8,
                n_checkpoints=2, store=root, progress=False)
    (root / "claims.json").write_text(json.dumps({"profile": "quick", "created": 0, "claims": [
        {"id": "spectrum.demo", "source": "test", "statement": "a passing claim", "measured": 0.99,
         "expected": ">= 0.9", "passed": True, "seconds": 0.1},
        {"id": "other", "source": "test", "statement": "a failing claim", "measured": {"a": 1, "b": {"c": [0.5, 2]}},
         "expected": None, "passed": False, "seconds": 0.2}]}))
    return root


@pytest.fixture(scope="session")
def parity_id(store):
    return next(r["id"] for r in probe.list_runs(store) if r["task"] == "parity")


@pytest.fixture(scope="session")
def charlm_id(store):
    return next(r["id"] for r in probe.list_runs(store) if r["task"] == "charlm")
