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
:func:`label_dependence` says why task-relatedness without target labels tracks the labelled value
even where the pseudo-labels disagree with the true ones (notebook 05).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import correlation
from ..core.errors import TaskrelError

__all__ = ["TERMS", "term_attribution", "average_r_interval", "feature_spread", "label_dependence"]

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


def _variance_shares(g: pd.DataFrame, terms, value: str = "value") -> dict:
    """cov(term, value) / var(value) across the rows of ``g``, per term (NaN when value is constant)."""
    total = g[value].to_numpy(dtype=float)
    var = total.var()
    return {t: (float(np.mean((g[t].to_numpy(dtype=float) - g[t].mean()) * (total - total.mean())) / var)
                if var > 0 else float("nan")) for t in terms}


def label_dependence(true_fits: pd.DataFrame, pseudo_fits: pd.DataFrame, shuffled_fits: pd.DataFrame,
                     terms=TERMS) -> pd.DataFrame:
    """Why the label-free value tracks the labelled one: one row per target, across the encoders
    found in all three tables (every value with the theorem's W, unrounded, so that only the labels
    differ; ``tables.with_theorem_wasserstein``).

    ``true_fits``, ``pseudo_fits``: :func:`tables.relatedness_table` rows with and without target
    labels (``pseudo_fits`` with ``pseudo_label_accuracy``); ``shuffled_fits``: the labelled fits
    evaluated with the target's test labels shuffled (``relatedness_table(..., shuffle_test_labels=s)``).
    Columns: ``agreement`` (mean matched agreement of the pseudo-labels), ``r_value`` (Pearson r of
    the two values across encoders), ``share_<term>`` (the term's share of the label-free value's
    variance across encoders, adding up to 1), ``r_<term>`` (r of the term with and without labels),
    ``w_true``, ``w_pseudo``, ``w_shuffled`` (mean W: true labels, pseudo-labels, shuffled test
    labels), ``w_spread`` (W's std across encoders, true labels) and ``w_change`` (the std across
    encoders of W without labels minus W with them), ``n_encoders``.
    """
    from .tables import with_theorem_wasserstein

    keys = ["encoder", "target"]
    cols = keys + ["value", *terms, "wasserstein_theorem"]
    true, pseudo, shuffled = (with_theorem_wasserstein(f)[cols] for f in (true_fits, pseudo_fits, shuffled_fits))
    pseudo = pseudo.merge(pseudo_fits[keys + ["pseudo_label_accuracy"]], on=keys)
    both = (true.merge(pseudo, on=keys, suffixes=("_true", "_pseudo"))
            .merge(shuffled.rename(columns={c: f"{c}_shuffled" for c in cols if c not in keys}), on=keys))
    rows = []
    for target, g in both.groupby("target", sort=False):
        label_free = g.rename(columns={f"{c}_pseudo": c for c in ("value", *terms)})
        w_true, w_pseudo = g.wasserstein_theorem_true, g.wasserstein_theorem_pseudo
        rows.append({"target": target, "n_encoders": len(g), "agreement": float(g.pseudo_label_accuracy.mean()),
                     "r_value": _r(g.value_true, g.value_pseudo),
                     **{f"share_{t}": v for t, v in _variance_shares(label_free, terms).items()},
                     **{f"r_{t}": _r(g[f"{t}_true"], g[f"{t}_pseudo"]) for t in terms},
                     "w_true": float(w_true.mean()), "w_pseudo": float(w_pseudo.mean()),
                     "w_shuffled": float(g.wasserstein_theorem_shuffled.mean()),
                     "w_spread": float(w_true.std(ddof=0)), "w_change": float((w_pseudo - w_true).std(ddof=0))})
    return pd.DataFrame(rows)
