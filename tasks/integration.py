"""White-noise integration (Bordelon, Cotler, Pehlevan & Zavatone-Veth, arXiv 2503.18754).

Scalar Gaussian input x_t ~ N(0, noise_std^2); the target filters it causally:

- ``kind="leaky"``:      y_t = sum_{k=0..t} gamma^k x_{t-k}                  (gamma = 1: perfect integrator)
- ``kind="oscillator"``: y_t = sum_{k=0..t} gamma^k cos(frequency k) x_{t-k}  (damped oscillator)

the discrete-time versions of the paper's filters e^{-c* tau} and its oscillatory variant, with
gamma = e^{-c*}. Both run as IIR filters (``scipy.signal.lfilter``): the leaky one is
y_t = gamma y_{t-1} + x_t, the oscillator the real part of z_t = gamma e^{i frequency} z_{t-1} + x_t.
MSE on every step.

Example (gamma=0.5, leaky)::

    inputs   1.0  0.0  2.0   -1.0
    targets  1.0  0.5  2.25   0.125
    energy   1.0  1.0  5.0    6.0
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.signal import lfilter

from tasks.base import Batch, Task, as_float, standard_normal
from tasks.params import param


@dataclass(frozen=True)
class IntegrationParams:
    kind: Literal["leaky", "oscillator"] = param("leaky", doc="target filter")
    gamma: float = param(0.95, gt=0.0, le=1.0, doc="decay per step, e^{-c*}; 1 = perfect integrator")
    frequency: float = param(0.3, ge=0.0, le=math.pi, doc="radians per step (oscillator only)")
    length: int = param(64, ge=1, le=1_000_000, doc="sequence length T")
    noise_std: float = param(1.0, gt=0.0, doc="standard deviation of the input noise")


def filter_coefficients(cfg: IntegrationParams) -> tuple[list[float], list[float]]:
    """(b, a) of the target's transfer function for ``scipy.signal.lfilter``."""
    if cfg.kind == "leaky":
        return [1.0], [1.0, -cfg.gamma]
    # Re 1 / (1 - g e^{iw} z^-1) = (1 - g cos w z^-1) / (1 - 2 g cos w z^-1 + g^2 z^-2)
    c = cfg.gamma * math.cos(cfg.frequency)
    return [1.0, -c], [1.0, -2.0 * c, cfg.gamma ** 2]


class Integration(Task):
    """White-noise integration; see the module docstring.

    Features: ``target`` (y_t, float), ``energy`` (running input energy sum_{s<=t} x_s^2, float).
    """

    name = "integration"
    Params = IntegrationParams
    input_kind = "vectors"
    loss = "mse"
    feature_names = ("target", "energy")

    def _dims(self, cfg: IntegrationParams) -> dict[str, int]:
        return {"d_input": 1, "d_output": 1}

    def splits(self) -> dict[str, dict]:
        return {"train": {}, "len_4x": {"length": 4 * self.config.length}}

    def _sample(self, cfg: IntegrationParams, n: int, rng: np.random.Generator) -> Batch:
        x = cfg.noise_std * standard_normal(rng, (n, cfg.length)).astype(np.float64)  # (B, T)
        b, a = filter_coefficients(cfg)
        y = lfilter(b, a, x, axis=1)  # (B, T)
        return Batch(
            inputs=as_float(x[..., None]),  # (B, T, 1)
            targets=as_float(y[..., None]),  # (B, T, 1)
            mask=torch.ones(n, cfg.length, dtype=torch.bool),
            features={"target": as_float(y), "energy": as_float(np.cumsum(x ** 2, axis=1))},
        )

    def _vector_label(self, row: list[float]) -> str:
        return f"{row[0]:+.2f}"
