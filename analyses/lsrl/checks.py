"""Measurements: exactness of compiled programs, numeric error, precision against length, margins.

Every evaluator here (the interpreter, a chain, an exported model's exact equations) follows one
protocol — ``initial(B)``, ``repeat(state, k)``, ``step(state, x) -> (state, y)`` — so that
:func:`exhaustive` can run all strings up to length L over an alphabet as a prefix tree: level ℓ
holds the k^ℓ prefixes of length ℓ, each extended by every symbol, k + k² + ... + k^L steps in all
(8190 for bits up to length 12) instead of L k^L.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from analyses.lsrl.backends import exact_equal
from analyses.lsrl.chain import ChainEvaluator
from analyses.lsrl.compile import Compiled
from analyses.lsrl.library import LibraryProgram
from analyses.lsrl.program import Interpreter
from probe.threads import single_thread


def exhaustive(evaluator, alphabet: np.ndarray, max_len: int) -> list:
    """Outputs on every string of length 1..max_len: a list, level ℓ an array (k^ℓ, d_output).

    Row r of level ℓ is the string whose symbols are the base-k digits of r (first symbol most
    significant), as in :meth:`LibraryProgram.strings`.
    """
    be = evaluator.be
    k = len(alphabet)
    symbols = be.asarray(np.asarray(alphabet, dtype=np.float64)[None])[0]      # (k, d)
    state, outs = evaluator.initial(1), []
    for level in range(1, max_len + 1):
        state = evaluator.repeat(state, k)
        x = _tile(be, symbols, k ** (level - 1))                                  # (k^level, d)
        state, y = evaluator.step(state, x)
        outs.append(y)
    return outs


def _tile(be, symbols, times: int):
    if isinstance(symbols, torch.Tensor):
        return symbols.repeat(times, 1)
    return np.tile(symbols, (times, 1))


def same_exact(a: list, b: list) -> bool:
    """Whether two exhaustive runs (object arrays, level by level) agree exactly."""
    return len(a) == len(b) and all(exact_equal(x, y) for x, y in zip(a, b))


def max_error(a, b) -> float:
    """max |a - b| over matching float arrays / tensors (nan if shapes differ)."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if a.shape != b.shape:
        return math.nan
    return float((a - b).abs().max()) if a.numel() else 0.0


@dataclass
class Cases:
    """Inputs of one program and the float64 interpreter's outputs on them, computed once and
    shared by every target: all strings of the exhaustive length, random strings, one batch per
    length of the precision sweep (and its noisy copy)."""

    strings: torch.Tensor
    strings_ref: torch.Tensor
    random: torch.Tensor
    random_ref: torch.Tensor
    lengths: list
    by_length: list                       # [(x, ref)]
    noisy: list                           # [x + noise] per length (empty without noise)


def cases(lp: LibraryProgram, exhaustive_len: int, random_len: int = 200, n_random: int = 32,
          lengths: Sequence[int] = (), n_length: int = 8, noise: float = 0.0, seed: int = 0) -> Cases:
    rng = np.random.default_rng(seed)
    strings = torch.tensor(lp.strings(exhaustive_len))                            # (k^L, L, d)
    rand = torch.tensor(lp.sample(rng, n_random, random_len))                    # (n, T, d)
    by_length = [(x, lp.program.run(x)) for x in (torch.tensor(lp.sample(rng, n_length, T)) for T in lengths)]
    noisy = [x + noise * torch.tensor(rng.standard_normal(x.shape)) for x, _ in by_length] if noise else []
    return Cases(strings, lp.program.run(strings), rand, lp.program.run(rand), list(lengths), by_length, noisy)


def numeric_error(c: Compiled, cs: Cases) -> dict:
    """Max |model - interpreter| (float64) on all strings up to the exhaustive length and on random ones."""
    return {"exhaustive": max_error(c(cs.strings), cs.strings_ref), "random": max_error(c(cs.random), cs.random_ref)}


def precision_vs_length(c: Compiled, cs: Cases, noisy: bool = False) -> list[float]:
    """Max |model - interpreter| on random strings of each length of ``cs.lengths``.

    The reference is the float64 interpreter on the clean inputs; the model (any dtype) reads the
    same inputs, or with ``noisy`` the inputs plus Gaussian noise.
    """
    xs = cs.noisy if noisy else [x for x, _ in cs.by_length]
    return [max_error(c(x).double(), ref) for x, (_, ref) in zip(xs, cs.by_length)]


def symbolic_truth(lp: LibraryProgram, max_len: int) -> list:
    """The symbolic interpreter's exact outputs on every string up to ``max_len``
    (:func:`exhaustive`'s levels): one program's reference for every target."""
    return exhaustive(Interpreter(lp.program, "symbolic"), lp.alphabet, max_len)


def symbolic_check(c: Compiled, lp: LibraryProgram, max_len: int, random_len: int = 0, n_random: int = 0,
                   seed: int = 0, truth: list | None = None) -> dict:
    """Exact agreement of interpreter, compiled chain and (linear / elman / hawk) exported weights.

    ``truth``: :func:`symbolic_truth` ``(lp, max_len)`` when already computed (it does not depend
    on the target). Returns {"chain": bool, "model": bool or None}; ``None`` where the target is
    not exact.
    """
    ref = Interpreter(lp.program, "symbolic")
    others = {"chain": ChainEvaluator(c.chain, "symbolic")}
    if c.exact_target:
        others["model"] = c.exact()
    if truth is None:
        truth = symbolic_truth(lp, max_len)
    if len(truth) != max_len:
        raise ValueError(f"truth holds {len(truth)} levels, not max_len={max_len}")
    out = {k: same_exact(truth, exhaustive(ev, lp.alphabet, max_len)) for k, ev in others.items()}
    if random_len and n_random:
        x = lp.sample(np.random.default_rng(seed), n_random, random_len)
        y = ref.run(x)
        for k, ev in others.items():
            out[k] = out[k] and exact_equal(y, ev.run(x))
    out.setdefault("model", None)
    return out


def exact_error(c: Compiled, lp: LibraryProgram, max_len: int, truth: list | None = None) -> float:
    """max |model - exact program| over every string up to ``max_len`` (the exact outputs from the
    symbolic interpreter; ``truth`` when already computed, see :func:`symbolic_check`): what the
    compile-time bound bounds. The float64 interpreter is no reference here: its own rounding
    (1 - 0.001 in an official step) can exceed the bound."""
    if truth is None:
        truth = symbolic_truth(lp, max_len)
    if len(truth) != max_len:
        raise ValueError(f"truth holds {len(truth)} levels, not max_len={max_len}")
    k = len(lp.alphabet)
    y = c(torch.tensor(lp.strings(max_len))).double().numpy()                   # (k^L, L, d)
    worst = 0.0
    for level, exact in enumerate(truth, start=1):
        rows = y[::k ** (max_len - level), level - 1]                            # one string per prefix
        ref = np.array([[float(v) for v in row] for row in exact])
        worst = max(worst, float(np.abs(rows - ref).max()) if ref.size else 0.0)
    return worst


def relu_margin(c: Compiled, x) -> float:
    """The smallest non-zero |pre-activation| of any ReLU unit of the chain on inputs x (inf if none).

    lstm and gru are exact when this is at least their ``margin`` option.
    """
    ev = ChainEvaluator(c.chain, "numeric")
    xs = ev.be.asarray(x)
    state, best = ev.initial(xs.shape[0]), math.inf
    for t in range(xs.shape[1]):
        state, _, pres = ev.step(state, xs[:, t], record=True)
        for pre, idx in zip(pres, ev.idx):
            v = pre[:, idx["relu"]].abs()
            v = v[v > 1e-12]
            if v.numel():
                best = min(best, float(v.min()))
    return best


__all__ = ["Cases", "cases", "exact_error", "exhaustive", "max_error", "numeric_error", "precision_vs_length", "relu_margin",
           "same_exact", "single_thread", "symbolic_check", "symbolic_truth"]
