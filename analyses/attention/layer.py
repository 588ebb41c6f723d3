"""Causal linear self-attention, its effective tensor, and the reference layers of ``icl_regression``.

The layer (``H`` heads, no softmax, no normalisation)::

    y_t = W_O concat_h [ sum_{s<=t} (W_V^h x_s) (W_K^h x_s)^T (W_Q^h x_t) ]        x_t in R^d_in

with W_Q^h, W_K^h (d_k, d_in), W_V^h (d_v, d_in) and W_O (d_out, H d_v) (identity when omitted).
Written out, the output is a cubic form in the inputs, fixed by one tensor T (d_out, d_in, d_in, d_in)::

    y_t[a] = sum_{s<=t} sum_{p,q,r} T[a, p, q, r] x_s[p] x_s[q] x_t[r]
    T[a, p, q, r] = sum_h sum_{i,j} W_O^h[a, i] sym_{pq}(W_V^h[i, p] W_K^h[j, q]) W_Q^h[j, r]

``sym_{pq}`` averages over swapping p and q: x_s[p] x_s[q] only sees the symmetric part, so T is
the whole of what any layer computing this function can be held to, and the object ``recover``
extracts from a trained network (Zucchet et al., 2024, §3: "W_V ⊗ W_K ⊗ W_Q").

For ``icl_regression`` the reference layer is the teacher (``kind="teacher"``) or, for the
regression kind, one step of preconditioned gradient descent from W = 0 (von Oswald et al., 2023),
which is the best linear self-attention predictor there (Zucchet et al., 2024, §4)::

    y_hat(x_q) = gamma * sum_i y_i x_i^T x_q,      gamma* = 1 / (N + d + 1 + sigma^2 d)

with expected loss per output coordinate L_GD = 1 - N gamma* = (d + 1 + sigma^2 d) / (N + d + 1 + sigma^2 d)
(x ~ N(0, I_d), W ~ N(0, I/d), Wishart moment E[S^2] = N (N + d + 1) I for S = sum_i x_i x_i^T).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


def _as_heads(w, name: str) -> np.ndarray:
    w = np.asarray(w)
    if w.ndim == 2:
        w = w[None]                                                        # (1, rows, d_in)
    if w.ndim != 3:
        raise ValueError(f"{name} must have shape (rows, d_in) or (heads, rows, d_in); got {w.shape}")
    return w


@dataclass(frozen=True)
class LinearAttention:
    """Weights of a causal linear self-attention layer (see the module docstring).

    Parameters
    ----------
    W_Q, W_K : array (H, d_k, d_in) or (d_k, d_in) for one head
    W_V : array (H, d_v, d_in) or (d_v, d_in)
    W_O : array (d_out, H d_v), optional; identity (d_out = H d_v) when None.

    Arrays may hold floats or sympy expressions (``dtype=object``); all maps below work on both.
    """

    W_Q: np.ndarray
    W_K: np.ndarray
    W_V: np.ndarray
    W_O: Optional[np.ndarray] = None

    def __post_init__(self):
        q, k, v = (_as_heads(getattr(self, n), n) for n in ("W_Q", "W_K", "W_V"))
        if not (q.shape[0] == k.shape[0] == v.shape[0]):
            raise ValueError(f"W_Q, W_K, W_V need the same number of heads; got {q.shape[0]}, {k.shape[0]}, {v.shape[0]}")
        if q.shape != k.shape:
            raise ValueError(f"W_Q and W_K must have the same shape (heads, d_k, d_in); got {q.shape} and {k.shape}")
        if v.shape[2] != q.shape[2]:
            raise ValueError(f"W_V has input size {v.shape[2]} but W_Q has {q.shape[2]}")
        o = np.eye(v.shape[0] * v.shape[1], dtype=v.dtype) if self.W_O is None else np.asarray(self.W_O)
        if o.ndim != 2 or o.shape[1] != v.shape[0] * v.shape[1]:
            raise ValueError(f"W_O must have shape (d_out, heads * d_v = {v.shape[0] * v.shape[1]}); got {o.shape}")
        for name, value in (("W_Q", q), ("W_K", k), ("W_V", v), ("W_O", o)):
            object.__setattr__(self, name, value)

    @property
    def heads(self) -> int:
        return self.W_Q.shape[0]

    @property
    def d_in(self) -> int:
        return self.W_Q.shape[2]

    @property
    def d_out(self) -> int:
        return self.W_O.shape[0]

    def head_out(self, h: int) -> np.ndarray:
        """The block of W_O that reads head ``h``: (d_out, d_v)."""
        d_v = self.W_V.shape[1]
        return self.W_O[:, h * d_v:(h + 1) * d_v]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Apply the layer: x (B, T, d_in) -> y (B, T, d_out), through the kv memory of each head."""
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[-1] != self.d_in:
            raise ValueError(f"x must have shape (B, T, d_in={self.d_in}); got {x.shape}")
        y = 0
        for h in range(self.heads):
            q, k, v = x @ self.W_Q[h].T, x @ self.W_K[h].T, x @ self.W_V[h].T      # (B, T, d_k|d_v)
            memory = np.cumsum(v[..., :, None] * k[..., None, :], axis=1)          # (B, T, d_v, d_k)
            y = y + np.einsum("btij,btj->bti", memory, q) @ self.head_out(h).T     # (B, T, d_out)
        return y

    def tensor(self) -> np.ndarray:
        """The effective tensor T (d_out, d_in, d_in, d_in), symmetric in its middle two axes."""
        t = 0
        for h in range(self.heads):
            t = t + np.einsum("ai,ip,jq,jr->apqr", self.head_out(h), self.W_V[h], self.W_K[h], self.W_Q[h])
        return (t + t.transpose(0, 2, 1, 3)) / 2


def random_attention(d_in: int, d_k: Optional[int] = None, d_v: Optional[int] = None, heads: int = 1,
                     d_out: Optional[int] = None, seed: int = 0) -> LinearAttention:
    """A layer with N(0, 1/d_in) entries (W_O identity when ``d_out`` is None, else N(0, 1/(H d_v)))."""
    rng = np.random.default_rng(seed)
    d_k, d_v = d_k or d_in, d_v or d_in
    draw = lambda *shape: rng.standard_normal(shape) / np.sqrt(shape[-1])  # noqa: E731
    W_O = None if d_out is None else draw(d_out, heads * d_v)
    return LinearAttention(draw(heads, d_k, d_in), draw(heads, d_k, d_in), draw(heads, d_v, d_in), W_O)


def apply_tensor(T: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Run the attention layer a tensor defines: T (d_out, d, d, d), x (B, T, d) -> (B, T, d_out).

    The memory is the running second moment sum_{s<=t} x_s x_s^T; the query reads it through T.
    """
    memory = np.cumsum(x[..., :, None] * x[..., None, :], axis=1)                 # (B, T, d, d)
    return np.einsum("apqr,btpq,btr->bta", T, memory, x)                          # (B, T, d_out)


def gd_step_size(d_x: int, n_examples: int, noise_std: float = 0.0) -> float:
    """gamma* of the best one-step-GD predictor for in-context regression (module docstring)."""
    return 1.0 / (n_examples + d_x + 1 + noise_std ** 2 * d_x)


def gd_loss_closed_form(d_x: int, n_examples: int, noise_std: float = 0.0) -> float:
    """Expected per-coordinate squared error of one step of GD with step gamma* (module docstring)."""
    return 1.0 - n_examples * gd_step_size(d_x, n_examples, noise_std)


def reference_attention(task) -> LinearAttention:
    """The linear self-attention solution of an ``icl_regression`` task.

    ``kind="teacher"``: the teacher itself (its 1/sqrt(d_x) folded into W_Q). ``kind="regression"``:
    one step of GD, on the token layout [x, y, is_query]: values read y, keys x, queries gamma* x.
    """
    if getattr(task, "name", None) != "icl_regression":
        raise ValueError(f"reference_attention needs an icl_regression task; got {getattr(task, 'name', task)!r}")
    cfg = task.config
    dx, dy = cfg.d_x, cfg.d_y
    if cfg.kind == "teacher":
        w = {k: v.double().numpy() for k, v in task.teacher_weights().items()}
        return LinearAttention(w["W_Q"] / np.sqrt(dx), w["W_K"], w["W_V"])
    d_in = dx + dy + 1
    read_x = np.eye(dx, d_in)                                                      # (d_x, d_in)
    read_y = np.eye(dy, d_in, k=dx)                                                # (d_y, d_in)
    gamma = gd_step_size(dx, cfg.n_examples, cfg.noise_std)
    return LinearAttention(gamma * read_x, read_x, read_y)
