"""Prose that reads a run's own numbers: the notebooks' "reading the results" paragraphs.

Every sentence is built from the tables passed in, so a notebook never quotes an earlier run.
The functions return Markdown strings (``IPython.display.Markdown`` renders them).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .published import LOWER_IS_BETTER  # noqa: F401  (re-exported: the readings' sign convention)


def signed(r: float) -> str:
    """``+0.42`` / ``-0.42`` / ``n/a``."""
    return "n/a" if r is None or not np.isfinite(r) else f"{r:+.2f}"


def good_direction(score: str, r: float) -> bool:
    """Whether a correlation ``r`` of ``score`` with accuracy points the right way."""
    return bool(np.isfinite(r) and (r < 0 if score in LOWER_IS_BETTER else r > 0))


def correlation_reading(pearson: pd.DataFrame, score: str = "Ours (TR)", paper: pd.DataFrame | None = None,
                        intervals: pd.DataFrame | None = None, group: str = "the main zoo") -> str:
    """A paragraph on ``score``'s Pearson r per target (``pearson``: targets + "Average" as rows,
    scores as columns), its rank among the scores (sign-corrected average), the bootstrap
    intervals (``intervals``: columns target, score, low, high) and the paper's average."""
    col = pearson[score]
    targets = [t for t in pearson.index if t != "Average"]
    right = [t for t in targets if good_direction(score, col[t])]
    per_target = ", ".join(f"`{t}` {signed(col[t])}" for t in targets)
    text = [f"**{score} on {group}.** Pearson r with the fine-tuned accuracy: {per_target}; "
            f"average {signed(col['Average'])}. It points the right way "
            f"({'negative' if score in LOWER_IS_BETTER else 'positive'}) on {len(right)} of {len(targets)} targets."]
    avg = pearson.loc["Average"]
    corrected = {s: (-v if s in LOWER_IS_BETTER else v) for s, v in avg.items() if np.isfinite(v)}
    if score in corrected:
        ranking = sorted(corrected, key=corrected.get, reverse=True)
        best = ranking[0]
        text.append(f"Sign-corrected, its average ranks {ranking.index(score) + 1} of {len(ranking)} scores "
                    f"(best: {best}, {signed(avg[best])}).")
    if intervals is not None and len(intervals):
        mine = intervals[(intervals.score == score) & intervals.low.notna()]
        excl = [r.target for r in mine.itertuples() if (r.high < 0 if score in LOWER_IS_BETTER else r.low > 0)]
        widths = (mine.high - mine.low).to_numpy()
        if len(widths):
            text.append(f"Its 95 % bootstrap intervals over encoders are {widths.min():.2f} to {widths.max():.2f} "
                        f"wide; {len(excl)} of {len(mine)} exclude zero on the right side"
                        + (f" ({', '.join(f'`{t}`' for t in excl)})." if excl else "."))
    if paper is not None and score in paper.columns and "Average" in paper.index:
        text.append(f"The paper reports an average of {signed(paper.loc['Average', score])} for its CLIP-scale zoo.")
    return " ".join(text)


def reliability_reading(reliability: pd.Series, goal: float = 0.8) -> str:
    """A sentence on the split-half Kendall tau of the ground truth per target."""
    ok = [t for t, v in reliability.items() if v >= goal]
    parts = ", ".join(f"`{t}` {v:.2f}" for t, v in reliability.items())
    return (f"**How reliable is the ground truth?** Split-half Kendall tau of the zoo's ranking (mean of half "
            f"the seeds against the other half): {parts}. {len(ok)} of {len(reliability)} targets reach "
            f"{goal:.1f}; a correlation with a ranking cannot be trusted beyond that ranking's own reliability.")


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
