"""How much memory recall and set disjointness need, and why the order of the sets matters.

Zoology (Arora et al. 2023) finds that a recurrent model's multi-query associative recall (MQAR)
accuracy is set by its recurrent state size, along a recall-memory frontier; "Just read twice"
(Arora et al. 2024) that on set disjointness the state a causal recurrent model needs grows with
the size of the set it reads *first*, so (short, long) is easy and (long, short) fails at a fixed
state size, and that reading the context twice removes the dependence on order.

    result = analyses.memory.analyze(model, task)     # one model on recall or disjointness
    result.summary, result.figures()                  # recall: accuracy by lag; disjointness: probes
    analyses.memory.frontier_figure("quick")          # the sweeps, trained into the run store
    analyses.memory.asymmetry_figure("quick"); analyses.memory.probe_figure("quick")

State size counts the real numbers the recurrence carries (GRU, Elman, Hawk: H; LSTM: 2H for h
and c; LRU: 2N for the real and imaginary parts), and each architecture's width is chosen to give
the same count, so GRU, LSTM, LRU and Hawk are compared at equal memory
(:func:`analyses._memory_plans.hidden_for`, checked by :func:`analyses._memory_plans.state_size`).
What the state stores is probed directly: one logistic regression per element token, from the
state at the list separator, decodes whether the token is in the first set; its balanced
accuracy against the first set's size shows how much of the set the state holds.

Departures in the quick profile (``_memory_plans.PLANS``): recall with 16 tokens, sequences of
16 and 4 pairs (Zoology: 8192 tokens, 64-512 steps, 4-64 pairs) at state sizes 4, 16, 64, 1000
steps; disjointness with 28 elements and sets of 2 and 14 (JRT: 2048 tokens, sets of 4-256)
on a one-layer GRU of state 24, 2000 steps, each order trained on its own (JRT trains one model
on both orders). Two seeds per point, trained together as one ensemble.

Measured (quick profile, 2026-11-26, on the project's 2-core CPU shared with other jobs, one
torch thread): sweep wall time, training included, 60 s for the recall sweep (12 runs) and 54 s
for the disjointness sweep (4 runs), one after the other at load average ~4 (the
``test_quick_profile_*`` pair took 119 s); at load average 6-12, run side by side, 211 s and
193 s. The numbers below are the same either way (training is deterministic on CPU).

- ``recall.state_frontier`` PASSES: accuracy at state 4 / 16 / 64 is gru 0.18 / 0.53 / 0.61,
  lstm 0.13 / 0.19 / 0.44, lru 0.21 / 0.40 / 0.61, hawk 0.13 / 0.29 / 0.49 (chance 0.125). At
  equal state the GRU leads from 16 up, the LSTM trails (it learns slowest in 1000 steps).
- ``disjointness.order_asymmetry`` FAILS in the quick profile: short-first 0.81 against
  long-first 0.64 (gap 0.17 < 0.2), and reading twice does not close it (0.82 against 0.62,
  gap 0.19): in 2000 steps the GRU does not learn to use the second pass. The state is not the
  binding limit at this scale: a 24-number GRU holds a 14-of-28 set well enough for 0.64 (0.5 is
  guessing among the short set). Tried on the way (2 seeds each, per order, 2000-3000 steps):
  GRU state 16 (gap 0.07-0.1; short-first learned by one seed of two), GRU state 32 (0.90
  against 0.82), 44 elements with a long set of 20 at state 32 (0.65 against 0.52), 124 elements
  (neither order learned), a short set of 3 (long-first ahead, 0.84 against 0.72), 2-layer Hawk
  of state 16 (long-first ahead), LSTM of state 16 (short-first 0.43). Training the quick setup
  for 4000 steps narrows the gap instead (0.85 against 0.78) and reading twice still does not
  help the long-first order (0.67). Training one model on both orders, as JRT does, gives no
  gap at all (state 24: 0.85 against 0.82; states 12 and 16: long-first slightly ahead). The
  membership probe
  shows the same thing directly: balanced accuracy 1.0 for a first set of 1, 0.98 for 2, 0.81
  for 4, 0.68 for 8 and 0.63 for 14 (the short-first model; the long-first model 0.67 at 14).
  A second search (2026-11-26, GRU, 2 seeds, each order and format trained on its own, batch
  256 per member; short set 2, so guessing among the short set gives 0.5 when it comes last;
  mean over seeds, short-first / long-first, read once, then read twice (- : not run); wall time
  per run at load average ~4):

  ============  ====  =====  =====  ==============  ==============  =========
  elements      long  state  steps  read once       read twice      s / run
  ============  ====  =====  =====  ==============  ==============  =========
  28            14    16     4000   0.78 / 0.75     0.79 / 0.74     87-160
  28            14    20     4000   0.95 / 0.87     0.95 / -        102-174
  40            20    32     5000   0.90 / 0.84     0.90 / 0.84     131-280
  60            30    24     5000   0.57 / 0.57     - / 0.58        144-266
  60            30    24     12000  0.73 / 0.66     -               230-335
  60            30    32     5000   0.64 / 0.64     -               152-187
  60            30    48     5000   0.79 / 0.80     -               147-211
  64 (short 2)  24    12     4000   0.45 / 0.47     -               75-80
  64 (short 4)  24    16     4000   0.33 / 0.36     -               62-107
  ============  ====  =====  =====  ==============  ==============  =========

  and at batch 64 (short set 4, chance 0.25): 64 elements, long 16 or 32, state 16, 3000
  steps, 0.34 / 0.34 and 0.18 / 0.24; 128 elements, long 32, state 16, 2000 steps, 0.13 / 0.16
  read once and 0.11 / 0.16 read twice; a 2-layer GRU (state 8 + 8, 28 elements, long 14) 0.28
  / 0.35. No setting reached a gap of 0.2, and reading twice never raised long-first accuracy.
  The pattern: more training narrows the gap (the short-first order is learned sooner, the
  long-first one catches up), a GRU of state 32 stores a 20-of-40 set, and one of state 48 a
  30-of-60 set, well enough for long-first 0.8 or more, and where the long set does overflow the state (30 of 60 in 24
  numbers: long-first at chance after 5000 steps) the short-first order is barely learned
  either, and by 12 000 steps both have risen (0.73 against 0.66). A likely reason: a GRU's gates are sigmoids of a linear function of (x_t, h_{t-1}), so "is x_t
  in the stored set" is tested as an AND of token features with fixed groups of state units, in
  effect a hashed bitmask whose false positives grow with the number of tokens tested times the
  stored set's size over the state size, in either order; JRT's models compare the token with
  the state through a product (Based's linear attention, Mamba's input-dependent readout
  C(x_t) h_t), which is what makes a short first set cheap to store and query. The full
  profile (256 tokens, sets of 4 and 64, state 64, 20 000 steps, 3 seeds) was not run: at
  the ~35 ms per step measured above, scaled to its sequences, about 25 min of this CPU per
  read-once run and 50 per read-twice run (2-3 h for the sweep), and the 60- and 128-element
  runs above suggest the short-first order would be learned slowly at best at that size.
  A third search (2026-11-27, batch 64 per member, 2 seeds, one torch thread; "own": each
  (order, read twice) trained on its own, "both": one model per format trained on both orders,
  as JRT does, scored on each; emb: d_embed; state 2x12: two layers of 12; elements 28, long 14
  and state 24 unless given; short-first / long-first as above):

  ==================================  =====  =====  ==============  ==============  =======
  setting                             steps  train  read once       read twice      s / run
  ==================================  =====  =====  ==============  ==============  =======
  hawk (sigmoid gates)                2000   own    0.97 / 0.98     0.98 / 0.98     9-13
  hawk, gates="linear"                2000   own    0.99 / 1.00     0.98 / 0.99     9-13
  hawk 2x12, linear / sigmoid gates   2000   own    0.87 / 0.93     0.87 / 0.95     9-16
                                                    0.77 / 0.86     0.87 / 0.88
  lru (state 24 = 12 complex)         2000   own    0.16 / 0.60     0.15 / 0.61     10
  lstm (hidden 12) / elman            2000   own    0.63 / 0.86     -               5-14
                                                    0.07 / 0.51
  hawk, 128 elements                  2000   own    0.39 / 0.71     0.38 / 0.73     11-19
  hawk 2x12, 128 el., lin. / sigm.    2000   own    0.39 / 0.54     0.36 / 0.47     14-22
                                                    0.26 / 0.44     0.32 / 0.38
  gru, 128 elements                   3000   own    0.57 / 0.52     0.54 / 0.51     17-29
  gru, 60 elements                    4000   own    0.70 / 0.62     0.72 / 0.66     14-25
  gru, 48 elements / and long 22      4000   own    0.68 / 0.60     -               21-29
                                                    0.60 / 0.52
  gru, 48 elements, long 22           8000   own    0.70 / 0.53     0.71 / 0.55     52-84
  gru, state 12 / 16                  4000   own    0.55 / 0.48     -               14-18
                                                    0.74 / 0.61
  gru, state 16                       8000   own    0.84 / 0.67     0.78 / 0.60     30-53
  gru, state 20                       3000   own    0.78 / 0.69     -               13-16
  gru (the quick plan)                6000   own    0.91 / 0.80     -               28-29
  gru, 64 el. long 8, state 16 / 24   4000   own    0.81 / 0.73     -               15-18
                                                    0.90 / 0.84
  gru, 96 el., long 6, state 16       4000   own    0.84 / 0.81     -               14-15
  gru, lr 3e-3 / batch 256            4000   own    0.82 / 0.76     -               19-26
                                      2000          0.87 / 0.83
  gru, emb 8 / 64 / 128               2000   own    0.79 / 0.83     -               9-12
                                                    0.71 / 0.59
                                                    0.70 / 0.56
  gru, emb 64                         4000   own    0.74 / 0.61     -               16-18
  gru, emb 64, state 16               2000   own    0.59 / 0.52     -               7-10
  gru, emb 128                        6000   own    0.75 / 0.52     0.69 / 0.50     23-42
  gru, emb 128                        12000  own    0.72 / 0.57     0.81 / 0.59     46-84
  gru, emb 128, state 32              6000   own    0.84 / 0.56     0.80 / 0.60     31-52
  gru, emb 128, state 32              12000  own    -               - / 0.64        106
  gru, emb 128, state 48              6000   own    0.98 / 0.77     0.94 / 0.79     42-66
  gru                                 6000   both   0.97 / 0.91     0.96 / 0.95     31
  gru, state 16                       6000   both   0.87 / 0.87     0.85 / 0.84     26-38
  gru, 48 elements, long 22           6000   both   0.59 / 0.54     0.59 / 0.53     39-60
  gru, emb 128                        6000   both   0.80 / 0.62     0.77 / 0.63     26-38
  gru, emb 128                        12000  both   0.80 / 0.55     0.85 / 0.59     55-86
  gru, emb 64                         12000  both   0.88 / 0.77     0.92 / 0.82     63-89
  gru, emb 128, state 48              6000   both   0.97 / 0.80     0.94 / 0.81     47-67
  ==================================  =====  =====  ==============  ==============  =======

  The read-once gap of 0.2 is reached only with 128-wide embeddings: each order on its own, 6000
  steps, at state 24 (0.75 against 0.52, gap 0.23; whole sweep 132 s), 32 (0.84 against 0.56, gap
  0.28; 171 s) and 48 (0.98 against 0.77, gap 0.20), and trained on both orders, 12 000 steps, at
  state 24 (0.80 against 0.55, gap 0.25); but reading twice lifts long-first by 0.05 at most
  (0.50, 0.60, 0.79, 0.59; at state 32 also 0.64 after 12 000 steps), where half the gap is
  0.10-0.14, so the claim's second half fails everywhere. Hawk (either gates, 24 numbers, 28
  elements) solves both orders at 0.97-1.0, read once: with the state about as large as the
  element vocabulary, counting the tokens (the shared one is seen twice, and a linear readout of
  the counts ranks it first) solves either order; at 128 elements it does better long first (0.71
  against 0.39), as the LRU and the LSTM do at 28 (the answer is one of the last two tokens, while
  short first it is one of the first two, held across the long set).
  Why reading twice does not help, measured by replacing one segment of ``[ A | B [ A | B ?`` with
  the same segment of another row: a GRU trained on long-first-twice on its own ignores the first
  pass completely (quick plan: 0.64 / 0.59 per seed, 0.63 / 0.59 with the first pass replaced;
  replacing the second A: 0.50 / 0.49, the second B: 0.05 / 0.04; the same at state 16, 8000
  steps, at 48 elements, long 22, and with 128-wide embeddings, where it is at chance, 0.48 /
  0.52, and at state 32 after 12 000 steps: 0.58 / 0.68, 0.58 / 0.68 with the first pass
  replaced): it learns to restart at the second ``[`` and solves the second pass as read once, and
  never finds the JRT strategy (store the short B at the end of the first pass, test the second A
  against it). Trained on both orders it does use the first pass (28 elements, 6000 steps:
  long-first-twice 0.95 / 0.93, 0.79 / 0.64 with the first pass replaced), but there the orders
  differ by 0.06 only; with 128-wide embeddings (12 000 steps), where the gap appears, one seed of
  two uses it a little (0.64, 0.53 with the first B replaced) and the other not at all. Nor is
  the second ``[`` (a start marker) what makes it restart: with it replaced by ``|`` (so the
  input is ``[ A | B | A | B ?``; 128-wide embeddings, state 32, 6000 steps) long-first read
  twice is 0.60 (0.57 / 0.63), as with it (0.60), and short-first 0.76.
  A fourth search (2026-11-27) asked whether the JRT strategy is out of the GRU's reach or just
  never found, with a curriculum for the read-twice long-first model (scratch code, not in the
  library): the input is ``[ A | B [ A | B ?`` with the second pass's short set B replaced by
  padding, so the answer cannot be copied from the last tokens and only the first pass's B
  helps; then the plain task from those weights (GRU, state 32, 128-wide embeddings, 28
  elements, long 14, batch 64, cosine). The curriculum does make the model use the first
  pass (replacing it with another row's drops long-first-twice from 0.71-0.79 to 0.39-0.53,
  where the plainly trained model does not move), but at the read-once models' budget it
  lifts long-first by less than half the gap, and on a fresh seed hardly at all:

  ==============================  ===========  ==============  ============  ========
  lr, steps (curriculum + plain)  seeds        read once       twice, long   lift/gap
  ==============================  ===========  ==============  ============  ========
  1e-2, 6000 (5000 + 1000)        0 (2 memb.)  0.84 / 0.56     0.68          0.44
  1e-2, 11000 (8000 + 3000)       0 (2)        0.84 / 0.63     0.72          0.44
  5e-3, 6000 (5000 + 1000)        0 (2)        0.95 / 0.62     0.77          0.44
  5e-3, 6000 (5000 + 1000)        1 (3)        0.90 / 0.68     0.71          0.11
  3e-3, 6000 (5000 + 1000)        0 (2)        0.93 / 0.72     0.76          0.19
  5e-3, batch 128, 6000           0 (2)        0.93 / 0.71     0.80          0.42
  ==============================  ===========  ==============  ============  ========

  (other splits of the 6000 steps, 3000 + 3000 to 5500 + 500, gave 0.74-0.76 at lr 5e-3; hiding
  the first pass's A as well, 0.70; at state 48, lr 1e-2, where read once gives 0.98 / 0.77, 0.73;
  stage one stretched to 12 000 steps, 0.69 (stage one itself 0.78); hiding B2 in a random half or
  quarter of the rows for the whole run instead of a first stage, 0.55-0.65, the model again
  ignoring the first pass). The curriculum's first stage itself, which is short-first with the
  long set read before it, reaches only 0.65-0.78 where short-first read once reaches 0.84-0.95
  (part of it is the wait: short-first read once with three padding tokens before the ``?``, as
  the second pass's ``| B`` imposes, drops from 0.95 to 0.83 at lr 5e-3), and the final model does
  no better than that stage: a GRU that carries B and tests the second A against it is about as
  accurate as one that stores A, so reading twice cannot pay off here.
- Recall by lag (GRU, state 64): keys queried 8 or more steps after they were stored are
  recalled at 0.86-1.0, the last one or two pairs, queried 2-4 steps later, at 0.0: the model
  keeps the first pairs and loses the most recent ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from analyses import _memory_figures as figs
from analyses import _memory_plans as plans
from analyses._memory_claims import order_asymmetry, state_frontier
from analyses._memory_plans import hidden_for, state_size
from analyses._memory_probe import membership_probe, probe_by_set_size, recall_by_lag
from analyses.base import Result
from probe.threads import single_thread


@dataclass
class MemoryResult(Result):
    """One model on recall or disjointness.

    Attributes
    ----------
    task : "recall" or "disjointness"
    state_size : real numbers the recurrence carries (all layers)
    accuracy : {split: accuracy} on fresh sequences of each of the task's splits
    by_lag : recall only: {lag: accuracy}, lag = query position - position of its stored key
    probe : disjointness only: {first-set size: membership-probe balanced accuracy}
    """

    task: str = ""
    arch: str = ""
    state_size: int = 0
    accuracy: dict = field(default_factory=dict)
    by_lag: dict = field(default_factory=dict)
    probe: dict = field(default_factory=dict)

    def figures(self) -> dict:
        out = {}
        if self.by_lag:
            out["by_lag"] = figs.by_lag(self.by_lag, f"Recall by lag ({self.arch}, state {self.state_size})")
        if self.probe:
            out["probe"] = figs.probe_vs_size({f"{self.arch}, state {self.state_size}": self.probe})
        return out


def analyze(model, task, sizes: list[int] | None = None, n: int = 1024, seed: int = 0) -> MemoryResult:
    """Accuracy per split, and recall by lag (recall) or membership probes by set size (disjointness).

    Parameters
    ----------
    model : a plain model (``members=1``; use ``model.member(i)``).
    task : a ``recall`` or ``disjointness`` task.
    sizes : disjointness: first-set sizes to probe (default 1, 2, 4, ... up to the long set).
    n : sequences per evaluation (the probes fit on half and score on the other half).
    seed : seeds the data and the probes.
    """
    if task.name not in ("recall", "disjointness"):
        raise ValueError(f"memory analyses recall or disjointness models; got task {task.name!r}")
    if model.is_ensemble:
        raise ValueError("analyze takes a plain model; pick a member with model.member(i)")
    result = MemoryResult(task=task.name, arch=model.config["arch"], state_size=state_size(model))
    with single_thread():
        for split, overrides in task.splits().items():
            result.accuracy[split] = plans.member_accuracy(model, task, n, seed=seed + 10_007, **overrides)[0]
        if task.name == "recall":
            result.by_lag = recall_by_lag(model, task, n, seed=seed + 10_007)
        else:
            long = task.config.long
            sizes = sizes or sorted({2 ** i for i in range(long.bit_length()) if 2 ** i <= long} | {long})
            result.probe = probe_by_set_size(model, task, sizes, n, seed)
    result.summary = {"task": task.name, "arch": result.arch, "state_size": result.state_size,
                      **{f"accuracy.{k}": v for k, v in result.accuracy.items()}}
    if result.by_lag:
        lags = sorted(result.by_lag)
        result.summary.update({"accuracy.shortest_lag": result.by_lag[lags[0]],
                               "accuracy.longest_lag": result.by_lag[lags[-1]]})
    if result.probe:
        result.summary.update({f"probe.size_{k}": v for k, v in result.probe.items()})
    return result


def frontier_figure(profile: str = "quick", store: str = "runs"):
    """Recall accuracy against state size, one line per architecture (trains or loads the sweep)."""
    rows = plans.frontier_sweep(profile, store)["rows"]
    return figs.frontier(rows, f"Recall against recurrent state size ({profile} profile)")


def asymmetry_figure(profile: str = "quick", store: str = "runs"):
    """Disjointness accuracy, order x read twice, at the plan's state size (trains or loads)."""
    rows = plans.asymmetry_sweep(profile, store)["rows"]
    return figs.asymmetry(rows, plans.plan(profile).disjoint_state)


def probe_curves(profile: str = "quick", store: str = "runs", member: int = 0) -> dict[str, dict]:
    """Membership-probe accuracy by first-set size for the read-once models of the asymmetry sweep."""
    import analyses

    p = plans.plan(profile)
    out = {}
    for order in ("short_first", "long_first"):
        run = plans.train_disjoint(order, False, p, store)
        r = analyses.analyze("memory", run, member=member, sizes=list(p.probe_sizes))
        out[f"trained {order.replace('_', ' ')}"] = {int(k): v for k, v in r.probe.items()}
    return out


def probe_figure(profile: str = "quick", store: str = "runs"):
    """Probe accuracy against the first set's size (from :func:`probe_curves`)."""
    return figs.probe_vs_size(probe_curves(profile, store),
                              f"Membership of the first set, decoded at the separator ({profile} profile)")


__all__ = ["MemoryResult", "analyze", "asymmetry_figure", "frontier_figure", "hidden_for", "membership_probe",
           "order_asymmetry", "probe_curves", "probe_figure", "state_frontier", "state_size"]
