"""In-context n-gram predictors, the true DFA distribution and total-variation distance (pure numpy/torch).

The baselines of Akyürek et al. (ICML 2024, arXiv 2401.12973), after their code
(``berlino/seq_icl`` ``ngram.py``, run with ``backoff=True, addone=False``): at every position
of a row, an n-gram model is fitted to the tokens *earlier in the same row* and asked for the
next token. Its history is the last n-1 tokens of the current string, padded at the string's
start (``|`` is the pad: it never occurs inside a string, and the row has one before every
string), so at a ``|`` the bigram's history is the string start and it predicts from the first
letters seen so far.

Smoothing is the paper's backoff. Its count of a history h includes h's current occurrence,
which has no continuation yet, so a continuation x seen c(h, x) times gets
``c(h, x) / (c(h) + 1)`` with c(h) the number of continuations of h seen, and the remaining
``1 / (c(h) + 1)`` goes to the symbols never seen after h, in proportion to the (n-1)-gram's
probabilities renormalised over them. The unigram backs off to uniform over the 19 symbols
(letters and ``|``) in the same way. Two departures from the code, both to fit this task's
conventions (:mod:`tasks.regular`): ``|`` is a symbol the predictors count and predict (a string
may end after any letter), where the code splits it away; and the bottom of the backoff is
uniform over all 19 symbols, where the code's unigram covers only the letters seen so far, so
no predictor here ever gives a symbol probability zero. ``smoothing="add_one"`` gives the plain
additive (Laplace) estimate ``(c(h, x) + 1) / (c(h) + 19)`` instead.

Everything works on whole batches at once: one loop over positions, vectorised over rows.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from tasks.dfa import N_LETTERS

SEP = N_LETTERS           # "|", also the history's pad at a string's start
PAD = N_LETTERS + 1       # "." (row padding), never predicted
N_SYMBOLS = N_LETTERS + 1  # the symbols a predictor spreads mass over: letters and "|"
Smoothing = Literal["backoff", "add_one"]


def histories(inputs: np.ndarray, n: int) -> np.ndarray:
    """The (n-1)-gram history of every position as one integer code.

    Parameters
    ----------
    inputs : int array (B, T) of token ids (letters 0..17, ``|`` 18, pad 19)
    n : the order (>= 1)

    Returns
    -------
    int64 array (B, T): sum_k s_k * 19^k over the last n-1 tokens of the current string (s_0 the
    latest), tokens before the string's start read as ``|``; 0 everywhere for n = 1.
    """
    B, T = inputs.shape
    code = np.zeros((B, T), dtype=np.int64)
    ok = np.ones((B, T), dtype=bool)   # still inside the current string, looking back
    for k in range(n - 1):
        prev = np.full((B, T), SEP, dtype=np.int64)
        prev[:, k:] = inputs[:, :T - k]  # token k steps back, "|" before the row starts
        sym = np.where(ok, np.minimum(prev, SEP), SEP)  # (B, T); pads read as "|"
        code += sym * N_SYMBOLS ** k
        ok &= prev != SEP
    return code


def ngram_probs(inputs: np.ndarray, targets: np.ndarray, mask: np.ndarray, n: int,
                smoothing: Smoothing = "backoff") -> np.ndarray:
    """In-context n-gram next-token distributions at every position.

    Parameters
    ----------
    inputs, targets : int arrays (B, T); ``targets[:, t]`` is the token after ``inputs[:, t]``
    mask : bool array (B, T), where a target exists (the counts grow only there)
    n : order, 1 (unigram), 2 (bigram), 3 (trigram), ...
    smoothing : "backoff" (the paper's; see the module docstring) or "add_one"

    Returns
    -------
    float64 array (B, T, 20): a distribution over the 20 token ids at every position (the pad
    column is 0), from the counts of the tokens before position t + 1 of the same row.
    """
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1; got {n}")
    if smoothing not in ("backoff", "add_one"):
        raise ValueError(f"unknown smoothing {smoothing!r}; valid: backoff, add_one")
    inputs, targets, mask = np.asarray(inputs), np.asarray(targets), np.asarray(mask, dtype=bool)
    B, T = inputs.shape
    orders = range(1, n + 1) if smoothing == "backoff" else (n,)
    hist = {k: histories(inputs, k) for k in orders}  # {k: (B, T)}
    counts = {k: np.zeros((B, N_SYMBOLS ** (k - 1), N_SYMBOLS)) for k in orders}  # {k: (B, H_k, 19)}
    rows = np.arange(B)
    out = np.zeros((B, T, N_SYMBOLS + 1))
    y = np.minimum(targets, SEP)
    for t in range(T):
        seen = {k: counts[k][rows, hist[k][:, t]] for k in orders}  # {k: (B, 19)}
        if smoothing == "add_one":
            c = seen[n]
            p = (c + 1) / (c.sum(-1, keepdims=True) + N_SYMBOLS)
        else:
            p = np.full((B, N_SYMBOLS), 1.0 / N_SYMBOLS)  # below the unigram: uniform
            for k in orders:  # build up from the unigram
                c = seen[k]
                total = c.sum(-1, keepdims=True)  # (B, 1)
                unseen = c == 0
                rest = (p * unseen).sum(-1, keepdims=True)  # (B, 1) lower-order mass on the unseen
                p = c / (total + 1) + unseen * p / np.where(rest > 0, rest, 1) / (total + 1)
        out[:, t, :N_SYMBOLS] = p
        m = mask[:, t]
        for k in orders:  # observe the target: it joins the counts for later positions
            np.add.at(counts[k], (rows[m], hist[k][m, t], y[m, t]), 1)
    return out


def dfa_probs(legal: torch.Tensor | np.ndarray) -> np.ndarray:
    """The true next-token distribution: uniform over the legal symbols.

    Parameters
    ----------
    legal : bool (B, T, V), e.g. ``task.legal_next(batch)``

    Returns
    -------
    float64 array (B, T, V); all zeros where nothing is legal (pads).
    """
    legal = np.asarray(legal.cpu() if isinstance(legal, torch.Tensor) else legal, dtype=np.float64)
    total = legal.sum(-1, keepdims=True)
    return legal / np.where(total > 0, total, 1)


def tvd(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Total-variation distance ½ Σ |p − q| over the last axis; shapes (..., V) -> (...)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"distributions of shapes {p.shape} and {q.shape} cannot be compared")
    return 0.5 * np.abs(p - q).sum(-1)


def greedy_legal(p: np.ndarray, legal: torch.Tensor | np.ndarray) -> np.ndarray:
    """Whether the argmax of ``p`` (..., V) is a legal symbol: bool (...). Ties go to the lowest id."""
    legal = np.asarray(legal.cpu() if isinstance(legal, torch.Tensor) else legal, dtype=bool)
    return np.take_along_axis(legal, np.asarray(p).argmax(-1)[..., None], -1)[..., 0]


def greedy_letter_legal(p: np.ndarray, legal: torch.Tensor | np.ndarray) -> np.ndarray:
    """Whether the most probable *letter* of ``p`` (..., V) is legal: bool (...).

    RegBench's accuracy: the separator is no symbol of the automaton, so the prediction judged is
    the letter that would be generated if the string goes on (every state has an edge out).
    """
    return greedy_legal(np.asarray(p)[..., :N_LETTERS], np.asarray(legal)[..., :N_LETTERS])
