"""Finite automata inside trained RNNs: the streaming-parity analysis of van Rossem & Saxe (ICML 2025).

    result = analyses.analyze("automaton", run)          # every checkpoint of a run
    result = analyses.automaton.analyze(model, task)     # one model
    result.summary["n_states_minimal"], result.figures()["dynamics"]

The state after every prefix of every training string (and the initial state) is recorded with
one batched forward pass: every prefix of a string of length <= L is a prefix of one of the 2^L
strings of length L, so their cached trajectories hold all 2 + 4 + ... + 2^L prefix states. The
states are grouped greedily (tolerance relative to their spread), transitions read off
prefix -> prefix + symbol, and output labels from the readout's argmax (see
:mod:`analyses.automaton.automata`). The result says how many states there are, whether the automaton is
finite (complete and consistent), whether, minimised, it equals the task's own minimal automaton,
and how it does when run as a program on long strings. Over a run's checkpoints it tracks the
state count and the mergers, (2 removed - added) / 3 per checkpoint interval, as in the paper.

A note on "exactly 2 states": a one-layer Elman net with a monotone nonlinearity cannot hold the
parity automaton's two states exactly. A unit relu(a p + b x + c) (p the previous parity, x the
bit) that depends on p XOR x alone must be constant, so the state always carries some of the
recent input as well. The grouping at the paper's tolerance therefore finds a few dozen states
(parity crossed with the last few bits, plus short-prefix transients). Minimising them, as the
paper's code does with Hopcroft's algorithm, gives the parity automaton itself; the claims
(``parity.*``, in :mod:`analyses.automaton.claims`) check that minimal automaton.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import probe
import tasks
from analyses.automaton import automata as fa
from analyses.automaton.figures import automaton_figure, dynamics_figure, pca_figure
from analyses.base import Result

SUPPORTED_TASKS = ("parity",)
_STATE_FEATURE = {"parity": "parity"}  # the feature that is the state of the task's own automaton
MAX_ENUMERATED_LEN = 14  # 2^14 strings in one forward pass is the most we record


# ---------------------------------------------------------------------------------------------
# prefixes, states and the ground truth
# ---------------------------------------------------------------------------------------------

def _check_task(task) -> int:
    if task.name not in SUPPORTED_TASKS:
        raise ValueError(f"automaton extraction needs a task whose finite-state ground truth can be "
                         f"enumerated; supported: {', '.join(SUPPORTED_TASKS)}; got {task.name!r}")
    L = int(task.params["max_len"])
    if L > MAX_ENUMERATED_LEN:
        raise ValueError(f"task max_len={L} would need 2^{L} strings; use max_len <= {MAX_ENUMERATED_LEN}")
    return L


def _all_strings(L: int) -> np.ndarray:
    """All binary strings of length L, most significant bit first: (2^L, L)."""
    return (np.arange(2 ** L)[:, None] >> np.arange(L - 1, -1, -1)) & 1


def _prefix_rows(L: int):
    """For k = 1..L: the rows of :func:`_all_strings` whose length-k prefixes are all distinct."""
    for k in range(1, L + 1):
        yield k, np.arange(0, 2 ** L, 2 ** (L - k))  # row j * 2^(L-k) starts with j in k bits


def _state_hooks(model) -> list[str]:
    # The whole recurrent state: h of every layer, plus the LSTM's cell c (which h alone omits).
    return [f"layers.{i}.{h}" for i in range(len(model.layers))
            for h in ("hook_h", "hook_c") if f"layers.{i}.{h}" in model.hook_dict]


def _members(x: torch.Tensor, model) -> torch.Tensor:
    return x if model.is_ensemble else x.unsqueeze(0)  # (M, ...)


def _initial_states(model) -> torch.Tensor:
    """The initial state of every member, in the order of :func:`_state_hooks`: (M, D)."""
    like = next(model.parameters())
    parts = []
    for layer in model.layers:
        s = layer.initial_state(model.members, 1, like)  # (M, 1, H), or a tuple (h, c) of them
        parts += [t[:, 0] for t in (s if isinstance(s, tuple) else (s,))]
    return torch.cat(parts, -1)  # (M, D)


@torch.no_grad()
def _prefix_arrays(model, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """States and readout argmax on all 2^L strings of length L, every member in one forward pass.

    Returns h (M, 2^L, L, D), out (M, 2^L, L) and the initial states h0 (M, D).
    """
    hooks = _state_hooks(model)
    logits, cache = model.run_with_cache(torch.as_tensor(_all_strings(L)), names_filter=lambda n: n in hooks)
    h = torch.cat([_members(cache[n], model) for n in hooks], -1)  # (M, 2^L, L, D)
    out = _members(logits, model).argmax(-1)  # (M, 2^L, L)
    return h.numpy(), out.numpy(), _initial_states(model).numpy()


def _by_prefix(L: int, h: np.ndarray, out: np.ndarray, h0: np.ndarray) -> tuple[dict, dict]:
    """One member's arrays (2^L, L, D), (2^L, L), (D,) as dicts keyed by prefix."""
    bits = _all_strings(L)
    states, labels = {(): h0}, {}
    for k, rows in _prefix_rows(L):
        for r in rows:
            p = tuple(bits[r, :k].tolist())
            states[p], labels[p] = h[r, k - 1], int(out[r, k - 1])
    return states, labels


def prefix_states(model, task) -> tuple[dict, dict]:
    """The state after every prefix of every training string, and the model's output there.

    Parameters
    ----------
    model : a plain (single-member) model from ``probe.models.make``.
    task : a task in :data:`SUPPORTED_TASKS`; strings of length 1..``max_len``.

    Returns
    -------
    states : dict tuple -> array (D,)
        ``()`` maps to the initial state; D sums the state hooks (h, and c for an LSTM).
    labels : dict tuple -> int
        Argmax of the readout after each non-empty prefix.
    """
    L = _check_task(task)
    if model.is_ensemble:
        raise ValueError(f"prefix_states needs a plain model; this one has {model.members} members "
                         "(use model.member(i))")
    h, out, h0 = _prefix_arrays(model, L)
    return _by_prefix(L, h[0], out[0], h0[0])


def true_automaton(task) -> fa.Automaton:
    """The task's own automaton, minimised, read off the task's ground-truth state feature.

    The task draws its whole finite training set (every string of length 1..max_len); the same
    extraction as for a model then runs on the exact feature values (tolerance 0), with the
    targets as labels. The empty prefix has no feature value and starts unlabelled.
    """
    _check_task(task)
    full = tasks.make(task.name, **{**task.params, "exhaustive": True, "fraction": 1.0, "length": None})
    batch = full.sample(n=len(full.dataset()[1]), seed=0)  # every string once
    inputs, mask = batch.inputs.numpy(), batch.mask.numpy()  # (N, T)
    feature, targets = batch.features[_STATE_FEATURE[task.name]].numpy(), batch.targets.numpy()
    states, labels = {(): np.array([-1.0])}, {}
    for row in range(len(inputs)):
        for t in np.flatnonzero(mask[row]):
            p = tuple(inputs[row, :t + 1].tolist())
            states[p], labels[p] = np.array([float(feature[row, t])]), int(targets[row, t])
    return fa.minimise(fa.extract(states, 0.0, labels, alphabet=(0, 1)).automaton)


def automaton_accuracy(automaton: fa.Automaton, batch) -> float:
    """Per-step accuracy of the automaton run as a program on ``batch`` (missing transitions count as wrong)."""
    pred = fa.run(automaton, batch.inputs.numpy())  # (B, T)
    mask = batch.mask.numpy()
    return float((pred == batch.targets.numpy())[mask].mean())


@torch.no_grad()
def member_accuracies(model, batch, chunk: int = 500) -> list[float]:
    """Per-step accuracy of every member on ``batch``, read in chunks of ``chunk`` steps.

    The state is carried from chunk to chunk, so the result is that of one pass while the
    cached trajectories stay (M, B, chunk, D).
    """
    state, hits = None, 0
    for t in range(0, batch.length, chunk):
        logits, state = model(batch.inputs[:, t:t + chunk], state=state, return_state=True)
        right = _members(logits, model).argmax(-1) == batch.targets[:, t:t + chunk]  # (M, B, chunk)
        hits = hits + (right & batch.mask[:, t:t + chunk]).sum((1, 2))  # (M,)
    return (hits / batch.mask.sum()).tolist()


def long_batch(task, length: int = 10000, n: int = 16, seed: int = 0):
    """``n`` strings of ``length`` from ``task`` (fixed-length override)."""
    return task.sample(n=n, seed=seed, length=length)


# ---------------------------------------------------------------------------------------------
# the Result (figures in analyses.automaton.figures)
# ---------------------------------------------------------------------------------------------

def _pname(p) -> str:
    return "".join(map(str, p)) if p else "ε"


@dataclass
class AutomatonResult(Result):
    """What :func:`analyze` / :func:`analyze_run` return.

    Attributes
    ----------
    automaton, minimal, truth : dict
        The extracted automaton (its ``sizes``: prefixes per state), its minimal form, and the
        task's minimal automaton; see :meth:`analyses.automaton.automata.Automaton.to_dict`.
    groups : list of lists of str
        The prefixes of each extracted state ("ε" is the initial state).
    dynamics : dict of lists, one entry per checkpoint
        ``steps, n_states, n_states_minimal, removed, added, mergers, merges, splits, finite,
        equivalent, model_accuracy_long`` (and ``long_length``); empty for a single model.
        ``mergers`` is the paper's count, (2 removed - added) / 3, exact for pairwise mergers and
        splits and negative after other changes; ``merges`` and ``splits`` count each kind
        (>= 0, see :func:`analyses.automaton.automata.merges_and_splits`); the figure draws those.
    pca : dict
        ``prefixes``, ``parity`` and two ``panels`` (step, n_states, coords (N, 2)).
    """

    automaton: dict = field(default_factory=dict)
    minimal: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)
    groups: list = field(default_factory=list)
    dynamics: dict = field(default_factory=dict)
    pca: dict = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        figs = {}
        if self.dynamics.get("steps"):
            figs["dynamics"] = dynamics_figure(self.dynamics)
        if self.automaton:
            figs["automaton"] = automaton_figure(self.automaton)
            figs["automaton_minimal"] = automaton_figure(self.minimal, "Extracted automaton, minimised")
        if self.pca.get("panels"):
            figs["pca"] = pca_figure(self.pca)
        return figs


# ---------------------------------------------------------------------------------------------
# the analysis
# ---------------------------------------------------------------------------------------------

def _check_params(tolerance: float, long_length: int, long_n: int) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0 (0.01 in the paper); got {tolerance!r}")
    for name, v in (("long_length", long_length), ("long_n", long_n)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")


CHANCE = 0.5  # per-step accuracy of guessing parity
_FAR_BELOW = 0.1  # the automaton "did not work" when it scores this much below the model


def verdict(summary: dict, long_length: int) -> str:
    """One paragraph saying whether the extraction worked, and if not the likely reason and what to try.

    Read from a summary of :func:`analyze` (its ``missing_transitions`` too); shown by
    ``probe analyze`` and the explorer beside the numbers it explains.
    """
    auto = summary.get(f"automaton_accuracy_len_{long_length}")
    model = summary.get(f"model_accuracy_len_{long_length}")
    n, n_min, missing = summary["n_states"], summary["n_states_minimal"], summary.get("missing_transitions", 0)
    if model is not None and model < CHANCE + _FAR_BELOW:
        return (f"nothing to extract: the model itself is near chance at length {long_length} (accuracy {model:.3g}, "
                f"chance {CHANCE}), so its states hold no parity automaton. Try training longer, or the "
                "setting of van Rossem & Saxe: an Elman ReLU net with small init (--set nonlinearity=relu "
                "--set gain=0.1 --set h0=ones), where the automaton forms within a few hundred steps.")
    if auto is not None and model is not None and auto < model - _FAR_BELOW:
        why = []
        if missing:
            why.append(f"{missing} transition(s) of the {n} extracted states were never taken by a training "
                       "prefix (states reached only at the longest prefixes), and a run that reaches one stops, "
                       "scoring 0 from there")
        if summary.get("transition_conflicts"):
            why.append(f"{summary['transition_conflicts']} (state, symbol) pair(s) lead to different states: the "
                       "grouping merged states that behave differently")
        if summary.get("label_conflicts"):
            why.append(f"{summary['label_conflicts']} state(s) hold prefixes with different outputs")
        if not why:
            why.append("its states drift on strings longer than the training ones, away from every extracted state")
        fix = (f"The minimised automaton has {n_min} states" + (" and is parity's own" if summary.get("equivalent")
                                                                  else "") + ". ")
        return (f"extraction failed: the extracted automaton scores {auto:.3g} at length {long_length} against the "
                f"model's {model:.3g}. Likely reason: " + "; ".join(why) + ". " + fix +
                "Try a larger tolerance (analyses.analyze('automaton', run, tolerance=0.05)), which merges states "
                "that differ only in recent input; or train longer, until the state count falls (the "
                "'dynamics' figure), which it does soonest for an Elman ReLU net with small init.")
    if not summary.get("equivalent"):
        return (f"the extracted automaton runs as well as the model (accuracy {auto:.3g}), but minimised it has "
                f"{n_min} states and is not parity's automaton: the model computes something else on these strings.")
    return (f"ok: the extracted automaton ({n} states, {n_min} minimised: parity's own) runs as well as the model "
            f"at length {long_length} ({auto:.3g} against {model:.3g}).")


def _summary(ex: fa.Extraction, minimal: fa.Automaton, truth: fa.Automaton, auto_acc: float,
             model_acc: float | None, long_length: int) -> dict:
    start_alone = int(np.sum(ex.group == ex.group[0])) == 1
    return {"n_states": ex.n_states,
            "n_states_visited": ex.n_states - int(start_alone),  # without an initial state no prefix returns to
            "n_states_minimal": minimal.n_states, "complete": ex.automaton.complete,
            "consistent": ex.consistent, "finite": ex.finite,
            "transition_conflicts": ex.transition_conflicts, "label_conflicts": ex.label_conflicts,
            "missing_transitions": sum(t < 0 for row in ex.automaton.delta for t in row),
            "equivalent": minimal == truth, "threshold": ex.threshold,
            f"automaton_accuracy_len_{long_length}": auto_acc,
            f"model_accuracy_len_{long_length}": model_acc}


def _result(ex, truth, auto_acc, model_acc, long_length, **extra) -> AutomatonResult:
    minimal = fa.minimise(ex.automaton)
    sizes = np.bincount(ex.group, minlength=ex.n_states).tolist()
    groups = [[] for _ in range(ex.n_states)]
    for p, g in zip(ex.prefixes, ex.group.tolist()):
        groups[g].append(_pname(p))
    summary = _summary(ex, minimal, truth, auto_acc, model_acc, long_length)
    summary["verdict"] = verdict(summary, long_length)
    return AutomatonResult(summary=summary, automaton={**ex.automaton.to_dict(), "sizes": sizes}, minimal=minimal.to_dict(),
                           truth=truth.to_dict(), groups=groups, **extra)


def analyze(model, task, tolerance: float = 0.01, long_length: int = 10000, long_n: int = 8,
            seed: int = 0) -> AutomatonResult:
    """Extract the automaton of one model.

    Parameters
    ----------
    model : plain model (use ``model.member(i)`` for an ensemble)
    task : a task in :data:`SUPPORTED_TASKS`
    tolerance : merge distance relative to ``||std of the states||`` (paper: 0.01)
    long_length, long_n, seed : the long test strings, ``long_n`` of length ``long_length``

    Returns
    -------
    AutomatonResult
        ``summary``: n_states, n_states_visited, n_states_minimal, complete, consistent, finite,
        transition_conflicts, label_conflicts, missing_transitions, equivalent, threshold, the
        per-step accuracy of the automaton and of the model on the long strings, and ``verdict``:
        whether the extraction worked, and if not why and what to try (:func:`verdict`).
    """
    _check_params(tolerance, long_length, long_n)
    states, labels = prefix_states(model, task)
    ex = fa.extract(states, tolerance, labels, alphabet=(0, 1))
    batch = long_batch(task, long_length, long_n, seed)
    return _result(ex, true_automaton(task), automaton_accuracy(ex.automaton, batch),
                   member_accuracies(model, batch)[0], long_length)


def _pca_panels(steps: list[int], n_states: list[int], states_at) -> dict:
    """PCA of the prefix states at the peak of the state count (if it falls again) and at the end.

    ``states_at(i)`` gives checkpoint i's states dict; the initial state, which sits far off, is left out.
    """
    from sklearn.decomposition import PCA

    peak = int(np.argmax(n_states))
    early = peak if peak < len(steps) - 1 else 0  # the memorisation tree at its largest
    panels = []
    for i in dict.fromkeys([early, len(steps) - 1]):
        states = states_at(i)
        x = np.stack([v for p, v in states.items() if p])  # (N - 1, D)
        coords = PCA(2).fit_transform(x) if x.shape[1] >= 2 else np.c_[x, np.zeros(len(x))]
        panels.append({"step": steps[i], "n_states": n_states[i], "coords": np.round(coords, 5)})
    prefixes = [p for p in states if p]
    return {"prefixes": [_pname(p) for p in prefixes], "parity": [sum(p) % 2 for p in prefixes], "panels": panels}


def analyze_run(run, member: int = 0, tolerance: float = 0.01, long_length: int = 10000, long_n: int = 8,
                seed: int = 0) -> AutomatonResult:
    """The automaton at every checkpoint of a run: state count, mergers and long-string accuracy.

    The member's checkpoints are stacked into one ensemble (``probe.models.stack``), so the
    prefix states of all of them come from one forward pass, and their accuracy on the long
    strings from one more. Parameters as in :func:`analyze`.
    """
    _check_params(tolerance, long_length, long_n)
    task = run.task()
    L, truth = _check_task(task), true_automaton(task)
    steps = run.checkpoint_steps
    stacked = probe.models.stack([run.model(member, step) for step in steps])  # members = checkpoints
    h, out, h0 = _prefix_arrays(stacked, L)  # (C, 2^L, L, D), (C, 2^L, L), (C, D)
    batch = long_batch(task, long_length, long_n, seed)
    accuracy = member_accuracies(stacked, batch)  # (C,)
    d = {k: [] for k in ("n_states", "n_states_minimal", "removed", "added", "mergers", "merges", "splits", "finite",
                         "equivalent")}
    ex = None
    for i in range(len(steps)):
        states, labels = _by_prefix(L, h[i], out[i], h0[i])
        previous, ex = ex, fa.extract(states, tolerance, labels, alphabet=(0, 1))
        minimal = fa.minimise(ex.automaton)
        removed, added, mergers = fa.state_changes(previous.group, ex.group) if previous is not None else (0, 0, 0.0)
        merges, splits = fa.merges_and_splits(previous.group, ex.group) if previous is not None else (0, 0)
        for k, v in (("n_states", ex.n_states), ("n_states_minimal", minimal.n_states), ("removed", removed),
                     ("added", added), ("mergers", mergers), ("merges", merges), ("splits", splits),
                     ("finite", ex.finite), ("equivalent", minimal == truth)):
            d[k].append(v)
    d.update(steps=steps, model_accuracy_long=accuracy, long_length=long_length)
    peak = int(np.argmax(d["n_states"]))
    result = _result(ex, truth, automaton_accuracy(ex.automaton, batch), accuracy[-1], long_length,
                     dynamics=d, pca=_pca_panels(steps, d["n_states"], lambda i: _by_prefix(L, h[i], out[i], h0[i])[0]))
    result.summary.update(step=steps[-1], peak_states=d["n_states"][peak], peak_step=steps[peak],
                          mergers_after_peak=float(sum(d["mergers"][peak + 1:])))
    return result

