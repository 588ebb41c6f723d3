"""Nonlinear recurrences solved for every step at once by Newton's method (DEER, quasi-DEER, ParaRNN).

A recurrence h_t = f(h_{t-1}, x_t), t = 0..T-1, is one system of T equations in the whole
trajectory h. Newton's method linearises f around the current guess h^k,

    h_t^{k+1} = J_t h_{t-1}^{k+1} + (f(h_{t-1}^k) - J_t h_{t-1}^k),   J_t = ∂f/∂h at h_{t-1}^k,

which is a *linear* recurrence in h^{k+1}, solved by one scan (Lim et al. 2024, "Parallelizing
non-linear sequential models over the sequence length", DEER; Danieli et al. 2025, ParaRNN):

- ``"deer"``: the dense Jacobian (..., T, D, D), scanned as matrices (:func:`matrix_scan`,
  O(D³) per step: for small D). Newton: quadratic convergence near the solution;
- ``"quasi"``: the Jacobian's diagonal only (Gonzalez et al. 2024, quasi-DEER), scanned
  elementwise by :func:`probe.scan.linear_scan`. Slower to converge on a dense cell; exact
  Newton on a cell whose Jacobian is diagonal (ParaRNN's ``gru_diag``).

Either way after k iterations at least the first k steps are exact (step t depends only on steps
before it), so T iterations always suffice; in practice a handful do. The solve stops when the
largest change of an iteration is at most ``tol`` (DEER's criterion; default 1e-4 in float32 as
DEER, 1e-10 in float64) and reports its iterations (:class:`SolveInfo`). A solve that has not
converged in ``max_iter`` iterations warns once and falls back to the sequential recurrence.
The first guess is f(0, x_t) at every step, as in ParaRNN.

Gradients come from the implicit function theorem, not from backpropagating through the
iterations: the solution satisfies h = F(shift(h)), so with g = dL/dh the adjoint λ solves
λ_t = g_t + J_{t+1}ᵀ λ_{t+1}, one reverse linear scan with the exact Jacobian at the solution
(diagonal for a diagonal cell, dense otherwise, whichever solver ran), and dL/dθ, dL/dx and
dL/dh0 are one vector-Jacobian product of f with λ (as in DEER's ``deer_iteration_bwd``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

Method = Literal["deer", "quasi"]
METHODS = ("deer", "quasi")
SOLVERS = ("sequential", "deer", "quasi", "auto")
_TOL = {torch.float64: 1e-10, torch.float32: 1e-4}   # float32: DEER's own; float64: tighter than DEER's 1e-7
MAX_ITER = 100                                        # DEER's default


@dataclass
class SolveInfo:
    """What a solve did: ``iterations`` (Newton steps, each one scan), whether it ``converged``
    within ``tol``, the last iteration's largest change ``delta``, and ``fallback`` (True when
    it did not converge and the sequential recurrence gave the result)."""

    method: str
    iterations: int
    converged: bool
    delta: float
    tol: float
    fallback: bool = False


# ---------------------------------------------------------------------------------------------
# the matrix-valued linear scan: h_t = A_t h_{t-1} + b_t, A (..., T, D, D), b (..., T, D)
# ---------------------------------------------------------------------------------------------

def _matrix_scan_sequential(A: Tensor, b: Tensor, h0: Optional[Tensor]) -> Tensor:
    hs, h = [], h0
    for t in range(b.shape[-2]):
        h = b[..., t, :] if h is None else (A[..., t, :, :] @ h.unsqueeze(-1)).squeeze(-1) + b[..., t, :]
        hs.append(h)
    return torch.stack(hs, -2)


def _matrix_scan_parallel(A: Tensor, b: Tensor, h0: Optional[Tensor]) -> Tensor:
    """Hillis-Steele over (A, b) pairs, (A2, b2) ∘ (A1, b1) = (A2 A1, A2 b1 + b2): log2(T) levels."""
    T = b.shape[-2]
    if h0 is not None:  # fold h0 into the first step: h_0 = A_0 h0 + b_0
        b = torch.cat([b[..., :1, :] + (A[..., :1, :, :] @ h0.unsqueeze(-2).unsqueeze(-1)).squeeze(-1), b[..., 1:, :]], -2)
    A = A.expand(*b.shape, b.shape[-1])
    s = 1
    while s < T:
        b = torch.cat([b[..., :s, :], (A[..., s:, :, :] @ b[..., :-s, :, None]).squeeze(-1) + b[..., s:, :]], -2)
        if 2 * s < T:  # the last level needs no product of matrices
            A = torch.cat([A[..., :s, :, :], A[..., s:, :, :] @ A[..., :-s, :, :]], -3)
        s *= 2
    return b


def matrix_scan(A: Tensor, b: Tensor, h0: Optional[Tensor] = None, reverse: bool = False,
                backend: Literal["auto", "sequential", "parallel"] = "auto") -> Tensor:
    """All states of h_t = A_t h_{t-1} + b_t with matrices A (..., T, D, D), b (..., T, D), h0 (..., D).

    ``reverse=True`` runs h_t = A_t h_{t+1} + b_t from the end. ``"parallel"`` (Hillis-Steele,
    log2(T) whole-tensor steps, O(T log T D³) work) is chosen from T = 32 on; ``"sequential"``
    is the reference loop.
    """
    if A.shape[-1] != A.shape[-2] or A.shape[-1] != b.shape[-1]:
        raise ValueError(f"A must be (..., T, D, D) and b (..., T, D); got A {tuple(A.shape)}, b {tuple(b.shape)}")
    if reverse:
        return matrix_scan(A.flip(-3), b.flip(-2), h0, False, backend).flip(-2)
    if backend == "auto":
        backend = "parallel" if b.shape[-2] >= 32 else "sequential"
    return (_matrix_scan_parallel if backend == "parallel" else _matrix_scan_sequential)(A, b, h0)


# ---------------------------------------------------------------------------------------------
# Jacobians of a cell f(h_prev (..., T, D), *args) -> (..., T, D), rows independent
# ---------------------------------------------------------------------------------------------

def dense_jacobian(f: Callable, h_prev: Tensor, args: Sequence) -> Tensor:
    """∂f_i/∂h_j at every step, (..., T, D, D): D forward-mode products with the unit vectors."""
    D = h_prev.shape[-1]
    eye = torch.eye(D, dtype=h_prev.dtype, device=h_prev.device)
    basis = eye.view(D, *([1] * (h_prev.dim() - 1)), D).expand(D, *h_prev.shape)   # (D, ..., T, D)
    def column(v):
        return torch.func.jvp(lambda h: f(h, *args), (h_prev,), (v,))[1]
    return torch.func.vmap(column, out_dims=-1)(basis)                             # (..., T, D, D)


def block_jacobian(f: Callable, h_prev: Tensor, args: Sequence, k: int) -> Tensor:
    """The Jacobian of a cell whose state is k blocks of H units where unit i of each block reads
    only unit i of the blocks (ParaRNN's diagonal and block-diagonal cells): (..., T, H, k, k),
    [..., i, a, b] = ∂(block a, unit i)/∂(block b, unit i), from k forward products."""
    H = h_prev.shape[-1] // k
    cols = []
    for j in range(k):
        v = torch.zeros_like(h_prev)
        v[..., j * H:(j + 1) * H] = 1
        col = torch.func.jvp(lambda h: f(h, *args), (h_prev,), (v,))[1]            # (..., T, kH)
        cols.append(col.unflatten(-1, (k, H)).transpose(-1, -2))                    # (..., T, H, k)
    return torch.stack(cols, -1)                                                    # (..., T, H, k, k)


def diagonal_jacobian(f: Callable, h_prev: Tensor, args: Sequence) -> Tensor:
    """∂f_i/∂h_i, (..., T, D), of a cell whose Jacobian is diagonal: one product with ones."""
    return torch.func.jvp(lambda h: f(h, *args), (h_prev,), (torch.ones_like(h_prev),))[1]


def _shift(h0: Tensor, h: Tensor) -> Tensor:
    """(h0, h_0, ..., h_{T-2}): the state each step starts from, (..., T, D)."""
    return torch.cat([h0.unsqueeze(-2), h[..., :-1, :]], -2)


def _jacobian(f, hp, args, blocks):
    """The exact Jacobian in its structure: (..., T, D, D) dense, (..., T, D) diagonal, or
    (..., T, H, k, k) for k > 1 blocks."""
    if blocks is None:
        return dense_jacobian(f, hp, args)
    return diagonal_jacobian(f, hp, args) if blocks == 1 else block_jacobian(f, hp, args, blocks)


def _diagonal(J, blocks):
    """The diagonal (..., T, D) of a Jacobian in any of :func:`_jacobian`'s structures."""
    if blocks == 1:
        return J
    d = torch.diagonal(J, dim1=-2, dim2=-1)                                         # (..., T, D) or (..., T, H, k)
    return d if blocks is None else d.transpose(-1, -2).flatten(-2)


def _apply(J, v, blocks):
    """J v at every step, v (..., T, D)."""
    if blocks == 1:
        return J * v
    if blocks is None:
        return (J @ v.unsqueeze(-1)).squeeze(-1)
    k = J.shape[-1]
    vb = v.unflatten(-1, (k, -1)).transpose(-1, -2).unsqueeze(-1)                   # (..., T, H, k, 1)
    return (J @ vb).squeeze(-1).transpose(-1, -2).flatten(-2)


def _scan(J, b, h0, blocks, reverse=False):
    """h_t = J_t h_{t-1} + b_t (h_{t+1} if reverse) with J in any of :func:`_jacobian`'s structures."""
    from probe.scan import linear_scan
    if blocks == 1:
        if reverse:
            return linear_scan(J.flip(-2), b.flip(-2), h0).flip(-2)
        return linear_scan(J, b, h0)
    if blocks is None:
        return matrix_scan(J, b, h0, reverse)
    if blocks == 2:
        return _scan2(J, b, h0, reverse)
    k = J.shape[-1]
    bb = b.unflatten(-1, (k, -1)).movedim(-1, -3)                                  # (..., H, T, k)
    JJ = J.movedim(-3, -4)                                                          # (..., H, T, k, k)
    hb = None if h0 is None else h0.unflatten(-1, (k, -1)).transpose(-1, -2)       # (..., H, k)
    return matrix_scan(JJ, bb, hb, reverse).movedim(-3, -1).flatten(-2)            # (..., T, D)


def _scan2(J: Tensor, b: Tensor, h0: Optional[Tensor], reverse: bool) -> Tensor:
    """:func:`_scan` for 2x2 blocks with the products written out elementwise: Hillis-Steele over
    (A, v) pairs of H independent 2x2 recurrences, without batched 2x2 matmuls."""
    if reverse:
        return _scan2(J.flip(-4), b.flip(-2), h0, False).flip(-2)
    H = b.shape[-1] // 2
    p, q, r, s = J[..., 0, 0], J[..., 0, 1], J[..., 1, 0], J[..., 1, 1]            # (..., T, H) each
    u, v = b[..., :H], b[..., H:]
    if h0 is not None:  # fold h0 into the first step
        x0, y0 = h0[..., None, :H], h0[..., None, H:]
        u = torch.cat([u[..., :1, :] + p[..., :1, :] * x0 + q[..., :1, :] * y0, u[..., 1:, :]], -2)
        v = torch.cat([v[..., :1, :] + r[..., :1, :] * x0 + s[..., :1, :] * y0, v[..., 1:, :]], -2)
    T, step = b.shape[-2], 1
    while step < T:
        P, Q, R, S = (m[..., step:, :] for m in (p, q, r, s))                       # A_t
        pu, pv = u[..., :-step, :], v[..., :-step, :]                               # v_{t-step}
        u = torch.cat([u[..., :step, :], P * pu + Q * pv + u[..., step:, :]], -2)
        v = torch.cat([v[..., :step, :], R * pu + S * pv + v[..., step:, :]], -2)
        if 2 * step < T:  # A_t A_{t-step}
            p0, q0, r0, s0 = (m[..., :-step, :] for m in (p, q, r, s))
            p, q, r, s = (torch.cat([m[..., :step, :], new], -2) for m, new in
                          zip((p, q, r, s), (P * p0 + Q * r0, P * q0 + Q * s0, R * p0 + S * r0, R * q0 + S * s0),
                              strict=True))
        step *= 2
    return torch.cat([u, v], -1)


# ---------------------------------------------------------------------------------------------
# the solve
# ---------------------------------------------------------------------------------------------

def _newton(f, h0, args, T, method, blocks, jac_diag, tol, max_iter):
    h = f(torch.zeros(*h0.shape[:-1], T, h0.shape[-1], dtype=h0.dtype, device=h0.device), *args)  # ParaRNN's guess
    delta, k = math.inf, 0
    while k < max_iter:
        hp = _shift(h0, h)                                                          # (..., T, D)
        fh = f(hp, *args)
        if method == "deer":
            J = _jacobian(f, hp, args, blocks)
            new = _scan(J, fh - _apply(J, hp, blocks), h0, blocks)
        else:
            J = jac_diag(hp, args) if jac_diag is not None else _diagonal(_jacobian(f, hp, args, blocks), blocks)
            new = _scan(J, fh - J * hp, h0, 1)                                      # (..., T, D)
        delta = float((new - h).abs().max()) if new.numel() else 0.0
        h, k = new, k + 1
        if not delta > tol:                                                         # NaN does not converge
            return h, SolveInfo(method, k, True, delta, tol)
    return h, SolveInfo(method, k, False, delta, tol)


def _sequential(f, h0, args, T, step):
    if step is not None:
        hs, h = [], h0
        for t in range(T):
            h = step(h, t)
            hs.append(h)
        return torch.stack(hs, -2)
    h = torch.zeros(*h0.shape[:-1], T, h0.shape[-1], dtype=h0.dtype, device=h0.device)
    for t in range(T):  # without a one-step form: step t of f on the states so far (O(T²))
        h = torch.cat([h[..., :t, :], f(_shift(h0, h), *args)[..., t:t + 1, :], h[..., t + 1:, :]], -2)
    return h


class _Solve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, opts, h0, *args):
        f, T, method, blocks, jac_diag, tol, max_iter, step, record = opts
        h, info = _newton(f, h0, args, T, method, blocks, jac_diag, tol, max_iter)
        if not info.converged:
            warnings.warn(f"newton {method} solve did not converge in {max_iter} iterations (last change "
                          f"{info.delta:.3g} > tol {tol:.3g}); falling back to the sequential recurrence",
                          RuntimeWarning, stacklevel=4)
            h, info.fallback = _sequential(f, h0, args, T, step), True
        record(info)
        ctx.f, ctx.blocks = f, blocks
        ctx.save_for_backward(h, h0, *args)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        h, h0, *args = ctx.saved_tensors
        f, blocks = ctx.f, ctx.blocks
        hp = _shift(h0, h)
        # λ_t = g_t + J_{t+1}ᵀ λ_{t+1}: a reverse scan whose step t reads the Jacobian of step t+1
        J = _jacobian(f, hp, args, blocks)
        J = torch.cat([J[..., 1:, :], torch.zeros_like(J[..., :1, :])], -2) if blocks == 1 else \
            torch.cat([J[..., 1:, :, :], torch.zeros_like(J[..., :1, :, :])], -3).transpose(-1, -2) \
            if blocks is None else \
            torch.cat([J[..., 1:, :, :, :], torch.zeros_like(J[..., :1, :, :, :])], -4).transpose(-1, -2)
        lam = _scan(J, g, None, blocks, reverse=True)                               # (..., T, D)
        need = [ctx.needs_input_grad[1]] + list(ctx.needs_input_grad[2:])
        with torch.enable_grad():
            hp_ = hp.detach().requires_grad_(need[0])
            args_ = [x.detach().requires_grad_(n) for x, n in zip(args, need[1:], strict=True)]
            wrt = [v for v, n in zip([hp_, *args_], need, strict=True) if n]
            grads = iter(torch.autograd.grad(f(hp_, *args_), wrt, lam, allow_unused=True) if wrt else ())
        out = [next(grads) if n else None for n in need]
        if out[0] is not None:
            out[0] = out[0][..., 0, :]                                              # J_0ᵀ λ_0 = dL/dh0
        return (None, *out)


def solve(f: Callable[..., Tensor], h0: Tensor, T: int, *args: Tensor, method: Method = "deer",
          blocks: Optional[int] = None, jac_diag: Optional[Callable] = None, tol: Optional[float] = None,
          max_iter: Optional[int] = None, step: Optional[Callable] = None,
          info: Optional[list] = None) -> Tensor:
    """The trajectory h (..., T, D) of h_t = f(h_{t-1}, x_t) from h0 (..., D), by Newton's method.

    Parameters
    ----------
    f : the cell on every step at once: ``f(h_prev, *args)`` with h_prev (..., T, D) -> (..., T, D),
        each row (batch element, step) depending on its own row of h_prev only.
    h0 : the state before step 0, (..., D).
    T : number of steps.
    *args : the tensors f reads (inputs, weights); gradients reach those that require them.
    method : "deer" (dense Jacobian, matrix scan) or "quasi" (its diagonal, elementwise scan).
    blocks : None for a dense Jacobian; k when the state is k blocks of H units and unit i of
        each block reads only unit i of the blocks (ParaRNN's cells): 1 is a diagonal Jacobian
        (``gru_diag``; "deer" and "quasi" are then both exact Newton with an elementwise scan),
        2 the 2x2 blocks of ``lstm_diag``'s (c, h). "deer" and the backward scan the exact
        structure ((..., H, T, k, k) matrices), "quasi" its diagonal.
    jac_diag : optional ``jac_diag(h_prev, args) -> (..., T, D)``, the Jacobian's diagonal in
        closed form (otherwise taken from the dense Jacobian: D forward products).
    tol, max_iter : stop when an iteration changes no entry by more than ``tol`` (default 1e-4
        for float32, 1e-10 for float64); fall back to the sequential recurrence, with one
        ``RuntimeWarning``, after ``max_iter`` (default 100) iterations without.
    step : optional ``step(h_prev (..., D), t) -> h_t``, the sequential fallback's one step.
    info : a list to which the solve appends its :class:`SolveInfo`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown newton method {method!r}; valid choices: {', '.join(METHODS)}")
    if blocks is not None and (blocks < 1 or h0.shape[-1] % blocks):
        raise ValueError(f"blocks must divide the state width {h0.shape[-1]}, got {blocks!r}")
    if T == 0:
        return h0.new_empty(*h0.shape[:-1], 0, h0.shape[-1])
    tol = _TOL.get(h0.dtype, 1e-4) if tol is None else float(tol)
    max_iter = MAX_ITER if max_iter is None else int(max_iter)
    if max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    record = info.append if info is not None else (lambda _: None)
    opts = (f, T, method, blocks, jac_diag, tol, max_iter, step, record)
    return _Solve.apply(opts, h0, *args)


def choose_solver(device: torch.device, T: int, D: int, structured: bool) -> str:
    """What ``solver="auto"`` runs.

    On the CPU the step-by-step loop won at every length measured (benchmarks/NOTES.md), so "auto"
    is "sequential" there. On a GPU (not yet measured: a guess to revisit with
    ``benchmarks/parallel_rnn.py``) Newton for a structured cell (diagonal or 2x2 blocks) from
    T = 256 on, and dense DEER for D <= 32 from T = 1024 on.
    """
    if torch.device(device).type == "cpu":
        return "sequential"
    if structured:
        return "deer" if T >= 256 else "sequential"
    return "deer" if D <= 32 and T >= 1024 else "sequential"


def run_layer_solver(layer, method: str, f: Callable, h0: Tensor, T: int, args: Sequence[Tensor],
                     step: Optional[Callable] = None, jac_diag: Optional[Callable] = None,
                     blocks: Optional[int] = None) -> Tensor:
    """A recurrent layer's states by :func:`solve` with its ``newton_tol`` and ``newton_max_iter``
    (None: the defaults); the solve's :class:`SolveInfo` is left in ``layer.last_solve``."""
    infos: list = []
    h = solve(f, h0, T, *args, method=method, blocks=blocks, jac_diag=jac_diag, step=step,
              tol=getattr(layer, "newton_tol", None), max_iter=getattr(layer, "newton_max_iter", None), info=infos)
    layer.last_solve = infos[-1] if infos else None
    return h


def resolve(solver: str, device, T: int, D: int, structured: bool) -> str:
    """A layer's ``solver`` option as run: "auto" becomes :func:`choose_solver`'s choice."""
    return choose_solver(device, T, D, structured) if solver == "auto" else solver


__all__ = ["METHODS", "SOLVERS", "SolveInfo", "block_jacobian", "choose_solver", "dense_jacobian", "diagonal_jacobian",
           "matrix_scan", "resolve", "run_layer_solver", "solve"]
