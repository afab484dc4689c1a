"""Prose that reads a run's own numbers: the notebooks' "reading the results" paragraphs.

Every sentence is built from the tables passed in, so a notebook never quotes an earlier run.
The functions return Markdown strings (``IPython.display.Markdown`` renders them).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..study.published import LOWER_IS_BETTER  # noqa: F401  (re-exported: the readings' sign convention)


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
        text.append(f"The paper reports an average of {signed(paper.loc['Average', score])} for its zoo.")
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


# --- notebooks 01 and 02 ---
def _count(n: int, word: str) -> str:
    """``1 encoder`` / ``3 encoders``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def quoted_names(items, limit: int = 6) -> str:
    """```a`, `b`, ... (+3 more)`` for a list of names."""
    items = [f"`{x}`" for x in items]
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def tasks_reading(task_table: pd.DataFrame, reference_classes: pd.DataFrame) -> str:
    """Notebook 01: the tasks of the run (``task_table`` columns task, role, classes, train, test)
    and the reference classes each target is paired with (``reference_classes`` columns target,
    K_T, K_R, reference_classes, reference_train)."""
    ref = task_table[task_table.role == "reference"].iloc[0]
    targets = task_table[task_table.role == "target"]
    parts = "; ".join(f"`{r.task}` {r.classes} classes ({r.train} / {r.test})" for r in targets.itertuples())
    cut = [r for r in reference_classes.itertuples() if r.K_R < int(ref.classes)]
    text = (f"**This run's tasks.** The reference `{ref.task}` has {ref.classes} classes ({ref.train} train / "
            f"{ref.test} test images); the {len(targets)} targets (train / test): {parts}. ")
    if cut:
        text += " ".join(f"For `{r.target}` ({r.K_T} classes) the reference is cut to {r.K_R} of its classes "
                         f"({r.reference_classes}; {r.reference_train} training images)." for r in cut)
    else:
        text += f"Every target has as many classes as the reference, so each is paired with all {ref.classes}."
    return text


def zoo_reading(zoo_table: pd.DataFrame) -> str:
    """Notebook 01: the encoders (``zoo_table`` columns encoder, group, feature_dim)."""
    main = zoo_table[zoo_table.group == "main"]
    contrast = zoo_table[zoo_table.group != "main"]
    lo, hi = zoo_table.loc[zoo_table.feature_dim.idxmin()], zoo_table.loc[zoo_table.feature_dim.idxmax()]
    return (f"**This run's zoo.** {_count(len(zoo_table), 'encoder')}: {len(main)} in the main zoo "
            f"({quoted_names(main.encoder)}) and {_count(len(contrast), 'contrast')} ({quoted_names(contrast.encoder) or 'none'}). "
            f"Their features have from "
            f"{lo.feature_dim} (`{lo.encoder}`) to {hi.feature_dim} (`{hi.encoder}`) dimensions; every "
            f"later step works on these vectors and never on the images again.")


def extraction_reading(extraction: pd.DataFrame, throughput: pd.DataFrame) -> str:
    """Notebook 01: the feature extraction (``extraction`` columns encoder, images, cache_hit;
    ``throughput`` columns encoder, images_per_second for the sets computed in this run)."""
    hits = int(extraction.cache_hit.sum())
    text = (f"**Extraction.** {len(extraction)} feature sets ({extraction.encoder.nunique()} encoders x tasks x "
            f"2 splits, {int(extraction.images.sum())} images in all); {hits} came from the cache. ")
    if len(throughput):
        fast = throughput.loc[throughput.images_per_second.idxmax()]
        slow = throughput.loc[throughput.images_per_second.idxmin()]
        text += (f"Of those computed now, `{fast.encoder}` was the fastest ({fast.images_per_second:,.0f} "
                 f"images/s) and `{slow.encoder}` the slowest ({slow.images_per_second:,.0f} images/s).")
    else:
        text += "Nothing was computed in this run: the throughput table is empty (a fresh cache fills it)."
    return text


def separability_reading(separability: pd.DataFrame, classes: dict, contrasts=(), reference: str | None = None) -> str:
    """Notebook 01: nearest-class-mean accuracy per (encoder, task) (``separability`` columns
    encoder, task, nearest_mean_accuracy); ``classes``: {task: number of classes} (chance is
    1 / classes); ``contrasts``: encoders outside the main zoo, each compared with the main zoo's mean."""
    acc = separability.pivot(index="encoder", columns="task", values="nearest_mean_accuracy")
    contrasts = [e for e in contrasts if e in acc.index]
    main = acc.drop(index=contrasts)
    tasks = list(acc.columns)
    if reference in tasks:
        tasks = [reference] + [t for t in tasks if t != reference]
    lines = []
    for t in tasks:
        extra = ", ".join(f"`{e}` {acc.loc[e, t]:.2f}" for e in contrasts)
        lines.append(f"* `{t}` (chance {1 / classes[t]:.2f}): the main zoo reaches {main[t].min():.2f} to "
                     f"{main[t].max():.2f} (best `{main[t].idxmax()}`)"
                     + (f"; contrasts {extra}" if extra else "") + ".")
    text = "**Separability in this run** (nearest-class-mean accuracy on the test split):\n\n" + "\n".join(lines)
    below = [f"`{e}` on {int((acc.loc[e, tasks] < main[tasks].mean()).sum())} of {len(tasks)}" for e in contrasts]
    if below:
        text += "\n\nBelow the main zoo's mean: " + ", ".join(below) + " tasks."
    beats = [f"`{e}` on `{t}`" for e in contrasts for t in tasks if acc.loc[e, t] > main[t].max()]
    if beats:
        text += (f" Above the best of the main zoo: {', '.join(beats)}: there, pre-training on the source did not "
                 "make that task's classes easier to separate than the contrast's features do.")
    return text


def photo_reading(photo_table: pd.DataFrame) -> str:
    """Notebook 01: the ImageNet photo check (``photo_table`` columns encoder, photo, top-1,
    p(top-1), recognised_top5)."""
    parts = []
    for enc, g in photo_table.groupby("encoder", sort=False):
        tops = ", ".join(f"{r['photo']} -> {str(r['top-1']).split(',')[0]} ({r['p(top-1)']:.2f})"
                         for _, r in g.iterrows())
        parts.append(f"`{enc}` recognises {int(g.recognised_top5.sum())} of {len(g)} photos in its top 5 "
                     f"(top-1: {tops})")
    verdict = ("the weights are the real ImageNet ones" if photo_table.recognised_top5.all()
               else "**some photo is not recognised: check the weights**")
    return "**Photo check.** " + "; ".join(parts) + f". So {verdict}."


def standardisation_reading(summary: pd.DataFrame) -> str:
    """Notebook 02: the per-domain z-scoring (``summary`` rows reference, target; columns
    "mean |mean| before", "mean std before", "mean |mean| after", "mean std after", dimension)."""
    r, t = summary.set_index("domain").loc["reference"], summary.set_index("domain").loc["target"]
    return (f"**Before** z-scoring, the {int(r['dimension'])}-dimensional features have a mean |mean| per dimension "
            f"of {r['mean |mean| before']:.3f} (reference) and {t['mean |mean| before']:.3f} (target), and a mean "
            f"standard deviation of {r['mean std before']:.3f} and {t['mean std before']:.3f}. **After**, both "
            f"domains have {r['mean |mean| after']:.3f} / {t['mean |mean| after']:.3f} and "
            f"{r['mean std after']:.3f} / {t['mean std after']:.3f}: any shift or rescaling of single dimensions "
            "between the domains is gone before the fit starts, and the bound never charges for it.")


def gradient_norm_reading(norms: pd.DataFrame, tau0: float, accuracy: float) -> str:
    """Notebook 02: h_R's input-gradient norms (``norms`` columns "gradient norm", labels "true" /
    "random") against the penalty threshold ``tau0``; ``accuracy``: h_R's reference test accuracy."""
    parts = []
    for kind in ("true", "random"):
        g = norms.loc[norms.labels == kind, "gradient norm"].to_numpy()
        parts.append(f"with {kind} labels the median norm is {np.median(g):.3f} and {np.mean(g >= tau0):.0%} of "
                     f"the test points are at or above tau0 (max {g.max():.3f})")
    return (f"**h_R** classifies the reference test set with accuracy {accuracy:.3f}. Its gradient norms: "
            + "; ".join(parts) + f". The penalty (10) acts only above tau0 = {tau0}: the largest norm bounds how "
            "steep the loss is, and so how much each unit of distribution mismatch W will cost.")


def batches_reading(batches: pd.DataFrame, batch_size: int) -> str:
    """Notebook 02: the first step's PriorSample batches (``fit_inspection.batch_table``)."""
    n, m = int(batches["reference drawn"].sum()), int(batches["target drawn"].sum())
    empty = [str(c) for c, r in batches.iterrows() if r["reference drawn"] == 0]
    return (f"**The batches.** With N = {batch_size}, PriorSample drew n = {n} reference points (floor(N D_c) per "
            f"class, with D the current class prior) and m = {m} target points (floor(N pi^T_c)). "
            + (f"Reference classes {', '.join(empty)} got no point: D gives them (almost) no weight. " if empty else
               "Every reference class is in the batch. ")
            + f"The plan therefore moves mass 1/{n} out of each reference point and 1/{m} into each target point.")


def plan_reading(summary: dict) -> str:
    """Notebook 02: one step's plan (``fit_inspection.plan_summary``)."""
    s = summary
    return (f"**The cost and the plan.** The plan has {s['support']} non-zero entries for {s['n']} x {s['m']} pairs "
            f"(an exact plan has at most n + m - 1 = {s['n'] + s['m'] - 1}). {s['matched_mass']:.1%} of its mass "
            f"sits on pairs whose classes B matches: with Lambda that large, any other pair costs far more than "
            f"any feature distance, and mass crosses classes only where the two batches' class shares differ "
            f"(D against pi^T; mean label cost under the plan {s['label_cost']:.3g}). Within the matched "
            f"classes the plan then picks near points: it pays a feature distance of {s['plan_feature_cost']:.3f} "
            f"per unit of mass, against {s['same_class_feature_cost']:.3f} for a random matched pair and "
            f"{s['mean_feature_cost']:.3f} for any pair.")


def hand_steps_reading(table: pd.DataFrame, options: dict) -> str:
    """Notebook 02: the iterations run by hand (rows of ``fit_inspection.step_row``); ``options``:
    the fit's (``lr``, the Adam learning rate of A, A_inv, b; ``Lambda``, ``lambda_wd``)."""
    first, last = table.iloc[0], table.iloc[-1]
    lower = int((table.J_after < table.J_before).sum())
    lr, weight = options["lr"], options["lambda_wd"] * options["Lambda"]
    label_share = weight * first.label_term / first.J_before if first.J_before else float("nan")
    return (f"**The gradient step.** At step 0 the label term, weighted by lambda_wd x Lambda = {weight:.0e}, makes "
            f"{label_share:.1%} of J. With the plan fixed, each update lowers J under that plan: it did in {lower} "
            f"of {len(table)} steps (step 0: {first.J_before:.4g} -> {first.J_after:.4g}). At step 0, Adam moved "
            f"A by ||dA||_F = {first.dA:.3f}, no entry by more than {first.dA_max:.4f} (its first step moves each "
            f"entry by about the learning rate, {lr:g}), and b by {first.db:.3f}; B changed by at most "
            f"{first.dB:.3f} and D by {first.dD:.3f} (closed form (17) from the plans, or Adam steps). "
            f"**The terms moving** over the {len(table)} steps: feature term {first.feature_term:.4g} -> "
            f"{last.feature_term:.4g}, label term {first.label_term:.3g} -> {last.label_term:.3g}, "
            f"PM {first.PM:.3g} -> {last.PM:.3g}, IC {first.IC:.3g} -> {last.IC:.3g}. J before each update is "
            "measured under a NEW plan on new batches, so it need not fall from one step to the next.")


def one_line_reading(history, table: pd.DataFrame) -> str:
    """Notebook 02: the one-line fit against the hand iterations (``history``: ``res.history``
    with a row per step; ``table``: the hand rows)."""
    hand = list(table.J_before)
    line = [row["objective"] for row in list(history)[:len(hand)]]
    same = sum(a == b for a, b in zip(hand, line))
    return (f"**Same loop, one line.** `task_relatedness` runs exactly these steps: its first {len(hand)} values "
            f"of J equal the hand ones in {same} of {len(hand)} steps"
            + (" (bit for bit: the same seed draws the same batches)." if same == len(hand) else
               " (**they differ**: were the options or the seed changed between the two?)."))


def convergence_reading(diag: dict) -> str:
    """Notebook 02: why the fit stopped (``fit_inspection.convergence_diagnostics``)."""
    d = diag
    if d["converged"]:
        how = f"the stopping rule (16) held after {d['steps_used']} steps (cap {d['steps']}, at least {d['min_steps']})"
    else:
        how = f"it ran into the cap of {d['steps']} steps without the stopping rule (16) holding"
    text = f"**Convergence.** The fit took {d['steps_used']} steps: {how}. "
    if d["deciding"] is not None:
        text += (f"Over the last two windows of {d['window']} steps the mean of J went from {d['mean_before']:.5g} to "
                 f"{d['mean_last']:.5g}, a change of {d['change']:.3g}, against the thresholds tol |m_t| = "
                 f"{d['tol_threshold']:.3g} (tol = {d['tol']:g}) and 2 s_t sqrt(2/w) = {d['noise_threshold']:.3g} "
                 f"(the minibatch noise): the {d['deciding']} threshold is the one that counts here.")
    return text


#: the panels of ``plots.fit_curves``, in the words of docs/method.md (its fit-curve table)
FIT_CURVE_MEANINGS = {
    "objective": "J (14), the fit's objective under each step's plan",
    "objective_moving_average": "the mean of J over the last `window` steps, what the stopping rule watches",
    "feature_term": "sum Pi ||Az+b-t||^2, how far the plan moves the mapped reference batch onto the target batch",
    "label_term": "sum Pi ||Be_y-e_s||^2, how far mapped labels are from the labels they are sent to",
    "H": "label mismatch (7) at the current B, D",
    "LC": "re-weighted reference loss sum_j D_j v_j (15); only D moves it",
    "PM": "prior mismatch ||pi^T - BD||^2",
    "IC": "inverse consistency ||A A_inv - I||^2 + ||A_inv A - I||^2",
    "n_ref": "size n of the reference batch (PriorSample with D)",
    "n_target": "size m of the target batch (PriorSample with pi^T)",
    "target_accuracy": "accuracy of the transferred classifier on the target test set (a diagnostic only)",
    "seconds": "time since the fit started",
}


def fit_curves_reading(history) -> str:
    """Notebook 02: one line per panel of the fit curves: what it shows and where it started and ended."""
    frame = pd.DataFrame(history)
    lines = []
    for column, meaning in FIT_CURVE_MEANINGS.items():
        if column in frame:
            a, b = frame[column].iloc[0], frame[column].iloc[-1]
            lines.append(f"* **{column}**: {meaning}. {a:.4g} -> {b:.4g}.")
    return "**What each curve shows, and how it moved in this fit** (first -> last step):\n\n" + "\n".join(lines)


def label_map_reading(B, D, reference_prior, target_names, reference_names, near_one: float = 0.9) -> str:
    """Notebook 02: the learned label map ``B`` (K_T x K_R) and class prior ``D`` (K_R) against
    the reference prior."""
    B, D, pi = np.asarray(B), np.asarray(D), np.asarray(reference_prior)
    sharp = int((B.max(0) >= near_one).sum())
    H = float(-(D * np.where(B > 0, B * np.log(np.where(B > 0, B, 1.0)), 0.0).sum(0)).sum())
    goes = ", ".join(f"{reference_names[j]} -> {target_names[B[:, j].argmax()]}" for j in range(B.shape[1]))
    j = int(np.abs(D - pi).argmax())
    dropped = [str(reference_names[k]) for k in np.flatnonzero(D < 1e-3)]
    if abs(D[j] - pi[j]) < 1e-3:
        prior = "D stays within 0.001 of the reference prior."
    else:
        prior = (f"D differs most from the reference prior on `{reference_names[j]}` ({pi[j]:.3f} -> {D[j]:.3f})"
                 + (f"; it drops {', '.join(dropped)} (no target class picks them)." if dropped else "."))
    return (f"**B and D.** {sharp} of {B.shape[1]} columns of B put at least {near_one:.0%} on one target class "
            f"(label mismatch H = {H:.3f} nats; 0 for a one-to-one map). By its largest entries: {goes}. " + prior)


def example_plan_reading(plan: dict, B) -> str:
    """Notebook 02: the plan between a few points at the END of the fit (``cached_fits.example_plan``:
    plan, reference_labels, target_labels) under the learned ``B`` (K_T x K_R)."""
    P = np.asarray(plan["plan"])
    matched = np.asarray(B).argmax(0)[plan["reference_labels"]][:, None] == np.asarray(plan["target_labels"])[None, :]
    return (f"**A plan at the end of the fit** ({P.shape[0]} + {P.shape[1]} points): {P[matched].sum() / P.sum():.1%} "
            f"of its mass goes between classes that the learned B matches, in {int((P > 0).sum())} non-zero entries.")


def modes_reading(mode_table: pd.DataFrame) -> str:
    """Notebook 02: the three modes side by side (``mode_table`` columns mode, value,
    target_accuracy and the terms)."""
    t = mode_table.set_index("mode")
    parts = ", ".join(f"`{m}` {r.value:.3f} (transferred accuracy {r.target_accuracy:.3f})" for m, r in t.iterrows())
    best = t.value.idxmin()
    text = f"**Modes.** Task-relatedness (lower = more related): {parts}. The lowest value comes from `{best}`."
    if "fixed_all" in t.index and "learned_all" in t.index:
        gain = t.loc["learned_all", "value"] - t.loc["fixed_all", "value"]
        H_fixed, H_learned = (max(0.0, t.loc[m, "label_mismatch"]) for m in ("fixed_all", "learned_all"))
        text += (f" Learning everything changes the value by {gain:+.3f} "
                 f"against learning nothing, and the label mismatch from {H_fixed:.3f} to {H_learned:.3f}.")
    return text


def tau0_reading(choice: dict, n_encoders: int, max_price: float, profile_tau0) -> str:
    """Notebook 02: the tau0 sweep's choice (``tau0_study.choose_tau0``) over ``n_encoders``
    encoders, against the profile's ``profile_tau0``."""
    best = choice["tau0"]
    separation = choice["means"].set_index("tau0").loc[best, "separation"]
    text = (f"Over {_count(n_encoders, 'encoder')}, tau0 = {best} separates the real target from its control best "
            f"(mean separation {separation:+.3f}) "
            + (f"among the values that cost h_R at most {max_price:.0%} accuracy. " if choice["price_rule_met"]
               else f"(no value kept the price under {max_price:.0%}: the rule fell back to separation alone). "))
    if profile_tau0 is not None and np.isclose(profile_tau0, best):
        return text + f"The profile uses tau0 = {profile_tau0}: the same."
    return (text + f"The profile uses tau0 = {profile_tau0}: **a different value**; set "
            f"`reference_classifier_options: {{tau0: {best}}}` in the profile if this sweep is representative.")


def start_reading(b_init_table: pd.DataFrame) -> str:
    """Notebook 02: the random against the class-means start (``b_init_table`` columns b_init,
    target_kind, value, steps_used; target_kind "related" or an unrelated control)."""
    t = b_init_table.assign(related=b_init_table.target_kind == "related")
    parts, gaps = [], {}
    for start, g in t.groupby("b_init", sort=False):
        rel, unrel = g[g.related].iloc[0], g[~g.related].iloc[0]
        gaps[start] = unrel.value - rel.value
        parts.append(f"{'From' if not parts else 'from'} the `{start}` start the related target gets {rel.value:.3f} ({rel.steps_used} steps) "
                     f"and its shuffled control {unrel.value:.3f}")
    better = max(gaps, key=gaps.get)
    return ("**Starts.** " + "; ".join(parts) + ". The control lies above the related target by "
            + ", ".join(f"{gap:+.3f} (`{s}`)" for s, gap in gaps.items())
            + f": the `{better}` start separates them more.")


def fit_summary_reading(res, diag: dict) -> str:
    """Notebook 02's summary: this run's value, its terms and how the fit ended."""
    t = res.terms
    return (f"In this run: task-relatedness {res.value:.3f} = L_C {t['reweighted_reference_loss']:.3f} + H "
            f"{t['label_mismatch']:.3f} + tau x W {t['distribution_mismatch']:.3f} (tau {t['tau']:.3f}, W "
            f"{t['wasserstein']:.3f}), after {diag['steps_used']} steps ("
            + ("the stopping rule held" if diag["converged"] else "the cap, not converged")
            + f"); the transferred classifier reaches {res.target_accuracy:.3f} on the target test set.")


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
