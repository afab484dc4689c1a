"""Notebook 02's reading of its own numbers: one encoder and target step by step: standardisation, h_R,
the hand-run steps, the fit, its modes, tau0 and the start of B.

Each function returns a Markdown string built from the tables passed in.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .common import count


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


#: relative agreement expected between a step by hand (float64) and the kit's, by the kit's precision
BY_HAND_TOLERANCE = {"float64": 1e-9, "float32": 1e-5}


def by_hand_reading(agreement: pd.DataFrame, options: dict) -> str:
    """Notebook 02: the step written out by hand against the kit's step
    (``fit_inspection.agreement_table``); ``options``: the fit's (``precision``, ``lr``, ``adam_eps``)."""
    precision = options.get("precision", "float64")
    tol = BY_HAND_TOLERANCE.get(precision, BY_HAND_TOLERANCE["float64"])
    ok = agreement[agreement.relative <= tol]
    off = agreement[agreement.relative > tol]
    worst = ok.loc[ok.relative.idxmax()] if len(ok) else None
    text = (f"**By hand and by the kit.** {len(ok)} of {len(agreement)} quantities of step 0 agree to within "
            f"{tol:g} of their size" + (f" (the largest relative difference: {worst.relative:.0e}, "
                                        f"`{worst.quantity}`)" if worst is not None else "") + ". ")
    if precision == "float32":
        text += ("On this profile the kit takes the step's d x d algebra and gradients in float32 (`precision: "
                 "float32`, for speed; the plan, B and D stay in float64), so its gradients carry rounding errors of "
                 "about 1e-7 of their size. ")
    if off.empty:
        return text + "The cells above are the kit's step, written out."
    names = ", ".join(f"`{q}`" for q in off.quantity)
    if precision == "float32" and set(off.quantity) <= {"A_inv", "dJ/dA_inv", "IC"}:
        moved = float(off.loc[off.quantity == "A_inv", "difference"].max()) if "A_inv" in set(off.quantity) else 0.0
        return text + (f"{names} differ more, and for a reason: at the start A_inv is A's exact inverse, so J's "
                       "true gradient in A_inv is zero (by hand, in float64, it is at rounding level); in float32 the "
                       f"kit's is rounding noise of about the size of Adam's eps = {options['adam_eps']:g}, and Adam's "
                       "first step, lr x g / (|g| + eps) per entry, turns that noise into moves of up to "
                       f"{moved:.3f} (lr = {options['lr']:g}). The inverse-consistency term pulls A_inv back in the "
                       "steps that follow.")
    return text + (f"**{names} differ beyond rounding**: the step by hand is not the kit's step. Check the cells "
                   "above against the kit's (`fit_steps.transport_plan`, `fit_steps.gradient_step`).")


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
    "LC": ("re-weighted reference loss sum_j D_j v_j (15); it changes only with D, and the default "
           "closed-form update of D (17) does not look at it"),
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
    text = (f"Over {count(n_encoders, 'encoder')}, tau0 = {best} separates the real target from its control best "
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
