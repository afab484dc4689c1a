"""Input validation shared by the kit: features, labels, (features, labels) pairs and class ranges.

Every check raises :class:`~taskrel_utils.core.errors.TaskrelError` with a message that names the
input (``what``), says what is wrong and what to do.
"""
from __future__ import annotations

import numpy as np

from .errors import TaskrelError

__all__ = ["as_features", "as_labels", "as_pair", "check_classes", "as_seed"]


def as_features(Z, what: str, d: int | None = None) -> np.ndarray:
    """``Z`` as a finite float64 array of shape (N, d); ``d``: the width it must have (None: any)."""
    try:
        Z = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TaskrelError(f"{what}: features must be a numeric array ({e})") from None
    if Z.ndim != 2:
        raise TaskrelError(f"{what}: features must be a 2-D array (N, d), got shape {Z.shape}")
    if Z.shape[1] == 0:
        raise TaskrelError(f"{what}: features have no columns (shape {Z.shape}); extract them again with an encoder "
                           "that gives at least one feature per image")
    if d is not None and Z.shape[1] != d:
        raise TaskrelError(f"{what}: features have dimension {Z.shape[1]}, expected {d} "
                           "(reference and target features must come from the same encoder)")
    if not np.isfinite(Z).all():
        raise TaskrelError(f"{what}: features contain NaN or infinite values; re-extract them")
    return Z


def as_labels(y, n: int, what: str) -> np.ndarray:
    """``y`` as int64 labels of shape (n,), integers >= 0 (whole-valued floats are accepted)."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise TaskrelError(f"{what}: labels must have shape ({n},) to match the features, got {y.shape}")
    if y.dtype.kind == "b" or y.dtype.kind not in "iuf":
        raise TaskrelError(f"{what}: labels must be integers 0..K-1, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise TaskrelError(f"{what}: labels must be integers 0..K-1")
    y = y.astype(np.int64)
    if n and y.min() < 0:
        raise TaskrelError(f"{what}: labels must be in 0..K-1, found {y.min()}")
    return y


def as_pair(pair, what: str, d: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``(Z, y)`` from a ``(features, labels)`` pair: :func:`as_features` and, unless the labels are
    None (an unlabelled set), :func:`as_labels`."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TaskrelError(f"{what} must be a pair (features, labels)")
    Z = as_features(pair[0], what, d)
    y = None if pair[1] is None else as_labels(pair[1], len(Z), what)
    return Z, y


def check_classes(y, K: int, what: str, require_all: bool) -> None:
    """Labels ``y`` (int64, >= 0) lie in ``0..K-1``; with ``require_all`` every class has a sample."""
    if len(y) and y.max() >= K:
        raise TaskrelError(f"{what}: label {y.max()} is outside 0..{K - 1}")
    if len(y) < K and require_all:
        raise TaskrelError(f"{what}: {len(y)} samples for {K} classes; need at least one sample per class")
    if require_all:
        missing = np.flatnonzero(np.bincount(y, minlength=K) == 0)
        if len(missing):
            raise TaskrelError(f"{what}: class(es) {missing.tolist()} have no samples; relabel the classes "
                               "to 0..K-1 without gaps or add samples")


def as_seed(seed, what: str = "seed") -> int:
    """``seed`` as an int >= 0, the seeds numpy's and torch's generators take."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TaskrelError(f"{what} must be an integer >= 0 (it seeds numpy's random generator), got {seed!r}; "
                           "pass 0, 1, 2, ...")
    return int(seed)
