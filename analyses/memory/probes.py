"""What the state holds: membership probes at the separator, and recall accuracy by lag.

``membership_probe`` fits one logistic regression per element token, from the state at the list
separator ``|`` (after the whole first set has been read) to "this token is in the first set",
and scores it by balanced accuracy on held-out rows (0.5 is chance whatever the set size, 1.0 a
state that holds the whole set). ``probe_by_set_size`` does it for first sets of several sizes.

``recall_by_lag`` scores a recall model at every query by how many steps ago the queried key was
stored.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tasks.disjointness import LIST_SEP, N_SPECIAL


def membership_probe(states: np.ndarray, members: np.ndarray, train_frac: float = 0.5, C: float = 1.0,
                     seed: int = 0) -> dict:
    """Decode each token's membership from the states with its own linear probe.

    Parameters
    ----------
    states : (n_samples, n_features) the state at the separator, one row per sequence.
    members : (n_samples, n_tokens) bool, token j is in the row's first set.
    train_frac : the first this fraction of rows fits the probes, the rest scores them.
    C : inverse L2 strength of each logistic regression (on standardised features).
    seed : seeds the solvers.

    Returns
    -------
    {"accuracy": mean balanced accuracy over the scored tokens, "per_token": (n_tokens,) balanced
    accuracy (nan for a token without both classes in both halves), "n_tokens": tokens scored}
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, Y = np.asarray(states, dtype=np.float64), np.asarray(members, dtype=bool)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"states (n_samples, n_features) {X.shape} and members (n_samples, n_tokens) "
                         f"{Y.shape} must be 2-D with the same number of rows")
    n_train = int(round(train_frac * len(X)))
    if not 0 < n_train < len(X):
        raise ValueError(f"train_frac {train_frac} leaves no rows to fit or to score ({len(X)} rows)")
    per_token = np.full(Y.shape[1], np.nan)
    for j in range(Y.shape[1]):
        y_fit, y_score = Y[:n_train, j], Y[n_train:, j]
        if y_fit.all() or not y_fit.any() or y_score.all() or not y_score.any():
            continue
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500, random_state=seed))
        pred = clf.fit(X[:n_train], y_fit).predict(X[n_train:])
        per_token[j] = 0.5 * ((pred[y_score]).mean() + (~pred[~y_score]).mean())
    scored = ~np.isnan(per_token)
    return {"accuracy": float(per_token[scored].mean()) if scored.any() else float("nan"),
            "per_token": per_token.tolist(), "n_tokens": int(scored.sum())}


def state_hooks(model) -> list[str]:
    """Every hook that carries recurrent state: ``hook_h`` of each layer, and ``hook_c`` of an LSTM's."""
    return [f"layers.{i}.{h}" for i in range(len(model.layers)) for h in ("hook_h", "hook_c")
            if f"layers.{i}.{h}" in model.hook_dict]


@torch.no_grad()
def separator_states(model, inputs: torch.Tensor) -> np.ndarray:
    """The whole state (every layer, h and c) at each row's first ``|``: (B, state_size)."""
    _, cache = model.run_with_cache(inputs, names_filter=lambda n: n in state_hooks(model))
    at = (inputs == LIST_SEP).int().argmax(1)  # (B,) first separator
    rows = torch.arange(inputs.shape[0])
    return torch.cat([cache[k][rows, at] for k in state_hooks(model)], -1).double().numpy()  # (B, D)


def first_set_members(inputs: torch.Tensor, vocab_size: int) -> np.ndarray:
    """(B, vocab_size - 4) bool: element token j + 4 is in the row's first set (before the first ``|``)."""
    at = (inputs == LIST_SEP).int().argmax(1)  # (B,)
    before = torch.arange(inputs.shape[1])[None, :] < at[:, None]  # (B, T)
    onehot = torch.nn.functional.one_hot(inputs, vocab_size).bool() & before[..., None]  # (B, T, V)
    return onehot.any(1)[:, N_SPECIAL:].numpy()


def probe_by_set_size(model, task, sizes: Sequence[int], n: int = 1024, seed: int = 0) -> dict[int, float]:
    """Membership-probe accuracy from the state at the separator, for first sets of each size.

    The first set is drawn at each size by overriding the task's set sizes (the rest of the row
    does not reach the separator's state). ``model`` is a plain model (``members=1``).
    """
    longest = (task.config.vocab_size - N_SPECIAL) // 2
    bad = [k for k in sizes if not 1 <= k <= longest]
    if bad:
        raise ValueError(f"set sizes {bad} out of range; valid sizes are 1..{longest} for this vocabulary")
    out = {}
    for k in sizes:
        batch = task.sample(n, seed=seed + 1 + k, order="long_first", long=k, short=min(task.config.short, k))
        out[int(k)] = membership_probe(separator_states(model, batch.inputs),
                                       first_set_members(batch.inputs, task.config.vocab_size), seed=seed)["accuracy"]
    return out


@torch.no_grad()
def recall_by_lag(model, task, n: int = 1024, seed: int = 10_007) -> dict[int, float]:
    """Accuracy at each query by lag (query position minus where its key was last stored).

    ``model`` is a plain model; returns {lag: accuracy} over the lags that occur.
    """
    batch = task.sample(n, seed=seed)
    correct = (model(batch.inputs).argmax(-1) == batch.targets) & batch.mask  # (B, T)
    keys = batch.info["keys"]  # (B, p), key i stored at 2i, and again 2p later on each further pass
    last_pass = 2 * keys.shape[1] * (task.config.num_passes - 1)
    b, t = batch.mask.nonzero(as_tuple=True)  # every query
    index = (keys[b] == batch.inputs[b, t][:, None]).int().argmax(1)  # which pair was queried
    lag = (t - 2 * index - last_pass).numpy()
    hit = correct[b, t].numpy()
    return {int(L): float(hit[lag == L].mean()) for L in np.unique(lag)}
