"""Multi-query associative recall, MQAR (Arora et al., Zoology; recipe of ``data/multiquery_ar.py``).

Keys come from [1, V/2) and values from [V/2, V), both without replacement within a row. The
context is k1 v1 k2 v2 ... kn vn; every key is then queried once, at slots of the remaining
positions placed by a power law p(slot i) ~ (i+1)^(a-1); each query key is followed by its value
(teacher forcing) and the label at a query key's position is that value. Filler is token 0.
The full row has seq_len + 1 tokens; inputs are tokens [0, T) and targets tokens [1, T].

Example (vocab_size=8, seq_len=10, num_pairs=2; keys 1..3, values 4..7)::

    tokens   2 5 1 7 1 7 0 0 2 5 0    (seq_len + 1 tokens)
    inputs   2 5 1 7 1 7 0 0 2 5
    targets  . . . . 7 . . . 5 .      (``.``: any value, mask False)
    mask     F F F F T F F F T F
    slot     1 2 1 2 3 2 0 0 3 2      (slot_type: 0 filler, 1 key, 2 value, 3 query)

``unseen_queries=u`` adds u more queries of keys that were never stored (their value slot holds
filler and their mask is False), so ``answer_in_context`` is 0 at those queries.
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
    vocab_size: int = param(64, ge=4, le=1_000_000, doc="keys from [1, V/2), values from [V/2, V)")
    seq_len: int = param(64, ge=4, le=1_000_000, doc="input length T")
    num_pairs: int = param(8, ge=1, doc="key-value pairs stored, each queried once")
    power_a: float = param(0.01, gt=0.0, le=1.0, doc="query slot i has probability ~ (i+1)^(a-1)")
    unseen_queries: int = param(0, ge=0, doc="extra queries of keys never stored (unanswerable, masked)")


def sample_distinct(rng: np.random.Generator, n: int, population: int, k: int) -> np.ndarray:
    """k distinct ints from [0, population) per row, in random order: (n, k)."""
    return np.argsort(rng.random((n, population)), axis=1)[:, :k]


class Recall(Task):
    """Multi-query associative recall; see the module docstring.

    Features: ``slot_type`` (0 filler, 1 stored key, 2 value — stored or echoed after a query,
    3 query key), ``pairs_stored`` (complete key-value pairs read so far), ``answer_in_context``
    (1 at a query whose key-value pair appeared earlier in the row, else 0).
    """

    name = "recall"
    Params = RecallParams
    input_kind = "tokens"
    loss = "ce"
    feature_names = ("slot_type", "pairs_stored", "answer_in_context")
    paper = {"vocab_size": 8192, "seq_len": 256, "num_pairs": 16}  # Zoology figure 2's largest standard setting

    def _check(self, cfg: RecallParams) -> None:
        n_keys = cfg.vocab_size // 2 - 1
        if cfg.num_pairs + cfg.unseen_queries > n_keys:
            raise bad_param(self.name, "num_pairs", cfg.num_pairs,
                            f"num_pairs + unseen_queries <= vocab_size // 2 - 1 = {n_keys} distinct keys")
        slots = (cfg.seq_len + 1 - 2 * cfg.num_pairs) // 2
        if cfg.num_pairs + cfg.unseen_queries > slots:
            raise bad_param(self.name, "num_pairs", cfg.num_pairs,
                            f"num_pairs + unseen_queries <= (seq_len + 1 - 2 * num_pairs) // 2 = {slots} "
                            f"query slots for seq_len={cfg.seq_len}")

    def _dims(self, cfg: RecallParams) -> dict[str, int]:
        return {"vocab_size": cfg.vocab_size, "d_output": cfg.vocab_size}

    def splits(self) -> dict[str, dict]:
        longer = 2 * self.config.seq_len  # the same pairs, queried across more filler
        return {"train": {}, f"len_{longer}": {"seq_len": longer}}

    def _sample(self, cfg: RecallParams, n: int, rng: np.random.Generator) -> Batch:
        V, T, p, u = cfg.vocab_size, cfg.seq_len, cfg.num_pairs, cfg.unseen_queries
        half = V // 2
        keys = 1 + sample_distinct(rng, n, half - 1, p + u)  # (B, p + u); the last u are never stored
        values = half + sample_distinct(rng, n, V - half, p)  # (B, p)
        rows = np.arange(n)[:, None]

        tokens = np.zeros((n, T + 1), dtype=np.int64)
        slot = np.zeros((n, T + 1), dtype=np.int64)
        tokens[:, 0:2 * p:2], tokens[:, 1:2 * p:2] = keys[:, :p], values
        slot[:, 0:2 * p:2], slot[:, 1:2 * p:2] = KEY, VALUE

        # query slots: Gumbel top-k over the power law, i.e. sampling without replacement
        n_slots = (T + 1 - 2 * p) // 2
        log_p = (cfg.power_a - 1.0) * np.log(np.arange(1, n_slots + 1))
        gumbel = -np.log(-np.log(rng.random((n, n_slots))))
        chosen = np.argsort(-(log_p + gumbel), axis=1)[:, :p + u]  # (B, p + u)
        where = 2 * p + 2 * chosen  # (B, p + u) positions of the query keys
        tokens[rows, where] = keys
        tokens[rows, where[:, :p] + 1] = values
        slot[rows, where] = QUERY
        slot[rows, where[:, :p] + 1] = VALUE

        mask = np.zeros((n, T), dtype=bool)
        mask[rows, where[:, :p]] = True  # unseen queries stay False
        answer = np.zeros((n, T), dtype=np.int64)
        answer[rows, where[:, :p]] = 1
        pairs = np.minimum((np.arange(T) + 1) // 2, p)  # (T,)
        return Batch(
            inputs=as_long(tokens[:, :T]),
            targets=as_long(np.where(mask, tokens[:, 1:], 0)),
            mask=torch.from_numpy(mask),
            features={"slot_type": as_long(slot[:, :T]),
                      "pairs_stored": as_long(np.broadcast_to(pairs, (n, T))),
                      "answer_in_context": as_long(answer)},
            info={"keys": as_long(keys[:, :p]), "values": as_long(values)},
        )

    def _labels(self) -> list[str]:
        half = self.vocab_size // 2
        return ["_"] + [f"k{i}" for i in range(1, half)] + [f"v{i}" for i in range(half, self.vocab_size)]
