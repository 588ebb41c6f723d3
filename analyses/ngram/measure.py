"""What the n-gram analysis measures on one batch: distances, accuracies, the state probe, an example.

Pure functions of arrays (model probabilities, the batch, its legal-symbol mask), so each is
checked on hand-made inputs; :mod:`analyses.ngram` runs the model and puts them together.
"""
from __future__ import annotations

import numpy as np
import torch

from analyses.ngram.counts import (
    PAD,
    dfa_probs,
    greedy_legal,
    greedy_letter_legal,
    ngram_probs,
    tvd,
)
from tasks.dfa import LETTERS


def references(batch, legal: torch.Tensor, orders=(1, 2, 3), smoothing: str = "backoff") -> dict[str, np.ndarray]:
    """The distributions a model is compared with: ``{"dfa": (B, T, 20), "1": ..., "2": ..., ...}``."""
    inputs, targets, mask = batch.inputs.cpu().numpy(), batch.targets.cpu().numpy(), batch.mask.cpu().numpy()
    refs = {"dfa": dfa_probs(legal)}
    for n in orders:
        refs[str(n)] = ngram_probs(inputs, targets, mask, n, smoothing)
    return refs


def by_position(values: np.ndarray, mask: np.ndarray) -> tuple[list[float], list[int]]:
    """Mean of ``values`` (B, T) over the rows at each position where ``mask``, and the counts."""
    counts = mask.sum(0)  # (T,)
    sums = np.where(mask, values, 0.0).sum(0)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means.tolist(), counts.astype(int).tolist()


def scores(p: np.ndarray, refs: dict[str, np.ndarray], legal: torch.Tensor, mask: np.ndarray) -> dict:
    """Accuracies and TVDs of one predictor ``p`` (B, T, 20) against every reference.

    Returns ``accuracy`` (the greedy letter is legal; RegBench's), ``accuracy_with_sep`` (the
    greedy token, ``|`` included, is legal; the task's metric), ``tvd`` {ref: overall mean},
    ``tvd_by_position`` {ref: (T,) means}, ``closest`` (the n-gram order nearest in TVD) and
    ``closest_by_position`` (the same at each position).
    """
    legal_np = np.asarray(legal.cpu(), dtype=bool)
    out = {"accuracy": float(greedy_letter_legal(p, legal_np)[mask].mean()),
           "accuracy_with_sep": float(greedy_legal(p, legal_np)[mask].mean()), "tvd": {}, "tvd_by_position": {}}
    for key, q in refs.items():
        d = tvd(p, q)  # (B, T)
        out["tvd"][key] = float(d[mask].mean())
        out["tvd_by_position"][key] = by_position(d, mask)[0]
    grams = {k: v for k, v in out["tvd"].items() if k != "dfa"}
    out["closest"] = int(min(grams, key=grams.get)) if grams else None
    if grams:  # the nearest order at each position (None where no row reaches it)
        per = np.array([out["tvd_by_position"][k] for k in grams], dtype=float)  # (orders, T)
        orders = [int(k) for k in grams]
        out["closest_by_position"] = [None if np.isnan(col).all() else orders[int(np.nanargmin(col))] for col in per.T]
    return out


def baselines(refs: dict[str, np.ndarray], legal: torch.Tensor, mask: np.ndarray) -> dict[str, dict]:
    """Accuracy and TVD to the truth of each in-context n-gram predictor: ``{"1": {...}, ...}``."""
    legal_np = np.asarray(legal.cpu(), dtype=bool)
    out = {}
    for key, q in refs.items():
        if key == "dfa":
            continue
        d = tvd(q, refs["dfa"])
        out[key] = {"accuracy": float(greedy_letter_legal(q, legal_np)[mask].mean()),
                    "accuracy_with_sep": float(greedy_legal(q, legal_np)[mask].mean()),
                    "tvd": float(d[mask].mean()), "tvd_by_position": by_position(d, mask)[0]}
    return out


def state_probe(states: np.ndarray, labels: np.ndarray, mask: np.ndarray, tokens: np.ndarray | None = None,
                max_points: int = 4000, seed: int = 0) -> dict[str, float]:
    """Linear-probe decodability of a label (the current DFA state) from the model's state.

    Parameters
    ----------
    states : (B, T, D) model states; labels : (B, T) ints; mask : (B, T) where to probe
    tokens : optional (B, T) current input tokens: a probe on their one-hot codes is the control
        (a DFA state partly follows from the last letter alone)
    max_points : positions sampled for the probe; rows split in halves for fitting and scoring,
        so no context is seen by both

    Returns
    -------
    ``accuracy`` (held-out rows), ``chance`` (majority label of the scored points),
    ``token_control`` (the same probe on the current token's one-hot) and ``n_classes``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    B = states.shape[0]
    if B < 2:
        raise ValueError(f"the state probe needs at least 2 rows to split; got {B}")
    rng = np.random.default_rng(seed)
    fit_rows = np.zeros(B, dtype=bool)
    fit_rows[rng.permutation(B)[: B // 2]] = True

    def points(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b, t = np.nonzero(mask & rows[:, None])
        keep = rng.permutation(len(b))[: max_points // 2]
        return b[keep], t[keep]

    (bf, tf), (bs, ts) = points(fit_rows), points(~fit_rows)
    y_fit, y_score = labels[bf, tf], labels[bs, ts]
    out = {"n_classes": int(len(np.unique(labels[mask]))),
           "chance": float(np.bincount(y_score).max() / max(len(y_score), 1)) if len(y_score) else float("nan")}

    def fit_score(x_fit: np.ndarray, x_score: np.ndarray) -> float:
        if len(np.unique(y_fit)) < 2:
            return float("nan")
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
        # one BLAS thread: on shared cores a multi-threaded fit of this size is ~10x slower
        with threadpool_limits(1):
            return float(clf.fit(x_fit, y_fit).score(x_score, y_score))

    out["accuracy"] = fit_score(states[bf, tf], states[bs, ts])
    if tokens is not None:
        eye = np.eye(int(tokens.max()) + 1)
        out["token_control"] = fit_score(eye[tokens[bf, tf]], eye[tokens[bs, ts]])
    return out


def example(batch, row: int, p: np.ndarray, legal: torch.Tensor, refs: dict[str, np.ndarray] | None = None) -> dict:
    """One context for the legality figure: tokens, the model's greedy letter and whether it is legal."""
    labels = list(LETTERS) + ["|", "."]
    mask = batch.mask[row].cpu().numpy()
    T = int(mask.sum())
    legal_np = np.asarray(legal[row].cpu(), dtype=bool)[:T]
    letters = p[row, :T, :len(LETTERS)].argmax(-1)
    out = {"tokens": [labels[i] for i in batch.inputs[row, :T].tolist()],
           "targets": [labels[i] for i in batch.targets[row, :T].tolist()],
           "greedy": [labels[i] for i in letters.tolist()],
           "legal": legal_np[np.arange(T), letters].tolist(),
           "legal_sets": ["".join(labels[i] for i in np.nonzero(legal_np[t])[0]) for t in range(T)],
           "p_target": p[row, np.arange(T), batch.targets[row, :T].cpu().numpy()].tolist()}
    for key, q in (refs or {}).items():
        if key != "dfa":
            out[f"legal_{key}gram"] = legal_np[np.arange(T), q[row, :T, :len(LETTERS)].argmax(-1)].tolist()
    return out


__all__ = ["PAD", "baselines", "by_position", "example", "references", "scores", "state_probe"]
