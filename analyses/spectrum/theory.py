"""A linear RNN learning to integrate white noise: the one-outlier theory, derived in sympy.

Bordelon, Cotler, Pehlevan & Zavatone-Veth, arXiv 2503.18754, in the discrete time of
``tasks/integration.py``. White noise x_t ~ N(0, σ²) drives

    h_t = W h_{t-1} + u x_t,    y_t = v·h_t,    target y*_t = Σ_k κ_k x_{t-k},

with κ_k = γ^k (leaky) or γ^k cos(ωk) (oscillator). For stationary input the expected loss per step
is a sum over the network's impulse response v W^k u:

    L = ½ E(y_t − y*_t)² = ½σ² Σ_{k≥0} (v W^k u − κ_k)²            (1)   (the task's MSE is 2L)

**One outlier.** If W = λ êêᵀ (+ a bulk that u never reaches), u = αê, v = βê with |ê| = 1, then
v W^k u = g λ^k with gain g = αβ, and :func:`derive_leaky` sums (1) to the closed form

    L(λ, g) = ½σ² [g²/(1 − λ²) − 2g/(1 − γλ) + 1/(1 − γ²)]          (2)

(obtained by sympy, not typed), with its minimum at λ = γ, g = 1. That set is invariant under
gradient descent on (1), where it is gradient descent with the same rate on three numbers,

    ℓ(λ, α, β) = L(λ, αβ),     (λ̇, α̇, β̇) = −∇ℓ,     α² − β² conserved,      (3)

and the outlier eigenvalue of W is λ; :func:`leaky_init` says why a small init starts next to it.
Time is aligned by the learning rate: step n of gradient descent is time τ = ηn of the flow (3).
:func:`derive_plane` makes the reduction exact in the plane of u and v (two modes: the oscillator's
pair, a read-out not aligned with u), and :func:`derive_oscillator` gives the conjugate-pair ansatz.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

Method = Literal["flow", "gd"]


def _sum_geometric(expr: sp.Expr, k: sp.Symbol, length: sp.Symbol | None = None) -> sp.Expr:
    """Σ_k of a sum of terms c·r^k (times 1 − k/T when finite) over k ≥ 0, or over k < T.

    sympy answers with a Piecewise per series: for k ≥ 0 its first branch is the convergent one
    (|r| < 1), for k < T its last one is the generic one (r ≠ 1); those are kept.
    """
    upper = sp.oo if length is None else length - 1
    total = sp.summation(sp.expand(expr), (k, 0, upper))

    def branch(piecewise: sp.Piecewise) -> sp.Expr:
        expr0, cond = piecewise.args[0] if length is None else piecewise.args[-1]
        assert (cond is not sp.true) == (length is None) and not expr0.has(sp.Sum), f"no closed form: {piecewise}"
        return expr0

    return total.replace(lambda e: isinstance(e, sp.Piecewise), branch)


# ---------------------------------------------------------------------------------------------
# leaky target: one real outlier
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LeakyTheory:
    """Symbols and sympy expressions of the one-outlier theory (module docstring, eqs. 2–3)."""

    lam: sp.Symbol
    g: sp.Symbol
    alpha: sp.Symbol
    beta: sp.Symbol
    gamma: sp.Symbol
    sigma: sp.Symbol
    T: sp.Symbol | None               # sequence length of the finite-horizon loss, or None
    loss: sp.Expr                     # L(λ, g), eq. (2) (or its finite-T version)
    grad: tuple[sp.Expr, sp.Expr]     # (∂L/∂λ, ∂L/∂g)
    reduced_loss: sp.Expr             # ℓ(λ, α, β) = L(λ, αβ)
    flow: tuple[sp.Expr, ...]         # (λ̇, α̇, β̇) = −∇ℓ


@functools.lru_cache(maxsize=None)
def derive_leaky(finite: bool = False) -> LeakyTheory:
    """Sum the geometric series of eq. (1) for v W^k u = g λ^k, κ_k = γ^k; differentiate.

    ``finite=True`` gives instead the loss the task's batches estimate: sequences of length T
    from a zero state, so lag k is seen at T − k of the T steps,
    L_T = ½σ² Σ_{k<T} (1 − k/T)(gλ^k − γ^k)²; it tends to eq. (2) as T → ∞.
    """
    lam, g, gamma, alpha, beta = sp.symbols("lambda g gamma alpha beta", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    T = sp.Symbol("T", integer=True, positive=True) if finite else None
    weight = 1 if T is None else 1 - k / T
    loss = sigma**2 / 2 * _sum_geometric(weight * (g * lam**k - gamma**k) ** 2, k, T)  # geometric series
    grad = (sp.factor(sp.diff(loss, lam)), sp.factor(sp.diff(loss, g)))
    reduced = loss.subs(g, alpha * beta)
    flow = tuple(-sp.diff(reduced, s) for s in (lam, alpha, beta))
    return LeakyTheory(lam, g, alpha, beta, gamma, sigma, T, loss, grad, reduced, flow)


# ---------------------------------------------------------------------------------------------
# oscillatory target: a conjugate pair
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairTheory:
    """Sympy expressions of the conjugate-pair ansatz (module docstring, last paragraph)."""

    rho: sp.Symbol
    theta: sp.Symbol
    g: sp.Symbol
    phi: sp.Symbol
    gamma: sp.Symbol
    omega: sp.Symbol
    sigma: sp.Symbol
    loss: sp.Expr                     # L(ρ, θ, g, φ): z = ρe^{iθ}, c = g e^{iφ}; complex-typed, real-valued
    variables: tuple[sp.Symbol, ...]  # (x, y, u1, u2, v1, v2)
    ansatz_loss: sp.Expr              # ℓ(x, y, u1, u2, v1, v2)
    flow: tuple[sp.Expr, ...]         # conformal projection of −∇ℓ


@functools.lru_cache(maxsize=None)
def derive_oscillator() -> PairTheory:
    """Sum eq. (1) for v W^k u = Re(c z^k), κ_k = Re(p^k), p = γe^{iω}; the pair's ansatz flow.

    W = xI + yJ on a plane (J the 90° rotation; eigenvalues z, z̄ = x ± iy), u, v in the plane:
    v W^k u = Re(c z^k) with c = (v₁ − iv₂)(u₁ + iu₂) = g e^{iφ}. The closed form has its minimum
    at z = γe^{iω}, c = 1; the ansatz flow is ẋ = −½∂ₓℓ, ẏ = −½∂ᵧℓ, u̇ = −∇ᵤℓ, v̇ = −∇ᵥℓ (the ½:
    |∂W/∂x|² = 2). This is as far as it closes: the full gradient on the plane also has a symmetric
    traceless part, which the ansatz drops — and with it the path actually taken from small init,
    through two real eigenvalues that collide into the pair, which :func:`derive_plane` follows.
    """
    z, zb, c, cb, p, pb = sp.symbols("z zbar c cbar p pbar")
    rho, theta, g, phi, gamma, omega = sp.symbols("rho theta g phi gamma omega", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    k = sp.Symbol("k", integer=True, nonnegative=True)
    # conjugates enter as independent symbols, so that every term is one geometric series
    resp, target = (c * z**k + cb * zb**k) / 2, (p**k + pb**k) / 2
    generic = sigma**2 / 2 * _sum_geometric((resp - target) ** 2, k)
    pole = {p: gamma * sp.exp(sp.I * omega), pb: gamma * sp.exp(-sp.I * omega)}
    loss = generic.subs({z: rho * sp.exp(sp.I * theta), zb: rho * sp.exp(-sp.I * theta),
                         c: g * sp.exp(sp.I * phi), cb: g * sp.exp(-sp.I * phi), **pole})
    x, y, u1, u2, v1, v2 = vars_ = sp.symbols("x y u1 u2 v1 v2", real=True)
    ansatz = generic.subs({z: x + sp.I * y, zb: x - sp.I * y,
                           c: (v1 - sp.I * v2) * (u1 + sp.I * u2), cb: (v1 + sp.I * v2) * (u1 - sp.I * u2),
                           **pole})
    metric = (sp.Rational(1, 2), sp.Rational(1, 2), 1, 1, 1, 1)  # |∂W/∂x|² = |∂W/∂y|² = 2
    flow = tuple(-m * sp.diff(ansatz, s) for m, s in zip(metric, vars_))
    return PairTheory(rho, theta, g, phi, gamma, omega, sigma, loss, vars_, ansatz, flow)


# ---------------------------------------------------------------------------------------------
# the plane of u and v: exact for W0 = 0, two modes (real pair or conjugate pair)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlaneTheory:
    """Loss and flow of a network living in a plane: W = QAQᵀ, u = Qa, v = Qb (Q (N, 2) orthonormal)."""

    variables: tuple[sp.Symbol, ...]  # (A11, A12, A21, A22, a1, a2, b1, b2)
    invariants: tuple[sp.Symbol, ...]  # (s, d, m0, m1) = (tr A, det A, bᵀa, bᵀAa)
    gamma: sp.Symbol
    omega: sp.Symbol
    sigma: sp.Symbol
    loss_invariants: sp.Expr          # L(s, d, m0, m1)
    loss: sp.Expr                     # ℓ(A, a, b)
    flow: tuple[sp.Expr, ...]         # −∇ℓ


def _two_mode_sums(s, d, m0, m1, z):
    """Σ a_k² and Σ a_k z^k of the kernel a_{k+2} = s a_{k+1} − d a_k (Cayley–Hamilton), a_0 = m0, a_1 = m1."""
    S0, S1, G = sp.symbols("S0 S1 G")
    # shift the sums by one and two lags and use the recurrence: two linear equations for S0, S1
    energy = sp.solve([sp.Eq(S0 - m0**2 - m1**2, s**2 * (S0 - m0**2) - 2 * s * d * S1 + d**2 * S0),
                       sp.Eq(S1 - m0 * m1, s * (S0 - m0**2) - d * S1)], [S0, S1], dict=True)[0][S0]
    generating = sp.solve(sp.Eq(G - m0 - m1 * z, s * z * (G - m0) - d * z**2 * G), G)[0]
    return sp.factor(energy), sp.factor(generating)


@functools.lru_cache(maxsize=None)
def derive_plane() -> PlaneTheory:
    """Eq. (1) for a network in the plane of u and v, where gradient descent from W₀ = 0 stays.

    From W₀ = 0 every gradient is a sum of products of the vectors W^j u and (Wᵀ)^j v, which stay
    in span{u₀, v₀}; so the 8 coordinates (A, a, b) of W, u, v in an orthonormal basis of that plane
    follow gradient descent on ℓ(A, a, b) exactly, at the same rate. The kernel v W^k u = bᵀA^k a
    obeys a_{k+2} = (tr A) a_{k+1} − (det A) a_k, so ℓ depends on four invariants only; the sums of
    eq. (1) follow from that recurrence by solving linear equations (:func:`_two_mode_sums`). The
    target κ_k = Re p^k, p = γe^{iω}, is such a kernel too (s = 2γ cos ω, d = γ², 1, γ cos ω).
    """
    A11, A12, A21, A22, a1, a2, b1, b2 = vars_ = sp.symbols("A11 A12 A21 A22 a1 a2 b1 b2", real=True)
    s, d, m0, m1, z = sp.symbols("s d m0 m1 z")
    gamma, omega = sp.symbols("gamma omega", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    energy, generating = _two_mode_sums(s, d, m0, m1, z)
    target = {s: 2 * gamma * sp.cos(omega), d: gamma**2, m0: 1, m1: gamma * sp.cos(omega)}
    cross = (generating.subs(z, gamma * sp.exp(sp.I * omega)) + generating.subs(z, gamma * sp.exp(-sp.I * omega))) / 2
    loss_inv = sigma**2 / 2 * (energy - 2 * cross + energy.subs(target))
    A, a, b = sp.Matrix([[A11, A12], [A21, A22]]), sp.Matrix([a1, a2]), sp.Matrix([b1, b2])
    plane = {s: A.trace(), d: A.det(), m0: (b.T * a)[0], m1: (b.T * A * a)[0]}
    loss = loss_inv.subs(plane)
    flow = tuple(-sp.diff(loss, v) for v in vars_)
    return PlaneTheory(vars_, (s, d, m0, m1), gamma, omega, sigma, loss_inv, loss, flow)


# ---------------------------------------------------------------------------------------------
# numbers: initial conditions from weights, and the predicted trajectories
# ---------------------------------------------------------------------------------------------

@dataclass
class Trajectory:
    """A predicted learning trajectory, sampled at gradient-descent steps.

    Attributes
    ----------
    step : (n,) int array, the gradient-descent steps (flow time τ = lr · step).
    eig : (n,) complex array, the outlier eigenvalue (the upper one of a pair).
    loss : (n,) float array, L of eq. (1) (half the task's MSE).
    state : dict of (n,) arrays, the reduced variables by name.
    """

    step: np.ndarray
    eig: np.ndarray
    loss: np.ndarray
    state: dict[str, np.ndarray] = field(default_factory=dict)


def leaky_init(W: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """(λ₀, α₀, β₀) from initial weights W (N, N), u (N,), v (N,): projections on ê = u/|u|.

    Why eq. (3) applies from a small init: for a fixed unit ê the set {W = λêêᵀ, u = αê, v = βê}
    is invariant under gradient descent on (1) (there ∂L/∂W = (∂L/∂λ) êêᵀ, ∂L/∂u = β(∂L/∂g) ê,
    ∂L/∂v = α(∂L/∂g) ê, and (λ, α, β) ↦ (W, u, v) is an isometry). With the recurrent bulk (radius
    r₀) and the read-out small, v first turns towards u (its time scale 1/|u|² is the fastest),
    after which ∂L/∂W ∝ v uᵀ ∝ ûûᵀ grows one eigenvalue along ê = û. So ê = u₀/|u₀|, α₀ = |u₀|,
    β₀ = ê·v₀, λ₀ = êᵀW₀ê; nothing is fitted. Neglected: the bulk (O(r₀)) and v₀'s part orthogonal
    to u₀.
    """
    W, u, v = (np.asarray(a, dtype=float) for a in (W, u, v))
    if W.shape != (u.size, u.size) or v.size != u.size:
        raise ValueError(f"need W (N, N), u (N,), v (N,); got {W.shape}, {u.shape}, {v.shape}")
    alpha = float(np.linalg.norm(u))
    e = u / alpha
    return float(e @ W @ e), alpha, float(e @ v)


def plane_init(W: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, ...]:
    """(A11, A12, A21, A22, a1, a2, b1, b2): W, u, v in an orthonormal basis of span{u, v} (e₁ = û)."""
    W, u, v = (np.asarray(x, dtype=float) for x in (W, u, v))
    Q, _ = np.linalg.qr(np.stack([u, v], 1))                       # (N, 2)
    return (*(Q.T @ W @ Q).ravel(), *(Q.T @ u), *(Q.T @ v))


def pair_init(W: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[float, ...]:
    """(x, y, u1, u2, v1, v2) on the plane of u and v (e₁ = û): conformal part of W there."""
    W, u, v = (np.asarray(a, dtype=float) for a in (W, u, v))
    Q, _ = np.linalg.qr(np.stack([u, v], 1))                       # (N, 2)
    M = Q.T @ W @ Q                                                # (2, 2)
    (u1, u2), (v1, v2) = Q.T @ u, Q.T @ v
    return (M[0, 0] + M[1, 1]) / 2, (M[1, 0] - M[0, 1]) / 2, u1, u2, v1, v2


@functools.lru_cache(maxsize=None)
def _leaky_numeric(finite: bool = False) -> tuple[Callable, Callable]:
    """(flow(λ, α, β, γ, σ[, T]) -> [λ̇, α̇, β̇], loss(λ, g, γ, σ[, T])), lambdified once."""
    th = derive_leaky(finite)
    extra = (th.T,) if finite else ()
    return (sp.lambdify((th.lam, th.alpha, th.beta, th.gamma, th.sigma, *extra), th.flow, "numpy"),
            sp.lambdify((th.lam, th.g, th.gamma, th.sigma, *extra), th.loss, "numpy"))


@functools.lru_cache(maxsize=None)
def _pair_numeric() -> tuple[Callable, Callable]:
    """(flow(x, y, u1, u2, v1, v2, γ, ω, σ) -> 6 rates, loss(same)), lambdified once (complex-typed)."""
    th = derive_oscillator()
    args = (*th.variables, th.gamma, th.omega, th.sigma)
    return sp.lambdify(args, th.flow, "numpy"), sp.lambdify(args, th.ansatz_loss, "numpy")


@functools.lru_cache(maxsize=None)
def _plane_numeric() -> tuple[Callable, Callable]:
    """(flow(A11..b2, γ, ω, σ) -> 8 rates, loss(same)), lambdified once (complex-typed)."""
    th = derive_plane()
    args = (*th.variables, th.gamma, th.omega, th.sigma)
    return sp.lambdify(args, th.flow, "numpy"), sp.lambdify(args, th.loss, "numpy")


def _nudge(lam):
    """λ moved off 0 by 1e-12: sympy writes the finite-T sums with terms like λ^(2T)/λ, analytic at 0 yet 0/0."""
    lam = np.asarray(lam, dtype=float)
    return np.where(np.abs(lam) < 1e-12, 1e-12, lam)


def _integrate(rhs: Callable[[np.ndarray], np.ndarray], x0: Sequence[float], lr: float,
               steps: Sequence[int], method: Method) -> np.ndarray:
    """Reduced state at each of ``steps``: gradient flow in τ = lr·step, or gradient descent."""
    steps = np.asarray(steps, dtype=int)                           # (n,)
    if method == "flow":
        sol = solve_ivp(lambda t, x: rhs(x), (0.0, lr * steps.max()), np.asarray(x0, float),
                        t_eval=lr * steps, method="LSODA", rtol=1e-9, atol=1e-11)
        if not sol.success:
            raise RuntimeError(f"reduced flow failed: {sol.message}")
        return sol.y.T                                             # (n, d)
    if method != "gd":
        raise ValueError(f"unknown method {method!r}; valid choices: flow, gd")
    x, out, want = np.asarray(x0, float), [], set(steps.tolist())
    for n in range(int(steps.max()) + 1):
        if n in want:
            out.append(x.copy())
        x = x + lr * rhs(x)
    return np.stack(out)[np.searchsorted(sorted(want), steps)]    # (n, d)


def _check(lr: float, steps: Sequence[int], gamma: float) -> None:
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr!r}")
    if len(steps) == 0 or min(steps) < 0:
        raise ValueError(f"steps must be non-negative integers; got {steps!r}")
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must lie in (0, 1) for a finite loss; got {gamma!r}")


def predict_leaky(init: Sequence[float], gamma: float, lr: float, steps: Sequence[int],
                  sigma: float = 1.0, method: Method = "flow", length: int | None = None) -> Trajectory:
    """The outlier λ and loss L over training, from eq. (3).

    Parameters
    ----------
    init : (λ₀, α₀, β₀), e.g. from :func:`leaky_init`.
    gamma, sigma : the task's decay and input noise std.
    lr : learning rate of gradient descent on L (on the task's MSE, use twice its rate).
    steps : the steps to report.
    method : "flow" integrates the gradient flow in τ = lr·step; "gd" iterates the discrete map.
    length : None for the stationary loss (2); T for the finite-horizon loss of length-T sequences.
    """
    _check(lr, steps, gamma)
    if length is not None and (not isinstance(length, (int, np.integer)) or length < 1):
        raise ValueError(f"length must be a positive integer or None; got {length!r}")
    flow, loss = _leaky_numeric(length is not None)
    extra = () if length is None else (int(length),)

    def rhs(x: np.ndarray) -> np.ndarray:
        return np.array(flow(_nudge(x[0]), x[1], x[2], gamma, sigma, *extra))

    X = _integrate(rhs, init, lr, steps, method)                  # (n, 3)
    lam, alpha, beta = X.T
    return Trajectory(np.asarray(steps), lam.astype(complex), loss(_nudge(lam), alpha * beta, gamma, sigma, *extra),
                      {"lambda": lam, "alpha": alpha, "beta": beta, "g": alpha * beta})


def predict_pair(init: Sequence[float], gamma: float, omega: float, lr: float, steps: Sequence[int],
                 sigma: float = 1.0, method: Method = "flow") -> Trajectory:
    """The conjugate pair z = x + iy and loss over training, from the pair ansatz flow.

    ``init`` is (x, y, u1, u2, v1, v2), e.g. from :func:`pair_init`; the rest as :func:`predict_leaky`.
    """
    _check(lr, steps, gamma)
    flow, loss = _pair_numeric()
    rhs = lambda x: np.real(np.array(flow(*x, gamma, omega, sigma), dtype=complex))  # noqa: E731
    X = _integrate(rhs, init, lr, steps, method)                  # (n, 6)
    eig = X[:, 0] + 1j * np.abs(X[:, 1])
    names = [str(s) for s in derive_oscillator().variables]
    return Trajectory(np.asarray(steps), eig, np.real(loss(*X.T, gamma, omega, sigma)),
                      dict(zip(names, X.T)))


def predict_plane(init: Sequence[float], gamma: float, lr: float, steps: Sequence[int], omega: float = 0.0,
                  sigma: float = 1.0, method: Method = "flow") -> Trajectory:
    """The two eigenvalues of A and the loss over training, from the exact plane reduction.

    ``init`` is (A11, A12, A21, A22, a1, a2, b1, b2), e.g. from :func:`plane_init`; ``eig`` is the
    eigenvalue of larger modulus (the upper one of a pair), ``state["second"]`` the other.
    """
    _check(lr, steps, gamma)
    flow, loss = _plane_numeric()
    rhs = lambda x: np.real(np.array(flow(*x, gamma, omega, sigma), dtype=complex))  # noqa: E731
    X = _integrate(rhs, init, lr, steps, method)                  # (n, 8)
    mu = np.linalg.eigvals(X[:, :4].reshape(-1, 2, 2))            # (n, 2)
    mu = np.take_along_axis(mu, np.argsort(-np.abs(mu) - 1e-9 * mu.imag, 1), 1)  # larger first, upper first
    names = [str(v) for v in derive_plane().variables]
    return Trajectory(np.asarray(steps), mu[:, 0], np.real(loss(*X.T, gamma, omega, sigma)),
                      {**dict(zip(names, X.T)), "second": mu[:, 1]})


def leaky_loss(lam, g, gamma: float, sigma: float = 1.0, length: int | None = None):
    """Eq. (2) (or its finite-T version), lambdified: L(λ, g) for arrays λ, g."""
    extra = () if length is None else (int(length),)
    return _leaky_numeric(length is not None)[1](_nudge(lam), g, gamma, sigma, *extra)


__all__ = ["LeakyTheory", "PairTheory", "PlaneTheory", "Trajectory", "derive_leaky", "derive_oscillator",
           "derive_plane", "leaky_init", "leaky_loss", "pair_init", "plane_init", "predict_leaky", "predict_pair",
           "predict_plane"]
