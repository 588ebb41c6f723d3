"""Multi-query associative recall, MQAR, as Zoology generates it (Arora et al. 2023, ``multiquery_ar``).

Keys come from [1, V/2) and values from [V/2, V), both without replacement within a row. The
context is k1 v1 k2 v2 ... kn vn, repeated ``num_passes`` times (JRT's read-twice with 2). Every
key is then queried once, at slots 0, 2, 4, ... of the rest of the row placed by a power law
p(slot i) ~ (i+1)^(a-1); the label at a query key's position is its value, and nothing gives the
value away after the query. Every other position is filler: a token drawn uniformly from the
whole vocabulary (so a stored key can reappear there, unscored), or token 0 with
``random_non_queries=False``. As in Zoology, seq_len must be even and vocab_size larger than it.

Example (vocab_size=16, seq_len=14, num_pairs=2; keys 1..7, values 8..15; filler at slot 0)::

    inputs   3 15 4 11  3 12 0 14 9 5 14 0  4 12
    targets  .  . .  . 15  . .  . . .  . . 11  .   (``.``: any value, mask False)
    slot     1  2 1  2  3  0 0  0 0 0  0 0  3  0   (slot_type: 0 filler, 1 key, 2 value, 3 query)

Probe's layout before 0.3 is kept behind three parameters: ``echo_values=True`` follows every
query key with its value (teacher forcing), ``random_non_queries=False`` fills with token 0, and
``strict=False`` accepts what Zoology refuses (odd seq_len, vocab_size <= seq_len).
``unseen_queries=u`` adds u queries of keys that were never stored (masked), so
``answer_in_context`` is 0 there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tasks.base import Batch, Task, as_long
from tasks.params import bad_param, param

FILLER, KEY, VALUE, QUERY = 0, 1, 2, 3  # slot_type codes


@dataclass(frozen=True)
class RecallParams:
    vocab_size: int = param(256, ge=4, le=1_000_000, doc="keys from [1, V/2), values from [V/2, V)")
    seq_len: int = param(64, ge=4, le=1_000_000, doc="input length T")
    num_pairs: int = param(8, ge=1, doc="key-value pairs stored, each queried once")
    power_a: float = param(0.01, gt=0.0, le=1.0, doc="query slot i has probability ~ (i+1)^(a-1)")
    num_passes: int = param(1, ge=1, le=1_000, doc="times the key-value context is read before the queries (JRT)")
    random_non_queries: bool = param(True, doc="filler drawn from the whole vocabulary (Zoology); False: token 0")
    echo_values: bool = param(False, doc="each query key is followed by its value (teacher forcing, probe < 0.3)")
    strict: bool = param(True, doc="refuse what Zoology refuses: odd seq_len, vocab_size <= seq_len")
    unseen_queries: int = param(0, ge=0, doc="extra queries of keys never stored (unanswerable, masked)")


def sample_distinct(rng: np.random.Generator, n: int, population: int, k: int) -> np.ndarray:
    """k distinct ints from [0, population) per row, in random order: (n, k)."""
    return np.argsort(rng.random((n, population)), axis=1)[:, :k]


def query_slots(cfg: RecallParams) -> int:
    """Places a query can take: every other position after the context (Zoology's ``space``)."""
    return (cfg.seq_len + 1 - 2 * cfg.num_pairs * cfg.num_passes) // 2


class Recall(Task):
    """Multi-query associative recall; see the module docstring.

    Features: ``slot_type`` (0 filler, 1 stored key, 2 value — stored, or echoed after a query
    with ``echo_values``, 3 query key), ``pairs_stored`` (distinct key-value pairs read so far),
    ``answer_in_context`` (1 at a query whose key-value pair appeared earlier in the row, else 0).
    ``info`` holds ``keys`` and ``values`` (B, num_pairs) in stored order.
    """

    name = "recall"
    Params = RecallParams
    input_kind = "tokens"
    loss = "ce"
    feature_names = ("slot_type", "pairs_stored", "answer_in_context")
    paper = {"vocab_size": 8192, "seq_len": 256, "num_pairs": 16}  # Zoology figure 2's largest standard setting

    def _check(self, cfg: RecallParams) -> None:
        if cfg.strict and cfg.seq_len % 2:
            raise bad_param(self.name, "seq_len", cfg.seq_len, "an even int, as Zoology requires (or strict=False)")
        if cfg.strict and cfg.vocab_size <= cfg.seq_len:
            raise bad_param(self.name, "vocab_size", cfg.vocab_size,
                            f"an int > seq_len = {cfg.seq_len}, as Zoology requires (or strict=False)")
        n_keys = cfg.vocab_size // 2 - 1
        if cfg.num_pairs + cfg.unseen_queries > n_keys:
            raise bad_param(self.name, "num_pairs", cfg.num_pairs,
                            f"num_pairs + unseen_queries <= vocab_size // 2 - 1 = {n_keys} distinct keys")
        slots = query_slots(cfg)
        if cfg.num_pairs + cfg.unseen_queries > slots:
            name = "num_passes" if cfg.num_passes > 1 else "num_pairs"
            raise bad_param(self.name, name, getattr(cfg, name),
                            f"num_pairs + unseen_queries <= (seq_len + 1 - 2 * num_pairs * num_passes) // 2 = "
                            f"{slots} query slots for seq_len={cfg.seq_len}")

    def _dims(self, cfg: RecallParams) -> dict[str, int]:
        return {"vocab_size": cfg.vocab_size, "d_output": cfg.vocab_size}

    def splits(self) -> dict[str, dict]:
        """``train``, and the same pairs queried across twice the filler (``len_2T``) where the
        vocabulary allows it, else queried uniformly over the slots (``uniform``: longer lags)."""
        longer = 2 * self.config.seq_len
        if not self.config.strict or self.config.vocab_size > longer:
            return {"train": {}, f"len_{longer}": {"seq_len": longer}}
        return {"train": {}, "uniform": {"power_a": 1.0}}

    def _sample(self, cfg: RecallParams, n: int, rng: np.random.Generator) -> Batch:
        V, T, p, u = cfg.vocab_size, cfg.seq_len, cfg.num_pairs, cfg.unseen_queries
        half, ctx = V // 2, 2 * p * cfg.num_passes
        keys = 1 + sample_distinct(rng, n, half - 1, p + u)  # (B, p + u); the last u are never stored
        values = half + sample_distinct(rng, n, V - half, p)  # (B, p)
        rows = np.arange(n)[:, None]

        tokens = np.zeros((n, T + 1), dtype=np.int64)  # one more than the inputs: an echo may land past T
        slot = np.zeros((n, T + 1), dtype=np.int64)
        for start in range(0, ctx, 2 * p):
            tokens[:, start:start + 2 * p:2], tokens[:, start + 1:start + 2 * p:2] = keys[:, :p], values
            slot[:, start:start + 2 * p:2], slot[:, start + 1:start + 2 * p:2] = KEY, VALUE

        # query slots: Gumbel top-k over the power law, i.e. sampling without replacement
        n_slots = query_slots(cfg)
        log_p = (cfg.power_a - 1.0) * np.log(np.arange(1, n_slots + 1))
        gumbel = -np.log(-np.log(rng.random((n, n_slots))))
        chosen = np.argsort(-(log_p + gumbel), axis=1)[:, :p + u]  # (B, p + u)
        where = ctx + 2 * chosen  # (B, p + u) positions of the query keys
        tokens[rows, where] = keys
        slot[rows, where] = QUERY
        if cfg.echo_values:
            tokens[rows, where[:, :p] + 1] = values
            slot[rows, where[:, :p] + 1] = VALUE
        if cfg.random_non_queries:
            tokens = np.where(slot == FILLER, rng.integers(0, V, size=(n, T + 1)), tokens)

        mask = np.zeros((n, T), dtype=bool)
        mask[rows, where[:, :p]] = True  # unseen queries stay False
        targets = np.zeros((n, T), dtype=np.int64)
        targets[rows, where[:, :p]] = values
        pairs = np.minimum((np.arange(T) + 1) // 2, p)  # (T,)
        return Batch(
            inputs=as_long(tokens[:, :T]),
            targets=as_long(targets),
            mask=torch.from_numpy(mask),
            features={"slot_type": as_long(slot[:, :T]),
                      "pairs_stored": as_long(np.broadcast_to(pairs, (n, T))),
                      "answer_in_context": as_long(mask.astype(np.int64))},
            info={"keys": as_long(keys[:, :p]), "values": as_long(values)},
        )

    def _labels(self) -> list[str]:
        half = self.vocab_size // 2
        return ["_"] + [f"k{i}" for i in range(1, half)] + [f"v{i}" for i in range(half, self.vocab_size)]
