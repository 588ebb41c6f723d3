"""Intervention data for the repetition task, and the direct view of the magnitude code.

Every example follows Csordás et al. (2024, code ``NgramIntervention`` and ``MagicIntervention``):
take a sequence x_0..x_{L-1}, corrupt one position p to a token a ≠ x_p, and let the encoder read
the corrupted sequence. The decoder is fed (autoregressive mode) and scored on the *original*
sequence, so an intervention on the final encoder state succeeds when it puts x_p back:

    original   7 2 9 S 7 2 9          targets  . . . 7 2 9 E
    base       7 5 9 S 7 2 9          (p = 1, a = 5; the decoder part keeps the original)
    unigram source   3 2 8            random, but x_p at p: swap variable p
    bigram source    7 2 9            x_{p-1..p+1} kept, random elsewhere: swap bigrams p-1 and p
    onion            (no source)      replace a by x_p at position p

The hook is the final encoder state, the state after x_{L-1} (step L-1); SEP, which starts the
decoder, is read after it. All rows of a batch have one length, so that the intervention step is
one step for the whole batch; batch ``seed`` has length ``lengths[seed % len(lengths)]``, so
consecutive seeds (the training and evaluation loops use them) cover every length evenly.
"""
from __future__ import annotations

from typing import Callable, Literal, Sequence

import numpy as np
import torch

from probe.das import SwapBatch, read_value

Kind = Literal["unigram", "bigram", "onion"]
KINDS = ("unigram", "bigram", "onion")


def n_variables(kind: str, max_len: int) -> int:
    """Causal variables of a kind: one per position (unigram, onion) or per adjacent pair (bigram)."""
    return max_len - 1 if kind == "bigram" else max_len


def _other_token(x: np.ndarray, n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    # uniform over the n_symbols - 1 tokens different from x
    return (x + rng.integers(1, n_symbols, size=x.shape)) % n_symbols


def sampler(task, kind: Kind, lengths: Sequence[int] | None = None) -> Callable[[int, int], SwapBatch]:
    """A ``sampler(n, seed) -> SwapBatch`` of single-position interventions for ``task``.

    Parameters
    ----------
    task : a ``repetition`` task.
    kind : "unigram" / "bigram" (linear DAS: base and source) or "onion" (base only; the batch's
        ``info`` holds ``old`` = a, ``new`` = x_p and ``position`` = p, each (B,)).
    lengths : the sequence lengths, one per batch in turn (default: ``(max_len,)``, the paper's
        set for the linear interventions; its onion intervention used every length).

    ``info["group"]`` is p, for per-position accuracy.
    """
    if getattr(task, "name", None) != "repetition":
        raise ValueError(f"the magnitude analysis needs the repetition task, got {getattr(task, 'name', task)!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown intervention kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    cfg = task.config
    lengths = tuple(lengths or (cfg.max_len,))
    bad = [L for L in lengths if not 1 <= L <= cfg.max_len or (kind == "bigram" and L < 2)]
    if bad:
        raise ValueError(f"lengths {bad} not usable for {kind}: valid lengths are "
                         f"{2 if kind == 'bigram' else 1}..{cfg.max_len}")
    K, ns = n_variables(kind, cfg.max_len), cfg.n_symbols

    def sample(n: int, seed: int) -> SwapBatch:
        rng = np.random.default_rng([seed, 7])
        L = int(lengths[seed % len(lengths)])  # consecutive seeds visit every length in turn
        batch = task.sample(n, seed=seed, min_len=L, max_len=L)
        original = batch.inputs.numpy()                                           # (B, 2L+1)
        rows = np.arange(n)
        p = rng.integers(0, L, size=n)                                            # (B,)
        old = _other_token(original[rows, p], ns, rng)
        base = original.copy()
        base[rows, p] = old
        variables = np.zeros((n, K), dtype=bool)
        source = None
        if kind != "onion":
            src = rng.integers(0, ns, size=(n, L))                                # (B, L): encoder part only
            keep = np.abs(np.arange(L)[None, :] - p[:, None]) <= (kind == "bigram")
            source = torch.from_numpy(np.where(keep, original[:, :L], src))
            if kind == "unigram":
                variables[rows, p] = True
            else:  # the bigrams (j, j+1) that contain p
                for j in (p - 1, p):
                    ok = (j >= 0) & (j <= L - 2)
                    variables[rows[ok], j[ok]] = True
        info = {"old": torch.from_numpy(old), "new": torch.from_numpy(original[rows, p]),
                "position": torch.from_numpy(p), "group": torch.from_numpy(p), "length": torch.full((n,), L)}
        return SwapBatch(base=torch.from_numpy(base), source=source, variables=torch.from_numpy(variables),
                         targets=batch.targets, mask=batch.mask, step=L - 1, info=info)

    return sample


@torch.no_grad()
def contributions(model, task, length: int | None = None, n: int = 512, seed: int = 0,
                  hook: str = "state") -> np.ndarray:
    """How much each position moves the final encoder state: (L,) mean norms.

    For each position p, the token there is replaced by another one and the final encoder state
    compared: c_p = mean ||h_final(x) − h_final(x with x_p replaced)||. A magnitude ("onion") code
    makes c_p geometric in p; a code with one subspace per position makes it flat.
    """
    L = length or task.config.max_len
    batch = task.sample(n, seed=seed, min_len=L, max_len=L)
    rng = np.random.default_rng([seed, 11])
    x = batch.inputs[:, :L]                                                       # (B, L)
    h = read_value(model, x, hook, L - 1)                                          # (B, D)
    out = np.zeros(L)
    for p in range(L):
        y = x.clone()
        y[:, p] = torch.from_numpy(_other_token(x[:, p].numpy(), task.config.n_symbols, rng))
        out[p] = float((read_value(model, y, hook, L - 1) - h).norm(dim=-1).mean())
    return out


def geometric_fit(values: Sequence[float]) -> dict:
    """Least-squares fit of log(values) against position: ``rate`` (per position), ``r2``, ``intercept``."""
    v = np.asarray(values, dtype=float)
    p = np.arange(len(v))
    ok = v > 0
    if ok.sum() < 2:
        return {"rate": float("nan"), "r2": float("nan"), "intercept": float("nan")}
    y = np.log(v[ok])
    slope, intercept = np.polyfit(p[ok], y, 1)
    resid = y - (slope * p[ok] + intercept)
    ss = float(((y - y.mean()) ** 2).sum())
    return {"rate": float(np.exp(slope)), "r2": 1 - float((resid ** 2).sum()) / ss if ss > 0 else 1.0,
            "intercept": float(intercept)}
