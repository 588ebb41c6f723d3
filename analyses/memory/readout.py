"""Read stored key-value pairs back out of a matrix state: does S_t k ≈ v?

A matrix-state layer (linear attention, Based, DeltaNet) writes φ(k_s) v_sᵀ into S and answers a
query q with o_t = S_tᵀ φ(q_t). To ask what S_t still holds about pair i, the layer's query is
replaced by the key it wrote for that pair, at every step (``run_with_hooks`` on ``hook_q``; the
query does not feed the state, so S is untouched), and the readout ``hook_h`` is compared with
the value it wrote (``hook_v``) by cosine. Pair i is *retrievable* at step t when its readout is
closer to its own value than to the value of any other pair stored by then, the decision a
readout that picks among the stored values would make.

The pair is taken as written at the step of its value token (``offset=1``: key at 2i, value at
2i+1; a layer with a short convolution sees both there); on later passes of the context
(``num_passes``) the write of the last pass is used.
"""
from __future__ import annotations

import numpy as np
import torch

HOOKS = ("hook_q", "hook_k", "hook_v", "hook_h")


def readout_layers(model) -> list[int]:
    """Layers whose hooks give a query, key, value and readout of matching widths."""
    out = []
    for i in range(len(model.layers)):
        names = [f"layers.{i}.{h}" for h in HOOKS]
        if all(n in model.hook_dict for n in names):
            out.append(i)
    return out


@torch.no_grad()
def pair_readout(model, task, n: int = 256, seed: int = 10_007, layer: int | None = None, offset: int = 1,
                 batch=None) -> dict:
    """Readout of every stored pair at every step.

    Parameters
    ----------
    model : a plain model (``members=1``) with a matrix-state layer (see :func:`readout_layers`).
    task : a ``recall`` task.
    n, seed : the rows read (ignored when ``batch`` is given).
    layer : which layer (default: the last with a matrix state).
    offset : 0 or 1, the step of the pair whose key and value are read (key token, value token).

    Returns
    -------
    {"cos": (B, p, T) cosine of pair i's readout at step t with its value (nan before the write),
     "retrievable": (B, p, T) bool, "count": (T,) mean retrievable pairs per row,
     "stored": (T,) pairs written by step t, "write": (p,) the write steps, "layer": layer}
    """
    if task.name != "recall":
        raise ValueError(f"pair_readout reads recall models; got task {task.name!r}")
    if offset not in (0, 1):
        raise ValueError(f"offset {offset!r} is not allowed; valid choices: 0 (key token), 1 (value token)")
    layers = readout_layers(model)
    if not layers:
        raise ValueError(f"{model.config['arch']} has no layer with {', '.join(HOOKS)}; pair readout needs a "
                         "matrix state read by a query (e.g. linattn, based, deltanet)")
    layer = layers[-1] if layer is None else layer
    if layer not in layers:
        raise ValueError(f"layer {layer!r} is not allowed; valid choices: {', '.join(map(str, layers))}")
    q_name, k_name, v_name, h_name = (f"layers.{layer}.{h}" for h in HOOKS)
    batch = task.sample(n, seed=seed) if batch is None else batch
    cfg = task.config
    p, T = cfg.num_pairs, batch.length
    write = 2 * p * (cfg.num_passes - 1) + 2 * np.arange(p) + offset  # (p,)
    _, cache = model.run_with_cache(batch.inputs, names_filter=[k_name, v_name])
    k, v = cache[k_name], cache[v_name]  # (B, T, ·)
    values = v[:, write].double()  # (B, p, d_v)
    readouts = []
    for w in write:
        key = k[:, w][:, None, :]
        seen = {}

        def put(q, hook, key=key):
            if q.shape[-1] != key.shape[-1]:
                raise ValueError(f"{q_name} ({q.shape[-1]}) and {k_name} ({key.shape[-1]}) differ in width")
            return key.expand_as(q).clone()

        def grab(h, hook, seen=seen):
            seen["h"] = h.detach()

        model.run_with_hooks(batch.inputs, fwd_hooks=[(q_name, put), (h_name, grab)])
        readouts.append(seen["h"].double())  # (B, T, d_v)
    r = torch.stack(readouts, 1)  # (B, p, T, d_v)
    if r.shape[-1] != values.shape[-1]:
        raise ValueError(f"{h_name} ({r.shape[-1]}) and {v_name} ({values.shape[-1]}) differ in width")
    r = torch.nn.functional.normalize(r, dim=-1)
    vn = torch.nn.functional.normalize(values, dim=-1)
    sims = torch.einsum("bitd,bjd->bitj", r, vn)  # (B, p, T, p) readout of i against value j
    t = torch.arange(T)
    written = torch.as_tensor(write)[None, :] <= t[:, None]  # (T, p) pair j written by step t
    own = sims.diagonal(dim1=1, dim2=3).permute(0, 2, 1)  # (B, p, T)
    rivals = sims.masked_fill(~written[None, None], -np.inf)
    eye = torch.eye(p, dtype=torch.bool)[None, :, None, :]
    best_rival = rivals.masked_fill(eye, -np.inf).amax(-1)  # (B, p, T)
    live = written.T[None]  # (1, p, T)
    retrievable = live & (own > best_rival)
    cos = own.masked_fill(~live, np.nan)
    return {"cos": cos.numpy(), "retrievable": retrievable.numpy(), "count": retrievable.sum(1).double().mean(0).numpy(),
            "stored": written.sum(1).numpy(), "write": write, "layer": layer}


def retrieval_summary(readout: dict, ctx: int) -> dict:
    """Headline figures of :func:`pair_readout`: retrievable pairs at the end of the context
    (step ``ctx - 1``) and at the last step, and the mean cosine there."""
    count, cos = readout["count"], readout["cos"]
    return {"pairs_stored": int(readout["stored"][-1]),
            "retrievable_after_context": round(float(count[ctx - 1]), 4),
            "retrievable_at_end": round(float(count[-1]), 4),
            "cos_after_context": round(float(np.nanmean(cos[:, :, ctx - 1])), 4),
            "cos_at_end": round(float(np.nanmean(cos[:, :, -1])), 4)}
