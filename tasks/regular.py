"""In-context regular languages, RegBench (Akyürek et al., ICML 2024, arXiv 2401.12973).

Each row picks a random automaton (see :mod:`tasks.dfa`) and shows ``min_strings..max_strings``
strings of it, each of length ``min_len..max_len`` drawn as a uniform random walk (every outgoing
edge equally likely), separated by ``|``; the task is next-token prediction. Every row starts and
ends with ``|``, so every string is complete and its first letter is predicted too.

Token ids: letters a..r are 0..17, ``|`` (separator) 18, ``.`` (pad) 19.

Example (one automaton with edges 0 -a-> 1, 0 -b-> 2, 1 -c-> 0, 2 -a-> 0)::

    tokens     |  a  c  b  |  b  a  |
    inputs     |  a  c  b  |  b  a
    targets    a  c  b  |  b  a  |
    dfa_state  0  1  0  2  0  2  0
    n_legal    2  2  3  2  2  2  3
    position   0  1  2  3  0  1  2

Convention for the next-token distribution (metrics): at a letter the legal next symbols are the
letters with an edge out of the current state plus ``|`` (every state accepts, so the string may
end); after ``|`` they are the letters out of the start state (strings are non-empty). The true
distribution is taken uniform over that legal set, ignoring the string-length cap, as RegBench's
PFA with uniform transition probabilities does. Metrics: ``accuracy`` (the greedy next token is
legal), ``tvd`` (total-variation distance of the softmax to that uniform distribution), plus
``exact_accuracy`` (greedy token equals the sampled one) and ``loss``.

Train and test automata are disjoint: the test pool (``n_test_automata``, stream 1 of
``automata_seed``) is drawn first and is independent of ``n_train_automata``; the training pool
(stream 0) skips every automaton equal, by canonical minimal form, to a test one or to an earlier
one. ``task.automaton(i, "train")`` returns an automaton; ``batch.info["automaton"]`` (B,) holds
each row's index into the pool named by ``batch.info["automata"]`` (``"train"`` or ``"test"``),
and ``task.automaton_of(batch, row)`` looks a row's automaton up directly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tasks.base import Batch, Task, as_long
from tasks.dfa import DFA, LETTERS, N_LETTERS, PoolArrays, automaton_pool, pack
from tasks.params import bad_param, check_row, param

SEP, PAD = N_LETTERS, N_LETTERS + 1
TRAIN_STREAM, TEST_STREAM = 0, 1


@dataclass(frozen=True)
class RegularParams:
    # Pools are built at construction, ~0.4 ms an automaton: 100 000 take about 40 s.
    n_train_automata: int = param(2000, ge=1, le=100_000, doc="size of the training pool (paper: 5000)")
    n_test_automata: int = param(500, ge=1, le=100_000, doc="size of the held-out pool (paper: 500)")
    automata: Literal["train", "test"] = param("train", doc="which pool rows draw their automaton from")
    automata_seed: int = param(0, ge=0, doc="seed of both pools")
    min_strings: int = param(5, ge=1, le=10_000, doc="strings per row, at least (paper: 10)")
    max_strings: int = param(10, ge=1, le=10_000, doc="strings per row, at most (paper: 19)")
    min_len: int = param(1, ge=1, le=10_000, doc="letters per string, at least (paper: 1)")
    max_len: int = param(20, ge=1, le=10_000, doc="letters per string, at most (paper: 49)")


class Regular(Task):
    """In-context regular languages; see the module docstring.

    Features: ``dfa_state`` (state after reading the current token; 0 after ``|``),
    ``n_legal`` (number of legal next symbols), ``position`` (letters of the current string read
    so far; 0 at ``|``); all -1 at pads. ``batch.info``: ``automaton`` (B,) pool index of each
    row, ``automata`` (``"train"`` or ``"test"``) and ``pool`` (automata_seed, n_test_automata,
    n_train_automata), which is all :meth:`automaton_of` and :meth:`legal_next` need.
    """

    name = "regular"
    Params = RegularParams
    input_kind = "tokens"
    loss = "ce"
    feature_names = ("dfa_state", "n_legal", "position")
    paper = {"n_train_automata": 5000, "min_strings": 10, "max_strings": 19, "max_len": 49}

    def _check(self, cfg: RegularParams) -> None:
        if cfg.min_strings > cfg.max_strings:
            raise bad_param(self.name, "min_strings", cfg.min_strings, f"an int <= max_strings = {cfg.max_strings}")
        if cfg.min_len > cfg.max_len:
            raise bad_param(self.name, "min_len", cfg.min_len, f"an int <= max_len = {cfg.max_len}")
        check_row(self.name, "max_strings", cfg.max_strings, cfg.max_strings * (cfg.max_len + 1),
                  "max_strings * (max_len + 1)")

    def _dims(self, cfg: RegularParams) -> dict[str, int]:
        return {"vocab_size": N_LETTERS + 2, "d_output": N_LETTERS + 2}

    def splits(self) -> dict[str, dict]:
        return {"train": {}, "test": {"automata": "test"}}

    def _setup(self, cfg: RegularParams) -> None:
        self._pools: dict[tuple, tuple[tuple[DFA, ...], PoolArrays]] = {}
        for which in ("train", "test"):
            self._pool(which, *self._pool_key(cfg))

    @staticmethod
    def _pool_key(cfg: RegularParams) -> tuple[int, int, int]:
        return cfg.automata_seed, cfg.n_test_automata, cfg.n_train_automata

    def _pool(self, which: str, seed: int, n_test: int, n_train: int) -> tuple[tuple[DFA, ...], PoolArrays]:
        """The automata of one pool and their packed arrays (cached)."""
        key = (which, seed, n_test, n_train if which == "train" else None)
        if key not in self._pools:
            test = automaton_pool(seed, TEST_STREAM, n_test)
            pool = test if which == "test" else automaton_pool(
                seed, TRAIN_STREAM, n_train, frozenset(d.delta for d in test))
            self._pools[key] = (pool, pack(pool))
        return self._pools[key]

    def automata(self, pool: Literal["train", "test"] = "train") -> tuple[DFA, ...]:
        """The whole training or test pool of this task's parameters."""
        if pool not in ("train", "test"):
            raise ValueError(f"regular: pool {pool!r} is not allowed; expected 'train' or 'test'")
        return self._pool(pool, *self._pool_key(self.config))[0]

    def automaton(self, i: int, pool: Literal["train", "test"] = "train") -> DFA:
        """Automaton ``i`` of the training or test pool of this task's parameters."""
        automata = self.automata(pool)
        if not 0 <= i < len(automata):
            raise ValueError(f"regular: automaton index {i} is outside the {pool} pool [0, {len(automata)})")
        return automata[i]

    def automaton_of(self, batch: Batch, row: int) -> DFA:
        """The automaton of one row of ``batch``, also when it was sampled with pool overrides."""
        pool = self._pool(batch.info["automata"], *batch.info["pool"])[0]
        return pool[int(batch.info["automaton"][row])]

    def _sample(self, cfg: RegularParams, n: int, rng: np.random.Generator) -> Batch:
        pool, arrays = self._pool(cfg.automata, *self._pool_key(cfg))
        K, Lmax = cfg.max_strings, cfg.max_len
        which = rng.integers(0, len(pool), n)  # (B,) automaton of each row
        n_strings = rng.integers(cfg.min_strings, K + 1, n)  # (B,)
        used = np.arange(K)[None, :] < n_strings[:, None]  # (B, K)
        lengths = rng.integers(cfg.min_len, Lmax + 1, (n, K)) * used  # (B, K), 0 for unused strings

        # every (row, string) walk at once, one step per loop turn; a state always has an edge out
        S = arrays.out_degree.shape[1]
        base = np.repeat(which, K) * S  # (W,) with W = B * K
        state = np.zeros(n * K, dtype=np.int64)
        u = rng.random((n * K, Lmax))
        letters = np.empty((n * K, Lmax), dtype=np.int64)
        states = np.empty((n * K, Lmax), dtype=np.int64)
        degree, symbol, nxt = arrays.out_degree.ravel(), arrays.out_symbol.ravel(), arrays.out_next.ravel()
        for s in range(Lmax):
            at = base + state
            edge = at * 3 + (u[:, s] * degree[at]).astype(np.int64)  # a uniform choice among the edges
            letters[:, s] = symbol[edge]
            state = states[:, s] = nxt[edge]

        # lay the strings out as | s1 | s2 | ... | sk |
        span = (lengths + 1) * used  # (B, K) tokens per string with its closing |
        start = 1 + np.cumsum(span, axis=1) - span  # (B, K) position of each string's first letter
        total = 1 + span.sum(1)  # (B,) tokens in the row
        Tseq = int(total.max())
        seq = np.full((n, Tseq), PAD, dtype=np.int64)
        state_at = np.full((n, Tseq), -1, dtype=np.int64)
        pos_at = np.full((n, Tseq), -1, dtype=np.int64)
        row_b, row_k = np.nonzero(used)
        seps = start[row_b, row_k] + lengths[row_b, row_k]
        seq[:, 0], state_at[:, 0], pos_at[:, 0] = SEP, 0, 0
        seq[row_b, seps], state_at[row_b, seps], pos_at[row_b, seps] = SEP, 0, 0
        walk, step = np.nonzero(np.arange(Lmax)[None, :] < lengths.reshape(-1, 1))  # every letter
        rows, at = walk // K, start.reshape(-1)[walk] + step
        seq[rows, at], state_at[rows, at], pos_at[rows, at] = letters[walk, step], states[walk, step], step + 1

        T = Tseq - 1
        inputs, targets = seq[:, :T], seq[:, 1:]
        mask = targets != PAD
        q = state_at[:, :T]
        degree_at = arrays.out_degree[which[:, None], np.maximum(q, 0)]  # (B, T)
        n_legal = np.where(inputs != PAD, degree_at + (inputs < N_LETTERS), -1)
        return Batch(
            inputs=as_long(inputs), targets=as_long(np.where(mask, targets, 0)), mask=torch.from_numpy(mask),
            features={"dfa_state": as_long(q), "n_legal": as_long(n_legal), "position": as_long(pos_at[:, :T])},
            info={"automaton": as_long(which), "automata": cfg.automata, "pool": self._pool_key(cfg)},
        )

    def legal_next(self, batch: Batch) -> torch.Tensor:
        """Bool (B, T, vocab_size): the legal next symbols after every input token (all False at pads)."""
        arrays = self._pool(batch.info["automata"], *batch.info["pool"])[1]
        delta = torch.from_numpy(arrays.delta).to(batch.mask.device)  # (P, S, 18)
        q = batch.features["dfa_state"].clamp(min=0)
        letters = delta[batch.info["automaton"][:, None], q] >= 0  # (B, T, 18)
        sep = (batch.inputs < N_LETTERS).unsqueeze(-1)  # (B, T, 1) inside a string, it may end
        pad = torch.zeros_like(sep)
        return torch.cat([letters, sep, pad], dim=-1) & (batch.inputs != PAD).unsqueeze(-1)  # (B, T, 20)

    def _metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        base = super()._metrics(outputs, batch)
        mask = batch.mask
        if not mask.any():
            return {"accuracy": math.nan, "tvd": math.nan, "exact_accuracy": math.nan, "loss": math.nan}
        legal = self.legal_next(batch)[mask].float()  # (N, 20)
        logits = outputs[mask]  # (N, 20)
        greedy_legal = legal.gather(1, logits.argmax(-1, keepdim=True))
        truth = legal / legal.sum(-1, keepdim=True)
        tvd = 0.5 * (logits.softmax(-1) - truth).abs().sum(-1)
        return {"accuracy": float(greedy_legal.mean()), "tvd": float(tvd.mean()),
                "exact_accuracy": base["accuracy"], "loss": base["loss"]}

    def _labels(self) -> list[str]:
        return list(LETTERS) + ["|", "."]
