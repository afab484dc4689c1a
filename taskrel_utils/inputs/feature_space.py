"""Looking at a feature space: a 2-D projection and how well the classes separate in it.

Both work on standardised features (per-dimension z-scores fit on the data given), like the
analysis itself.
"""
from __future__ import annotations

import numpy as np

from ..core.checks import as_features, as_labels
from ..core.errors import TaskrelError
from ..core.numerics import sq_euclidean


def _check(Z, y=None, what: str = "features", d: int | None = None):
    """``Z`` as finite float64 (N, d) with N >= 2 and, if given, ``y`` as N integer labels."""
    Z = as_features(Z, what, d)
    if len(Z) < 2:
        raise TaskrelError(f"{what}: need at least 2 rows (samples), got shape {Z.shape}")
    return Z, (None if y is None else as_labels(y, len(Z), what))


def standardise(Z, fit_on=None):
    """Per-dimension z-scores ``(Z - mean) / std`` with mean/std of ``fit_on`` (default ``Z``);
    dimensions with zero variance keep scale 1 (as sklearn's StandardScaler)."""
    Z, _ = _check(Z)
    ref = Z if fit_on is None else _check(fit_on)[0]
    std = ref.std(axis=0)
    std[std == 0] = 1.0
    return (Z - ref.mean(axis=0)) / std


def principal_axes(Z, k: int) -> np.ndarray:
    """The top ``k`` principal axes of ``Z`` (N x d) as orthonormal columns (d x min(k, d)).

    Signs are fixed (largest |loading| positive) so that reruns give the same projection.
    """
    X = np.asarray(Z, dtype=np.float64)
    _, _, vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    vt = vt[:k]
    vt *= np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
    return vt.T


def pca_2d(Z) -> np.ndarray:
    """The first two principal components of standardised ``Z``: (N, d) -> (N, 2)."""
    X = standardise(Z)
    out = X @ principal_axes(X, 2)
    if out.shape[1] < 2:  # one-dimensional features
        out = np.column_stack([out, np.zeros(len(out))])
    return out


def nearest_mean_accuracy(Z_train, y_train, Z_test, y_test, n_components: int | None = None) -> float:
    """Accuracy on the test set of the nearest-class-mean classifier fit on the train set,
    in coordinates standardised on the train set: a quick, parameter-free separability score.

    ``n_components = k``: on the top ``k`` principal axes of the standardised train features only
    (how much of the separability a k-dimensional picture keeps); None: every dimension.
    """
    Z_train, y_train = _check(Z_train, y_train, "train features")
    Z_test, y_test = _check(Z_test, y_test, "test features", d=Z_train.shape[1])
    if n_components is not None and (isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer))
                                     or n_components < 1):
        raise TaskrelError(f"n_components must be a positive integer or None, got {n_components!r}")
    classes = np.unique(y_train)
    A, B = standardise(Z_train), standardise(Z_test, fit_on=Z_train)
    if n_components is not None:
        axes = principal_axes(A, int(n_components))
        A, B = A @ axes, B @ axes
    means = np.stack([A[y_train == c].mean(axis=0) for c in classes])
    return float((classes[sq_euclidean(B, means).argmin(axis=1)] == y_test).mean())


def zoo_views(feats: dict, class_names: dict):
    """For every (encoder, task) of ``feats`` (``{(encoder, task, split): (Z, y)}``, train and test):
    ``(projections, separability)``, two tables. ``projections``: one row per test point, its
    :func:`pca_2d` coordinates ``pc1``, ``pc2``, ``label`` and ``class_name`` (from
    ``class_names[task]``); ``separability``: one row per pair, the :func:`nearest_mean_accuracy`
    from the train to the test split."""
    import pandas as pd

    projections, separability = [], []
    for (encoder, task, split), (Z, y) in feats.items():
        if split != "test":
            continue
        if (encoder, task, "train") not in feats:
            raise TaskrelError(f"no train features of {encoder} on {task}: the separability is fit on the train split")
        if task not in class_names:
            raise TaskrelError(f"no class names of task {task!r}; pass class_names[{task!r}] (one name per label)")
        P = pca_2d(Z)
        projections.append(pd.DataFrame({"encoder": encoder, "task": task, "pc1": P[:, 0], "pc2": P[:, 1],
                                         "label": y, "class_name": np.asarray(class_names[task])[y]}))
        Z_train, y_train = feats[encoder, task, "train"]
        separability.append({"encoder": encoder, "task": task,
                             "nearest_mean_accuracy": nearest_mean_accuracy(Z_train, y_train, Z, y)})
    return pd.concat(projections, ignore_index=True), pd.DataFrame(separability)
