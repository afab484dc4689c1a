"""Notebook 04's reading of its own numbers: the fine-tuned ground truth, its reliability, the
correlations with their intervals and ranks.

Each function returns a Markdown string built from the tables passed in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...study.published import LOWER_IS_BETTER, PAPER_COLUMNS
from .common import finite_rows, good_direction, number, signed

#: the scores a rank is counted among: the paper's table (its nine columns, task-relatedness included);
#: the extra columns (PACTran-Dir/Gamma, TR's transferred accuracy) never change a rank
RANKED_SCORES = tuple(PAPER_COLUMNS.values())


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
    rank, n, best = sign_corrected_rank(avg, score)
    if rank:
        text.append(f"Sign-corrected, its average {rank_words(rank, n)}"
                    + ("." if rank == 1 else f" (best: {best}, {signed(avg[best])})."))
    if intervals is not None and len(intervals):
        text.append(interval_reading(intervals, score))
    if paper is not None and score in paper.columns and "Average" in paper.index:
        text.append(f"The paper reports an average of {signed(paper.loc['Average', score])} for its zoo.")
    return " ".join(text)


def reliability_reading(reliability: pd.Series, goal: float = 0.8) -> str:
    """A sentence on the split-half Kendall tau of the ground truth per target."""
    ok = [t for t, v in reliability.items() if v >= goal]
    parts = ", ".join(f"`{t}` {v:.2f}" for t, v in reliability.items())
    return (f"**How reliable is the ground truth?** Split-half Kendall tau of the zoo's ranking (mean of half "
            f"the seeds against the other half): {parts}. {len(ok)} of {len(reliability)} targets reach "
            f"{goal:.1f}; a correlation with a ranking cannot be trusted beyond that ranking's own reliability.")


def finetune_reading(ft: pd.DataFrame, group: str = "main") -> str:
    """Is there anything to rank? Per target, the spread of the fine-tuned ``accuracy`` across the
    encoders of ``group`` against the seeds' mean ``accuracy_std`` (columns encoder, target, group)."""
    rows = ft[(ft.group == group) & np.isfinite(ft.accuracy)]
    parts = []
    for target, g in rows.groupby("target", sort=False):
        best = g.loc[g.accuracy.idxmax()]
        spread = g.accuracy.max() - g.accuracy.min()
        noise = g.accuracy_std.mean() if "accuracy_std" in g else np.nan
        parts.append(f"`{target}` {g.accuracy.min():.3f} to {g.accuracy.max():.3f} (best `{best.encoder}`"
                     + (f"; spread {spread / noise:.1f} times the seeds' mean std)" if np.isfinite(noise) and noise > 0
                        else ")"))
    if not parts:
        return "**Is there anything to rank?** No finite fine-tuned accuracy in this run."
    return (f"**Is there anything to rank?** Fine-tuned accuracy across the {group} zoo: {'; '.join(parts)}. "
            "A spread of only a few seed stds leaves the ranking to noise; the reliability below measures it.")


def top_pick_reading(table: pd.DataFrame, score: str = "task_relatedness", group: str = "main") -> str:
    """The encoder ``score`` ranks first on each target (lowest for scores in ``LOWER_IS_BETTER``)
    and what picking it costs in fine-tuned ``accuracy`` against the best encoder of ``group``."""
    rows = table[table.group == group] if "group" in table else table
    rows = finite_rows(rows, [score, "accuracy"])
    parts, lost = [], []
    for target, g in rows.groupby("target", sort=False):
        pick = g.loc[g[score].idxmin() if score in LOWER_IS_BETTER else g[score].idxmax()]
        best = g.loc[g.accuracy.idxmax()]
        lost.append(best.accuracy - pick.accuracy)
        parts.append(f"`{target}` `{pick.encoder}` ({pick.accuracy:.3f}"
                     + (", the best)" if pick.encoder == best.encoder
                        else f"; best `{best.encoder}` {best.accuracy:.3f})"))
    if not parts:
        return f"**Picking by `{score}`.** No finite score in this run."
    return (f"**Picking one encoder by `{score}`** ({'lowest' if score in LOWER_IS_BETTER else 'highest'} first): "
            f"{'; '.join(parts)}. The pick costs {np.mean(lost):.3f} accuracy on average against the best encoder.")


def sign_corrected_rank(avg: pd.Series, score: str) -> tuple[int, int, str]:
    """(rank of ``score``, number of finite scores ranked, best score) in a row of average
    correlations, signs flipped for lower-is-better scores; rank 0 when ``score`` is not finite.

    Only the paper's scores (:data:`RANKED_SCORES`) are ranked when the row has any besides
    ``score``, so that every reading of one run counts a rank among the same scores."""
    paper = [s for s in avg.index if s in RANKED_SCORES]
    among = paper if len(set(paper) - {score}) else list(avg.index)
    corrected = {s: (-v if s in LOWER_IS_BETTER else v) for s, v in avg[among].items() if np.isfinite(v)}
    ranking = sorted(corrected, key=corrected.get, reverse=True)
    return (ranking.index(score) + 1 if score in ranking else 0), len(ranking), (ranking[0] if ranking else "none")


def rank_words(rank: int, n: int) -> str:
    """``ranks 3 of 9 scores`` / ``ranks 1 of 9 scores, the best``: one wording for every reading."""
    return f"ranks {rank} of {n} scores" + (", the best" if rank == 1 else "")


def rank_reading(summary: pd.DataFrame, score: str = "Ours (TR)") -> str:
    """``score`` under each correlation method (``summary``: one row per method, one column per
    score, average over targets): its value, its sign-corrected rank among the paper's scores
    (:data:`RANKED_SCORES`; the table's extra columns are not ranked), and the best score."""
    parts = []
    for method, avg in summary.iterrows():
        rank, n, best = sign_corrected_rank(avg, score)
        where = ("undefined" if not rank else rank_words(rank, n) if rank == 1
                 else f"{rank_words(rank, n)}; best {best}")
        parts.append(f"{method.replace('_', ' ')} {signed(avg.get(score, np.nan))} ({where})")
    ranks = {sign_corrected_rank(avg, score)[0] for _, avg in summary.iterrows()}
    extra = [s for s in summary.columns if s not in RANKED_SCORES]
    among = (f" (ranked among the paper's scores, as above; {', '.join(extra)} not ranked)"
             if extra and len(extra) < len(summary.columns) - 1 else "")
    return (f"**Does the method of correlation matter?** {score}, averaged over targets{among}: {'; '.join(parts)}. "
            + ("Its rank is the same under every method." if len(ranks) == 1 else
               "Its rank moves with the method: with few encoders, rankings of scores are fragile."))


def correlation_summary(pearson: pd.DataFrame, reliability: pd.Series | None = None, score: str = "Ours (TR)") -> str:
    """Notebook 04's findings in bullets: ``score``'s average Pearson r on the main zoo (``pearson``:
    targets + Average, scores as columns), its sign-corrected rank, and the ground truth's reliability."""
    targets = [t for t in pearson.index if t != "Average"]
    right = [t for t in targets if good_direction(score, pearson.loc[t, score])]
    rank, n, best = sign_corrected_rank(pearson.loc["Average"], score)
    lines = [f"* {score}: average Pearson r {signed(pearson.loc['Average', score])}, the right sign on "
             f"{len(right)} of {len(targets)} targets.",
             "* Among the paper's scores (signs corrected) it " + ("ranks nowhere: its average is undefined."
                                                                    if not rank else f"{rank_words(rank, n)}."
                                                                    if rank == 1 else
                                                                    f"{rank_words(rank, n)}; the best is {best}.")]
    if reliability is not None and len(reliability):
        lines.append(f"* The ground truth's split-half Kendall tau ranges {number(reliability.min(), '.2f')} to "
                     f"{number(reliability.max(), '.2f')}: no score can rank the zoo more reliably than that.")
    return "\n".join(lines)


def interval_reading(intervals: pd.DataFrame, score: str = "Ours (TR)", subject: str = "Its") -> str:
    """A sentence (starting with ``subject``) on the 95 % bootstrap intervals of ``score``'s Pearson r
    (``intervals``: columns target, score, low, high): their widths, and the targets whose interval
    excludes zero on the good side; empty when no interval is defined."""
    mine = intervals[(intervals.score == score) & intervals.low.notna()]
    excl = [r.target for r in mine.itertuples() if (r.high < 0 if score in LOWER_IS_BETTER else r.low > 0)]
    widths = (mine.high - mine.low).to_numpy()
    if not len(widths):
        return ""
    return (f"{subject} 95 % bootstrap intervals over encoders are {widths.min():.2f} to {widths.max():.2f} "
            f"wide; {len(excl)} of {len(mine)} exclude zero on the right side"
            + (f" ({', '.join(f'`{t}`' for t in excl)})." if excl else "."))
