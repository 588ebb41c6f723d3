"""Fixed and slow points of a recurrent map, and their stability (Sussillo & Barak 2013).

For a map F (one step of a recurrent network under a constant input), the speed

    q(h) = ½ |F(h) − h|²

is zero at fixed points and small at slow points. Minimising q from states sampled on
trajectories finds both (Sussillo & Barak, "Opening the black box", Neural Computation 2013, §2).
Here: Adam on q for every start at once, then Newton steps on F(h) = h, kept only where they
lower q (Newton also converges to saddles, which plain descent on q approaches slowly). Nearby
results are merged, and each point is classified by the eigenvalues μ of the Jacobian of F there:
stable (all |μ| < 1), saddle (some above, some below), unstable (all above), or line attractor
(the largest |μ| within ``tol`` of 1, none above).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

Kind = Literal["stable", "saddle", "unstable", "line attractor"]
StepFn = Callable[[torch.Tensor], torch.Tensor]  # (n, D) -> (n, D)




def classify(eigvals: np.ndarray, tol: float = 0.02) -> Kind:
    """Stability of a fixed point of a discrete map from its Jacobian's eigenvalues (D,)."""
    r = np.abs(np.asarray(eigvals))
    if r.size == 0:
        raise ValueError("classify needs at least one eigenvalue")
    above, below = (r > 1 + tol).sum(), (r < 1 - tol).sum()
    if above and below:
        return "saddle"
    if above:
        return "unstable"
    return "stable" if below == r.size else "line attractor"


def jacobian(step: StepFn, h: torch.Tensor) -> torch.Tensor:
    """∂F/∂h at one state h (D,) -> (D, D)."""
    return torch.autograd.functional.jacobian(lambda x: step(x[None])[0], h)


def jacobians(step: StepFn, h: torch.Tensor) -> torch.Tensor:
    """∂F/∂h at every state of h (n, D) -> (n, D, D): one backward pass per state dimension."""
    h = h.detach().requires_grad_(True)
    out = step(h)                                                 # (n, D); rows depend on own h only
    rows = [torch.autograd.grad(out[:, d].sum(), h, retain_graph=True)[0] for d in range(out.shape[1])]
    return torch.stack(rows, 1).detach()                          # (n, D, D)


@dataclass
class FixedPoints:
    """Fixed and slow points of one map.

    Attributes
    ----------
    points : (m, D) states.   speed : (m,) q at each.   eigvals : (m, D) complex Jacobian eigenvalues.
    kinds : m labels (:func:`classify`).   fixed : (m,) bool, q below the fixed-point tolerance.
    """

    points: np.ndarray
    speed: np.ndarray
    eigvals: np.ndarray
    kinds: list[str]
    fixed: np.ndarray


def _speed(step: StepFn, h: torch.Tensor) -> torch.Tensor:
    return 0.5 * (step(h) - h).pow(2).sum(-1)                     # (n,)


def _newton(step: StepFn, h: torch.Tensor, iters: int) -> torch.Tensor:
    """Newton steps on F(h) − h = 0 per point, each kept only where it lowers q. (n, D) -> (n, D)"""
    eye = torch.eye(h.shape[1], dtype=h.dtype)
    for _ in range(iters):
        J = jacobians(step, h)                                    # (n, D, D)
        with torch.no_grad():
            F = step(h)
            q = 0.5 * (F - h).pow(2).sum(-1)                      # (n,)
            # a singular J − I (a line attractor) gives no step: lstsq returns the smallest one
            delta = torch.linalg.lstsq(J - eye, (F - h)[..., None]).solution[..., 0]  # (n, D)
            cand = h - delta
            better = _speed(step, cand) < q
        h = torch.where(better[:, None], cand, h)
    return h


def _merge(h: np.ndarray, q: np.ndarray, radius: float) -> np.ndarray:
    """Indices of representatives: slowest first, dropping any within ``radius`` of one kept."""
    keep: list[int] = []
    for i in np.argsort(q):
        if all(np.linalg.norm(h[i] - h[j]) > radius for j in keep):
            keep.append(int(i))
    return np.array(keep, dtype=int)


def find_fixed_points(step: StepFn, starts: torch.Tensor, iters: int = 1000, lr: float = 1e-2,
                      newton: int = 8, fixed_tol: float = 1e-10, slow_tol: float = 1e-4,
                      merge: float = 1e-2, noise: float = 0.0, seed: int = 0,
                      tol: float = 0.02) -> FixedPoints:
    """Minimise q from every start; return the distinct fixed and slow points with their stability.

    Parameters
    ----------
    step : F, mapping states (n, D) to next states (n, D) under the constant input of interest.
    starts : (n, D) initial states, e.g. sampled from trajectories.
    iters, lr : Adam steps and learning rate on q.   newton : Newton refinement steps.
    fixed_tol : q below this is a fixed point.   slow_tol : q above this is dropped (not slow).
    merge : points closer than merge · RMS norm of the starts (or merge, if that is 0) are one.
    noise : std of Gaussian noise added to the starts (seeded by ``seed``), as Sussillo & Barak do.
    tol : tolerance of |μ| around 1 in :func:`classify`.
    """
    if starts.dim() != 2 or starts.shape[0] == 0:
        raise ValueError(f"starts must be a non-empty (n, D) tensor; got shape {tuple(starts.shape)}")
    h = starts.detach().clone()
    if noise > 0:
        g = torch.Generator().manual_seed(seed)
        h = h + noise * torch.randn(h.shape, generator=g, dtype=h.dtype)
    h.requires_grad_(True)
    opt = torch.optim.Adam([h], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
    for _ in range(iters):
        opt.zero_grad()
        _speed(step, h).sum().backward()  # points are independent: the sum's gradient is each one's
        opt.step()
        sched.step()
    h = _newton(step, h.detach(), newton) if newton else h.detach()
    with torch.no_grad():
        q = _speed(step, h).numpy()
    hs = h.numpy()
    ok = q < slow_tol
    scale = float(np.sqrt((starts.detach().numpy() ** 2).sum(1).mean())) or 1.0
    idx = np.flatnonzero(ok)[_merge(hs[ok], q[ok], merge * scale)] if ok.any() else np.array([], int)
    D = hs.shape[1]
    eig = np.linalg.eigvals(jacobians(step, h[idx]).numpy()) if len(idx) else np.zeros((0, D), complex)
    return FixedPoints(hs[idx], q[idx], eig, [classify(e, tol) for e in eig], q[idx] < fixed_tol)


def linear_fixed_point(step: StepFn, D: int, dtype=torch.float64, tol: float = 0.02) -> FixedPoints:
    """The fixed point of an affine map F(h) = J h + b, solved exactly: h* = (I − J)⁻¹ b.

    For a map with eigenvalue 1 (a perfect integrator) there is a line of fixed points or none;
    then the least-squares solution is returned, labelled by :func:`classify` as a line attractor.
    """
    zero = torch.zeros(D, dtype=dtype)
    J = jacobian(step, zero).detach()                             # (D, D)
    b = step(zero[None])[0].detach()                              # (D,)
    h = torch.linalg.lstsq(torch.eye(D, dtype=dtype) - J, b[:, None]).solution[:, 0]
    eig = np.linalg.eigvals(J.numpy())
    with torch.no_grad():
        q = _speed(step, h[None]).numpy()
    return FixedPoints(h.numpy()[None], q, eig[None], [classify(eig, tol)], q < 1e-10)
