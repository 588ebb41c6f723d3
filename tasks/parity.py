"""Streaming parity (van Rossem & Saxe, ICML 2025, arXiv 2507.09897).

Binary strings; the target at every step is the parity of the prefix read so far, so every
prefix is supervised (the paper reads the final state of every string of length 1..10, which
is the same set of supervised prefixes).

Example (max_len=4, one row, ``P`` = pad token 2)::

    inputs   1 0 1 1 P P
    targets  1 1 0 1 0 0
    mask     T T T T F F
    parity   1 1 0 1 -1 -1      (features; -1 at padded steps)

Training data
-------------
- default: lengths uniform in 1..max_len, bits i.i.d. uniform;
- ``exhaustive=True``: the finite data set of all 2 + 4 + ... + 2^max_len strings (2046 for
  max_len=10, the paper's training set); a batch draws rows from it uniformly without
  replacement, so ``sample(n=2046)`` is the whole set once, shuffled;
- ``fraction=p < 1`` (the phase diagram): per length L a fixed subset of Binomial(2^L, p)
  strings, chosen by ``data_seed``; batches draw only from that kept set (as with exhaustive).

``length=L`` (an override, used by the splits) samples fixed-length i.i.d. strings instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tasks.base import Batch, Task, as_long
from tasks.params import bad_param, param

PAD = 2
MAX_ENUMERATED_LEN = 20  # 2^21 strings is the most we enumerate for exhaustive / fraction runs


@dataclass(frozen=True)
class ParityParams:
    max_len: int = param(10, ge=1, le=100_000, doc="training strings have lengths 1..max_len")
    exhaustive: bool = param(False, doc="train on the finite set of all strings of length 1..max_len")
    fraction: float = param(1.0, gt=0.0, le=1.0, doc="keep Binomial(2^L, fraction) strings per length L")
    data_seed: int = param(0, ge=0, doc="which strings a fraction < 1 keeps")
    length: int | None = param(None, ge=1, le=1_000_000, doc="fixed length for every string (evaluation)")


def enumerate_strings(max_len: int, fraction: float = 1.0, data_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All (or a seeded Binomial(2^L, fraction) subset per length L of) binary strings of length 1..max_len.

    Returns
    -------
    bits : uint8 array (N, max_len)
        Row i holds string i left-aligned, zero-padded.
    lengths : int64 array (N,)
    """
    rows, lengths = [], []
    for L in range(1, max_len + 1):
        index = np.arange(2 ** L, dtype=np.int64)
        if fraction < 1.0:
            rng = np.random.default_rng([data_seed, L])
            keep = rng.binomial(2 ** L, fraction)
            index = np.sort(rng.choice(2 ** L, size=keep, replace=False))
        shifts = np.arange(L - 1, -1, -1)
        bits = ((index[:, None] >> shifts) & 1).astype(np.uint8)  # (k, L), most significant bit first
        rows.append(np.pad(bits, ((0, 0), (0, max_len - L))))
        lengths.append(np.full(len(index), L, dtype=np.int64))
    return np.concatenate(rows), np.concatenate(lengths)


class Parity(Task):
    """Streaming parity; see the module docstring.

    Features: ``parity`` (prefix parity), ``position`` (prefix length, 1-based), ``ones``
    (count of ones in the prefix); all -1 at padded steps.
    """

    name = "parity"
    Params = ParityParams
    input_kind = "tokens"
    loss = "ce"
    feature_names = ("parity", "position", "ones")
    paper = {"exhaustive": True}  # all 2046 strings of length 1..10

    def _check(self, cfg: ParityParams) -> None:
        if (cfg.exhaustive or cfg.fraction < 1.0) and cfg.max_len > MAX_ENUMERATED_LEN:
            raise bad_param(self.name, "max_len", cfg.max_len,
                            f"<= {MAX_ENUMERATED_LEN} when exhaustive=True or fraction < 1 (the data set is enumerated)")

    def _dims(self, cfg: ParityParams) -> dict[str, int]:
        return {"vocab_size": 3, "d_output": 2}  # tokens 0, 1 and the pad token 2

    def _setup(self, cfg: ParityParams) -> None:
        self._datasets: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        if cfg.exhaustive or cfg.fraction < 1.0:
            self.dataset(cfg)  # build now so that a too-small fraction fails at construction

    def dataset(self, cfg: ParityParams | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The finite training set ``(bits (N, max_len), lengths (N,))`` of an exhaustive / fraction run."""
        cfg = cfg or self.config
        key = (cfg.max_len, cfg.fraction, cfg.data_seed)
        if key not in self._datasets:
            bits, lengths = enumerate_strings(cfg.max_len, cfg.fraction, cfg.data_seed)
            if len(lengths) == 0:
                raise bad_param(self.name, "fraction", cfg.fraction,
                                f"a fraction that keeps at least one string (data_seed={cfg.data_seed} keeps none)")
            self._datasets[key] = (bits, lengths)
        return self._datasets[key]

    def splits(self) -> dict[str, dict]:
        return {"train": {}, "len_50": {"length": 50}, "len_1000": {"length": 1000},
                "len_10000": {"length": 10000}}

    def _sample(self, cfg: ParityParams, n: int, rng: np.random.Generator) -> Batch:
        if cfg.length is not None:
            bits = rng.integers(0, 2, size=(n, cfg.length), dtype=np.int64)  # (B, T)
            lengths = np.full(n, cfg.length)
        elif cfg.exhaustive or cfg.fraction < 1.0:
            data, data_lengths = self.dataset(cfg)
            size = len(data_lengths)
            if n <= size:
                rows = rng.choice(size, size=n, replace=False)
            else:  # whole shuffled copies of the set, then part of one more
                rows = np.concatenate([rng.permutation(size) for _ in range(-(-n // size))])[:n]
            lengths = data_lengths[rows]
            bits = data[rows, : lengths.max()].astype(np.int64)  # (B, T)
        else:
            lengths = rng.integers(1, cfg.max_len + 1, size=n)
            bits = rng.integers(0, 2, size=(n, lengths.max()), dtype=np.int64)  # (B, T)
        T = bits.shape[1]
        mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
        bits = bits * mask
        ones = np.cumsum(bits, axis=1)  # (B, T)
        parity = ones % 2
        position = np.broadcast_to(np.arange(1, T + 1), (n, T))
        pad = lambda a: np.where(mask, a, -1)  # noqa: E731
        return Batch(
            inputs=as_long(np.where(mask, bits, PAD)),
            targets=as_long(parity),  # zero beyond each string's end (bits were zeroed there)
            mask=torch.from_numpy(mask),
            features={"parity": as_long(pad(parity)), "position": as_long(pad(position)),
                      "ones": as_long(pad(ones))},
            info={"lengths": as_long(lengths)},
        )

    def _metrics(self, outputs: torch.Tensor, batch: Batch) -> dict[str, float]:
        metrics = super()._metrics(outputs, batch)
        correct = (outputs.argmax(-1) == batch.targets) | ~batch.mask  # (B, T)
        last = batch.mask.sum(1) - 1  # (B,) index of each string's last step
        metrics["final_accuracy"] = float(correct.gather(1, last[:, None]).float().mean())
        metrics["sequence_accuracy"] = float(correct.all(1).float().mean())
        return metrics

    def _labels(self) -> list[str]:
        return ["0", "1", "<pad>"]
