"""Spectrum of each layer's recurrent map over training: bulk, outliers, fixed and slow points.

    result = analyses.analyze("spectrum", run)            # every checkpoint of member 0
    result = analyses.spectrum.analyze(model, task)       # one model
    result.summary, result.figures()                      # spectrum (slider), outliers, fixed_points

The effective recurrent map of a layer is W for ``linear`` and ``elman``, the diagonal for ``lru``
(λ = exp(−e^ν + i e^θ)) and ``hawk`` (the decay a_t, averaged over sampled trajectories), and for
``gru`` / ``lstm`` the Jacobian ∂s_t/∂s_{t−1} at ``n_points`` states along a sampled trajectory
(s = (h, c) for the LSTM). Its eigenvalues split into a bulk — radius r = √(2·mean|μ|²), the
circular law's radius for a disk, estimated without the outliers — and outliers, |μ| > ``edge``·r.
Next to r stands the circular-law radius of the initial W (``init_scale`` of linear, ``gain`` of
elman). At the last checkpoint, layer 0's fixed points under a constant null input (zero vector,
or token ``token``): solved exactly for the linear recurrences (linear, lru, hawk), found by the
Sussillo–Barak search from states on trajectories for the nonlinear ones, each classified by its
Jacobian spectrum. The integration-theory claims live in :mod:`analyses.spectrum.claims`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from analyses.base import Result
from analyses.spectrum.figures import (
    fixed_point_figure,
    outlier_figure,
    spectrum_figure,
)
from analyses.spectrum.fixed_point_search import (
    FixedPoints,
    find_fixed_points,
    jacobians,
    linear_fixed_point,
)
from probe.threads import single_thread

_LINEAR = ("linear", "lru", "hawk")  # state update affine in the state: fixed point solved exactly


# ---------------------------------------------------------------------------------------------
# one step of a layer, as a map of flat real states (n, D) -> (n, D)
# ---------------------------------------------------------------------------------------------

def layer_inputs(model, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The input trajectory of every layer, (1, B, T, d_in) each (the member axis of size 1)."""
    with torch.no_grad():
        x = model.embed(inputs, False, model.readout.W_U.dtype)  # (1, B, T, E)
        xs = []
        for layer in model.layers:
            xs.append(x)
            x, _ = layer(x)                                      # (1, B, T, H)
    return xs


def step_function(model, layer: int, x: torch.Tensor):
    """F(s) = one step of layer ``layer`` under input x (d_in,) or per row (n, d_in); s (n, D) -> (n, D)."""
    mod = model.layers[layer]
    kw = {"fused": False} if "fused" in inspect.signature(mod.forward).parameters else {}
    H = mod.hidden

    def F(s: torch.Tensor) -> torch.Tensor:
        n = s.shape[0]
        xin = x.expand(n, x.shape[-1])[None, :, None]            # (1, n, 1, d_in)
        state = (s[None, :, :H], s[None, :, H:]) if model.arch == "lstm" else s[None]
        _, final = mod(xin.to(s.dtype), state, None, **kw)
        return torch.cat(final, -1)[0] if isinstance(final, tuple) else final[0]  # (n, D)

    return F


def _states(model, layer: int, inputs: torch.Tensor) -> torch.Tensor:
    """Flat states s_t (B, T, D) of a layer on ``inputs``."""
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs)
    s = cache[f"layers.{layer}.hook_h"]
    if model.arch == "lstm":
        s = torch.cat([s, cache[f"layers.{layer}.hook_c"]], -1)
    return s


# ---------------------------------------------------------------------------------------------
# spectra, bulk and outliers
# ---------------------------------------------------------------------------------------------

def layer_eigvals(model, layer: int, inputs: torch.Tensor, n_points: int = 8) -> np.ndarray:
    """Eigenvalues of layer ``layer``'s effective recurrent map (see module docstring), complex (K,)."""
    mod, arch = model.layers[layer], model.arch
    with torch.no_grad():
        if arch in ("linear", "elman"):
            return np.linalg.eigvals(mod.W.detach().double().numpy())
        if arch == "lru":
            return torch.exp(torch.complex(-torch.exp(mod.nu_log), torch.exp(mod.theta_log))).numpy()
        if arch == "hawk":
            _, cache = model.run_with_cache(inputs)
            return cache[f"layers.{layer}.hook_a"].mean((0, 1)).double().numpy().astype(complex)
    s = _states(model, layer, inputs)[0]                          # (T, D): trajectory 0
    x = layer_inputs(model, inputs)[layer][0, 0]                  # (T, d_in)
    t = np.unique(np.linspace(1, s.shape[0] - 1, n_points).round().astype(int))
    J = jacobians(step_function(model, layer, x[t]), s[t - 1])    # (n_points, D, D)
    return np.linalg.eigvals(J.double().numpy()).ravel()


def bulk_and_outliers(eigvals: np.ndarray, edge: float = 1.5, iters: int = 20) -> tuple[float, np.ndarray]:
    """Bulk radius r = √(2 mean|μ|²) over the non-outliers, and the outlier mask |μ| > edge·r. (K,) -> (K,)"""
    if edge <= 1:
        raise ValueError(f"edge must exceed 1 (outliers lie outside edge x the bulk radius); got {edge!r}")
    a = np.abs(np.asarray(eigvals))
    mask = np.zeros(a.shape, bool)
    for _ in range(iters):
        r = float(np.sqrt(2 * np.mean(a[~mask] ** 2))) if (~mask).any() else 0.0
        new = a > edge * r
        if (new == mask).all():
            break
        mask = new
    return r, mask


def init_radius(model) -> float | None:
    """Circular-law radius of the initial recurrent matrix, where the architecture has one."""
    p = model.config["arch_params"]
    return {"linear": p.get("init_scale"), "elman": p.get("gain")}.get(model.arch)


def complex_lists(z: np.ndarray) -> dict:
    """Complex numbers as JSON: ``{"re": [...], "im": [...]}``."""
    z = np.asarray(z, dtype=complex)
    return {"re": z.real.tolist(), "im": z.imag.tolist()}


# ---------------------------------------------------------------------------------------------
# fixed points of layer 0
# ---------------------------------------------------------------------------------------------

def fixed_points(model, task, n_starts: int = 64, token: int = 0, seed: int = 0,
                 iters: int = 1000) -> tuple[FixedPoints, np.ndarray]:
    """Layer 0's fixed and slow points under a constant null input, and the trajectory states (B·T, D)."""
    batch = task.sample(16, seed=seed)
    null = (torch.full((1, 1), token, dtype=torch.long) if model.input_kind == "tokens"
            else torch.zeros(1, 1, model.d_source))
    with torch.no_grad():
        x = model.embed(null, False, model.readout.W_U.dtype)[0, 0, 0]  # (d_in,)
    F = step_function(model, 0, x)
    states = _states(model, 0, batch.inputs).flatten(0, 1)       # (B*T, D)
    if model.arch in _LINEAR:
        return linear_fixed_point(lambda s: F(s.to(states.dtype)).to(s.dtype), states.shape[1]), states.numpy()
    g = np.random.default_rng(seed)
    starts = states[g.choice(states.shape[0], size=min(n_starts, states.shape[0]), replace=False)]
    return find_fixed_points(F, starts, iters=iters, noise=0.0, seed=seed), states.numpy()


def _fixed_point_data(fp: FixedPoints, states: np.ndarray) -> dict:
    from sklearn.decomposition import PCA

    k = min(2, states.shape[1], states.shape[0])
    pca = PCA(n_components=k).fit(states)
    pad = lambda a: np.pad(a, ((0, 0), (0, 2 - k)))  # noqa: E731  (a 1-D state still plots)
    sub = states[:: max(1, len(states) // 2000)]
    return {"pca": pad(pca.transform(fp.points)) if len(fp.points) else [], "kinds": fp.kinds,
            "speed": fp.speed, "fixed": fp.fixed, "max_abs_eig": np.abs(fp.eigvals).max(1) if len(fp.points) else [],
            "eigvals": [complex_lists(e) for e in fp.eigvals], "trajectory_pca": pad(pca.transform(sub)),
            "explained_variance": pca.explained_variance_ratio_}


# ---------------------------------------------------------------------------------------------
# the Result and the two entry points
# ---------------------------------------------------------------------------------------------

@dataclass
class SpectrumResult(Result):
    """Per layer and checkpoint: eigenvalues, bulk radius, outliers; fixed points at the last one.

    ``eigvals[l][c]`` / ``outliers[l][c]`` are {"re": [...], "im": [...]}, ``bulk_radius[l][c]`` a
    float; ``loss[c]`` the run's training loss at checkpoint c (None without a run);
    ``prediction`` optional {"steps", "eig": {"re", "im"}, "loss"} that the outlier figure overlays.
    """

    steps: list[int] = field(default_factory=list)
    arch: str = ""
    kind: str = ""  # "W", "diagonal" or "jacobian"
    eigvals: list[list[dict]] = field(default_factory=list)
    bulk_radius: list[list[float]] = field(default_factory=list)
    outliers: list[list[dict]] = field(default_factory=list)
    init_radius: float | None = None
    loss: list[Any] = field(default_factory=list)
    fixed_points: dict = field(default_factory=dict)
    prediction: dict = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        figs = {"spectrum": spectrum_figure(self), "outliers": outlier_figure(self)}
        if self.fixed_points:
            figs["fixed_points"] = fixed_point_figure(self)
        return figs


def _kind(arch: str) -> str:
    return {"linear": "W", "elman": "W", "lru": "diagonal", "hawk": "diagonal"}.get(arch, "jacobian")


def _measure(models: list, steps: list[int], task, losses: list, fixed: bool, n_points: int,
             edge: float, seed: int, n_starts: int) -> SpectrumResult:
    with single_thread():
        return _measure_all(models, steps, task, losses, fixed, n_points, edge, seed, n_starts)


def _measure_all(models, steps, task, losses, fixed, n_points, edge, seed, n_starts) -> SpectrumResult:
    inputs = task.sample(8, seed=seed).inputs
    L = len(models[-1].layers)
    eig, radius, out = ([[] for _ in range(L)] for _ in range(3))
    for model in models:
        for layer in range(L):
            mu = layer_eigvals(model, layer, inputs, n_points)
            r, mask = bulk_and_outliers(mu, edge)
            eig[layer].append(complex_lists(mu))
            radius[layer].append(r)
            out[layer].append(complex_lists(mu[mask]))
    last = models[-1]
    fp = _fixed_point_data(*fixed_points(last, task, n_starts=n_starts, seed=seed)) if fixed else {}
    n_out = [len(o[-1]["re"]) for o in out]
    top = max((abs(complex(a, b)) for o in out for a, b in zip(o[-1]["re"], o[-1]["im"])), default=None)
    summary = {"arch": last.arch, "map": _kind(last.arch), "checkpoints": len(models),
               "bulk_radius": radius[0][-1], "init_radius": init_radius(last),
               "outliers": sum(n_out), "largest_outlier_abs": top}
    if fp:
        for k in ("stable", "saddle", "unstable", "line attractor"):
            summary[f"fixed_points_{k.replace(' ', '_')}"] = fp["kinds"].count(k)
    return SpectrumResult(summary=summary, steps=list(steps), arch=last.arch, kind=_kind(last.arch),
                          eigvals=eig, bulk_radius=radius, outliers=out, init_radius=init_radius(last),
                          loss=losses, fixed_points=fp)


def analyze(model, task, fixed_points: bool = True, n_points: int = 8, edge: float = 1.5,
            seed: int = 0, n_starts: int = 64) -> SpectrumResult:
    """Spectrum, bulk, outliers and fixed points of one model (see the module docstring).

    Parameters
    ----------
    model : a plain model from ``probe.models.make`` (not an ensemble; use ``model.member(i)``).
    task : the task its trajectories are sampled from.
    fixed_points : also find layer 0's fixed points.   n_points : Jacobians along a trajectory (gru/lstm).
    edge : outliers lie beyond edge × the bulk radius.   seed : sampled inputs and starts.
    n_starts : starts of the fixed-point search.
    """
    if getattr(model, "is_ensemble", False):
        raise ValueError(f"spectrum needs a plain model; got an ensemble of {model.members}: use model.member(i)")
    return _measure([model], [0], task, [None], fixed_points, n_points, edge, seed, n_starts)


def analyze_run(run, member: int = 0, steps: list[int] | None = None, fixed_points: bool = True,
                n_points: int = 8, edge: float = 1.5, seed: int = 0, n_starts: int = 64) -> SpectrumResult:
    """:func:`analyze` at every checkpoint of ``run`` (or at ``steps``), with the run's loss curve."""
    available = run.checkpoint_steps
    steps = available if steps is None else list(steps)
    missing = [s for s in steps if s not in available]
    if missing or not steps:
        raise ValueError(f"run {run.id} has no checkpoint at {missing or 'any step'}; checkpoints: {available}")
    curve = dict(zip(*run.curve("train.loss", member)))
    models = [run.model(member, s) for s in steps]
    return _measure(models, steps, run.task(), [curve.get(s) for s in steps], fixed_points, n_points,
                    edge, seed, n_starts)

