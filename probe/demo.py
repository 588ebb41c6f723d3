"""``probe demo``: one small run per task that learns its task, trained into the run store.

Each task gets the smallest setting that reaches, within a few hundred steps on a 2-core CPU,
the level at which its analysis has something to show (its :class:`Goal`): parity is the
``parity.*`` claims' own quick run (so the automaton and the infinite generalisation are there
to see, and ``probe verify`` reuses it), recall and disjointness are short enough to be solved,
icl_regression is the bilinear Hawk whose weights hold an attention layer, and so on. The whole
demo takes a few minutes; run again, it only loads what is there.

This module trains and judges; ``probe/cli.py`` (which may import the analyses, as this module
may not) runs each run's analysis, prints the summary and what to open next, and serves the
explorer when a person is watching (a terminal) or asks for it with ``--app``.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from probe.runs import Run, format_runs, list_runs


@dataclass(frozen=True)
class Goal:
    """What a demo run must reach for its analysis to have something to show.

    ``metric`` is a key of the run's final metrics (``"train.accuracy"``) or, prefixed by the
    analysis name, of its analysis summary (``"ngram:accuracy"``). The goal is met when the
    value is ``>= at_least``, ``<= at_most`` and ``> above`` (another such key: a baseline),
    where given.
    """

    metric: str
    at_least: float | None = None
    at_most: float | None = None
    above: str | None = None
    label: str = ""

    def check(self, values: Mapping[str, float]) -> tuple[float | None, bool, str]:
        """``(value, met, "what it is against what it had to be")`` from ``values``."""
        value = values.get(self.metric)
        if value is None:
            return None, False, f"{self.label or self.metric}: not measured"
        rules, met = [], True
        if self.at_least is not None:
            rules.append(f">= {self.at_least:g}")
            met &= value >= self.at_least
        if self.at_most is not None:
            rules.append(f"<= {self.at_most:g}")
            met &= value <= self.at_most
        if self.above is not None:
            base = values.get(self.above)
            rules.append(f"> {self.above.partition(':')[2] or self.above} {_fmt(base)}")
            met &= base is not None and value > base
        return value, bool(met), f"{self.label or self.metric} {_fmt(value)} ({' and '.join(rules)})"


def _fmt(v: float | None) -> str:
    if v is None:
        return "?"
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


@dataclass(frozen=True)
class DemoRun:
    """One quick training run of the demo, what it must reach and where to look next.

    ``model_params`` go to :func:`probe.models.make` (architecture options, ``embedding``),
    ``train_params`` to :func:`probe.train` (by default the run is evaluated once, at the end).
    """

    task: str
    arch: str
    steps: int
    hidden: int = 32
    members: int = 4
    lr: float = 3e-3
    batch_size: int = 32
    task_params: dict[str, Any] = field(default_factory=dict)
    eval_splits: tuple[str, ...] | None = None  # None: every split of the task
    model_params: dict[str, Any] = field(default_factory=dict)
    train_params: dict[str, Any] = field(default_factory=dict)
    goal: Goal | None = None
    analysis: str | None = None  # the analysis that shows the phenomenon on this run
    notebook: str | None = None  # the notebook of the study, under notebooks/
    shows: str = ""  # one line: what to look for
    seconds: float = 10.0  # CPU seconds it takes on one core (measured), for the progress ETA


# Step counts and sizes were chosen by measuring what learns on 2 cores (analyses' NOTES.md and
# probe's README); each run's CPU time is a few seconds to about a minute.
QUICK: tuple[DemoRun, ...] = (
    # the parity.* claims' quick run itself (analyses/automaton/claims.py: train_parity)
    DemoRun("parity", "elman", steps=400, hidden=100, lr=3e-3, batch_size=128, seconds=8,
            task_params={"max_len": 10, "exhaustive": True}, eval_splits=("train", "len_50"),
            model_params={"embedding": "onehot", "nonlinearity": "relu", "gain": 0.1, "h0": "ones"},
            train_params={"eval_every": None, "n_checkpoints": 12},
            goal=Goal("automaton:members_parity", at_least=0.5, label="share of members whose automaton is parity's"),
            analysis="automaton", notebook="parity_automaton.ipynb",
            shows="trained on strings of length <= 10, it extracts to the 2-state parity automaton and is exact "
                  "at length 10,000"),
    # Zoology's MQAR (random filler, nothing echoed after a query); the delta rule learns it fast
    DemoRun("recall", "deltanet", steps=600, hidden=16, lr=1e-2, batch_size=64, seconds=12,
            task_params={"vocab_size": 32, "seq_len": 16, "num_pairs": 2},
            goal=Goal("train.accuracy", at_least=0.9, label="recall accuracy"),
            analysis="memory", notebook="memory_and_order.ipynb",
            shows="the pairs stay readable from the matrix state: S_t k gives back the stored value"),
    DemoRun("disjointness", "hawk", steps=1000, hidden=24, lr=1e-2, seconds=10,
            task_params={"vocab_size": 32, "short": 2, "long": 14},
            goal=Goal("train.accuracy", at_least=0.8, label="accuracy"),
            analysis="memory", notebook="memory_and_order.ipynb",
            shows="accuracy by which set comes first: holding the short set is cheaper than the long one"),
    DemoRun("regular", "gru", steps=600, hidden=64, members=1, lr=1e-2, seconds=12,
            task_params={"n_train_automata": 1024, "min_strings": 4, "max_strings": 8, "max_len": 10,
                         "n_test_automata": 200},
            eval_splits=("test",), train_params={"schedule": "cosine", "warmup": 60},
            goal=Goal("ngram:accuracy", above="ngram:baseline.1gram.accuracy", label="legal next letters"),
            analysis="ngram", notebook="regular_icl.ipynb",
            shows="in-context learning of a new automaton: the model against in-context 1-, 2- and 3-gram predictors"),
    DemoRun("integration", "linear", steps=300, hidden=64, lr=3e-3, task_params={"gamma": 0.9}, seconds=12,
            model_params={"init_scale": 0.02},
            goal=Goal("spectrum:outliers", at_least=1, label="outlier eigenvalues"),
            analysis="spectrum", notebook="integration_theory.ipynb",
            shows="from a small init, learning pulls eigenvalues out of the bulk towards the integrator's decay"),
    DemoRun("repetition", "gru", steps=1200, hidden=64, task_params={"max_len": 5}, seconds=12,
            goal=Goal("magnitude:accuracy.onion", above="magnitude:accuracy.bigram",
                      label="accuracy after the onion intervention"),
            analysis="magnitude", notebook="onion_representations.ipynb",
            shows="tokens are stored by magnitude (onion) rather than in separate directions"),
    DemoRun("charlm", "gru", steps=150, lr=1e-2, seconds=10,
            goal=Goal("valid.bits_per_char", at_most=3.5, label="bits per character on held-out text"),
            analysis="cells", notebook="interpretable_cells.ipynb",
            shows="units ranked by how well they track comments, strings and bracket depth in Python source"),
    # the attention.* claims' bilinear Hawk on the linear-attention teacher (analyses/attention)
    DemoRun("icl_regression", "hawk", steps=1500, hidden=8, members=1, lr=3e-3, batch_size=256, seconds=6,
            task_params={"kind": "teacher"}, eval_splits=("train",),
            model_params={"embedding": "onehot", "gates": "linear", "normalize": False, "decay": "fixed"},
            train_params={"schedule": "cosine", "eval_every": 375, "n_checkpoints": 8},
            goal=Goal("attention:correlation", at_least=0.99, label="correlation with the recovered attention layer"),
            analysis="attention", notebook="gated_rnn_attention.ipynb",
            shows="the gated RNN's weights hold a linear self-attention layer, read back exactly"),
)


def train_one(spec: DemoRun, store: str = "runs", progress: bool | None = None) -> Run:
    """Train (or load) one demo run."""
    import probe
    import tasks

    task = tasks.make(spec.task, **spec.task_params)
    model = probe.models.make(spec.arch, task, hidden=spec.hidden, members=spec.members, seed=0,
                              **spec.model_params)
    train = {"eval_every": spec.steps, **spec.train_params}
    return probe.train(task, model, steps=spec.steps, batch_size=spec.batch_size, lr=spec.lr,
                       eval_splits=None if spec.eval_splits is None else list(spec.eval_splits),
                       store=store, progress=progress, **train)


def run(store: str = "runs", plan: tuple[DemoRun, ...] = QUICK, progress: bool | None = None,
        out=None) -> list[Run]:
    """Train every run of ``plan`` into ``store`` and print the table of those runs."""
    import tasks

    out = sys.stdout if out is None else out
    missing = [s.task for s in plan if s.task not in tasks.names()]
    if missing:
        raise ValueError(f"demo plan names unknown task {missing[0]!r}; valid tasks: {', '.join(tasks.names())}")
    from probe.progress import resolve_mode, track

    t0 = time.perf_counter()
    runs = []
    outer = resolve_mode(progress)
    # one bar for the whole demo on a terminal (the runs' own bars would fight it), else a line per run
    inner = False if outer == "bar" else progress
    label = lambda s: (f"training {s.task}: {s.members} {s.arch} member{'s' if s.members > 1 else ''}"
                       f" of {s.hidden} units, {s.steps} steps")
    for spec in track(plan, desc="demo", label=label, weight=lambda s: s.seconds, mode=outer):
        runs.append(train_one(spec, store, inner))
    ids = {r.id for r in runs}
    print(format_runs([row for row in list_runs(store) if row["id"] in ids]), file=out)
    print(f"\n{len(runs)} runs in {store}/ ({time.perf_counter() - t0:.0f} s).", file=out)
    return runs


def values(run: Run, analysis: str | None = None, summary: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The numbers a :class:`Goal` reads: the run's final metrics, and ``summary``'s numeric
    entries prefixed by ``analysis + ":"``."""
    found = {k: float(v) for k, v in run.final.items() if isinstance(v, (int, float))}
    for k, v in (summary or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            found[f"{analysis}:{k}"] = float(v)
    return found
