"""Token repetition (Csordás, Potts, Manning & Geiger, "onion representations", arXiv 2408.10920).

A sequence x_1..x_L of symbols drawn uniformly with replacement from ``n_symbols``, L uniform in
[min_len, max_len], is read, then a separator, then the model emits the sequence and EOS. One
recurrent network both stores and emits. During output its input is the previous target token
(``mode="autoregressive"``, teacher forcing) or a constant no-input token (``mode="no_input"``).

Token ids: symbols 0..n_symbols-1, EOS = n_symbols, SEP = n_symbols+1, NOINPUT = n_symbols+2,
PAD = n_symbols+3. Outputs range over the symbols and EOS (``d_output = n_symbols + 1``).

Example (L=3, autoregressive; ``S`` SEP, ``E`` EOS, ``P`` PAD to the batch's longest row)::

    inputs   7 2 9 S 7 2 9 P
    targets  0 0 0 7 2 9 E 0
    mask     F F F T T T T F
    phase    0 0 0 1 1 1 1 -1
    position 0 1 2 0 1 2 3 -1    (index stored / being emitted; L for EOS)
    emit    -1 -1 -1 7 2 9 E -1
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tasks.base import Batch, Task, as_long
from tasks.params import bad_param, param


@dataclass(frozen=True)
class RepetitionParams:
    n_symbols: int = param(30, ge=2, le=100_000, doc="symbols to repeat")
    min_len: int = param(2, ge=1, le=100_000, doc="shortest sequence")
    max_len: int = param(9, ge=1, le=100_000, doc="longest sequence (lengths uniform in [min_len, max_len])")
    mode: Literal["autoregressive", "no_input"] = param("autoregressive", doc="input while emitting")


class Repetition(Task):
    """Token repetition; see the module docstring.

    Features: ``phase`` (0 storing, 1 emitting, -1 pad), ``position`` (index of the symbol being
    stored or emitted, 0-based; L while emitting EOS), ``emit`` (the token to emit while
    emitting, -1 otherwise), ``length`` (L of the row; -1 at pads).
    """

    name = "repetition"
    Params = RepetitionParams
    input_kind = "tokens"
    loss = "ce"
    feature_names = ("phase", "position", "emit", "length")

    def _check(self, cfg: RepetitionParams) -> None:
        if cfg.min_len > cfg.max_len:
            raise bad_param(self.name, "min_len", cfg.min_len, f"an int <= max_len = {cfg.max_len}")

    def _dims(self, cfg: RepetitionParams) -> dict[str, int]:
        return {"vocab_size": cfg.n_symbols + 4, "d_output": cfg.n_symbols + 1}

    @property
    def eos(self) -> int:
        return self.config.n_symbols

    def splits(self) -> dict[str, dict]:
        longer = {f"len_{L}": {"min_len": L, "max_len": L}
                  for L in (self.config.max_len + 1, self.config.max_len + 2)}
        return {"train": {}, **longer}

    def _sample(self, cfg: RepetitionParams, n: int, rng: np.random.Generator) -> Batch:
        ns = cfg.n_symbols
        eos, sep, no_input, pad = ns, ns + 1, ns + 2, ns + 3
        L = rng.integers(cfg.min_len, cfg.max_len + 1, size=n)[:, None]  # (B, 1)
        x = rng.integers(0, ns, size=(n, cfg.max_len))  # (B, max_len), used up to L
        T = 2 * int(L.max()) + 1
        col = np.arange(T)[None, :]  # (1, T)
        storing, emitting, real = col < L, (col >= L) & (col <= 2 * L), col <= 2 * L
        x_at = lambda i: np.take_along_axis(x, np.clip(i, 0, cfg.max_len - 1), axis=1)  # noqa: E731

        decoder_in = x_at(col - L - 1) if cfg.mode == "autoregressive" else np.full((n, T), no_input)
        inputs = np.where(storing, x_at(col), np.where(col == L, sep, np.where(real, decoder_in, pad)))
        targets = np.where(col < 2 * L, x_at(col - L), eos) * emitting  # (B, T), 0 outside emitting
        position = np.where(storing, col, col - L)
        return Batch(
            inputs=as_long(inputs), targets=as_long(targets), mask=torch.from_numpy(emitting),
            features={"phase": as_long(np.where(real, emitting.astype(np.int64), -1)),
                      "position": as_long(np.where(real, position, -1)),
                      "emit": as_long(np.where(emitting, targets, -1)),
                      "length": as_long(np.where(real, L, -1))},
            info={"lengths": as_long(L[:, 0])},
        )

    def _labels(self) -> list[str]:
        return [str(i) for i in range(self.config.n_symbols)] + ["<eos>", "<sep>", "<no-input>", "<pad>"]
