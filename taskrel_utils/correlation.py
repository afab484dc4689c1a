"""Correlation between a score and transferability across encoders (or pairs).

``pearson(x, y)`` is scipy's Pearson r (METHOD 5.2), ``spearman`` the rank version; both return a
Python float and refuse inputs that make the coefficient meaningless.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from .errors import TaskrelError


def _check(x, y):
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise TaskrelError(f"x and y must have the same length, got {x.size} and {y.size}")
    if x.size < 3:
        raise TaskrelError(f"a correlation needs at least 3 pairs, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise TaskrelError("x and y must be finite (no NaN or infinity)")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise TaskrelError("x or y is constant: the correlation is undefined")
    return x, y


def pearson(x, y) -> float:
    """Pearson's r of ``x`` and ``y`` (1-D, same length >= 3, finite, not constant)."""
    return float(stats.pearsonr(*_check(x, y))[0])


def spearman(x, y) -> float:
    """Spearman's rank correlation of ``x`` and ``y``."""
    return float(stats.spearmanr(*_check(x, y))[0])
