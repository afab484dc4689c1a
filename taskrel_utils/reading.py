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
        text.append(interval_reading(intervals, score))
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


# --- notebooks 03 to 05 ---

TERM_NAMES = {"reweighted_reference_loss": "the re-weighted reference loss", "label_mismatch": "the label mismatch",
              "distribution_mismatch": "the distribution mismatch (tau W)"}


def _num(v: float, fmt: str = ".3f") -> str:
    """``v`` formatted, or ``n/a`` when it is missing or not finite."""
    return "n/a" if v is None or not np.isfinite(v) else format(v, fmt)


def _strength(r: float) -> str:
    """A word for |r|: weak (< 0.3), moderate (< 0.6), strong."""
    return "undefined" if not np.isfinite(r) else "weak" if abs(r) < 0.3 else "moderate" if abs(r) < 0.6 else "strong"


def _finite(table: pd.DataFrame, columns) -> pd.DataFrame:
    """The rows of ``table`` whose ``columns`` are all finite."""
    values = table[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return table[np.isfinite(values).all(axis=1)]


def bound_terms_reading(table: pd.DataFrame, terms=tuple(TERM_NAMES)) -> str:
    """Which of the bound's three ``terms`` carries task-relatedness (``value`` = their sum), per
    target: each term's share of the mean value. ``table``: one row per (encoder, target)."""
    rows = _finite(table, ["value", *terms])
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
            f"the label mismatch averages {_num(overall.get('label_mismatch', np.nan), '.3f')}.")


def bound_gap_reading(table: pd.DataFrame) -> str:
    """How large the gap between task-relatedness (``value``) and the probe's target loss
    (``probe_cross_entropy``) is, and whether the theorem's own inequality, value >= the
    transferred classifier's target loss (``target_cross_entropy``), holds on the test sets."""
    rows = _finite(table, ["value", "probe_cross_entropy"])
    if rows.empty:
        return "**How large is the gap?** No pair has a finite task-relatedness and probe loss in this run."
    gap = rows["value"] - rows["probe_cross_entropy"]
    ratio = (rows["value"] / rows["probe_cross_entropy"]).median()
    text = [f"**How large is the gap?** Task-relatedness lies above the probe's loss in {int((gap > 0).sum())} of "
            f"{len(rows)} pairs; the gap is {gap.mean():.2f} on average ({gap.min():.2f} to {gap.max():.2f}), "
            f"so the bound is about {ratio:.1f} times the loss it bounds (median): it is loose in value."]
    if "target_cross_entropy" in rows:
        held = _finite(rows, ["target_cross_entropy"])
        if len(held):
            ok = int((held["value"] >= held["target_cross_entropy"]).sum())
            text.append(f"The theorem's inequality (task-relatedness at least the transferred classifier's loss "
                        f"on the target) holds on the test sets in {ok} of {len(held)} pairs"
                        + ("." if ok == len(held) else "; the others are finite-sample estimates that "
                           "dip below it."))
    return " ".join(text)


def ordering_reading(r_all: float, r_by_target: pd.Series, n_pairs: int | None = None) -> str:
    """Whether task-relatedness orders the pairs like the probe's loss: Pearson ``r_all`` over all
    pairs and ``r_by_target`` (target -> r across encoders); a positive r is the good direction."""
    finite = {t: r for t, r in r_by_target.items() if np.isfinite(r)}
    positive = [t for t, r in finite.items() if r > 0]
    pairs = f" over all {n_pairs} pairs" if n_pairs else " over all pairs"
    if np.isfinite(r_all):
        promise = ("lower task-relatedness goes with lower probe loss, the ordering the bound promises."
                   if r_all > 0 and _strength(r_all) != "weak" else
                   "at most a weak tendency in the direction the bound promises." if r_all > 0 else
                   "here the ordering is not the one the bound promises.")
        sign = "positive" if r_all > 0 else "negative"
        verdict = f"A {_strength(r_all)} {sign} r{pairs} ({signed(r_all)}): {promise}"
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
        return (f"**The start of B.** Only the `{name}` start ran (mean task-relatedness {_num(value, '.2f')}, "
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
            f"changes by {_num(acc, '+.3f')}; task-relatedness changes by "
            + ", ".join(f"`{t}` {_num(d, '+.3f')}" for t, d in changes.items())
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
    rows = _finite(table, ["value", "probe_cross_entropy"])
    gap = rows["value"] - rows["probe_cross_entropy"]
    d = changes.get(related, np.nan) if related is not None else np.nan
    return "\n".join([
        f"* The bound sat above the probe's loss in {int((gap > 0).sum())} of {len(rows)} pairs, by "
        f"{_num(gap.mean() if len(gap) else np.nan, '.2f')} on average: a loose bound in value.",
        f"* Across the pairs, task-relatedness and the probe's loss correlate with r = {signed(r_all)} "
        f"({_strength(r_all)}; the bound promises a positive r).",
        f"* Longer reference training changed task-relatedness on the related target `{related}` by {_num(d, '+.3f')}."
        if related is not None else "* No related target is named for the longer-training check."])


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
    rows = _finite(rows, [score, "accuracy"])
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


def _sign_corrected_rank(avg: pd.Series, score: str) -> tuple[int, int, str]:
    """(rank of ``score``, number of finite scores, best score) in a row of average correlations,
    signs flipped for lower-is-better scores; rank 0 when ``score`` is not finite."""
    corrected = {s: (-v if s in LOWER_IS_BETTER else v) for s, v in avg.items() if np.isfinite(v)}
    ranking = sorted(corrected, key=corrected.get, reverse=True)
    return (ranking.index(score) + 1 if score in ranking else 0), len(ranking), (ranking[0] if ranking else "none")


def rank_reading(summary: pd.DataFrame, score: str = "Ours (TR)") -> str:
    """``score`` under each correlation method (``summary``: one row per method, one column per
    score, average over targets): its value, its sign-corrected rank, and the best score."""
    parts = []
    for method, avg in summary.iterrows():
        rank, n, best = _sign_corrected_rank(avg, score)
        where = ("undefined" if not rank else f"rank 1 of {n}, the best" if rank == 1
                 else f"rank {rank} of {n}; best {best}")
        parts.append(f"{method.replace('_', ' ')} {signed(avg.get(score, np.nan))} ({where})")
    ranks = {_sign_corrected_rank(avg, score)[0] for _, avg in summary.iterrows()}
    return (f"**Does the method of correlation matter?** {score}, averaged over targets: {'; '.join(parts)}. "
            + ("Its rank is the same under every method." if len(ranks) == 1 else
               "Its rank moves with the method: with few encoders, rankings of scores are fragile."))


def correlation_summary(pearson: pd.DataFrame, reliability: pd.Series | None = None, score: str = "Ours (TR)") -> str:
    """Notebook 04's findings in bullets: ``score``'s average Pearson r on the main zoo (``pearson``:
    targets + Average, scores as columns), its sign-corrected rank, and the ground truth's reliability."""
    targets = [t for t in pearson.index if t != "Average"]
    right = [t for t in targets if good_direction(score, pearson.loc[t, score])]
    rank, n, best = _sign_corrected_rank(pearson.loc["Average"], score)
    lines = [f"* {score}: average Pearson r {signed(pearson.loc['Average', score])}, the right sign on "
             f"{len(right)} of {len(targets)} targets.",
             "* Among the scores (signs corrected) it ranks " + ("nowhere: its average is undefined." if not rank else
                                                                 f"first of {n}." if rank == 1 else
                                                                 f"{rank} of {n}; the best is {best}.")]
    if reliability is not None and len(reliability):
        lines.append(f"* The ground truth's split-half Kendall tau ranges {_num(reliability.min(), '.2f')} to "
                     f"{_num(reliability.max(), '.2f')}: no score can rank the zoo more reliably than that.")
    return "\n".join(lines)


def pseudo_terms_reading(both: pd.DataFrame, terms=tuple(TERM_NAMES)) -> str:
    """What the label-free fit changes (``both``: relatedness rows with a ``labels`` column "true" /
    "pseudo"): the mean of each term with and without labels, and the Pearson r between the two
    values of the same (encoder, target) across the pairs whose W did not fail."""
    rows = both[~both.value_failed] if "value_failed" in both else both
    means = rows.groupby("labels")[["value", *terms]].mean()
    if not {"true", "pseudo"} <= set(means.index):
        return "**What changes without labels?** The run lacks fits with true or with pseudo-labels."
    moves = ", ".join(f"{TERM_NAMES.get(t, t)} {_num(means.loc['true', t])} -> {_num(means.loc['pseudo', t])}"
                      for t in terms)
    paired = (rows[rows.labels == "true"].merge(rows[rows.labels == "pseudo"], on=["encoder", "target"],
                                                suffixes=("_true", "_pseudo")))
    paired = _finite(paired, ["value_true", "value_pseudo"])
    ok = len(paired) >= 3 and paired.value_true.std() > 0 and paired.value_pseudo.std() > 0
    r = float(np.corrcoef(paired.value_true, paired.value_pseudo)[0, 1]) if ok else np.nan
    return (f"**What changes without labels?** Mean task-relatedness {_num(means.loc['true', 'value'], '.2f')} with "
            f"labels -> {_num(means.loc['pseudo', 'value'], '.2f')} without; by term: {moves}. Pair by pair, the two "
            f"values correlate with r = {signed(r)} over {len(paired)} pairs ({_strength(r)}): "
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
