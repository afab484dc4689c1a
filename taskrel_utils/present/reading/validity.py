"""Prose on whether the correlation study tests the paper's claim, read from a run's own tables.

Four questions, each answered from the numbers passed in (never from an earlier run): does
pre-training help on each target (the premise)? does fine-tuning measure transfer (does it end at
or above the frozen probe)? what is the headline, with its interval? and what drives
task-relatedness across the zoo? The functions return Markdown strings.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import quoted_names, signed

TERM_LABELS = {"reweighted_reference_loss": "re-weighted reference loss", "label_mismatch": "label mismatch",
               "distribution_mismatch": "distribution mismatch (tau W)", "task_relatedness": "task-relatedness"}


def _targets(names) -> str:
    """Every name, quoted (``common.quoted_names`` without its cut), or "none"."""
    names = list(names)
    return quoted_names(names, limit=len(names)) or "none"


def premise_reading(premise: pd.DataFrame) -> str:
    """Which targets pass the premise check (``premise``: ``premise.premise_table``)."""
    if not premise.measured.any():
        return ("**The premise.** Not measured in this run (the profile sets no premise check, or the random-init "
                "encoder it compares with is not in this run's zoo): every target counts as related.")
    threshold = float(premise.threshold.iloc[0])
    parts = "; ".join(f"`{r.target}` {r.main_median_probe:.3f} against {r.random_probe:.3f} ({r.gain:+.3f})"
                      for r in premise.itertuples())
    related = premise.target[premise.related].tolist()
    unrelated = premise.target[~premise.related].tolist()
    return (f"**The premise: does pre-training help?** Median frozen-probe accuracy of the main zoo against the "
            f"random-init encoder's: {parts}. With the threshold fixed in the profile beforehand "
            f"({threshold:+.2f}), the related targets are {_targets(related)}; the unrelated ones are "
            f"{_targets(unrelated)}. Only the related targets test the paper's claim; the others are "
            "reported beside them and never averaged in.")


def below_probe_reading(ft: pd.DataFrame, margin: float = 0.01, goal: float = 0.9) -> str:
    """How many pairs end more than ``margin`` below their frozen logistic probe (columns encoder,
    target, accuracy, probe_accuracy), against the goal of at most ``1 - goal`` of them; the pairs
    below are counted per target and per encoder (``tables_display.below_probe_table`` lists them)."""
    rows = ft[np.isfinite(ft.accuracy) & np.isfinite(ft.probe_accuracy)]
    below = rows[rows.accuracy < rows.probe_accuracy - margin]
    share = 1 - len(below) / max(len(rows), 1)
    text = (f"**Does fine-tuning measure transfer?** A fine-tuned model should not end below a linear probe on its "
            f"own frozen features. {len(rows) - len(below)} of {len(rows)} pairs ({share:.0%}) end at or above the "
            f"probe minus {margin:.2f} (goal: {goal:.0%})")
    if not len(below):
        return text + "."

    def counts(column):
        n = below[column].value_counts(sort=False)
        return ", ".join(f"`{k}` {v}" for k, v in n.sort_values(ascending=False, kind="stable").items())

    return (text + f". The {len(below)} below it, by target: {counts('target')}; by encoder: {counts('encoder')} "
            "(listed in the table below).")


def headline_reading(headline: dict, paper_average: float | None, related, unrelated: dict | None = None) -> str:
    """The one sentence to repeat: TR's average Pearson r with fine-tuned accuracy over the related
    targets (``headline``: ``drivers.average_r_interval``), beside the paper's average and the
    unrelated group's (``unrelated``: the same dict, or None)."""
    text = (f"**Headline.** Across the main zoo, task-relatedness correlates with fine-tuned accuracy at "
            f"r = {signed(headline['r'])} (95 % interval {signed(headline['low'])} to {signed(headline['high'])}, "
            f"bootstrap over encoders) on average over the {headline['n_targets']} related targets "
            f"({_targets(related)}); negative is good")
    text += (f", and the paper reports {signed(paper_average)} for its zoo." if paper_average is not None else ".")
    if unrelated is not None:
        text += (f" On the unrelated targets, where pre-training does not help, it is {signed(unrelated['r'])} "
                 f"({signed(unrelated['low'])} to {signed(unrelated['high'])}).")
    return text


def attribution_reading(attribution: pd.DataFrame, related) -> str:
    """Per group of targets, the term with the largest share of task-relatedness's variance and the
    correlations of task-relatedness with the fine-tuned accuracy and with the probe's accuracy
    (``attribution``: ``drivers.term_attribution``)."""
    att = attribution.set_index(["target", "quantity"])
    parts = []
    for target in dict.fromkeys(attribution.target):
        shares = {q: att.loc[(target, q), "variance_share"] for q in TERM_LABELS if q != "task_relatedness"
                  and (target, q) in att.index}
        top = max(shares, key=lambda q: shares[q] if np.isfinite(shares[q]) else -np.inf)
        tr = att.loc[(target, "task_relatedness")]
        parts.append(f"`{target}`{' (related)' if target in related else ''}: {TERM_LABELS[top]} "
                     f"{shares[top]:.0%} of the variance; TR's r with fine-tuned accuracy {signed(tr.r_accuracy)}, "
                     f"with the probe's {signed(tr.r_probe_accuracy)}")
    tr = att.xs("task_relatedness", level="quantity")
    upside_down = [t for t, r in tr.r_probe_accuracy.items() if r > 0.5]
    return ("**What orders the zoo?** The share of task-relatedness's variance across encoders that each term "
            "carries (cov(term, TR) / var(TR), which add up to 1), per target: " + "; ".join(parts) + ". "
            + (f"On {_targets(upside_down)} task-relatedness rises with the probe's accuracy (r > +0.5, the wrong "
               "sign for a lower-is-better score): there it ranks encoders by how well their frozen features "
               "separate the target, upside down." if upside_down else
               "On no target does task-relatedness rise strongly with the probe's accuracy (r > +0.5)."))


def mechanism_reading(mechanism: pd.DataFrame) -> str:
    """Per target, the Pearson r of the Wasserstein term with the features' spread and with the
    probe's accuracy (``mechanism``: rows targets, columns ``w_vs_spread``, ``w_vs_probe``,
    ``spread_vs_probe``), and what they say about where the distribution mismatch misleads."""
    parts = "; ".join(f"`{t}` W vs spread {signed(r.w_vs_spread)}, W vs probe {signed(r.w_vs_probe)}, "
                      f"spread vs probe {signed(r.spread_vs_probe)}" for t, r in mechanism.iterrows())
    collapse = [t for t, r in mechanism.iterrows() if r.w_vs_spread > 0.5]
    farther = [t for t, r in mechanism.iterrows() if r.w_vs_probe > 0.4]
    nearer = [t for t, r in mechanism.iterrows() if r.w_vs_probe < -0.3]
    text = ("**A mechanism: do collapsed features look close?** Across the main zoo (spread: the participation "
            f"ratio of the target features' correlation eigenvalues): {parts}. "
            + (f"On {_targets(collapse)} encoders whose target features spread over fewer directions get a smaller "
               "Wasserstein term: the distribution mismatch rewards collapse. " if collapse else
               "No target shows a strong link between the spread of the features and W (r > +0.5): collapse does not "
               "explain it. "))
    if farther:
        text += (f"On {_targets(farther)} W *grows* with the probe's accuracy (r > +0.4): the encoders whose features "
                 "separate the target best are the farthest from the mapped reference, so the distribution "
                 "mismatch ranks them last")
        text += (f"; on {_targets(nearer)} it shrinks as it should (r < -0.3)." if nearer else ".")
    return text


def stability_reading(stability: pd.DataFrame, summary: pd.DataFrame, score: str = "Ours (TR)") -> str:
    """The spread of ``score``'s average r over the setups, per family, and how often it beats each
    baseline (``stability``, ``summary``: ``stability.stability_table`` and ``stability_summary``)."""
    mine = stability[stability.score == score]
    default = mine[mine.family == "default"].r.iloc[0]
    fams = "; ".join(f"{fam} {signed(g.r.min())} to {signed(g.r.max())}" for fam, g in mine.groupby("family", sort=False)
                     if fam != "default")
    beats = summary[f"{score} beats it"].drop(score, errors="ignore").dropna()
    row = summary.loc[score]
    return (f"**Stability.** {score}'s average r is {signed(default)} in the headline setup and ranges "
            f"{signed(row.min_r)} to {signed(row.max_r)} over {int(row.n_setups)} setups (median {signed(row.median_r)}); "
            f"by family: {fams}. It points the right way in {row.right_sign:.0%} of them. Signs corrected, it beats "
            + ", ".join(f"{s} in {v:.0%}" for s, v in beats.sort_values(ascending=False).items())
            + " of the setups.")
