"""Notebook 03's reading of its own numbers: the bound's terms over the zoo, the gap to the probe, the
ordering, the start of B and a longer-trained reference encoder.

Each function returns a Markdown string built from the tables passed in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import TERM_NAMES, finite_rows, number, signed, strength


def bound_terms_reading(table: pd.DataFrame, terms=tuple(TERM_NAMES)) -> str:
    """Which of the bound's three ``terms`` carries task-relatedness (``value`` = their sum), per
    target: each term's share of the mean value. ``table``: one row per (encoder, target)."""
    rows = finite_rows(table, ["value", *terms])
    if rows.empty:
        return "**What makes up the bound?** No pair has a finite task-relatedness in this run."
    means = rows.groupby("target", sort=False)[["value", *terms]].mean()
    parts = []
    for target, m in means.iterrows():
        top = max(terms, key=lambda t: m[t])
        parts.append(f"on `{target}` {TERM_NAMES.get(top, top)} ({m[top] / m['value']:.0%} of a mean "
                     f"task-relatedness of {m['value']:.2f})" if m["value"] > 0 else
                     f"on `{target}` a mean task-relatedness of {m['value']:.2f}")
    overall = {t: rows[t].mean() for t in terms}
    top = max(overall, key=overall.get)
    return (f"**What makes up the bound?** The largest term, as a share of the mean value: {'; '.join(parts)}. "
            f"Over all {len(rows)} pairs the largest is {TERM_NAMES.get(top, top)} (mean {overall[top]:.2f}); "
            f"the label mismatch averages {number(overall.get('label_mismatch', np.nan), '.3f')}.")


def bound_gap_reading(table: pd.DataFrame) -> str:
    """How large the gap between task-relatedness (``value``) and the probe's target loss
    (``probe_cross_entropy``) is, and whether the theorem's own inequality, value >= the
    transferred classifier's target loss (``target_cross_entropy``), holds on the test sets. The
    bound is on the transferred classifier's loss, not on the probe's: the ratio to the probe's
    loss says how far the value is from what a head trained on the target reaches, and the ratio
    to the transferred classifier's loss how loose the bound is."""
    rows = finite_rows(table, ["value", "probe_cross_entropy"])
    if rows.empty:
        return "**How large is the gap?** No pair has a finite task-relatedness and probe loss in this run."
    gap = rows["value"] - rows["probe_cross_entropy"]
    ratio = (rows["value"] / rows["probe_cross_entropy"]).median()
    text = [f"**How large is the gap?** Task-relatedness lies above the probe's loss in {int((gap > 0).sum())} of "
            f"{len(rows)} pairs; the gap is {gap.mean():.2f} on average ({gap.min():.2f} to {gap.max():.2f}), "
            f"so task-relatedness is about {ratio:.1f} times the probe's loss (median). The theorem does not bound "
            "the probe's loss (the probe learns from the target's own labels); it bounds the transferred "
            "classifier's."]
    if "target_cross_entropy" in rows:
        held = finite_rows(rows, ["target_cross_entropy"])
        if len(held):
            ok = int((held["value"] >= held["target_cross_entropy"]).sum())
            positive = held[held["target_cross_entropy"] > 0]
            bounded = (positive["value"] / positive["target_cross_entropy"]).median() if len(positive) else np.nan
            text.append(f"Its inequality (task-relatedness at least the transferred classifier's loss "
                        f"on the target) holds on the test sets in {ok} of {len(held)} pairs"
                        + ("" if ok == len(held) else "; the others are finite-sample estimates that "
                           "dip below it")
                        + f". Against the loss it does bound, task-relatedness is about {number(bounded, '.1f')} "
                        "times as large (median): that ratio, not the one to the probe, says how loose the bound is.")
    return " ".join(text)


def ordering_reading(r_all: float, r_by_target: pd.Series, n_pairs: int | None = None) -> str:
    """Whether task-relatedness orders the pairs like the probe's loss: Pearson ``r_all`` over all
    pairs and ``r_by_target`` (target -> r across encoders); a positive r is the direction expected
    of an informative bound (the bound itself promises no ordering, and is not on the probe's loss)."""
    finite = {t: r for t, r in r_by_target.items() if np.isfinite(r)}
    positive = [t for t, r in finite.items() if r > 0]
    pairs = f" over all {n_pairs} pairs" if n_pairs else " over all pairs"
    if np.isfinite(r_all):
        promise = ("lower task-relatedness goes with lower probe loss, the ordering expected if the bound "
                   "is informative." if r_all > 0 and strength(r_all) != "weak" else
                   "at most a weak tendency in the expected direction." if r_all > 0 else
                   "here the ordering is not the expected one.")
        sign = "positive" if r_all > 0 else "negative"
        verdict = f"A {strength(r_all)} {sign} r{pairs} ({signed(r_all)}): {promise}"
    else:
        verdict = f"r{pairs} is undefined in this run (too few pairs, or a constant column)."
    listed = ", ".join(f"`{t}` {signed(r)}" for t, r in finite.items())
    within = (f" Within one target (ranking the encoders) r is {listed}: "
              f"positive on {len(positive)} of {len(finite)} targets." if finite else
              " Within one target r is undefined (too few encoders).")
    return (f"**Does task-relatedness order the pairs like transferability?** {verdict}{within} The r over all pairs "
            "mixes targets of different difficulty; the within-target r is the one that ranks encoders.")


def b_init_reading(effect: pd.DataFrame) -> str:
    """The start of B against the bound and the ordering (``effect``: columns b_init, "mean value",
    "mean gap", "pearson r (all pairs)", one row per start)."""
    rows = [(r["b_init"], r["mean value"], r["pearson r (all pairs)"]) for _, r in effect.iterrows()]
    if len(rows) < 2:
        name, value, r = rows[0]
        return (f"**The start of B.** Only the `{name}` start ran (mean task-relatedness {number(value, '.2f')}, "
                f"r {signed(r)}); set `b_init_starts = [\"random\", \"class_means\"]` to compare the two starts.")
    finite = [row for row in rows if np.isfinite(row[1])]
    if not finite:
        return "**The start of B.** No start gave a finite mean task-relatedness in this run."
    tight, loose = min(finite, key=lambda row: row[1]), max(finite, key=lambda row: row[1])
    same_sign = all(np.isfinite(row[2]) and np.sign(row[2]) == np.sign(rows[0][2]) for row in rows)
    return (f"**The start of B.** The `{tight[0]}` start gives the tighter bound (mean {tight[1]:.2f} against "
            f"{loose[1]:.2f} for `{loose[0]}`). Pearson r over all pairs: "
            + ", ".join(f"`{n}` {signed(r)}" for n, _, r in rows)
            + (": the ordering keeps its sign." if same_sign else ": the sign of the ordering depends on the start."))


def reference_training_reading(longer: pd.DataFrame, related: str | None = None) -> str:
    """How task-relatedness (``value``) and the reference accuracy move from the fewest to the most
    ``epochs`` of reference training, per target; ``related``: the target the paper's claim is about."""
    first, last = longer["epochs"].min(), longer["epochs"].max()
    at = longer.set_index(["epochs", "target"])
    changes = {t: at.loc[(last, t), "value"] - at.loc[(first, t), "value"] for t in dict.fromkeys(longer.target)}
    acc = (longer[longer.epochs == last]["reference_accuracy"].mean()
           - longer[longer.epochs == first]["reference_accuracy"].mean())
    fell = [t for t, d in changes.items() if np.isfinite(d) and d < 0]
    text = [f"**Does a better reference encoder help?** From {first} to {last} epochs the reference accuracy "
            f"changes by {number(acc, '+.3f')}; task-relatedness changes by "
            + ", ".join(f"`{t}` {number(d, '+.3f')}" for t, d in changes.items())
            + f": it falls on {len(fell)} of {len(changes)} targets."]
    if related is not None and related in changes:
        d = changes[related]
        if not np.isfinite(d):
            text.append(f"On the related target `{related}` the change cannot be read (not finite).")
        else:
            verdict = "falls, as the paper claims" if d < 0 else "does not fall, against the paper's claim"
            text.append(f"On the related target `{related}` it {verdict}. One encoder and one seed: a tendency "
                        "to look at, not a test.")
    return " ".join(text)


def bound_summary(table: pd.DataFrame, r_all: float, changes: dict, related: str | None = None) -> str:
    """Notebook 03's findings in three bullets: the gap (``table``: value, probe_cross_entropy),
    the ordering (``r_all``), the longer reference training (``changes``: target -> change in value)."""
    rows = finite_rows(table, ["value", "probe_cross_entropy"])
    gap = rows["value"] - rows["probe_cross_entropy"]
    d = changes.get(related, np.nan) if related is not None else np.nan
    return "\n".join([
        f"* Task-relatedness sat above the probe's loss in {int((gap > 0).sum())} of {len(rows)} pairs, by "
        f"{number(gap.mean() if len(gap) else np.nan, '.2f')} on average: far from the probe's loss in value "
        "(the bound is on the transferred classifier's loss, not the probe's).",
        f"* Across the pairs, task-relatedness and the probe's loss correlate with r = {signed(r_all)} "
        f"({strength(r_all)}; an informative bound would give a positive r).",
        f"* Longer reference training changed task-relatedness on the related target `{related}` by {number(d, '+.3f')}."
        if related is not None else "* No related target is named for the longer-training check."])
