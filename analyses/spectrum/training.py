"""Plain gradient descent on a linear RNN for the integration task, with a known learning rate.

The theory in ``analyses/theory/integration.py`` is a gradient flow on the *expected* loss, so the
claims train the measured network two ways, both without momentum, clipping or Adam (which would
change the time axis):

- ``exact``: full-batch gradient descent on the expected loss itself (no sampling noise),
  ½σ² Σ_k (v W^k u − κ_k)² + ½b² — the impulse response v W^k u computed by doubling powers of W,
  truncated where the kernels are below 1e-10;
- ``sampled``: SGD on the task's own batches and MSE, the model's outputs computed as the causal
  convolution of the input with the same impulse response (equal to ``model(inputs)``; see tests).
  Its expected gradient is that of the finite-horizon loss, times 2 (MSE = 2L).

Only the linear architecture with ``embedding="onehot"`` (x enters through u = U directly) fits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from probe.threads import single_thread

Mode = Literal["exact", "sampled"]


def linear_weights(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The parameters (W (N, N), u (N,), v (N,), b ()) of a plain one-layer linear RNN, as views."""
    cfg = getattr(model, "config", {})
    if cfg.get("arch") != "linear" or cfg.get("embedding") != "onehot" or cfg.get("layers") != 1:
        raise ValueError("the integration theory needs probe.models.make('linear', task, embedding='onehot', "
                         f"layers=1); got arch={cfg.get('arch')!r}, embedding={cfg.get('embedding')!r}, "
                         f"layers={cfg.get('layers')!r}")
    if cfg.get("members", 1) != 1 or cfg.get("d_input") != 1 or cfg.get("d_output") != 1:
        raise ValueError(f"need a plain model with scalar input and output; got members={cfg.get('members')}, "
                         f"d_input={cfg.get('d_input')}, d_output={cfg.get('d_output')}")
    layer = model.layers[0]
    return layer.W, layer.U[:, 0], model.readout.W_U[0], model.readout.b_U[0]


def horizon(gamma: float, radius: float = 0.0, tol: float = 1e-10) -> int:
    """Lags K after which both γ^k and the network's own decay (spectral radius) are below ``tol``."""
    rate = max(gamma, radius, 0.5)
    if rate >= 1:
        raise ValueError(f"the expected loss is infinite: decay {rate:.4g} >= 1")
    return math.ceil(math.log(tol) / math.log(rate))


def impulse_response(W: torch.Tensor, u: torch.Tensor, v: torch.Tensor, K: int) -> torch.Tensor:
    """a_k = v W^k u for k < K, by doubling: about 2 log2 K matrix products. -> (K,)"""
    H, P = u[:, None], W                                          # (N, 1), W^1
    while H.shape[1] < K:
        m = H.shape[1]
        H = torch.cat([H, P @ H[:, :K - m]], 1)                   # (N, min(2m, K)): W^k u for k < 2m
        if H.shape[1] < K:
            P = P @ P                                             # W^(2m)
    return v @ H                                                  # (K,)


def target_kernel(params: dict, K: int, dtype=torch.float64) -> torch.Tensor:
    """κ_k of the task's target filter (tasks/integration.py): γ^k, times cos(ωk) for the oscillator. (K,)"""
    k = torch.arange(K, dtype=dtype)
    kernel = params["gamma"] ** k
    return kernel * torch.cos(params["frequency"] * k) if params["kind"] == "oscillator" else kernel


def expected_loss(model, params: dict, K: int | None = None, length: int | None = None) -> torch.Tensor:
    """½ E(y_t − y*_t)² of a linear RNN on white noise: ½σ² Σ_k w_k (a_k − κ_k)² + ½b².

    ``length`` None gives the stationary loss (w_k = 1); T gives the task's average over t < T
    from a zero state, w_k = 1 − k/T.
    """
    W, u, v, b = linear_weights(model)
    if K is None:
        K = horizon(params["gamma"], float(torch.linalg.eigvals(W.detach()).abs().max()))
    if length is not None:
        K = length
    err = impulse_response(W, u, v, K) - target_kernel(params, K, W.dtype)     # (K,)
    w = 1 - torch.arange(K, dtype=W.dtype) / length if length is not None else 1.0
    return 0.5 * params["noise_std"] ** 2 * (w * err**2).sum() + 0.5 * b**2


def outputs(model, inputs: torch.Tensor) -> torch.Tensor:
    """The model's outputs as a causal convolution with its impulse response. (B, T, 1) -> (B, T, 1)"""
    W, u, v, b = linear_weights(model)
    T = inputs.shape[1]
    a = impulse_response(W, u, v, T)                                         # (T,)
    lag = torch.arange(T)[:, None] - torch.arange(T)[None, :]                # (T, T): t - s
    toeplitz = torch.where(lag >= 0, a[lag.clamp(min=0)], torch.zeros((), dtype=a.dtype))  # (T, T)
    return (inputs[..., 0].to(a.dtype) @ toeplitz.T + b)[..., None]         # (B, T, 1)


@dataclass
class History:
    """Weights and losses of one training run at the recorded steps.

    Attributes
    ----------
    steps : (n,) ints.   W : (n, N, N).   u, v : (n, N).
    loss : (n,) the expected loss ½E(y − y*)² that the run descends (finite-T for "sampled").
    lr : the learning rate on that loss (SGD on the MSE at rate η counts as 2η).
    """

    steps: np.ndarray
    W: np.ndarray
    u: np.ndarray
    v: np.ndarray
    loss: np.ndarray
    lr: float
    mode: str
    extra: dict = field(default_factory=dict)

    @property
    def eigvals(self) -> np.ndarray:
        """Eigenvalues of W at every recorded step, (n, N) complex."""
        return np.linalg.eigvals(self.W)


def train(model, task, steps: int, lr: float, record: Sequence[int], mode: Mode = "exact",
          batch_size: int = 64, seed: int = 0) -> History:
    """Plain gradient descent on a copy of ``model`` (float64); ``model`` itself is not changed.

    Parameters
    ----------
    model : linear RNN (see :func:`linear_weights`).   task : the integration task.
    steps : number of updates.   lr : learning rate (on L for "exact", on the task's MSE for "sampled").
    record : the steps (0..steps) at which to keep weights and the expected loss.
    mode : "exact" (gradient descent on the expected loss) or "sampled" (SGD on task batches).
    batch_size, seed : of the sampled batches (``task.sample(n, seed=(seed, step))``).
    """
    if mode not in ("exact", "sampled"):
        raise ValueError(f"unknown mode {mode!r}; valid choices: exact, sampled")
    if not lr > 0 or steps < 0:
        raise ValueError(f"need lr > 0 and steps >= 0; got lr={lr!r}, steps={steps!r}")
    params = task.params
    model = model.member(0).double() if hasattr(model, "member") else model
    W, u, v, b = linear_weights(model)
    weights = [p for p in model.parameters()]
    want, rows = sorted(set(int(s) for s in record if 0 <= s <= steps)), []
    length = params["length"] if mode == "sampled" else None
    K = horizon(params["gamma"], min(_radius(W) + 0.03, 0.999))
    with single_thread():
        for step in range(steps + 1):
            if step in want:
                # the truncation follows W's own decay, with room for the outlier to grow until the next record
                K = horizon(params["gamma"], min(_radius(W) + 0.03, 0.999))
                with torch.no_grad():  # the loss this run descends: stationary, or that of length-T batches
                    loss = float(expected_loss(model, params, K=horizon(params["gamma"], _radius(W), 1e-14),
                                               length=length))
                rows.append((W.detach().numpy().copy(), u.detach().numpy().copy(), v.detach().numpy().copy(), loss))
            if step == steps:
                break
            if mode == "exact":
                objective = expected_loss(model, params, K=K)
            else:
                batch = task.sample(batch_size, seed=seed * 1_000_003 + step)
                objective = F.mse_loss(outputs(model, batch.inputs.double()), batch.targets.double())
            grads = torch.autograd.grad(objective, weights, allow_unused=True)
            with torch.no_grad():
                for p, g in zip(weights, grads):
                    if g is not None:
                        p -= lr * g
            if not math.isfinite(float(objective.detach())):
                raise FloatingPointError(f"gradient descent diverged at step {step} (lr={lr}); lower lr")
    W_, u_, v_, loss_ = zip(*rows)
    return History(np.array(want), np.stack(W_), np.stack(u_), np.stack(v_), np.array(loss_),
                   lr=lr if mode == "exact" else 2 * lr, mode=mode)


def _radius(W: torch.Tensor) -> float:
    return min(float(torch.linalg.eigvals(W.detach()).abs().max()), 0.999)
