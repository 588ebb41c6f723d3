"""The two number systems programs run in: numeric (torch float64) and symbolic (exact).

Both backends hold a batch of vectors as a 2-D array (B, n) and offer the handful of operations
the interpreter, the compiled chain and the exact target simulators need: an affine map by an
exact sympy matrix, ReLU, elementwise product, concatenation and row repetition (to extend every
prefix of a set of strings by every symbol). Weights are converted once per matrix and cached.

The symbolic backend keeps every value exact. Rational values become ``fractions.Fraction`` in
numpy object arrays (same numbers as sympy's Rational, an order of magnitude faster), anything
irrational (cos(2π/5) in a rotation) stays a sympy expression; affine maps skip zero weights,
since compiled matrices are sparse.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Sequence

import numpy as np
import sympy
import torch

ZERO, ONE = Fraction(0), Fraction(1)


def to_exact(v):
    """A sympy number as a Fraction when rational, else as itself."""
    v = sympy.sympify(v)
    if v.is_Rational:
        return Fraction(int(v.p), int(v.q))
    return v


def exact_array(M) -> np.ndarray:
    """A sympy matrix (or nested list of numbers) as an object array of exact numbers."""
    M = sympy.ImmutableSparseMatrix(M)
    out = np.full(M.shape, ZERO, dtype=object)
    for (i, j), v in M.todok().items():
        out[i, j] = to_exact(v)
    return out


def float_array(M) -> np.ndarray:
    """A sympy matrix as float64, each entry correctly rounded."""
    M = sympy.ImmutableSparseMatrix(M)
    out = np.zeros(M.shape, dtype=np.float64)
    for (i, j), v in M.todok().items():
        out[i, j] = float(Fraction(int(v.p), int(v.q))) if v.is_Rational else float(sympy.N(v, 30))
    return out


def _equal(a, b) -> bool:
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a == b
    return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0


def exact_equal(X: np.ndarray, Y: np.ndarray) -> bool:
    """Whether two object arrays hold the same numbers, entry by entry."""
    if X.shape != Y.shape:
        return False
    return all(_equal(a, b) for a, b in zip(X.ravel(), Y.ravel()))


class _Cache:
    def __init__(self, convert):
        self.convert, self.store = convert, {}

    def __call__(self, M):
        hit = self.store.get(id(M))
        if hit is None or hit[0] is not M:
            hit = (M, self.convert(M))          # keep M alive so that its id stays unique
            self.store[id(M)] = hit
        return hit[1]


class Numeric:
    """torch float64 (or another dtype) values (B, n)."""

    name = "numeric"
    exact = False

    def __init__(self, dtype: torch.dtype = torch.float64):
        self.dtype = dtype
        self._mat = _Cache(lambda M: torch.tensor(float_array(M), dtype=dtype))

    def asarray(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64) if not torch.is_tensor(x) else x).to(self.dtype)

    def const(self, v, B: int) -> torch.Tensor:
        return self._mat(v).reshape(1, -1).expand(B, -1).clone()                 # (B, n)

    def affine(self, X: torch.Tensor, W, b=None) -> torch.Tensor:
        Y = X @ self._mat(W).T                                                   # (B, m)
        return Y if b is None else Y + self._mat(b).reshape(1, -1)

    def relu(self, X):
        return torch.relu(X)

    def mul(self, X, Y):
        return X * Y

    def cat(self, Xs: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(Xs), dim=1)

    def repeat(self, X, k: int):
        return X.repeat_interleave(k, dim=0)

    def stack(self, Xs) -> torch.Tensor:
        return torch.stack(list(Xs), dim=1)                                      # (B, T, n)

    def is_binary(self, X) -> bool:
        return bool(((X == 0) | (X == 1)).all())


class Symbolic:
    """Exact values: numpy object arrays (B, n) of Fractions or sympy numbers."""

    name = "symbolic"
    exact = True

    def __init__(self):
        self._mat = _Cache(exact_array)
        self._sparse = _Cache(self._rows)

    def _rows(self, M):
        A = self._mat(M)
        return [[(j, w) for j, w in enumerate(A[i]) if w != 0] for i in range(A.shape[0])]

    def asarray(self, x) -> np.ndarray:
        if isinstance(x, np.ndarray) and x.dtype == object:
            return x
        arr = np.asarray(x.tolist() if torch.is_tensor(x) else x)
        out = np.empty(arr.shape, dtype=object)
        for idx, v in np.ndenumerate(arr):
            out[idx] = to_exact(sympy.Rational(v) if isinstance(v, (float, np.floating)) else sympy.sympify(v))
        return out

    def const(self, v, B: int) -> np.ndarray:
        row = self._mat(v).reshape(-1)
        return np.tile(row, (B, 1))

    def affine(self, X: np.ndarray, W, b=None) -> np.ndarray:
        rows = self._sparse(W)
        B = X.shape[0]
        bias = self._mat(b).reshape(-1) if b is not None else None
        out = np.empty((B, len(rows)), dtype=object)
        for i, terms in enumerate(rows):
            acc = np.full(B, ZERO if bias is None else bias[i], dtype=object)
            for j, w in terms:
                acc = acc + (X[:, j] if w == 1 else X[:, j] * w)
            out[:, i] = acc
        return out                                                               # (B, m)

    def relu(self, X):
        return np.where(np.vectorize(lambda v: bool(v > 0), otypes=[bool])(X), X, ZERO) if X.size else X

    def mul(self, X, Y):
        return X * Y

    def cat(self, Xs):
        return np.concatenate(list(Xs), axis=1)

    def repeat(self, X, k: int):
        return np.repeat(X, k, axis=0)

    def stack(self, Xs) -> np.ndarray:
        return np.stack(list(Xs), axis=1)                                        # (B, T, n)

    def is_binary(self, X) -> bool:
        return all(v == 0 or v == 1 for v in X.ravel())


def backend(name: str = "numeric", dtype: torch.dtype = torch.float64):
    """``"numeric"`` (torch, float64 unless ``dtype``) or ``"symbolic"`` (exact)."""
    if name == "numeric":
        return Numeric(dtype)
    if name == "symbolic":
        return Symbolic()
    raise ValueError(f"unknown backend {name!r}; valid choices: numeric, symbolic")


__all__ = ["Numeric", "Symbolic", "backend", "exact_array", "exact_equal", "float_array", "to_exact"]


def run_steps(evaluator, inputs):
    """Outputs (B, T, d_output) of an evaluator with ``be``, ``initial(B)`` and ``step(state, x_t)
    -> (state, y_t)`` over inputs (B, T, d_input), one step at a time."""
    x = evaluator.be.asarray(inputs)
    state, outs = evaluator.initial(x.shape[0]), []
    for t in range(x.shape[1]):
        state, y = evaluator.step(state, x[:, t])
        outs.append(y)
    return evaluator.be.stack(outs)
