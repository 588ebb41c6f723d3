"""Based's block (Arora et al. 2024): linear attention with a second-order Taylor feature map
and a short causal convolution.

    u_t = b_c + Σ_{j<K} W_c[j] ⊙ x_{t-j}        short depthwise causal convolution -> hook_conv
    q_t, k_t, v_t = W u_t + b                                             -> hook_q, hook_k, hook_v
    φ(x) = [1, x/d^¼, vec(x xᵀ)/(√2 √d)]       so φ(q)ᵀφ(k) = 1 + qᵀk/√d + (qᵀk)²/(2d)
    S_t = S_{t-1} + φ(k_t) [v_t, 1]ᵀ                                      -> hook_S
    o_t = φ(q_t)ᵀ S_t[:, :d_v] / (φ(q_t)ᵀ S_t[:, d_v] + ε)               -> hook_h
    y_t = W_out o_t

The feature map and the normalised readout are Zoology's (``zoology/mixers/based.py``,
``feature_maps/taylor.py``: feature_dim 16 by default, ε = 1e-12); Zoology's Based models
interleave these layers with BaseConv's short convolutions, folded here into one block with a
convolution of width 3. The state per head is (1 + d + d²) × (d_v + 1) numbers: the running
sum Σ φ(k) is S's last column. Everything else (hooks, chunked kernel, opt-in ``hook_S``) is
:class:`probe.models.linattn.LinAttnLayer` with these settings.
"""
from __future__ import annotations

from probe.models.linattn import LinAttnLayer


class BasedLayer(LinAttnLayer):
    ARCH = "based"
    PARAM_RANGES = {"heads": "[1, 4096]", "d_key": "[1, 256]", "conv": "[0, 1024]", "chunk": "[1, 4096]",
                    "eps": "(0, 1]"}

    def __init__(self, d_in: int, hidden: int, members: int, heads: int = 1, d_key: int = 16, conv: int = 3,
                 chunk: int = 64, eps: float = 1e-12):
        super().__init__(d_in, hidden, members, heads=heads, d_key=d_key, feature="taylor", normalize=True,
                         decay="none", conv=conv, chunk=chunk, eps=eps)
