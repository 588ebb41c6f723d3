"""probe.threads: one place decides torch's thread count, for probe.train and the command alike."""
from __future__ import annotations

import pytest
import torch

import probe
import probe.threads
import tasks
from probe._trainer import Trainer
from probe.cli import main


@pytest.mark.parametrize("env, expected", [(None, 1), ("3", 3), ("4,2", 4), ("0", 1), ("x", 1), ("", 1)])
def test_count_is_one_unless_omp_num_threads_says_otherwise(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    assert probe.threads.count() == expected


def test_limited_sets_the_count_inside_and_restores_it_after_an_error(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError), probe.threads.limited() as n:
            assert n == 1 and torch.get_num_threads() == 1
            raise RuntimeError
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="threads must be a positive integer; got 0"), probe.threads.limited(0):
            pass
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads, expected", [(None, 1), (2, 2)])
def test_train_from_python_runs_on_the_commands_thread_count(tmp_path, monkeypatch, threads, expected):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen = []
    step = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda self, *a, **k: seen.append(torch.get_num_threads()) or step(self, *a, **k))
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # the caller's own setting, as torch leaves it: one thread per core
    try:
        task = tasks.make("parity", max_len=6)
        probe.train(task, probe.models.make("gru", task, hidden=8), steps=3, batch_size=8, eval_n=8,
                    eval_splits=["train"], store=tmp_path, progress=False, threads=threads)
        assert seen == [expected] * 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_the_command_applies_the_same_count(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert main(["runs", "--store", str(tmp_path)]) == 0  # runs does not touch threads
        assert torch.get_num_threads() == 1
        assert main(["train", "parity", "--arch", "gru", "--hidden", "4", "--steps", "2", "--store", str(tmp_path),
                     "--set", "batch_size=4", "--set", "eval_n=4", "--set", 'eval_splits=["train"]']) == 0
        assert torch.get_num_threads() == probe.threads.count() == 2
    finally:
        torch.set_num_threads(before)
