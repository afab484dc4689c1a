"""What drives task-relatedness across a zoo: its terms, its headline interval, and a mechanism.

Task-relatedness is a sum, TR = L_ref + L_label + tau W (re-weighted reference loss, label
mismatch, distribution mismatch). Across the encoders of one target the variance of the sum splits
exactly into the terms' shares,

    var(TR) = sum_k cov(t_k, TR),   share_k = cov(t_k, TR) / var(TR)   (the shares add up to 1),

so :func:`term_attribution` says which term orders the zoo, next to each term's Pearson r with the
fine-tuned accuracy and with the frozen probe's accuracy. :func:`average_r_interval` gives the
headline (the average over targets of the per-target r) a bootstrap interval that resamples the
encoders jointly across targets. :func:`feature_spread` measures how spread out an encoder's target
features are (the participation ratio of their correlation matrix's eigenvalues), for the
mechanism: do encoders whose features collapse get a small Wasserstein term?
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import correlation
from ..core.errors import TaskrelError

__all__ = ["TERMS", "term_attribution", "average_r_interval", "feature_spread"]

#: the three terms of task-relatedness, as the relatedness table names them (they sum to ``value``)
TERMS = ("reweighted_reference_loss", "label_mismatch", "distribution_mismatch")


def _r(x, y) -> float:
    try:
        return correlation.pearson(x, y)
    except TaskrelError:  # constant or too short: undefined
        return float("nan")


def term_attribution(table: pd.DataFrame, value: str = "task_relatedness", terms=TERMS,
                     truths=("accuracy", "probe_accuracy")) -> pd.DataFrame:
    """One row per (target, quantity) for quantity in ``terms`` and ``value``: its Pearson r across
    the encoders with each column of ``truths`` (``r_<truth>``) and its share of ``value``'s variance
    across the encoders (``variance_share`` = cov(term, value) / var(value); 1 for ``value``).

    ``table``: one row per (encoder, target) with the columns target, ``value``, ``terms`` and ``truths``.
    """
    missing = [c for c in ("target", value, *terms, *truths) if c not in table.columns]
    if missing:
        raise TaskrelError(f"term_attribution: columns {missing} are missing from the table")
    rows = []
    for target, g in table.groupby("target", sort=False):
        total = g[value].to_numpy(dtype=float)
        var = total.var()
        for q in (*terms, value):
            x = g[q].to_numpy(dtype=float)
            share = float(np.mean((x - x.mean()) * (total - total.mean())) / var) if var > 0 else float("nan")
            rows.append({"target": target, "quantity": q, "mean": float(x.mean()), "std": float(x.std()),
                         **{f"r_{t}": _r(x, g[t]) for t in truths}, "variance_share": share})
    return pd.DataFrame(rows)


def average_r_interval(table: pd.DataFrame, score: str, truth: str = "accuracy", n_boot: int = 2000,
                       level: float = 0.95, seed: int = 0) -> dict:
    """The average over targets of the per-target Pearson r of ``score`` with ``truth`` across the
    encoders, and its percentile-bootstrap interval: each resample draws the encoders with
    replacement (the same draw for every target, as the zoo is one sample of encoders) and averages
    the per-target r (resamples where a target's r is undefined are skipped).

    Returns ``{"r", "low", "high", "n_targets", "n_encoders", "n_used"}``.
    """
    pivot_s = table.pivot(index="encoder", columns="target", values=score)
    pivot_t = table.pivot(index="encoder", columns="target", values=truth).loc[pivot_s.index, pivot_s.columns]
    S, T = pivot_s.to_numpy(dtype=float), pivot_t.to_numpy(dtype=float)
    if S.shape[0] < 3 or not np.isfinite(S).all() or not np.isfinite(T).all():
        raise TaskrelError(f"average_r_interval: needs at least 3 encoders with {score} and {truth} on every target, "
                           f"got {S.shape[0]} encoders")
    r = float(np.mean([_r(S[:, j], T[:, j]) for j in range(S.shape[1])]))
    draws = np.random.default_rng(seed).integers(0, S.shape[0], (n_boot, S.shape[0]))
    stats = []
    for idx in draws:
        rs = [_r(S[idx, j], T[idx, j]) for j in range(S.shape[1])]
        if np.isfinite(rs).all():
            stats.append(np.mean(rs))
    if len(stats) < n_boot / 2:
        raise TaskrelError(f"average_r_interval: {n_boot - len(stats)} of {n_boot} resamples had a constant column; "
                           "too few distinct encoders for a bootstrap")
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return {"r": r, "low": float(low), "high": float(high), "n_targets": S.shape[1], "n_encoders": S.shape[0],
            "n_used": len(stats)}


def feature_spread(Z) -> float:
    """The participation ratio (sum lambda)^2 / sum lambda^2 of the eigenvalues of the correlation
    matrix of features ``Z`` (N, d): about the number of independent directions the features use
    (d for uncorrelated features, 1 when they collapse onto a line). Constant columns are left out."""
    Z = np.asarray(Z, dtype=np.float64)
    Z = Z[:, Z.std(0) > 1e-12]
    if Z.shape[1] == 0:
        return 0.0
    lam = np.clip(np.linalg.eigvalsh(np.corrcoef(Z, rowvar=False)), 0, None)
    return float(lam.sum() ** 2 / (lam ** 2).sum())
