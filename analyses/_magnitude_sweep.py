"""Training plans and the hidden-size sweep behind the repetition claims.

One run per hidden size (the trainer trains ensembles of one size; ``members`` seeds at once),
each analysed per member through ``analyses.analyze("magnitude", run, member)``, so results are
cached in the run folder and a second claim, figure or notebook reading the same run and
parameters does not fit the interventions again.

Profiles. ``full`` is the paper's setup: 40k steps of AdamW (lr 1e-3, weight decay 0.1, batch
256, no clipping) on the paper's task (30 symbols, lengths 2-9), sizes 48 to 1024, three seeds,
interventions trained for 4000 steps (the paper trains them for 60k). It takes many CPU hours.

``quick`` must run in about three CPU minutes, and a GRU does not learn to copy 9 tokens in that
time: after 4000 steps of the paper's recipe (~5 CPU minutes) an N=48 GRU copies only 7% of
length-9 sequences, and intervention accuracy is bounded by the model's own. So the quick profile
keeps the 30 symbols, the architecture, AdamW with weight decay 0.1 and no clipping, and the
interventions, but shortens the sequences to lengths 2-5 and trains at lr 1e-2 (cosine decay,
batch 128). Every size then copies length-5 sequences at >= 0.98. The linear interventions
train for 200 steps in the size sweep (at N=48, 1500 steps, as long as the onion, add 0.05), and
the onion for 1500. Larger GRUs learn in fewer
steps and cost more per step, so they get fewer (48: 8000, 64: 3000, 128: 2000, 256: 1000); the
longest-trained model is the smallest, and the least linear, so the difference in training
does not produce the rise of linear accuracy with size (a 64 trained for 5000 steps is *more*
linear than one trained for 3000, 0.54 against 0.34). With 9 positions in 48 dimensions the
paper's N=48 is under more pressure to compress than ours with 5, so the quick profile is the
milder test of the onion claim.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal, Sequence

import tasks
from analyses import base
from probe.claims import for_profile
from probe.threads import single_thread

Profile = Literal["quick", "full"]


@dataclass(frozen=True)
class Plan:
    """How to train and analyse the models of one profile."""

    sizes: tuple[int, ...]
    task: dict = field(default_factory=dict)    # repetition params (the paper's defaults when empty)
    steps: int = 40_000
    steps_by_size: dict = field(default_factory=dict)  # {hidden: steps} where a size trains for a different count
    batch_size: int = 256
    lr: float = 1e-3
    schedule: str = "constant"
    warmup: int = 0
    weight_decay: float = 0.1
    members: int = 1                            # seeds per size, trained together
    intervention_steps: int = 4000              # each linear (DAS) intervention
    onion_steps: int = 4000
    intervention_batch: int = 256
    n_eval: int = 4096

    def steps_for(self, hidden: int) -> int:
        return int(self.steps_by_size.get(hidden, self.steps))

    def analysis_params(self) -> dict:
        return {"steps": self.intervention_steps, "onion_steps": self.onion_steps,
                "batch_size": self.intervention_batch, "n_eval": self.n_eval}


PLANS: dict[str, Plan] = {
    # lengths 2-5; larger GRUs learn the task in fewer steps (every size reaches >= 0.99 sequence
    # accuracy at length 5), so they get fewer: the budget goes where a step is cheap
    "quick": Plan(sizes=(48, 64, 128, 256), task={"max_len": 5}, steps=8000,
                  steps_by_size={64: 3000, 128: 2000, 256: 1000}, batch_size=128, lr=1e-2, schedule="cosine",
                  warmup=100, intervention_steps=200, onion_steps=1500, intervention_batch=128, n_eval=1024),
    "full": Plan(sizes=(48, 64, 128, 256, 512, 1024), members=3),
}




def plan(profile: str) -> Plan:
    """The plan of ``profile`` ("quick" or "full")."""
    return for_profile(PLANS, profile)


def task_for(p: Plan):
    return tasks.make("repetition", **p.task)


def train_run(arch: str, hidden: int, p: Plan, store: str = "runs", seed: int = 0):
    """Train (or load, if the store has it) the ensemble of ``p.members`` models of one size."""
    import probe

    task = task_for(p)
    model = probe.models.make(arch, task, hidden=hidden, members=p.members, seed=seed)
    return probe.train(task, model, steps=p.steps_for(hidden), batch_size=p.batch_size, lr=p.lr,
                       schedule=p.schedule, warmup=p.warmup, weight_decay=p.weight_decay, grad_clip=None,
                       store=store, seed=seed, progress=False, eval_splits=["train"])


def sweep(arch: str = "gru", profile: str = "quick", store: str = "runs", sizes: Sequence[int] | None = None,
          kinds: Sequence[str] = ("unigram", "bigram", "onion"), steps: int | None = None, seed: int = 0) -> list[dict]:
    """Train every size and analyse every member; one row per (size, member).

    ``steps`` overrides the plan's training steps of the linear interventions.

    Rows hold ``arch``, ``hidden``, ``member``, ``accuracy`` {kind: accuracy},
    ``model_accuracy``, ``rate`` (the contributions' geometric rate) and ``run`` (its id).
    """
    import analyses

    p = plan(profile)
    rows = []
    with single_thread():
        for hidden in sizes or p.sizes:
            run = train_run(arch, hidden, p, store, seed)
            for m in range(p.members):
                params = {**p.analysis_params(), **({"steps": steps} if steps else {})}
                r = analyses.analyze("magnitude", run, member=m, kinds=list(kinds), seed=seed, **params)
                rows.append({"arch": arch, "hidden": hidden, "member": m, "accuracy": dict(r.accuracy),
                             "model_accuracy": r.model_accuracy, "rate": r.fit.get("rate"), "run": run.id})
    return rows


def linear_accuracy(accuracy: dict) -> float:
    """The linear intervention's accuracy: the better of its unigram and bigram variants."""
    return max(accuracy.get(k, float("-inf")) for k in ("unigram", "bigram"))


def mean_by_size(rows: list[dict], key) -> dict[int, float]:
    """{hidden: mean of key(row) over the members}."""
    out: dict[int, list[float]] = {}
    for r in rows:
        out.setdefault(r["hidden"], []).append(key(r))
    return {h: sum(v) / len(v) for h, v in sorted(out.items())}


# linear accuracy against hidden size: drops of up to 0.05 are noise, a rise needs at least 0.2
rises = functools.partial(base.rises, tolerance=0.05, min_rise=0.2)

