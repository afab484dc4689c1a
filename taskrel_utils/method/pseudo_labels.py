"""Pseudo-labels for a target without labels: the label-map start and the agreement
measure. The fit itself is ``relatedness.task_relatedness(..., target_train=(Z, None),
n_target_classes=K)``; this module holds the two pieces that are not specific to the fit.

* :func:`label_map_from_posteriors` - after the label-free stage (feature map fitted with the label
  cost off) the target points carry reference-class posteriors ``P = h_R(A_inv(z - b))``.
  They are grouped into ``K_T`` clusters (k-means on the posteriors; with ``K_T = K_R`` and
  confident posteriors this is the argmax grouping), and the start of the label map ``B`` is the
  cluster share of each reference class: ``B[i, j] = P(cluster i | reference class j)``.
* :func:`matched_accuracy` - the target's class identities are unknown to a label-free fit, so
  agreement with hidden labels is measured up to the best one-to-one matching of classes
  (Hungarian algorithm on the confusion matrix).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from ..core.checks import as_features
from ..core.errors import TaskrelError

#: k-means restarts from different seeded starts; the clustering with the lowest inertia is kept
KMEANS_RESTARTS = 10


def label_map_from_posteriors(P: np.ndarray, n_target_classes: int, seed: int = 0, eps: float = 1e-3):
    """``(B0, clusters)``: a column-stochastic ``(K_T, K_R)`` label map and the cluster of each row.

    ``P``: ``(N, K_R)`` reference-class posteriors of the target points. ``B0[i, j] ∝ sum_{n in
    cluster i} P[n, j] + eps`` (columns normalised), so each reference class goes mostly to the
    cluster that holds its mass.
    """
    P = as_features(P, "reference-class posteriors")
    K_T = int(n_target_classes)
    if len(P) < K_T:
        raise TaskrelError(f"need at least {K_T} target points with posteriors (N, K_R), got shape {P.shape}")
    clusters = KMeans(n_clusters=K_T, n_init=KMEANS_RESTARTS, random_state=seed).fit_predict(P)
    mass = np.zeros((K_T, P.shape[1]))
    np.add.at(mass, clusters, P)
    mass += eps
    return mass / mass.sum(0, keepdims=True), clusters


def matched_accuracy(predicted, true, n_classes: int | None = None) -> float:
    """Fraction of ``predicted`` labels equal to ``true`` after the best one-to-one renaming of the
    predicted classes (Hungarian algorithm on the confusion matrix). 1.0 for a relabelled copy."""
    predicted, true = np.asarray(predicted), np.asarray(true)
    if predicted.shape != true.shape or predicted.ndim != 1 or len(true) == 0:
        raise TaskrelError(f"predicted and true must be 1-D of the same non-zero length, got "
                           f"{predicted.shape} and {true.shape}")
    K = int(n_classes or max(predicted.max(), true.max()) + 1)
    confusion = np.zeros((K, K))
    np.add.at(confusion, (predicted, true), 1)
    rows, cols = linear_sum_assignment(-confusion)
    return float(confusion[rows, cols].sum() / len(true))
