"""Notebook 05's reading of its own numbers: task-relatedness without target labels and with a fraction
of the target data.

Each function returns a Markdown string built from the tables passed in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import TERM_NAMES, finite_rows, number, signed, strength


def pseudo_label_reading(true_vs_pseudo: pd.DataFrame, agreement: pd.DataFrame) -> str:
    """A paragraph on the true- vs pseudo-label Pearson table (rows targets + Average, columns
    "true labels", "pseudo-labels") and the matched agreement (encoders x targets)."""
    rows = [t for t in true_vs_pseudo.index if t != "Average"]
    pairs = ", ".join(f"`{t}` {signed(true_vs_pseudo.loc[t, 'true labels'])} / "
                      f"{signed(true_vs_pseudo.loc[t, 'pseudo-labels'])}" for t in rows)
    avg = true_vs_pseudo.loc["Average"]
    diff = avg["pseudo-labels"] - avg["true labels"]
    mean_agree = agreement.mean(axis=0)
    worst, best = mean_agree.idxmin(), mean_agree.idxmax()
    return (f"**True vs pseudo-labels.** Pearson r (true / pseudo): {pairs}; average {signed(avg['true labels'])} "
            f"with labels and {signed(avg['pseudo-labels'])} without ({'weaker' if diff > 0 else 'as strong or stronger'}"
            f" by {abs(diff):.2f}). The pseudo-labels agree with the hidden labels best on `{best}` "
            f"(mean {mean_agree[best]:.2f} over encoders) and worst on `{worst}` ({mean_agree[worst]:.2f}).")


def fraction_reading(by_fraction: pd.DataFrame) -> str:
    """A paragraph on the Pearson r per target as the target data shrinks (columns fraction,
    seed, target, pearson_r)."""
    mean = by_fraction.groupby(["target", "fraction"])["pearson_r"].mean().unstack("fraction")
    lo, hi = min(mean.columns), max(mean.columns)
    parts = ", ".join(f"`{t}` {signed(mean.loc[t, lo])} -> {signed(mean.loc[t, hi])}" for t in mean.index)
    avg_lo, avg_hi = mean[lo].mean(), mean[hi].mean()
    return (f"**Little target data.** Pearson r with {lo:.0%} of the target data -> with all of it "
            f"(mean over seeds): {parts}; averaged over targets {signed(avg_lo)} -> {signed(avg_hi)}.")


def pseudo_terms_reading(both: pd.DataFrame, terms=tuple(TERM_NAMES)) -> str:
    """What the label-free fit changes (``both``: relatedness rows with a ``labels`` column "true" /
    "pseudo"): the mean of each term with and without labels, and the Pearson r between the two
    values of the same (encoder, target) across the pairs whose W did not fail."""
    rows = both[~both.value_failed] if "value_failed" in both else both
    means = rows.groupby("labels")[["value", *terms]].mean()
    if not {"true", "pseudo"} <= set(means.index):
        return "**What changes without labels?** The run lacks fits with true or with pseudo-labels."
    moves = ", ".join(f"{TERM_NAMES.get(t, t)} {number(means.loc['true', t])} -> {number(means.loc['pseudo', t])}"
                      for t in terms)
    paired = (rows[rows.labels == "true"].merge(rows[rows.labels == "pseudo"], on=["encoder", "target"],
                                                suffixes=("_true", "_pseudo")))
    paired = finite_rows(paired, ["value_true", "value_pseudo"])
    ok = len(paired) >= 3 and paired.value_true.std() > 0 and paired.value_pseudo.std() > 0
    r = float(np.corrcoef(paired.value_true, paired.value_pseudo)[0, 1]) if ok else np.nan
    return (f"**What changes without labels?** Mean task-relatedness {number(means.loc['true', 'value'], '.2f')} with "
            f"labels -> {number(means.loc['pseudo', 'value'], '.2f')} without; by term: {moves}. Pair by pair, the two "
            f"values correlate with r = {signed(r)} over {len(paired)} pairs ({strength(r)}): "
            + ("the label-free fit orders the pairs much like the labelled one." if np.isfinite(r) and r >= 0.6 else
               "the label-free fit does not simply reproduce the labelled values."))


def label_free_summary(true_vs_pseudo: pd.DataFrame, by_fraction: pd.DataFrame) -> str:
    """Notebook 05's findings in bullets: the average Pearson r with true labels, with pseudo-labels
    (``true_vs_pseudo``: targets + Average rows) and with the smallest and the full fraction
    (``by_fraction``: columns fraction, seed, target, pearson_r)."""
    avg = true_vs_pseudo.loc["Average"]
    mean = by_fraction.groupby(["fraction", "target"])["pearson_r"].mean().groupby("fraction").mean()
    lo, hi = mean.index.min(), mean.index.max()
    return "\n".join([
        f"* Average Pearson r of task-relatedness with fine-tuned accuracy (negative is good): "
        f"{signed(avg['true labels'])} with the target's labels, {signed(avg['pseudo-labels'])} without them.",
        f"* With {lo:.0%} of the target data: {signed(mean[lo])}; with {hi:.0%}: {signed(mean[hi])} "
        "(mean over targets and seeds)."])
