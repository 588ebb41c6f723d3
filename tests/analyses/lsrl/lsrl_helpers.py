"""Shared helpers for the LSRL tests (a plain module, not a conftest, so that its name cannot clash)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from analyses.lsrl.graph import Concat, Input, LinState, Linear, Multiplicative, ReLU, ReLUState
from analyses.lsrl.program import Program



def run_both(prog: Program, x: np.ndarray):
    """Numeric (float64 numpy) and exact (Fraction object array) outputs of a program; the exact
    run reads the inputs as the short decimals they stand for (0.001, not its binary neighbour)."""
    return prog.run(torch.tensor(x)).numpy(), prog.run(as_fraction(x), backend="symbolic")


def as_fraction(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=object)
    for idx, v in np.ndenumerate(x):
        out[idx] = Fraction(v).limit_denominator(10**6) if not isinstance(v, Fraction) else v
    return out


def random_program(seed: int, n_blocks: int = 10) -> Program:
    """A random well-typed program over a 3-dimensional input, every primitive represented.

    Weights are small integers and halves (exact in binary), states are bounded (|A| entries
    <= 1/2 off the diagonal counters), so float64 and exact arithmetic agree to ~1e-12.
    """
    rng = np.random.default_rng(seed)
    x = Input(3, low=-2, high=2)
    pool = [x]

    def mat(r, c):
        return (rng.integers(-2, 3, (r, c)) / rng.choice([1, 2])).tolist()

    kinds = ["linear", "concat", "relu", "linstate", "mul", "relustate"]
    for i in range(n_blocks):
        kind = kinds[i % len(kinds)] if i < len(kinds) else kinds[int(rng.integers(len(kinds)))]
        a = pool[int(rng.integers(len(pool)))]
        if kind == "linear":
            d = int(rng.integers(1, 4))
            node = Linear(a, mat(d, a.dim), mat(d, 1))
        elif kind == "concat":
            node = Concat([a, pool[int(rng.integers(len(pool)))]])
        elif kind == "relu":
            node = ReLU(Linear(a, mat(a.dim, a.dim), mat(a.dim, 1)))
        elif kind == "linstate":
            n = int(rng.integers(1, 3))
            A = (np.diag(rng.choice([0.5, 1.0, -0.5], n)) + np.triu(rng.choice([0, 0.5], (n, n)), 1)).tolist()
            node = LinState(a, A, mat(n, a.dim), mat(n, 1), mat(n, 1))
        elif kind == "mul":
            node = Multiplicative(Linear(a, mat(2, a.dim), mat(2, 1)))
        else:
            n = int(rng.integers(1, 3))
            node = ReLUState(a, (rng.integers(-1, 2, (n, n)) / 2).tolist(), mat(n, a.dim), mat(n, 1), [1] * n)
        pool.append(node)
    return Program(x, Concat(pool[-3:]), name=f"random{seed}")


def random_inputs(seed: int, n: int, T: int, d: int = 3) -> np.ndarray:
    """Inputs on a half-integer grid in [-2, 2] (exact in float64)."""
    return np.random.default_rng(seed).integers(-4, 5, (n, T, d)) / 2.0
