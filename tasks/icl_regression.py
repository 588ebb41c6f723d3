"""In-context linear regression (von Oswald et al. 2023; Zucchet et al., ICML 2024, arXiv 2309.01775).

``kind="regression"``: per row a fresh W ~ N(0, I/d_x) of shape (d_y, d_x). The model reads
``n_examples`` context tokens (x_i, W x_i + noise, 0) with x_i ~ N(0, I), then ``n_queries`` query
tokens (x_q, 0, 1) and must output W x_q at each query. Input channels are [x, y, is_query]
(d_input = d_x + d_y + 1); targets hold W x_t at every step, the mask selects the queries.

Example (d_x=1, d_y=1, n_examples=2, n_queries=1, W = 2)::

    inputs   (0.5, 1.0, 0)  (-1.0, -2.0, 0)  (0.3, 0.0, 1)
    targets   1.0            -2.0              0.6
    mask      F              F                 T
    examples  1              2                 2

``kind="teacher"`` (Zucchet et al.'s teacher-student): tokens z_t ~ N(0, I_{d_x}) and targets from
one fixed random causal linear self-attention layer, shared by all rows (``teacher_seed``)::

    y_t = sum_{s<=t} (W_V z_s) <W_K z_s, W_Q z_t> / sqrt(d_x)

with W_Q, W_K (d_x, d_x) and W_V (d_y, d_x) entries N(0, 1/d_x); every step is supervised and
the sequence length is ``n_examples``. The 1/sqrt(d_x) keeps each term O(1), so y_t ~ sqrt(t).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tasks.base import Batch, Task, as_float, as_long, standard_normal
from tasks.params import check_row, param


@dataclass(frozen=True)
class ICLRegressionParams:
    kind: Literal["regression", "teacher"] = param("regression", doc="in-context regression or LSA teacher")
    d_x: int = param(4, ge=1, le=4096, doc="input dimension")
    d_y: int = param(1, ge=1, le=4096, doc="output dimension")
    n_examples: int = param(16, ge=1, le=1_000_000, doc="context pairs (regression) / sequence length (teacher)")
    n_queries: int = param(1, ge=1, le=1_000_000, doc="query tokens after the context (regression)")
    noise_std: float = param(0.0, ge=0.0, doc="observation noise on the context y's (regression)")
    teacher_seed: int = param(0, ge=0, doc="which random attention layer is the teacher")


def teacher_weights(d_x: int, d_y: int, teacher_seed: int) -> dict[str, np.ndarray]:
    """The teacher's W_Q, W_K (d_x, d_x) and W_V (d_y, d_x), entries N(0, 1/d_x)."""
    rng = np.random.default_rng([teacher_seed, d_x, d_y])
    scale = 1.0 / math.sqrt(d_x)
    return {"W_Q": scale * rng.standard_normal((d_x, d_x)), "W_K": scale * rng.standard_normal((d_x, d_x)),
            "W_V": scale * rng.standard_normal((d_y, d_x))}


def linear_attention(z: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """Causal linear self-attention, unnormalised: z (B, T, d_x) -> (B, T, d_y)."""
    q, k, v = z @ weights["W_Q"].T, z @ weights["W_K"].T, z @ weights["W_V"].T  # (B, T, d)
    memory = np.cumsum(v[..., :, None] * k[..., None, :], axis=1)  # (B, T, d_y, d_x): sum_s v_s k_s^T
    return np.einsum("btyx,btx->bty", memory, q)  # (B, T, d_y)


class ICLRegression(Task):
    """In-context linear regression / linear-attention teacher; see the module docstring.

    Features: ``examples`` (context pairs read so far; tokens read so far for the teacher),
    ``is_query`` (1 at query tokens; every token for the teacher).
    ``batch.info["W"]`` holds each row's regression matrix (B, d_y, d_x) (regression kind).
    """

    name = "icl_regression"
    Params = ICLRegressionParams
    input_kind = "vectors"
    loss = "mse"
    feature_names = ("examples", "is_query")
    paper = {"d_x": 10, "n_examples": 10}  # von Oswald et al.'s regression size [recalled, approximate]

    def _check(self, cfg: ICLRegressionParams) -> None:
        if cfg.kind == "teacher":  # the teacher's running memory is (T, d_y, d_x) per row
            check_row(self.name, "n_examples", cfg.n_examples, cfg.n_examples * cfg.d_x * max(cfg.d_x, cfg.d_y),
                      "n_examples * d_x * max(d_x, d_y)")
        else:
            check_row(self.name, "n_examples", cfg.n_examples,
                      (cfg.n_examples + cfg.n_queries) * (cfg.d_x + cfg.d_y + 1) + cfg.d_x * cfg.d_y,
                      "(n_examples + n_queries) * (d_x + d_y + 1) + d_x * d_y")

    def _dims(self, cfg: ICLRegressionParams) -> dict[str, int]:
        d_input = cfg.d_x + cfg.d_y + 1 if cfg.kind == "regression" else cfg.d_x
        return {"d_input": d_input, "d_output": cfg.d_y}

    def splits(self) -> dict[str, dict]:
        longer = 4 * self.config.n_examples
        return {"train": {}, f"examples_{longer}": {"n_examples": longer}}

    def teacher_weights(self) -> dict[str, torch.Tensor]:
        """The teacher's attention weights W_Q, W_K (d_x, d_x) and W_V (d_y, d_x)."""
        cfg = self.config
        return {k: torch.from_numpy(v).float() for k, v in teacher_weights(cfg.d_x, cfg.d_y, cfg.teacher_seed).items()}

    def _sample(self, cfg: ICLRegressionParams, n: int, rng: np.random.Generator) -> Batch:
        if cfg.kind == "teacher":
            return self._sample_teacher(cfg, n, rng)
        N, Q, dx, dy = cfg.n_examples, cfg.n_queries, cfg.d_x, cfg.d_y
        T = N + Q
        W = standard_normal(rng, (n, dy, dx)) / math.sqrt(dx)  # (B, d_y, d_x)
        x = standard_normal(rng, (n, T, dx))  # (B, T, d_x)
        y = np.einsum("byx,btx->bty", W, x)  # (B, T, d_y)
        is_query = np.arange(T) >= N  # (T,)
        noise = cfg.noise_std * standard_normal(rng, y.shape) if cfg.noise_std > 0 else 0.0
        y_seen = (y + noise) * ~is_query[None, :, None]  # the queries hide their y
        flag = np.broadcast_to(is_query[None, :, None], (n, T, 1))
        inputs = np.concatenate([x, y_seen, flag], axis=-1)  # (B, T, d_x + d_y + 1)
        mask = np.broadcast_to(is_query, (n, T))
        return Batch(
            inputs=as_float(inputs), targets=as_float(y), mask=torch.from_numpy(mask.copy()),
            features={"examples": as_long(np.broadcast_to(np.minimum(np.arange(1, T + 1), N), (n, T))),
                      "is_query": as_long(mask)},
            info={"W": as_float(W)},
        )

    def _sample_teacher(self, cfg: ICLRegressionParams, n: int, rng: np.random.Generator) -> Batch:
        T = cfg.n_examples
        z = standard_normal(rng, (n, T, cfg.d_x)).astype(np.float64)  # (B, T, d_x)
        y = linear_attention(z, teacher_weights(cfg.d_x, cfg.d_y, cfg.teacher_seed))  # (B, T, d_y)
        y = y / math.sqrt(cfg.d_x)
        return Batch(
            inputs=as_float(z), targets=as_float(y), mask=torch.ones(n, T, dtype=torch.bool),
            features={"examples": as_long(np.broadcast_to(np.arange(1, T + 1), (n, T))),
                      "is_query": as_long(np.ones((n, T)))},
        )

    def _vector_label(self, row: list[float]) -> str:
        if self.config.kind == "teacher":
            return super()._vector_label(row)
        dx, dy = self.config.d_x, self.config.d_y
        fmt = lambda v: "(" + ", ".join(f"{a:+.2f}" for a in v) + ")"  # noqa: E731
        x, y, flag = row[:dx], row[dx:dx + dy], row[-1]
        return f"x={fmt(x)} ?" if flag > 0.5 else f"x={fmt(x)} y={fmt(y)}"
