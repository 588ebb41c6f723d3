"""Set disjointness (Arora et al., "Just read twice", arXiv 2407.05483; ``non_autoreg.py``).

Per row, set A is |A| distinct non-special tokens and set B is |B| - 1 further distinct tokens
plus one element of A planted at a random position (the same distribution as JRT's random split
of the vocabulary into two halves, A from one and B from the other; each set must fit in half).
The input is ``[ A | B ?`` and the single label, at the final ``?``, is the shared element.
``order`` says which set comes first: the short one, the long one, or either at random
per row (``"both"``, the default, as JRT trains on both orders). With ``num_passes=k`` the
context ``[ A | B`` is read k times before the ``?``; ``read_twice=True`` is ``num_passes=2``
(JRT-Prompt).

Example (short=2, long=3, order="short_first"; tokens 1 ``[``, 2 ``|``, 3 ``?``)::

    inputs   1 17 9 2 30 9 22 3
    targets  0  0 0 0  0 0  0 9
    mask     F  F F F  F F  F T
    phase    0  1 1 0  2 2  2 0     (0 special, 1 in A, 2 in B)
    in_a     0  1 1 0  0 1  0 0

A causal recurrent model must hold the set it reads first, so (short, long) is easy at a fixed
state size and (long, short) is hard; the ``short_long`` and ``long_short`` splits measure both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tasks.base import Batch, Task, as_long
from tasks.params import bad_param, param

PAD, PREFIX, LIST_SEP, ANSWER_SEP = 0, 1, 2, 3  # PAD is never emitted (all rows have one length)
N_SPECIAL = 4


@dataclass(frozen=True)
class DisjointnessParams:
    vocab_size: int = param(128, ge=8, le=1_000_000, doc="4 special tokens + elements (JRT: 2048)")
    short: int = param(4, ge=1, doc="size of the short set")
    long: int = param(16, ge=1, doc="size of the long set")
    order: Literal["both", "short_first", "long_first"] = param("both", doc="which set comes first")
    read_twice: bool = param(False, doc="repeat the context before the answer (JRT-Prompt): num_passes=2")
    num_passes: int = param(1, ge=1, le=1_000, doc="times the context [ A | B is read before the answer")


class Disjointness(Task):
    """Set disjointness; see the module docstring.

    Features: ``phase`` (0 special token, 1 reading the first set A, 2 reading the second set
    B), ``in_a`` (1 where the current token belongs to A: all of A, and the shared element in
    B), ``size_a`` and ``size_b`` (the set sizes of the row, constant along it).
    """

    name = "disjointness"
    Params = DisjointnessParams
    input_kind = "tokens"
    loss = "ce"
    feature_names = ("phase", "in_a", "size_a", "size_b")
    paper = {"vocab_size": 2048, "short": 16, "long": 64}  # one of JRT's training pairs, both orders

    def _check(self, cfg: DisjointnessParams) -> None:
        half = (cfg.vocab_size - N_SPECIAL) // 2
        if cfg.read_twice and cfg.num_passes not in (1, 2):
            raise bad_param(self.name, "num_passes", cfg.num_passes,
                            "1 or 2 with read_twice=True (read_twice is num_passes=2; set one of them)")
        if cfg.short > cfg.long:
            raise bad_param(self.name, "short", cfg.short, f"an int <= long = {cfg.long}")
        if cfg.long > half:
            raise bad_param(self.name, "long", cfg.long,
                            f"<= (vocab_size - 4) // 2 = {half}: each set comes from half of the vocabulary")

    def _dims(self, cfg: DisjointnessParams) -> dict[str, int]:
        return {"vocab_size": cfg.vocab_size, "d_output": cfg.vocab_size}

    def splits(self) -> dict[str, dict]:
        return {"train": {}, "short_long": {"order": "short_first"}, "long_short": {"order": "long_first"}}

    def _sample(self, cfg: DisjointnessParams, n: int, rng: np.random.Generator) -> Batch:
        if cfg.order == "both":
            short_first = rng.random(n) < 0.5
        else:
            short_first = np.full(n, cfg.order == "short_first")
        size_a = np.where(short_first, cfg.short, cfg.long)[:, None]  # (B, 1)
        size_b = np.where(short_first, cfg.long, cfg.short)[:, None]
        S = cfg.short + cfg.long

        # |A| + |B| - 1 distinct elements per row: A, then the rest of B; one of A is planted in B
        elements = N_SPECIAL + np.argsort(rng.random((n, cfg.vocab_size - N_SPECIAL)), axis=1)[:, :S]  # (B, S)
        shared = np.take_along_axis(elements, rng.integers(0, size_a), axis=1)  # (B, 1)
        plant = size_a + rng.integers(0, size_b)  # (B, 1) column of the shared element
        col = np.arange(S)[None, :]  # (1, S)
        source = np.where(col > plant, col - 1, col)  # B's own elements shift past the planted one
        sets = np.where(col == plant, shared, np.take_along_axis(elements, source, axis=1))  # (B, S): A then B
        in_a = (col < size_a) | (col == plant)
        shared = shared[:, 0]
        size_a, size_b = size_a[:, 0], size_b[:, 0]

        # context [ A | B, built with A's size varying per row: positions 1..|A| hold A
        C = S + 2
        col = np.arange(C)[None, :]
        is_a = (col >= 1) & (col <= size_a[:, None])  # (B, C)
        is_b = col >= size_a[:, None] + 2
        set_col = np.clip(np.where(is_a, col - 1, col - 2), 0, S - 1)  # (B, C) index into sets
        context = np.where(is_a | is_b, np.take_along_axis(sets, set_col, axis=1),
                           np.where(col == 0, PREFIX, LIST_SEP))  # (B, C)
        context_in_a = np.where(is_a | is_b, np.take_along_axis(in_a, set_col, axis=1), 0)
        phase = np.where(is_a, 1, np.where(is_b, 2, 0))
        reads = 2 if cfg.read_twice else cfg.num_passes
        inputs = np.concatenate([np.tile(context, reads), np.full((n, 1), ANSWER_SEP)], axis=1)  # (B, T)
        T = inputs.shape[1]
        mask = np.zeros((n, T), dtype=bool)
        mask[:, -1] = True
        targets = np.zeros((n, T), dtype=np.int64)
        targets[:, -1] = shared
        pad0 = lambda a: np.concatenate([np.tile(a, reads), np.zeros((n, 1), dtype=np.int64)], axis=1)  # noqa: E731
        return Batch(
            inputs=as_long(inputs), targets=as_long(targets), mask=torch.from_numpy(mask),
            features={"phase": as_long(pad0(phase)), "in_a": as_long(pad0(context_in_a)),
                      "size_a": as_long(np.repeat(size_a[:, None], T, axis=1)),
                      "size_b": as_long(np.repeat(size_b[:, None], T, axis=1))},
            info={"shared": as_long(shared)},
        )

    def _labels(self) -> list[str]:
        return ["<pad>", "[", "|", "?"] + [f"t{i}" for i in range(N_SPECIAL, self.vocab_size)]
