"""Correlation between a score and transferability across encoders (or pairs).

``pearson(x, y)`` is scipy's Pearson r (the paper's measure), ``spearman`` and ``kendall`` (tau-b) the rank
versions, ``weighted_kendall`` the hyperbolic weighted tau that LogME and SFDA report. All return a
Python float and refuse inputs that make the coefficient meaningless. ``bootstrap_ci`` gives a
percentile-bootstrap confidence interval of any of them; ``METHODS`` maps names to functions.
``split_half_kendall`` measures how reliably repeated measurements (seeds) rank a set of items.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from ..core.checks import as_seed
from ..core.errors import TaskrelError, UnknownNameError

# A bootstrap whose resamples are constant (in x or y) more often than this fraction is refused.
MAX_SKIPPED_FRACTION = 0.5
# Up to this many pairs the bootstrap's Kendall tau is vectorised over resamples (O(n^2) memory per
# resample); beyond it scipy's O(n log n) loop per resample is faster.
KENDALL_VECTORISED_MAX_PAIRS = 80
# Entries of the (resamples x n x n) sign arrays computed at once by the vectorised Kendall tau.
_KENDALL_CHUNK_ELEMENTS = 4_000_000


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


def kendall(x, y) -> float:
    """Kendall's tau-b of ``x`` and ``y`` (scipy ``kendalltau``, default ``variant="b"``).

    tau_b = (C - D) / sqrt((n0 - n_x)(n0 - n_y)), with C / D the concordant / discordant pairs,
    n0 = n(n-1)/2 and n_x, n_y the pairs tied in x, in y. Without ties tau_b = (C - D) / n0.
    """
    return float(stats.kendalltau(*_check(x, y)).statistic)


def weighted_kendall(x, y) -> float:
    """Weighted Kendall tau (additive hyperbolic tau_h of Vigna 2015), as LogME / SFDA report it.

    The call is ``scipy.stats.weightedtau(score, accuracy)`` with the defaults ``rank=True``,
    ``weigher=None`` (weight 1/(r+1) of rank r, 0 = largest value), ``additive=True``; that is how
    ``TencentARC/SFDA`` ``rank_correlation.py`` (``w_kendall_metric``, used by ``tw_group1.py`` /
    ``tw_group2.py``) computes it, with the scores first and the fine-tuning accuracies second.
    Without ties, for the decreasing rank r of the elements by x,

        tau_x = sum_{i<j} w_ij sign(x_i - x_j) sign(y_i - y_j) / sum_{i<j} w_ij,
        w_ij = 1/(r_i + 1) + 1/(r_j + 1),

    and the result is (tau_x + tau_y) / 2 (same with the rank by y), so it is symmetric in x, y.

    The weights favour the **largest** values. For a lower-is-better score (TR, PACTran) the
    models with the worst scores get the large x-weights; ``weighted_kendall(-score, accuracy)``
    is then the "top models matter most" reading, and it is not ``-weighted_kendall(score,
    accuracy)`` in general.
    """
    return float(stats.weightedtau(*_check(x, y)).statistic)


METHODS = {"pearson": pearson, "spearman": spearman, "kendall": kendall,
           "weighted_kendall": weighted_kendall}


#: above this many balanced splits, :func:`split_half_kendall` averages a seeded sample of them
MAX_SPLITS = 2000


def split_half_kendall(acc_matrix, max_splits: int = MAX_SPLITS) -> float:
    """Split-half reliability of a ranking: ``acc_matrix`` is (items x repeats), e.g. the fine-tuned
    accuracy of each encoder (rows) under each seed (columns).

    For every balanced split of the S columns into two halves (sizes floor(S/2) and ceil(S/2), each
    unordered split once: C(S, S/2) / 2 splits for even S, C(S, floor(S/2)) for odd S), the rows are
    ranked by their mean over each half, and the two rankings compared with Kendall's tau-b
    (:func:`kendall`); the result is the average over the splits. 1 = the halves always rank the
    items alike (e.g. identical repeats), about 0 = pure noise, below 0 = rankings opposed. Splits
    where a half's means are all equal (tau undefined) are skipped; NaN if every split is.
    Above ``max_splits`` splits (S = 14 seeds gives 1,716; S = 24 gives 1.35 million) the average
    is over ``max_splits`` distinct splits drawn with a fixed seed. Needs at least 3 items, at least
    2 repeats, finite values.
    """
    a = np.asarray(acc_matrix, dtype=np.float64)
    if a.ndim != 2:
        raise TaskrelError(f"split_half_kendall needs a 2-D (items x repeats) array, got shape {a.shape}")
    n_items, n_rep = a.shape
    if n_items < 3:
        raise TaskrelError(f"split_half_kendall needs at least 3 items (rows) to rank, got {n_items}")
    if n_rep < 2:
        raise TaskrelError(f"split_half_kendall needs at least 2 repeats (columns, e.g. seeds), got {n_rep}")
    if not np.isfinite(a).all():
        raise TaskrelError("split_half_kendall: the array must be finite (no NaN or infinity)")
    if isinstance(max_splits, bool) or not isinstance(max_splits, (int, np.integer)) or max_splits < 1:
        raise TaskrelError(f"split_half_kendall: max_splits must be a positive integer, got {max_splits!r}")
    half = n_rep // 2
    taus = []
    for first in _balanced_splits(n_rep, max_splits):
        second = [j for j in range(n_rep) if j not in first]
        x, y = a[:, list(first)].mean(axis=1), a[:, second].mean(axis=1)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        taus.append(float(stats.kendalltau(x, y).statistic))
    return float(np.mean(taus)) if taus else float("nan")


def _balanced_splits(n_rep: int, max_splits: int) -> list:
    """The first halves of the balanced splits of ``range(n_rep)``, each unordered split once (for
    even ``n_rep`` the half holding 0): all of them, or ``max_splits`` distinct ones drawn with seed 0."""
    half = n_rep // 2
    n_splits = math.comb(n_rep, half) // (2 if n_rep % 2 == 0 else 1)
    if n_splits <= max_splits:
        return [f for f in combinations(range(n_rep), half) if n_rep % 2 or 0 in f]
    rng, seen = np.random.default_rng(0), set()
    while len(seen) < max_splits:
        first = tuple(sorted(rng.choice(n_rep, size=half, replace=False).tolist()))
        if n_rep % 2 == 0 and 0 not in first:
            first = tuple(j for j in range(n_rep) if j not in first)
        seen.add(first)
    return sorted(seen)


def _rowwise_pearson(xb, yb):
    """Pearson r of each row pair of ``xb``, ``yb`` (both (B, n), no constant row) -> (B,)."""
    xc = xb - xb.mean(axis=1, keepdims=True)
    yc = yb - yb.mean(axis=1, keepdims=True)
    r = (xc * yc).sum(axis=1) / np.sqrt((xc ** 2).sum(axis=1) * (yc ** 2).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


def _rowwise_kendall(xb, yb, max_elements: int = _KENDALL_CHUNK_ELEMENTS):
    """Kendall tau-b of each row pair (both (B, n)) -> (B,), in chunks of <= max_elements entries.

    tau_b = sum_ij sign(x_i - x_j) sign(y_i - y_j) / sqrt(sum_ij sign(x_i - x_j)^2 sum_ij sign(y_i - y_j)^2).
    """
    n = xb.shape[1]
    chunk = max(1, max_elements // (n * n))
    out = np.empty(len(xb))
    for start in range(0, len(xb), chunk):
        sx = np.sign(xb[start:start + chunk, :, None] - xb[start:start + chunk, None, :])
        sy = np.sign(yb[start:start + chunk, :, None] - yb[start:start + chunk, None, :])
        num = (sx * sy).sum(axis=(1, 2))
        out[start:start + chunk] = num / np.sqrt(np.abs(sx).sum(axis=(1, 2)) * np.abs(sy).sum(axis=(1, 2)))
    return np.clip(out, -1.0, 1.0)


def bootstrap_distribution(x, y, method: str = "pearson", n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of a correlation over resampled pairs: (n_used,) with n_used <= n_boot.

    Resample b draws the pair indices ``np.random.default_rng(seed).integers(0, n, (n_boot, n))[b]``
    (with replacement); resamples whose x or whose y is constant are skipped (the coefficient is
    undefined there), and more than ``MAX_SKIPPED_FRACTION`` of them skipped is an error (too few
    distinct values for a bootstrap). Pearson, Spearman and (up to ``KENDALL_VECTORISED_MAX_PAIRS`` pairs) Kendall are
    vectorised over resamples; weighted Kendall loops over them.
    """
    if method not in METHODS:
        raise UnknownNameError("correlation method", method, METHODS)
    if int(n_boot) != n_boot or n_boot < 1:
        raise TaskrelError(f"n_boot must be a positive integer, got {n_boot!r}")
    x, y = _check(x, y)
    idx = np.random.default_rng(as_seed(seed)).integers(0, x.size, size=(int(n_boot), x.size))
    xb, yb = x[idx], y[idx]
    keep = (np.ptp(xb, axis=1) > 0) & (np.ptp(yb, axis=1) > 0)
    n_skipped = int(n_boot - keep.sum())
    if n_skipped > MAX_SKIPPED_FRACTION * n_boot:
        raise TaskrelError(
            f"{n_skipped} of {n_boot} bootstrap resamples have a constant x or y (more than "
            f"{MAX_SKIPPED_FRACTION:.0%}): too few distinct values ({x.size} pairs) for a bootstrap")
    xb, yb = xb[keep], yb[keep]
    if method == "pearson":
        return _rowwise_pearson(xb, yb)
    if method == "spearman":
        return _rowwise_pearson(stats.rankdata(xb, axis=1), stats.rankdata(yb, axis=1))
    if method == "kendall" and x.size <= KENDALL_VECTORISED_MAX_PAIRS:
        return _rowwise_kendall(xb, yb)
    statistic = {"kendall": stats.kendalltau, "weighted_kendall": stats.weightedtau}[method]
    return np.array([statistic(a, b).statistic for a, b in zip(xb, yb)])


@dataclass(frozen=True)
class BootstrapCI:
    """A correlation with its percentile-bootstrap interval [low, high] at confidence ``level``."""

    method: str
    estimate: float   # the coefficient on the original pairs
    low: float
    high: float
    level: float
    n_boot: int       # resamples drawn
    n_used: int       # resamples kept (x and y not constant)


def bootstrap_ci(x, y, method: str = "pearson", n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> BootstrapCI:
    """Percentile-bootstrap confidence interval of ``METHODS[method](x, y)`` over resampled pairs.

    low, high = the (1 - level)/2 and (1 + level)/2 quantiles of ``bootstrap_distribution``
    (same resamples, same skipping rule); deterministic given ``seed``.
    """
    if not 0 < level < 1:
        raise TaskrelError(f"level must lie strictly between 0 and 1, got {level!r}")
    draws = bootstrap_distribution(x, y, method=method, n_boot=n_boot, seed=seed)
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return BootstrapCI(method=method, estimate=METHODS[method](x, y), low=float(low), high=float(high),
                       level=float(level), n_boot=int(n_boot), n_used=int(draws.size))


def correlation_table(table, scores, truth: str = "accuracy", by: str = "target", method: str = "pearson"):
    """The paper's layout: one row per group (``by``, e.g. target) plus an ``Average`` row, one
    column per score: the correlation across the group's rows (e.g. encoders) of each score with
    ``truth``. A group whose score is constant or too small gets NaN; the Average skips NaN.

    ``table``: a pandas DataFrame with the columns ``by``, ``truth`` and every name in ``scores``.
    """
    import pandas as pd

    if method not in METHODS:
        raise UnknownNameError("correlation method", method, list(METHODS))
    missing = [c for c in (by, truth, *scores) if c not in table.columns]
    if missing:
        raise TaskrelError(f"correlation_table: columns {missing} are missing from the table")
    out = {}
    for group, g in table.groupby(by, sort=False):
        row = {}
        for s in scores:
            try:
                row[s] = METHODS[method](g[s], g[truth])
            except TaskrelError:
                row[s] = np.nan
        out[group] = row
    result = pd.DataFrame.from_dict(out, orient="index")[list(scores)]
    result.loc["Average"] = result.mean(skipna=True)
    result.index.name = by
    return result


def average_table(table, columns: dict, truth: str = "accuracy", by: str = "target",
                  methods=("pearson", "kendall", "weighted_kendall")):
    """The ``Average`` row of :func:`correlation_table` for each of ``methods``: one row per method,
    one column per score (``columns`` maps table columns to display names)."""
    import pandas as pd

    rows = [correlation_table(table, list(columns), truth=truth, by=by, method=m).rename(columns=columns)
            .loc["Average"].rename(m) for m in methods]
    return pd.DataFrame(rows)


def bootstrap_table(groups: dict, columns: dict, truth: str = "accuracy", by: str = "target",
                    n_boot: int = 1000, seed: int = 0):
    """Pearson r and its 95 % percentile-bootstrap interval (:func:`bootstrap_ci`) of every score
    per group of rows (e.g. target), for each table of ``groups`` ({name: table}).

    Columns group, ``by``, score (the display name of ``columns``), r, low, high; NaN where the
    coefficient is undefined (too few rows or a constant score).
    """
    import pandas as pd

    rows = []
    for name, table in groups.items():
        for key, g in table.groupby(by, sort=False):
            for col, label in columns.items():
                try:
                    ci = bootstrap_ci(g[col], g[truth], n_boot=n_boot, seed=seed)
                    row = {"r": ci.estimate, "low": ci.low, "high": ci.high}
                except TaskrelError:
                    row = {"r": np.nan, "low": np.nan, "high": np.nan}
                rows.append({"group": name, by: key, "score": label, **row})
    return pd.DataFrame(rows)


def scores_long(table, columns: dict, id_vars=("encoder", "target", "group", "accuracy")):
    """``table`` (one row per encoder and target, one column per score) in long format: one row
    per (encoder, target, score), columns ``id_vars``, score (display name of ``columns``) and
    score_value; the input to ``plots.scores_vs_accuracy`` and ``widgets.score_explorer``."""
    long = table.melt(id_vars=list(id_vars), value_vars=list(columns), var_name="score", value_name="score_value")
    long["score"] = long["score"].map(columns)
    return long


def true_vs_pseudo_table(true_fits, pseudo_fits, group: str, code_fits=None):
    """Pearson r of task-relatedness (``value``) with ``accuracy`` per target (plus Average) for
    the fits with true labels and with pseudo-labels, on the rows of ``group`` whose W did not fail
    (``value_failed``): columns "true labels", "pseudo-labels".

    Pass both with the same W (``tables.with_theorem_wasserstein``) to compare like with like;
    ``code_fits``: the labelled fits with the code's W (notebook 04's values), shown beside them as
    the column "true labels, code's W"."""
    import pandas as pd

    t, p = (x[(x.group == group) & ~x.value_failed] for x in (true_fits, pseudo_fits))
    table = pd.DataFrame({"true labels": correlation_table(t, ["value"])["value"],
                          "pseudo-labels": correlation_table(p, ["value"])["value"]})
    if code_fits is not None:
        c = code_fits[(code_fits.group == group) & ~code_fits.value_failed]
        table["true labels, code's W"] = correlation_table(c, ["value"])["value"]
    return table
