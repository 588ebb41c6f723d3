"""Scores of single units against task features, gate saturation and linear probes (numpy, vectorised).

Every function here takes activations already flattened to the mask-valid steps: ``acts`` is
(N, U) — N valid steps, U units — and a feature is (N,). Nothing here knows about models.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

SATURATION_LOW, SATURATION_HIGH = 0.1, 0.9  # Karpathy et al.: left < 0.1, right > 0.9


def auc(acts: np.ndarray, labels: np.ndarray, ranks: np.ndarray | None = None) -> np.ndarray:
    """ROC AUC of every unit as a score for binary ``labels`` (Mann-Whitney U with average ranks).

    Parameters
    ----------
    acts : (N, U) activations.
    labels : (N,) of 0/1 (both present).
    ranks : ``unit_ranks(acts)`` if already computed (the same for every feature).

    Returns
    -------
    (U,) AUC; 1 when the unit is higher at every positive than at every negative, ties count half
    (the same as ``sklearn.metrics.roc_auc_score(labels, acts[:, u])``).
    """
    pos = np.asarray(labels).astype(bool)
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError(f"auc needs both classes in labels; got {n1} positives and {n0} negatives")
    ranks = unit_ranks(acts) if ranks is None else ranks                     # (N, U), ties averaged
    return (ranks[pos].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)               # (U,)


def unit_ranks(acts: np.ndarray) -> np.ndarray:
    """Every unit's ranks over the N steps, ties averaged: (N, U) -> (N, U)."""
    return rankdata(acts, axis=0)


def pearson(acts: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of every unit with ``feature``: (N, U), (N,) -> (U,); 0 for a constant unit."""
    a = acts - acts.mean(0)                                                  # (N, U)
    f = feature.astype(np.float64) - feature.mean()                         # (N,)
    denom = np.sqrt((a * a).sum(0) * (f * f).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (f @ a) / denom                                                  # (U,)
    return np.where(denom > 0, r, 0.0)


def quantile_bins(x: np.ndarray, bins: int = 16) -> np.ndarray:
    """Bin index 0..bins-1 of every entry, by the column's own quantiles: (N, U) -> (N, U) int."""
    edges = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1], axis=0)       # (bins-1, U)
    return (x[None, :, :] > edges[:, None, :]).sum(0)                        # (N, U)


def mutual_information(acts: np.ndarray, feature: np.ndarray, bins: int = 16,
                       binned: np.ndarray | None = None) -> np.ndarray:
    """Binned mutual information (nats) between every unit and ``feature``: (N, U), (N,) -> (U,).

    Units are cut at their own quantiles into ``bins`` bins; the feature keeps its values if it
    has at most ``bins`` of them, else it is cut at its quantiles too. The plug-in estimate is
    biased upwards by about (bins_a - 1)(bins_f - 1) / 2N, the same for every unit and for the nulls.
    ``binned`` is ``quantile_bins(acts, bins)`` if already computed (the same for every feature).
    """
    N, U = acts.shape
    values = np.unique(feature)
    fb = (np.searchsorted(values, feature) if len(values) <= bins
          else quantile_bins(feature[:, None].astype(np.float64), bins)[:, 0])
    nf = int(fb.max()) + 1
    ab = quantile_bins(acts, bins) if binned is None else binned            # (N, U)
    flat = (np.arange(U)[None, :] * bins + ab) * nf + fb[:, None]            # (N, U) joint cell per unit
    joint = np.bincount(flat.ravel(), minlength=U * bins * nf).reshape(U, bins, nf) / N
    pa, pf = joint.sum(2, keepdims=True), joint.sum(1, keepdims=True)        # (U, bins, 1), (U, 1, nf)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / (pa * pf)), 0.0)
    return terms.sum((1, 2))                                                 # (U,)


def is_binary(feature: np.ndarray) -> bool:
    """Whether a feature takes only the values 0 and 1 (and both)."""
    return set(np.unique(feature).tolist()) == {0, 1}


def score_units(acts: np.ndarray, feature: np.ndarray, with_mi: bool = True, ranks: np.ndarray | None = None,
                binned: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every unit against one feature (``ranks``, ``binned``: see :func:`auc`, :func:`mutual_information`).

    Returns
    -------
    dict of (U,) arrays: ``score`` (binary: max(AUC, 1 - AUC); graded: |r|) and ``auc`` (binary)
    or ``corr`` (graded), plus ``mi`` (nats) when ``with_mi``.
    """
    out: dict[str, np.ndarray] = {}
    if is_binary(feature):
        out["auc"] = auc(acts, feature, ranks)
        out["score"] = np.maximum(out["auc"], 1 - out["auc"])
    else:
        out["corr"] = pearson(acts, feature)
        out["score"] = np.abs(out["corr"])
    if with_mi:
        out["mi"] = mutual_information(acts, feature, binned=binned)
    return out


def shuffle_rows(feature: np.ndarray, mask: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Give every sequence another sequence's whole feature track (B, T): autocorrelation is kept.

    Returns the shuffled (B, T) feature and the (B, T) mask of steps valid in both rows.
    """
    perm = np.random.default_rng(seed).permutation(feature.shape[0])
    return feature[perm], mask & mask[perm]


def saturation(gate: np.ndarray, low: float = SATURATION_LOW, high: float = SATURATION_HIGH):
    """Fraction of steps each gate unit is left-saturated (< low) and right-saturated (> high).

    Parameters
    ----------
    gate : (N, U) gate activations in [0, 1] at valid steps.

    Returns
    -------
    left, right : (U,) each.
    """
    return (gate < low).mean(0), (gate > high).mean(0)


def probe_score(x: np.ndarray, y: np.ndarray, train: np.ndarray, seed: int = 0) -> float:
    """Held-out score of a linear probe reading ``y`` from the whole state ``x`` (N, D).

    Binary features: logistic regression, scored by AUC; graded ones: ridge regression, scored by
    |Pearson r| of prediction and truth — the same scales as a single unit's score. ``train`` is
    an (N,) boolean mask of the training rows (whole sequences, so test steps are unseen text).
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    test = ~train
    if is_binary(y):
        if len(np.unique(y[train])) < 2 or len(np.unique(y[test])) < 2:
            return float("nan")
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300, random_state=seed))
        clf.fit(x[train], y[train])
        return float(roc_auc_score(y[test], clf.decision_function(x[test])))
    reg = make_pipeline(StandardScaler(), RidgeCV(alphas=(0.1, 1.0, 10.0, 100.0)))
    reg.fit(x[train], y[train].astype(np.float64))
    return float(abs(pearson(reg.predict(x[test])[:, None], y[test])[0]))
