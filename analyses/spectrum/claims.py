"""Claims of Bordelon, Cotler, Pehlevan & Zavatone-Veth (arXiv 2503.18754) on learning to integrate.

    integration.outlier_eigenvalue   one eigenvalue leaves the bulk and ends at gamma
    integration.theory_match         the sympy-derived reduced flow predicts its trajectory

Both train a ``linear`` RNN (one-hot input, so u = U) by plain gradient descent on the exact
expected loss (:mod:`analyses.spectrum.training`):
full batch, no momentum, clipping or Adam, at a learning rate fixed in advance, so that step n
is time τ = lr·n of the theory's gradient flow. Small init means a small recurrent bulk
(``init_scale``) *and* a small read-out (``readout_scale`` times the model's default, bias 0): the
read-out's part orthogonal to u would otherwise seed a second learned mode in the plane of u and
v — reported under ``default_readout``. Report-only items sit in ``measured["details"]``.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch
from scipy.optimize import minimize

import probe
import tasks
from analyses.base import renamed
from analyses.spectrum import theory
from analyses.spectrum import training as it
from analyses.spectrum.analysis import SpectrumResult, bulk_and_outliers, complex_lists
from probe.claims import Claim, claim, outcome
from probe.settings import Settings, profiles, setting, settings_for

SOURCE = "Bordelon, Cotler, Pehlevan & Zavatone-Veth 2025 (arXiv 2503.18754)"
EDGE = 1.5  # an eigenvalue is outside the bulk beyond EDGE x its radius (Ginibre N=64: max/r < 1.3)


@dataclass(frozen=True)
class IntegrationSettings(Settings):
    """One profile of the experiments."""

    hidden: int = setting(64, ge=1)
    gamma: float = setting(0.9, gt=0, lt=1)
    init_scale: float = setting(0.02, gt=0, doc="bulk radius of W at init (the circular law)")
    readout_scale: float = setting(0.01, gt=0, doc="read-out init, times the model's default")
    # lr = lr_factor (1 − γ²) / (σ² N): below the stiffest curvature, |u|²/(1 − γ²)
    lr_factor: float = setting(0.5, gt=0)
    steps: int = setting(1500, ge=1)
    seeds: tuple[int, ...] = (0,)
    frequency: float = setting(0.3, gt=0, doc="oscillator target")
    oscillator_steps: int = setting(2500, ge=1)
    oscillator_lr_factor: float = setting(1.0, gt=0)
    lazy_scale: float = setting(0.9, gt=0, doc="large init of the lazy report")
    lazy_lr_factor: float = setting(0.1, gt=0)
    sampled_batch: int = setting(64, ge=1)


SETTINGS = profiles(
    quick=IntegrationSettings(),
    # more seeds and steps; a wider network with a smaller init is reported (``wide``), not a pass
    # rule: there a bulk eigenvalue drifts just past the tiny bulk's edge (see NOTES.md)
    full=IntegrationSettings(steps=2000, seeds=(0, 1, 2, 3), oscillator_steps=3000),
)

DEMO = IntegrationSettings(hidden=32, steps=800, oscillator_steps=1500)  # the quick figure and notebook: seconds


def settings(profile: str) -> IntegrationSettings:
    """The settings of ``profile`` ("quick" or "full")."""
    return settings_for(SETTINGS, profile)


__getattr__ = renamed(globals(), {"Setup": "IntegrationSettings", "PROFILES": "SETTINGS", "setup": "settings"})


def build(task, hidden: int, init_scale: float, readout_scale: float, seed: int):
    """A linear RNN with one-hot input, its read-out scaled by ``readout_scale`` and bias 0."""
    model = probe.models.make("linear", task, hidden=hidden, init_scale=init_scale, embedding="onehot", seed=seed)
    with torch.no_grad():
        model.readout.W_U.mul_(readout_scale)
        model.readout.b_U.zero_()
    return model


def _record(steps: int, n: int = 100) -> list[int]:
    """Log-spaced and evenly spaced steps, so early and late training are both sampled."""
    return sorted(set(np.geomspace(1, steps, n // 2).round().astype(int)) | set(np.linspace(0, steps, n // 2).astype(int)))


@dataclass
class Experiment:
    """Measured and predicted training of one network (arrays over the recorded steps)."""

    history: it.History
    task_params: dict
    outlier: np.ndarray        # (n,) leading eigenvalue of W
    second: np.ndarray         # (n,) modulus of the next one
    outside: np.ndarray        # (n,) eigenvalues beyond EDGE x init_scale
    bulk_radius: np.ndarray    # (n,) measured bulk radius (outliers excluded)
    init_scale: float
    prediction: theory.Trajectory | None = None


def measure(history: it.History, task_params: dict, init_scale: float) -> Experiment:
    ev = history.eigvals                                          # (n, N)
    order = np.argsort(-np.abs(ev), 1)
    ev = np.take_along_axis(ev, order, 1)
    radius = np.array([bulk_and_outliers(e, EDGE)[0] for e in ev])
    return Experiment(history, task_params, ev[:, 0], np.abs(ev[:, 1]),
                      (np.abs(ev) > EDGE * init_scale).sum(1), radius, init_scale)


def lr_of(s: IntegrationSettings, gamma: float, factor: float, noise_std: float = 1.0) -> float:
    return factor * (1 - gamma**2) / (noise_std**2 * s.hidden)


# The store a claim is checked against: trained histories are kept under <store>/.cache/spectrum/
# (a dot folder, so `probe runs` skips it), keyed by the initial weights and everything train()
# is given, so a second `probe verify` loads them instead of training again.
_STORE: contextvars.ContextVar[str | None] = contextvars.ContextVar("spectrum_store", default=None)
_ARRAYS = ("steps", "W", "u", "v", "loss")


@contextlib.contextmanager
def stored_in(store: str | None):
    """Inside the block, :func:`_train` loads and saves histories in ``store`` (None: memory only)."""
    token = _STORE.set(None if store is None else str(store))
    try:
        yield
    finally:
        _STORE.reset(token)


def _train(model, task, steps: int, lr: float, record, mode: it.Mode = "exact", batch_size: int = 64,
           seed: int = 0) -> it.History:
    """:func:`analyses.spectrum.training.train`, or its stored result for the same inputs."""
    from probe import _io
    from probe.runs import store_dir

    store = _STORE.get()
    if store is None:
        return it.train(model, task, steps, lr, record, mode=mode, batch_size=batch_size, seed=seed)
    digest = hashlib.sha256(json.dumps([task.name, task.params, int(steps), float(lr), [int(r) for r in record], mode,
                                        int(batch_size), int(seed)],
                                       sort_keys=True).encode())
    for name, p in sorted(model.state_dict().items()):
        digest.update(name.encode() + p.detach().cpu().contiguous().numpy().tobytes())
    path = store_dir(store) / ".cache" / "spectrum" / f"{digest.hexdigest()[:24]}.safetensors"
    if path.is_file():
        try:
            tensors, meta = _io.load_tensors(path)
            return it.History(*(tensors[k].numpy() for k in _ARRAYS), lr=float(meta["lr"]), mode=meta["mode"])
        except (ValueError, KeyError):
            pass  # damaged: train again and overwrite it
    h = it.train(model, task, steps, lr, record, mode=mode, batch_size=batch_size, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    _io.save_tensors(path, {k: torch.from_numpy(np.ascontiguousarray(getattr(h, k))) for k in _ARRAYS},
                     {"lr": repr(h.lr), "mode": h.mode})
    return h


@functools.lru_cache(maxsize=8)  # both claims (and the figure) use the same runs
def leaky_run(s: IntegrationSettings, seed: int, mode: it.Mode = "exact", readout_scale: float | None = None,
              init_scale: float | None = None, lr_factor: float | None = None) -> Experiment:
    """Train on the leaky target and predict it from the initial weights (flow; finite-T if sampled)."""
    task = tasks.make("integration", gamma=s.gamma)
    scale = s.init_scale if init_scale is None else init_scale
    model = build(task, s.hidden, scale, s.readout_scale if readout_scale is None else readout_scale, seed)
    lr = lr_of(s, s.gamma, s.lr_factor if lr_factor is None else lr_factor)
    lr = lr if mode == "exact" else lr / 2  # SGD on the MSE = 2L at lr/2 is GD on L at lr
    h = _train(model, task, s.steps, lr, _record(s.steps), mode=mode, batch_size=s.sampled_batch, seed=seed)
    exp = measure(h, task.params, scale)
    init = theory.leaky_init(h.W[0], h.u[0], h.v[0])
    exp.prediction = theory.predict_leaky(init, s.gamma, h.lr, h.steps,
                                          length=task.params["length"] if mode == "sampled" else None)
    return exp


def deviation(exp: Experiment) -> float:
    return float(np.abs(exp.outlier - exp.prediction.eig).max())


def _cx(z) -> list[float]:
    return [round(float(np.real(z)), 4), round(float(np.imag(z)), 4)]


# ---------------------------------------------------------------------------------------------
# report-only experiments
# ---------------------------------------------------------------------------------------------

def _one_pole_optimum(gamma: float, omega: float) -> float:
    """λ of the best single real mode g λ^k for the damped-cosine target (pair loss at θ = φ = 0)."""
    th = theory.derive_oscillator()
    f = sp.lambdify((th.rho, th.g, th.gamma, th.omega), th.loss.subs({th.theta: 0, th.phi: 0, th.sigma: 1}), "numpy")
    res = minimize(lambda p: float(np.real(f(p[0], p[1], gamma, omega))), x0=[0.5, 0.5],
                   bounds=[(-0.99, 0.99), (-10, 10)])
    return float(res.x[0])


def _plane(exp: Experiment, omega: float = 0.0) -> theory.Trajectory:
    h = exp.history
    return theory.predict_plane(theory.plane_init(h.W[0], h.u[0], h.v[0]), exp.task_params["gamma"], h.lr,
                                h.steps, omega=omega)


@functools.lru_cache(maxsize=2)
def oscillator_run(s: IntegrationSettings, seed: int) -> Experiment:
    """Train on the damped-oscillator target; ``prediction`` is the plane reduction's."""
    task = tasks.make("integration", kind="oscillator", gamma=s.gamma, frequency=s.frequency)
    model = build(task, s.hidden, s.init_scale, s.readout_scale, seed)
    h = _train(model, task, s.oscillator_steps, lr_of(s, s.gamma, s.oscillator_lr_factor), _record(s.oscillator_steps))
    exp = measure(h, task.params, s.init_scale)
    exp.outlier = np.array([max(e, key=lambda z: (abs(z), z.imag)) for e in h.eigvals])  # the upper one of a pair
    exp.prediction = _plane(exp, s.frequency)
    return exp


def oscillator_report(s: IntegrationSettings, seed: int) -> dict:
    """Damped-oscillator target: the measured pair against the plane reduction and the pair ansatz."""
    exp = oscillator_run(s, seed)
    h, plane, lr = exp.history, exp.prediction, exp.history.lr
    ev = np.take_along_axis(h.eigvals, np.argsort(-np.abs(h.eigvals) - 1e-9 * h.eigvals.imag, 1), 1)  # upper first
    target = s.gamma * np.exp(1j * s.frequency)
    ansatz = theory.predict_pair(theory.pair_init(h.W[0], h.u[0], h.v[0]), s.gamma, s.frequency, h.lr, h.steps)
    paired = lambda z: (np.abs(z.imag) > 1e-9) & (np.abs(z) > EDGE * s.init_scale)  # noqa: E731
    first = lambda mask: int(h.steps[np.argmax(mask)]) if mask.any() else None  # noqa: E731
    real_phase = ~paired(ev[:, 0])
    return {"target_pair": _cx(target), "final_pair": [_cx(z) for z in ev[-1, :2]],
            "pair_distance": round(float(np.abs(ev[-1, :2] - np.array([target, target.conj()])).max()), 4),
            "outside_bulk_final": int(exp.outside[-1]), "final_loss": float(h.loss[-1]),
            "pair_forms_at_step": first(paired(ev[:, 0])), "plane_pair_forms_at_step": first(paired(plane.eig)),
            "plane_reduction_max_deviation": round(float(np.abs(ev[:, 0] - plane.eig).max()), 4),
            "first_plateau_real_outlier": round(float(ev[real_phase, 0].real.max()), 4) if real_phase.any() else None,
            "one_pole_optimum": round(_one_pole_optimum(s.gamma, s.frequency), 4),
            "pair_ansatz_max_deviation": round(float(np.abs(ev[:, 0] - ansatz.eig).max()), 4),
            "steps": s.oscillator_steps, "lr": lr}


def lazy_report(s: IntegrationSettings, seed: int) -> dict:
    """Large recurrent init: the weights barely move and no eigenvalue leaves the bulk."""
    exp = leaky_run(s, seed, init_scale=s.lazy_scale, lr_factor=s.lazy_lr_factor)
    rich = leaky_run(s, seed)
    change = lambda e: float(np.linalg.norm(e.history.W[-1] - e.history.W[0]) / np.linalg.norm(e.history.W[0]))  # noqa: E731
    W0 = np.linalg.eigvals(exp.history.W[0])
    return {"init_scale": s.lazy_scale, "outliers_final": int(bulk_and_outliers(np.linalg.eigvals(exp.history.W[-1]), EDGE)[1].sum()),
            "relative_weight_change": round(change(exp), 4), "rich_relative_weight_change": round(change(rich), 2),
            "closest_to_gamma": _cx(min(np.linalg.eigvals(exp.history.W[-1]), key=lambda z: abs(z - s.gamma))),
            "initial_spectral_radius": round(float(np.abs(W0).max()), 4),
            "final_loss": float(exp.history.loss[-1])}


def wide_report(s: IntegrationSettings, seed: int) -> dict:
    """N = 128 with a smaller init (bulk 0.005, read-out 0.003): theory deviation and the bulk's edge."""
    wide = IntegrationSettings(hidden=128, init_scale=0.005, readout_scale=0.003, steps=s.steps, seeds=(seed,))
    exp = leaky_run(wide, seed)
    return {"hidden": wide.hidden, "init_scale": wide.init_scale, "readout_scale": wide.readout_scale,
            "outlier": _cx(exp.outlier[-1]), "theory_max_deviation": round(deviation(exp), 4),
            "outside_bulk_final": int(exp.outside[-1]), "second_abs": round(float(exp.second[-1]), 4)}


def default_readout_report(s: IntegrationSettings, seed: int) -> dict:
    """The model's default read-out init: a second eigenvalue leaves the bulk in the plane of u and v."""
    exp = leaky_run(s, seed, readout_scale=1.0)
    plane = _plane(exp)
    return {"outside_bulk_final": int(exp.outside[-1]), "leading": _cx(exp.outlier[-1]),
            "second_abs": round(float(exp.second[-1]), 4), "one_outlier_theory_max_deviation": round(deviation(exp), 4),
            "plane_reduction_max_deviation": round(float(np.abs(exp.outlier - plane.eig).max()), 4),
            "plane_second_abs": round(float(np.abs(plane.state["second"][-1])), 4)}


# ---------------------------------------------------------------------------------------------
# the claims
# ---------------------------------------------------------------------------------------------

@claim("integration.outlier_eigenvalue", source=f"{SOURCE}, Fig. 2",
       quick_s=18, full_s=300, measured=("quick",),  # CPU s, one process, empty store; full: estimate
       statement="A linear RNN (hidden >= 32, small init) trained on white-noise integration with decay gamma "
                 "develops exactly one eigenvalue outside the bulk, ending within 0.02 of gamma; the rest stay in the bulk")
def outlier_eigenvalue(profile: str = "quick", store: str = "runs") -> Claim:
    with stored_in(store):
        return _outlier_eigenvalue(profile)


def _outlier_eigenvalue(profile: str) -> Claim:
    s = settings(profile)
    runs = [leaky_run(s, seed) for seed in s.seeds]
    final = [complex(e.outlier[-1]) for e in runs]
    dist = max(abs(z - s.gamma) for z in final)
    outside_final = [int(e.outside[-1]) for e in runs]
    outside_max = max(int(e.outside.max()) for e in runs)
    passed = all(n == 1 for n in outside_final) and outside_max <= 1 and dist <= 0.02
    details = {"oscillator": oscillator_report(s, s.seeds[0]), "lazy": lazy_report(s, s.seeds[0]),
               "default_readout": default_readout_report(s, s.seeds[0]),
               **({"wide": wide_report(s, s.seeds[0])} if profile == "full" else {}),
               "setup": {"hidden": s.hidden, "gamma": s.gamma, "init_scale": s.init_scale,
                         "readout_scale": s.readout_scale, "steps": s.steps, "seeds": list(s.seeds),
                         "lr": lr_of(s, s.gamma, s.lr_factor), "training": "full-batch GD on the exact expected loss"},
               "second_eigenvalue_abs_final": [round(float(e.second[-1]), 4) for e in runs],
               "bulk_radius_final": [round(float(e.bulk_radius[-1]), 4) for e in runs]}
    measured = {"outlier": [_cx(z) for z in final], "max_distance_to_gamma": round(dist, 4),
                "outside_bulk_final": outside_final, "outside_bulk_max_during": outside_max, "details": details}
    expected = {"outside_bulk": f"exactly 1 at the end, never more (bulk edge {EDGE} x init radius)",
                "distance_to_gamma": "<= 0.02"}
    return outcome(measured, expected, passed)


@claim("integration.theory_match", source=f"{SOURCE}, Fig. 2 (reduced dynamics)",
       quick_s=13, full_s=600, measured=("quick",),  # CPU s, one process, empty store; full: estimate
       statement="From small init, the reduced low-dimensional dynamics of the outlier eigenvalue (derived with sympy) "
                 "track the measured one over training: max absolute deviation <= 0.05, time aligned by the learning rate, "
                 "no fitted parameters")
def theory_match(profile: str = "quick", store: str = "runs") -> Claim:
    with stored_in(store):
        return _theory_match(profile)


def _theory_match(profile: str) -> Claim:
    s = settings(profile)
    runs = [leaky_run(s, seed) for seed in s.seeds]
    devs = [deviation(e) for e in runs]
    sampled = leaky_run(s, s.seeds[0], mode="sampled")
    stationary = theory.predict_leaky(theory.leaky_init(*(a[0] for a in (sampled.history.W, sampled.history.u,
                                                                          sampled.history.v))),
                                      s.gamma, sampled.history.lr, sampled.history.steps)
    gd = [float(np.abs(e.outlier - theory.predict_leaky(theory.leaky_init(e.history.W[0], e.history.u[0], e.history.v[0]),
                                                         s.gamma, e.history.lr, e.history.steps, method="gd").eig).max())
          for e in runs]
    loss_dev = [float(np.abs(e.history.loss - e.prediction.loss).max()) for e in runs]
    plane = [float(np.abs(e.outlier - _plane(e).eig).max()) for e in runs]
    # where the measured leading eigenvalue is still a bulk one, |λ| ≈ r₀ bounds the deviation
    emerged = [float(np.abs(e.outlier - e.prediction.eig)[np.abs(e.outlier) > EDGE * e.init_scale].max()) for e in runs]
    details = {"training": "full-batch gradient descent on the exact expected loss, lr fixed; prediction: gradient flow "
                           "of the 3-variable reduced system (lambda, alpha, beta) in tau = lr * step, initial values "
                           "projected from the initial weights",
               "lr": runs[0].history.lr, "steps": s.steps, "seeds": list(s.seeds),
               "max_deviation_vs_discrete_reduced_map": [round(d, 4) for d in gd],
               "max_loss_deviation": [round(d, 4) for d in loss_dev],
               "max_deviation_plane_reduction": [round(d, 4) for d in plane],
               "max_deviation_once_outside_bulk": [round(d, 4) for d in emerged],
               "sampled_sgd": {"batch_size": s.sampled_batch, "length": sampled.task_params["length"],
                               "lr_on_mse": sampled.history.lr / 2,
                               "max_deviation_finite_T_theory": round(deviation(sampled), 4),
                               "max_deviation_stationary_theory": round(float(np.abs(sampled.outlier - stationary.eig).max()), 4),
                               "final_outlier": _cx(sampled.outlier[-1])}}
    measured = {"max_deviation": round(max(devs), 4), "per_seed": [round(d, 4) for d in devs], "details": details}
    return outcome(measured, "<= 0.05", max(devs) <= 0.05)


def spectrum_result(exp: Experiment, every: int = 4):
    """The experiment as a SpectrumResult (every ``every``-th recorded step), its prediction attached."""
    h, idx = exp.history, list(range(0, len(exp.history.steps), every))
    idx = idx if idx[-1] == len(h.steps) - 1 else idx + [len(h.steps) - 1]
    eig, out, radius = [], [], []
    for i in idx:
        mu = np.linalg.eigvals(h.W[i])
        r, mask = bulk_and_outliers(mu, EDGE)
        eig.append(complex_lists(mu)); out.append(complex_lists(mu[mask])); radius.append(r)
    p = exp.prediction
    return SpectrumResult(summary={"outlier": _cx(exp.outlier[-1]), "max_deviation": deviation(exp)},
                          steps=[int(h.steps[i]) for i in idx], arch="linear", kind="W", eigvals=[eig],
                          bulk_radius=[radius], outliers=[out], init_radius=exp.init_scale,
                          loss=[float(h.loss[i]) for i in idx],
                          prediction={"steps": p.step.tolist(), "eig": complex_lists(p.eig), "loss": p.loss.tolist()})


__all__ = ["DEMO", "SETTINGS", "Experiment", "IntegrationSettings", "leaky_run", "oscillator_run", "outlier_eigenvalue", "spectrum_result",
           "theory_match"]
