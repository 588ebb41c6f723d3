"""A small run store for the explorer's tests: a parity GRU ensemble, a linear-RNN integration run,
a char-LM GRU (a few steps: its alphabet has whitespace, for the text view) and a sweep of 8 tiny
parity runs (GRU and Elman, hidden 4 and 6, seeds 0 and 1) trained by ``probe.sweep.run_sweep``."""
from __future__ import annotations

import io
import json

import pytest
import torch

import probe
import tasks
from probe import sweep

TINY_SWEEP = """
name = "tiny"
task = "parity"
arch = ["gru", "elman"]
hidden = [4, 6]
seeds = [0, 1]
steps = 20
[set]
"train.batch_size" = 16
"train.lr" = 0.01
"train.eval_n" = 32
"train.eval_splits" = [["train"]]
"""


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
    sweep_file = root.parent / f"{root.name}-tiny.toml"  # outside the store, as a user's file is
    sweep_file.write_text(TINY_SWEEP)
    rows, failed = sweep.run_sweep(sweep.load_spec(sweep_file), root, workers=1, out=io.StringIO())
    assert not failed and [r["status"] for r in rows] == ["done"] * 8
    (root / "claims.json").write_text(json.dumps({"profile": "quick", "created": 0, "claims": [
        {"id": "spectrum.demo", "source": "test", "statement": "a passing claim", "measured": 0.99,
         "expected": ">= 0.9", "passed": True, "seconds": 0.1},
        {"id": "other", "source": "test", "statement": "a failing claim", "measured": {"a": 1, "b": {"c": [0.5, 2]}},
         "expected": None, "passed": False, "seconds": 0.2}]}))
    return root


@pytest.fixture(scope="session")
def tiny_sweep(store):
    """The sweep file of the store's sweep, loaded (``probe.sweep.Spec``)."""
    return sweep.load_spec(store.parent / f"{store.name}-tiny.toml")


@pytest.fixture(scope="session")
def parity_id(store):
    return next(r["id"] for r in probe.list_runs(store) if r["task"] == "parity" and r["members"] == 2)


@pytest.fixture(scope="session")
def charlm_id(store):
    return next(r["id"] for r in probe.list_runs(store) if r["task"] == "charlm")
