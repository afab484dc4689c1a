"""Small numerical building blocks shared by the kit (numpy, float64).

* :func:`softmax` / :func:`log_softmax` / :func:`logsumexp` - stable along one axis: the maximum
  is subtracted first, so ``exp`` never overflows (``softmax(z) = exp(z - max z) / sum exp(z - max z)``,
  ``logsumexp(z) = max z + log sum exp(z - max z)``).
* :func:`sq_euclidean` / :func:`euclidean` - all pairwise (squared) Euclidean distances between the
  rows of ``X`` (N x d) and ``Y`` (M x d), as an N x M matrix, by the expansion
  ``||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y`` (one matrix product), clipped at 0 because rounding
  can make that expansion slightly negative for (near-)identical points.
* :func:`standard_scaler` - sklearn's per-column z-scorer fit at any global scale of the features
  (1e-200 or 1e200): each column is divided by the power of two just above its largest value first, which
  is exact in floating point, so that the squares inside the variance neither underflow nor overflow.
* :func:`stratified_groups` - a seeded, per-class split of sample indices into groups of given
  sizes (subsets, fine-tuning / validation splits, fractions of a target).
* :func:`finite_or_none` / :func:`finite_table` - numbers for a JSON metrics file: NaN and
  infinity (an undefined correlation) become ``None`` (JSON ``null``), everything else a float.

Torch code keeps ``torch.softmax`` / ``torch.log_softmax``: these helpers are for numpy arrays.
"""
from __future__ import annotations

import numpy as np

from .errors import TaskrelError

__all__ = ["softmax", "log_softmax", "logsumexp", "sq_euclidean", "euclidean", "standard_scaler", "stratified_groups",
           "finite_or_none", "finite_table"]


def softmax(logits, axis: int = -1) -> np.ndarray:
    """``exp(z - max z) / sum exp(z - max z)`` along ``axis`` (float64, a new array)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def log_softmax(logits, axis: int = -1) -> np.ndarray:
    """``z - max z - log sum exp(z - max z)`` along ``axis`` (float64, a new array).

    Exact where ``log(softmax(z))`` underflows to ``-inf`` (very negative logits).
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def logsumexp(logits, axis: int = -1) -> np.ndarray:
    """``max z + log sum exp(z - max z)`` along ``axis`` (float64, that axis removed).

    A cross-entropy ``-log softmax(z)_y`` is ``logsumexp(z) - z_y``.
    """
    z = np.asarray(logits, dtype=np.float64)
    m = z.max(axis=axis, keepdims=True)
    return np.squeeze(m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True)), axis=axis)


def sq_euclidean(X, Y) -> np.ndarray:
    """Squared Euclidean distances ``||x_k - y_l||^2``: ``X`` (N, d), ``Y`` (M, d) -> (N, M) float64,
    clipped at 0."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise TaskrelError(f"pairwise distances need two 2-D arrays with the same number of columns "
                           f"(points x dimensions), got shapes {X.shape} and {Y.shape}")
    sq = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2.0 * (X @ Y.T)
    return np.maximum(sq, 0.0, out=sq)


def euclidean(X, Y) -> np.ndarray:
    """Euclidean distances ``||x_k - y_l||_2``: ``X`` (N, d), ``Y`` (M, d) -> (N, M) float64
    (the root of :func:`sq_euclidean`)."""
    sq = sq_euclidean(X, Y)
    return np.sqrt(sq, out=sq)


def standard_scaler(Z):
    """A ``sklearn`` ``StandardScaler`` fit on finite features ``Z`` (N, d), exact at any scale.

    Each column is divided by the power of two just above its largest absolute value before the
    mean and variance are taken, and the statistics are scaled back after: dividing by a power of
    two changes no bit of a float64 (barring under- or overflow), so ordinary features get
    sklearn's numbers to the bit, while features scaled by 1e-200 or 1e200 (whose squares under-
    or overflow) standardise to the same z-scores as unscaled ones. A constant column keeps scale
    1, as in sklearn. ``var_`` may be 0 or inf at extreme scales; ``transform`` reads only
    ``mean_`` and ``scale_``.
    """
    from sklearn.preprocessing import StandardScaler

    Z = np.asarray(Z, dtype=np.float64)
    unit = np.ldexp(1.0, np.frexp(np.abs(Z).max(axis=0, initial=0.0))[1])  # 2**e with max |Z| = m 2**e, m in [0.5, 1)
    scaler = StandardScaler().fit(Z / unit)
    constant = scaler.scale_ != np.sqrt(scaler.var_)  # sklearn gave these columns scale 1
    scaler.mean_ *= unit
    scaler.scale_ *= np.where(constant, 1.0, unit)
    with np.errstate(over="ignore", under="ignore"):
        scaler.var_ *= unit * unit
    return scaler


def stratified_groups(labels, group_sizes, rng: np.random.Generator) -> list[np.ndarray]:
    """Split the indices of ``labels`` (N,) per class into consecutive groups: for every class c (in
    increasing order) a permutation of its indices drawn from ``rng``, cut into groups of the sizes
    ``group_sizes(n_c)`` (a class with fewer indices fills the first groups). Returns one sorted
    int64 index array per group, over all classes."""
    labels = np.asarray(labels)
    groups = None
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        sizes = [int(s) for s in group_sizes(len(idx))]
        if groups is None:
            groups = [[] for _ in sizes]
        bounds = np.cumsum([0, *sizes])
        for g, start, stop in zip(groups, bounds[:-1], bounds[1:]):
            g.append(idx[start:stop])
    return [np.sort(np.concatenate(g)).astype(np.int64) for g in (groups or [])]


def finite_or_none(x) -> float | None:
    """``float(x)``, or ``None`` when ``x`` is NaN or infinite (JSON has no NaN)."""
    return float(x) if np.isfinite(x) else None


def finite_table(frame) -> dict:
    """A DataFrame as ``{row label: {column: finite_or_none(value)}}`` for a JSON metrics file."""
    return {row: {col: finite_or_none(v) for col, v in values.items()} for row, values in frame.iterrows()}
