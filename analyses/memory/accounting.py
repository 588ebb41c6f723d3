"""State-size accounting for the memory study, and accuracy per ensemble member.

State size is counted in real numbers the recurrence carries from one step to the next, per
member, summed over layers: a GRU, Elman, linear RNN or Hawk layer of width H carries H, an LSTM
layer 2H (h and c), an LRU layer with N complex units 2N (real and imaginary parts). The sweeps
pick each architecture's width so that they all carry the same count (:func:`hidden_for`), and
:func:`state_size` counts what a built model really returns as its final state, so that the
accounting is checked against the models rather than restated.
"""
from __future__ import annotations

import torch

import probe

_HALF_WIDTH = ("lstm", "lru")  # two real numbers per unit of width: (h, c), or (Re, Im)


def hidden_for(arch: str, state: int) -> int:
    """The width ``hidden`` that makes one layer of ``arch`` carry ``state`` numbers."""
    if arch not in probe.models.names():
        raise ValueError(f"unknown arch {arch!r}; valid choices: {', '.join(probe.models.names())}")
    if arch in _HALF_WIDTH:
        if state % 2:
            raise ValueError(f"{arch} carries two numbers per unit; state size {state} must be even")
        return state // 2
    return state


@torch.no_grad()
def state_size(model) -> int:
    """Real numbers per member the recurrence hands from one step to the next, counted from the
    final state the model returns (every layer, both tensors of an LSTM's (h, c))."""
    x = torch.zeros(1, 1, dtype=torch.long) if model.input_kind == "tokens" else torch.zeros(1, 1, model.d_source)
    _, finals = model(x, return_state=True)
    count = 0
    for s in finals:
        for t in (s if isinstance(s, tuple) else (s,)):
            count += t.shape[-1] * (2 if t.is_complex() else 1)
    return count


@torch.no_grad()
def member_accuracy(model, task, n: int, seed: int = 10_007, **overrides) -> list[float]:
    """Accuracy of every member on ``n`` fresh sequences (a held-out seed)."""
    batch = task.sample(n, seed=seed, **overrides)
    return [m["accuracy"] for m in task.evaluate_members(model(batch.inputs), batch)]
