"""``probe demo``: a quick profile of every task, trained into the run store, then the runs table.

Each task gets one small ensemble of the architecture that suits it (so the demo also shows
all six architectures), a few hundred steps, and evaluation on every split at the end only.
On a 2-core CPU the whole demo takes a few minutes; run again, it only loads what is there.
Later issues add analyses, claims and the explorer to it (in ``probe/cli.py``, which may
import them; this module may not): ``probe demo`` ends by serving the explorer over the store
when it runs in a terminal, or with ``--app`` (``--no-app`` never; pipes and tests just exit).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from probe.runs import Run, format_runs, list_runs


@dataclass(frozen=True)
class DemoRun:
    """One quick training run of the demo."""

    task: str
    arch: str
    steps: int
    hidden: int = 32
    members: int = 4
    lr: float = 3e-3
    batch_size: int = 32
    task_params: dict[str, Any] = field(default_factory=dict)
    eval_splits: tuple[str, ...] | None = None  # None: every split of the task


# Steps are sized by each task's step time on 2 cores (long sequences get fewer); learning
# rates are on the high side because the runs are short.
QUICK: tuple[DemoRun, ...] = (
    DemoRun("parity", "gru", steps=300, lr=1e-2),
    DemoRun("recall", "hawk", steps=200),
    DemoRun("disjointness", "lstm", steps=300),
    DemoRun("regular", "gru", steps=150),
    DemoRun("integration", "linear", steps=300, lr=1e-2),
    DemoRun("repetition", "elman", steps=300),
    DemoRun("charlm", "gru", steps=150, lr=1e-2),
    DemoRun("icl_regression", "lru", steps=300),
)


def train_one(spec: DemoRun, store: str = "runs", progress: bool | None = None) -> Run:
    """Train (or load) one demo run."""
    import tasks
    import probe

    task = tasks.make(spec.task, **spec.task_params)
    model = probe.models.make(spec.arch, task, hidden=spec.hidden, members=spec.members, seed=0)
    return probe.train(task, model, steps=spec.steps, batch_size=spec.batch_size, lr=spec.lr,
                       eval_every=spec.steps, eval_splits=spec.eval_splits, store=store, progress=progress)


def run(store: str = "runs", plan: tuple[DemoRun, ...] = QUICK, progress: bool | None = None,
        out=None) -> list[Run]:
    """Train every run of ``plan`` into ``store`` and print the table of those runs."""
    import tasks

    out = sys.stdout if out is None else out
    missing = [s.task for s in plan if s.task not in tasks.names()]
    if missing:
        raise ValueError(f"demo plan names unknown task {missing[0]!r}; valid tasks: {', '.join(tasks.names())}")
    t0 = time.perf_counter()
    runs = []
    for i, spec in enumerate(plan):
        print(f"[{i + 1}/{len(plan)}] {spec.task} with {spec.members} {spec.arch} members, {spec.steps} steps",
              file=sys.stderr, flush=True)
        runs.append(train_one(spec, store, progress))
    ids = {r.id for r in runs}
    print(format_runs([row for row in list_runs(store) if row["id"] in ids]), file=out)
    print(f"\n{len(runs)} runs in {store}/ ({time.perf_counter() - t0:.0f} s). "
          f"Next: probe runs --store {store}; open one with probe.open_run(<id>, store={store!r}).", file=out)
    return runs
