"""Notebook 05's reading of its own numbers: task-relatedness without target labels and with a fraction
of the target data.

Each function returns a Markdown string built from the tables passed in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import TERM_NAMES, finite_rows, formatted, number, signed, strength


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


def _span(values, fmt: str) -> str:
    """``a`` or ``a to b`` (min to max of the finite ``values``), formatted; ``n/a`` when none is finite."""
    v = [x for x in values if np.isfinite(x)]
    if not v:
        return "n/a"
    lo, hi = formatted(min(v), fmt), formatted(max(v), fmt)
    return lo if lo == hi else f"{lo} to {hi}"


def label_dependence_reading(dependence: pd.DataFrame) -> str:
    """Why the label-free value tracks the labelled one (``dependence``: ``drivers.label_dependence``,
    one row per target): the terms' shares of the value's variance, how far W depends on the labels
    (shuffled test labels), where the pseudo-labels' W lands, and the zoo's spread of W against the
    change the labels make."""
    if dependence.empty:
        return "**Why does the value without labels follow the value with them?** No pair has all three fits."
    d = dependence
    share = {t: _span(d[f"share_{t}"], ".0%") for t in TERM_NAMES}
    w_each = "; ".join(f"`{r.target}` {r.w_true:.2f} / {r.w_pseudo:.2f} / {r.w_shuffled:.2f}" for r in d.itertuples())
    rises = d.w_shuffled - d.w_true
    close = bool(((d.w_pseudo - d.w_true).abs() <= 0.25 * rises.abs()).all() and (rises > 0).all())
    worst = d.loc[d.agreement.idxmin()]
    ratio = d.w_spread / d.w_change.where(d.w_change > 0)
    text = [
        "**Why does the value without labels follow the value with them?** Both with the theorem's W (unrounded). "
        f"Task-relatedness is L_C + H + tau W; across the main zoo, per target, the re-weighted reference loss "
        f"L_C carries {share['reweighted_reference_loss']} of the label-free value's variance, the distribution "
        f"mismatch tau W {share['distribution_mismatch']}, the label mismatch H {share['label_mismatch']}. L_C reads "
        "no target label except through the class prior D, and its values with and without labels correlate at "
        f"r = {_span(d.r_reweighted_reference_loss, '+.2f')}.",
        f"W does depend on the labels: mean W with true / pseudo / shuffled target-test labels (the labelled fit "
        f"evaluated with classes that mean nothing): {w_each}."]
    if close:
        text.append("The label-free fit labels each target point by the reference classes its mapped point falls "
                    "among (through B), so its classes lie where the mapped reference classes are and its W stays "
                    f"close to the true labels', even where its labels agree with them on only {worst.agreement:.0%} "
                    f"(`{worst.target}`).")
    else:
        text.append(f"Where its labels agree least with the true ones ({worst.agreement:.0%} on `{worst.target}`), "
                    f"W without labels ends at {worst.w_pseudo:.2f} against {worst.w_true:.2f} with them.")
    text.append(f"Across the zoo W varies with the encoder (std {_span(d.w_spread, '.2f')}) "
                + (f"{_span(ratio, '.0f')} times as much as the labels move it (std of the change "
                   f"{_span(d.w_change, '.2f')})" if np.isfinite(ratio).any() else "while the labels do not move it")
                + f", hence r = {_span(d.r_value, '+.2f')} between the two values per target"
                + (": the label-free value reproduces the labelled one, which says little about whether its "
                   "pseudo-labels are right." if (d.r_value >= 0.9).all() else "."))
    return " ".join(text)


def label_free_summary(true_vs_pseudo: pd.DataFrame, by_fraction: pd.DataFrame,
                       dependence: pd.DataFrame | None = None) -> str:
    """Notebook 05's findings in bullets: the average Pearson r with true labels, with pseudo-labels
    (``true_vs_pseudo``: targets + Average rows, both with the same W), why the two values agree
    (``dependence``: ``drivers.label_dependence``, optional) and with the smallest and the full
    fraction (``by_fraction``: columns fraction, seed, target, pearson_r)."""
    avg = true_vs_pseudo.loc["Average"]
    mean = by_fraction.groupby(["fraction", "target"])["pearson_r"].mean().groupby("fraction").mean()
    lo, hi = mean.index.min(), mean.index.max()
    lines = [f"* Average Pearson r of task-relatedness with fine-tuned accuracy (negative is good, both with the "
             f"theorem's W): {signed(avg['true labels'])} with the target's labels, {signed(avg['pseudo-labels'])} "
             "without them."]
    if dependence is not None and len(dependence):
        lines.append(f"* The two values agree (r {_span(dependence.r_value, '+.2f')} per target) while the pseudo-labels "
                     f"match the true ones on {_span(dependence.agreement, '.0%')} of the points: W varies "
                     f"{_span(dependence.w_spread, '.2f')} (std) across the zoo and the labels move it by "
                     f"{_span(dependence.w_change, '.2f')}.")
    steps = ", ".join(f"{f:.0%} {signed(v)}" for f, v in mean.items())
    lines.append(f"* With a fraction of the target data (mean over targets and seeds): {steps}"
                 + (f"; from {lo:.0%} to {hi:.0%} the average moves by {mean[hi] - mean[lo]:+.2f}." if lo < hi else "."))
    return "\n".join(lines)
