"""Helpers shared by the fuzz tests (tests/probe/test_fuzz_*.py, tests/app/test_fuzz_explorer.py).

A fuzz case is a bad input and the promise it must keep: the command prints one line
``probe: error: ...`` and exits 2, the API raises a named exception type, the explorer answers
4xx (or shows the error in its page), and the store's other runs, and everything outside the
store, stay byte for byte as they were.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import probe
import tasks
from probe.cli import main

QUICK = dict(steps=6, batch_size=4, lr=1e-2, eval_splits=["train"], eval_n=4, n_checkpoints=3, progress=False)
QUICK_SETS = ["--set", 'train.eval_splits=["train"]', "--set", "train.eval_n=4", "--set", "batch_size=4", "--set", "lr=0.01",
              "--set", "n_checkpoints=3"]


def train_tiny(store, seed: int = 0, arch: str = "gru", hidden: int = 4, members: int = 1):
    """A run of a few steps, the size the fuzz tests need (a second or two on one core)."""
    task = tasks.make("parity")
    model = probe.models.make(arch, task, hidden=hidden, members=members, seed=seed)
    return probe.train(task, model, store=store, seed=seed, **QUICK)


def train_argv(store, *extra: str, hidden: str = "4", arch: str = "gru", seed: int = 0) -> list[str]:
    """``probe train`` of the run :func:`train_tiny` makes (same id), plus ``extra``."""
    return ["train", "parity", "--arch", arch, "--hidden", hidden, "--steps", "6", "--seed", str(seed),
            "--store", str(store), *QUICK_SETS, *extra]


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root`` without following links: file bytes, link targets, kinds."""
    out: dict[str, object] = {}
    root = Path(root)
    if not os.path.lexists(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            key = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[key] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode) and st.st_size <= 64 << 20:
                out[key] = p.read_bytes()
            elif stat.S_ISREG(st.st_mode):  # a sparse giant planted by a test: its size and time
                out[key] = ("big", st.st_size, st.st_mtime_ns)
            else:
                out[key] = ("kind", stat.S_IFMT(st.st_mode))
    return out


def one_error_line(code: int, err: str) -> bool:
    """The command's promise for bad input: exit 2 and exactly one line ``probe: error: ...``."""
    return code == 2 and err.startswith("probe: error: ") and err.count("\n") == 1 and "Traceback" not in err


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``probe`` in this process: exit status, stdout, stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
