"""The notebooks' reading sentences follow the numbers they read."""
import numpy as np
import pandas as pd

from taskrel_utils.present.reading import bound_decomposition, encoder_features, finetune_correlation, fit_transformations, pseudo_labels


def test_reading_sentences_follow_the_numbers():
    pearson = pd.DataFrame({"Ours (TR)": [-0.8, 0.2], "LogME": [0.5, -0.1]}, index=["a", "b"])
    pearson.loc["Average"] = pearson.mean()
    text = finetune_correlation.correlation_reading(pearson)
    assert "`a` -0.80, `b` +0.20" in text and "average -0.30" in text and "1 of 2 targets" in text
    assert "ranks 1 of 2" in text  # sign-corrected: TR +0.30 beats LogME +0.20
    assert "ranks 2 of 2" in finetune_correlation.correlation_reading(pearson, score="LogME")


# --- notebooks 01 and 02 ---


def test_notebook_01_readings_quote_the_tables():
    tasks = pd.DataFrame({"task": ["ref", "t4", "t10"], "role": ["reference", "target", "target"],
                          "classes": [10, 4, 10], "train": [300, 120, 300], "test": [100, 40, 100]})
    ref_classes = pd.DataFrame({"target": ["t4", "t10"], "K_T": [4, 10], "K_R": [4, 10],
                                "reference_classes": ["a, b, c, d", "all"], "reference_train": [120, 300]})
    text = encoder_features.tasks_reading(tasks, ref_classes)
    assert "`ref` has 10 classes (300 train / 100 test" in text and "`t4` 4 classes (120 / 40)" in text
    assert "For `t4` (4 classes) the reference is cut to 4 of its classes (a, b, c, d; 120" in text
    assert "`t10` (10" not in text  # not cut
    sep = pd.DataFrame({"encoder": ["e1", "e2", "rnd"] * 2, "task": ["ref"] * 3 + ["t4"] * 3,
                        "nearest_mean_accuracy": [0.9, 0.7, 0.2, 0.5, 0.6, 0.58]})
    text = encoder_features.separability_reading(sep, {"ref": 10, "t4": 4}, contrasts=["rnd"], reference="ref")
    assert "`ref` (chance 0.10): the main zoo reaches 0.70 to 0.90 (best `e1`); contrasts `rnd` 0.20." in text
    assert "`t4` (chance 0.25): the main zoo reaches 0.50 to 0.60 (best `e2`)" in text
    assert "`rnd` on 1 of 2 tasks" in text  # below the main zoo's mean on ref only (0.58 > 0.55 on t4)
    photos = pd.DataFrame({"encoder": ["m"] * 2, "photo": ["cat", "cup"], "top-1": ["tabby, cat", "cup"],
                           "p(top-1)": [0.5, 0.25], "recognised_top5": [True, False]})
    text = encoder_features.photo_reading(photos)
    assert "`m` recognises 1 of 2 photos" in text and "cat -> tabby (0.50)" in text and "check the weights" in text


def test_notebook_02_readings_quote_the_numbers():
    hand = pd.DataFrame({"step": [0, 1], "J_before": [100.0, 90.0], "J_after": [50.0, 95.0], "dA": [0.3, 0.2],
                         "dA_max": [0.01, 0.01], "db": [0.1, 0.1], "dB": [0.4, 0.0], "dD": [0.2, 0.0],
                         "feature_term": [12.0, 9.0], "label_term": [1e-3, 1e-6], "PM": [0.1, 0.0], "IC": [0.0, 1e-4]})
    text = fit_transformations.hand_steps_reading(hand, dict(lr=0.01, Lambda=1e4, lambda_wd=2.0))
    assert "it did in 1 of 2 steps (step 0: 100 -> 50)" in text and "learning rate, 0.01" in text
    assert "lambda_wd x Lambda = 2e+04, makes 20.0% of J" in text  # 2e4 x 1e-3 / 100
    assert "feature term 12 -> 9" in text
    assert "equal the hand ones in 2 of 2 steps (bit for bit" in fit_transformations.one_line_reading(
        [{"objective": 100.0}, {"objective": 90.0}, {"objective": 80.0}], hand)
    assert "in 1 of 2 steps (**they differ**" in fit_transformations.one_line_reading([{"objective": 100.0}, {"objective": 1.0}], hand)
    diag = dict(steps_used=120, steps=1000, min_steps=100, window=10, converged=True, mean_before=5.0, mean_last=4.99,
                change=0.01, tol=1e-3, tol_threshold=0.00499, noise_threshold=0.02, deciding="noise")
    text = fit_transformations.convergence_reading(diag)
    assert "held after 120 steps (cap 1000" in text and "the noise threshold" in text
    assert "ran into the cap of 1000" in fit_transformations.convergence_reading(dict(diag, converged=False))
    choice = {"tau0": 0.2, "price_rule_met": True, "means": pd.DataFrame({"tau0": [0.1, 0.2], "separation": [0.1, 0.3]})}
    assert "tau0 = 0.2 separates" in fit_transformations.tau0_reading(choice, 3, 0.02, 0.2) and "the same." in \
        fit_transformations.tau0_reading(choice, 3, 0.02, 0.2)
    assert "**a different value**" in fit_transformations.tau0_reading(choice, 3, 0.02, 0.5)
    starts = pd.DataFrame({"b_init": ["random", "random", "class_means", "class_means"],
                           "target_kind": ["related", "unrelated (shuffled labels)"] * 2,
                           "value": [3.0, 3.5, 2.0, 4.0], "steps_used": [200, 210, 100, 120]})
    text = fit_transformations.start_reading(starts)
    assert "+0.500 (`random`), +2.000 (`class_means`): the `class_means` start separates them more" in text
    B = np.array([[0.95, 0.5, 0.0], [0.05, 0.5, 1.0]])
    text = fit_transformations.label_map_reading(B, np.array([0.6, 0.3, 0.1]), np.full(3, 1 / 3), ["x", "y"], ["a", "b", "c"])
    assert "2 of 3 columns" in text and "a -> x, b -> x, c -> y" in text and "`a` (0.333 -> 0.600)" in text
    H = -(0.6 * (0.95 * np.log(0.95) + 0.05 * np.log(0.05)) + 0.3 * np.log(0.5))
    assert f"H = {H:.3f} nats" in text
    plan = {"plan": np.array([[0.5, 0.0], [0.25, 0.25]]), "reference_labels": np.array([0, 1]),
            "target_labels": np.array([0, 1])}
    assert "75.0% of its mass" in fit_transformations.example_plan_reading(plan, np.eye(2))
    history = [{"objective": 3.0, "PM": 0.5, "seconds": 0.0}, {"objective": 1.0, "PM": 0.0, "seconds": 2.0}]
    text = fit_transformations.fit_curves_reading(history)
    assert "* **objective**: J (14)" in text and "3 -> 1." in text and "**PM**" in text and "label_term" not in text
    # L_C depends on D alone, but the default (closed-form) D ignores it: no "only D moves it"
    text = fit_transformations.fit_curves_reading([{"LC": 1.2}, {"LC": 1.1}])
    assert "changes only with D" in text and "does not look at it" in text and "only D moves it" not in text


# --- notebooks 03 to 05 ---

TERMS = ["reweighted_reference_loss", "label_mismatch", "distribution_mismatch"]


def _pairs(nan: bool = False) -> pd.DataFrame:
    """Four (encoder, target) pairs with the three terms, their sum, the probe's and the transferred loss."""
    t = pd.DataFrame({"encoder": ["e1", "e2", "e1", "e2"], "target": ["near", "near", "far", "far"],
                      "reweighted_reference_loss": [1.0, 1.2, 0.5, 0.6], "label_mismatch": [0.0, 0.0, 0.1, 0.1],
                      "distribution_mismatch": [0.5, 0.4, 2.0, 3.0],
                      "probe_cross_entropy": [0.5, 0.7, 1.0, 3.0], "target_cross_entropy": [0.9, 1.0, 1.5, 3.9]})
    t["value"] = t[TERMS].sum(axis=1)
    if nan:
        t.loc[3, ["value", "distribution_mismatch"]] = np.nan
    return t


def test_bound_readings_name_the_largest_term_and_the_gap():
    text = bound_decomposition.bound_terms_reading(_pairs())
    assert "on `near` the re-weighted reference loss (71% of a mean task-relatedness of 1.55)" in text
    assert "on `far` the distribution mismatch" in text and "Over all 4 pairs the largest is the distribution" in text
    gap = bound_decomposition.bound_gap_reading(_pairs())
    # gaps 1.0, 0.9, 1.6, 0.7: all above the probe; value >= transferred loss in 3 of 4 (3.7 < 3.9)
    assert "4 of 4 pairs; the gap is 1.05 on average (0.70 to 1.60)" in gap
    assert "in 3 of 4 pairs; the others" in gap
    # the bound is on the transferred classifier's loss: each ratio is named for the loss it is taken to
    assert "about 2.4 times the probe's loss (median)" in gap  # medians of 3.0, 2.29, 2.6, 1.23
    assert "Against the loss it does bound, task-relatedness is about 1.6 times as large" in gap
    assert "does not bound the probe's loss" in gap and "the loss it bounds" not in gap


def test_bound_readings_never_call_the_probe_loss_the_bounded_one():
    """Notebook 03 says the bound does not bound the probe's loss; its generated prose must agree."""
    texts = [bound_decomposition.bound_gap_reading(_pairs()),
             bound_decomposition.bound_gap_reading(_pairs().drop(columns="target_cross_entropy")),
             bound_decomposition.bound_summary(_pairs(), 0.5, {"far": -0.1}, related="far"),
             bound_decomposition.ordering_reading(0.8, pd.Series({"a": 0.9}), n_pairs=4),
             bound_decomposition.ordering_reading(-0.7, pd.Series({"a": -0.7}))]
    for text in texts:
        assert "the loss it bounds" not in text and "a loose bound in value" not in text
        assert "the bound promises" not in text  # a bound promises no ordering


def test_bound_readings_skip_non_finite_pairs():
    assert "Over all 3 pairs" in bound_decomposition.bound_terms_reading(_pairs(nan=True))
    assert "3 of 3 pairs" in bound_decomposition.bound_gap_reading(_pairs(nan=True))
    empty = _pairs().assign(value=np.nan)
    assert "No pair" in bound_decomposition.bound_terms_reading(empty) and "No pair" in bound_decomposition.bound_gap_reading(empty)
    summary = bound_decomposition.bound_summary(_pairs(nan=True), np.nan, {"far": np.nan}, related="far")
    assert "3 of 3 pairs" in summary and "by n/a" in summary
    assert "r = n/a (undefined; an informative bound would give a positive r)" in summary


def test_ordering_reading_follows_the_sign_and_the_strength():
    strong = bound_decomposition.ordering_reading(0.8, pd.Series({"a": 0.9, "b": -0.2, "c": np.nan}), n_pairs=9)
    assert "A strong positive r over all 9 pairs (+0.80)" in strong and "the ordering expected if the bound is informative" in strong
    assert "`a` +0.90, `b` -0.20: positive on 1 of 2 targets" in strong
    assert "weak tendency" in bound_decomposition.ordering_reading(0.1, pd.Series(dtype=float))
    assert "not the expected one" in bound_decomposition.ordering_reading(-0.7, pd.Series({"a": -0.7}))
    undefined = bound_decomposition.ordering_reading(np.nan, pd.Series({"a": np.nan}))
    assert "undefined in this run" in undefined and "too few encoders" in undefined


def test_b_init_reading_compares_the_starts():
    one = pd.DataFrame({"b_init": ["class_means"], "mean value": [3.0], "mean gap": [1.0],
                        "pearson r (all pairs)": [np.nan]})
    assert "Only the `class_means` start ran" in bound_decomposition.b_init_reading(one) and "r n/a" in bound_decomposition.b_init_reading(one)
    two = pd.concat([one.assign(**{"pearson r (all pairs)": 0.3}),
                     pd.DataFrame({"b_init": ["random"], "mean value": [2.5], "mean gap": [0.5],
                                   "pearson r (all pairs)": [-0.2]})], ignore_index=True)
    text = bound_decomposition.b_init_reading(two)
    assert "The `random` start gives the tighter bound (mean 2.50 against 3.00" in text
    assert "depends on the start" in text


def test_reference_training_reading_reads_the_change_per_target():
    longer = pd.DataFrame({"epochs": [1, 1, 10, 10], "target": ["near", "far"] * 2, "value": [3.0, 4.0, 2.5, np.nan],
                           "reference_accuracy": [0.8, 0.8, 0.9, 0.9]})
    text = bound_decomposition.reference_training_reading(longer, related="near")
    assert "changes by +0.100" in text and "`near` -0.500, `far` n/a" in text and "falls on 1 of 2" in text
    assert "falls, as the paper claims" in text
    assert "cannot be read" in bound_decomposition.reference_training_reading(longer, related="far")


def _scores() -> pd.DataFrame:
    return pd.DataFrame({"encoder": ["a", "b", "c", "r"] * 2, "target": ["t1"] * 4 + ["t2"] * 4,
                         "group": ["main", "main", "main", "contrast"] * 2,
                         "accuracy": [0.9, 0.8, 0.7, 0.95, 0.5, 0.6, 0.7, 0.1],
                         "accuracy_std": [0.01] * 8,
                         "task_relatedness": [1.0, 2.0, 3.0, 0.1, 1.0, 2.0, np.nan, 9.0],
                         "logme": [0.1, 0.2, 0.3, 0.0, 0.3, 0.2, 0.1, 0.0]})


def test_finetune_and_top_pick_readings_stay_in_the_main_zoo():
    text = finetune_correlation.finetune_reading(_scores())
    assert "`t1` 0.700 to 0.900 (best `a`; spread 20.0 times" in text and "`t2` 0.500 to 0.700 (best `c`" in text
    assert "(best `c`)" in finetune_correlation.finetune_reading(_scores().assign(accuracy_std=np.nan))
    tr = finetune_correlation.top_pick_reading(_scores())  # lowest first; the NaN score of c on t2 is skipped
    assert "(lowest first)" in tr and "`t1` `a` (0.900, the best)" in tr and "`t2` `a` (0.500; best `b` 0.600)" in tr
    assert "costs 0.050" in tr
    logme = finetune_correlation.top_pick_reading(_scores(), "logme")
    assert "(highest first)" in logme and "`t1` `c` (0.700; best `a` 0.900)" in logme
    assert "No finite score" in finetune_correlation.top_pick_reading(_scores().assign(logme=np.nan), "logme")


def test_rank_interval_and_summary_readings():
    summary = pd.DataFrame({"Ours (TR)": [-0.5, -0.1], "LogME": [0.3, 0.4], "SFDA": [np.nan, 0.0]},
                           index=["pearson", "kendall"])
    text = finetune_correlation.rank_reading(summary)
    assert "pearson -0.50 (ranks 1 of 2 scores, the best)" in text and "kendall -0.10 (ranks 2 of 3 scores; best LogME)" in text
    assert "moves with the method" in text
    intervals = pd.DataFrame({"target": ["t1", "t2", "t3"], "score": "Ours (TR)", "low": [-0.9, -0.5, np.nan],
                              "high": [-0.1, 0.4, np.nan]})
    assert finetune_correlation.interval_reading(intervals, subject="X's").startswith("X's 95 % bootstrap intervals over "
                                                                          "encoders are 0.80 to 0.90 wide; 1 of 2")
    assert finetune_correlation.interval_reading(intervals.assign(low=np.nan)) == ""
    pearson = pd.DataFrame({"Ours (TR)": [-0.6, 0.2, -0.2], "LogME": [0.1, 0.1, 0.1]}, index=["t1", "t2", "Average"])
    bullets = finetune_correlation.correlation_summary(pearson, pd.Series({"t1": 0.9, "t2": np.nan}))
    assert "average Pearson r -0.20, the right sign on 1 of 2" in bullets and "ranks 1 of 2 scores, the best" in bullets
    assert "ranges 0.90 to 0.90" in bullets
    assert "nowhere" in finetune_correlation.correlation_summary(pearson.assign(**{"Ours (TR)": np.nan}))


def test_every_reading_ranks_among_the_same_scores():
    """The summary, the correlation paragraph and the rank section count a rank among the paper's
    scores: an extra column (PACTran-Dir, TR's transferred accuracy) never changes it."""
    avg = {"Ours (TR)": -0.3, "LogME": 0.2, "PACTran": -0.1, "PACTran-Dir": -0.9, "TR's transferred accuracy": 0.8}
    pearson = pd.DataFrame([avg, avg], index=["t1", "Average"])
    summary = pd.DataFrame([avg], index=["pearson"])
    expected = "ranks 1 of 3 scores, the best"
    assert expected in finetune_correlation.correlation_summary(pearson)
    assert expected in finetune_correlation.correlation_reading(pearson)
    rank = finetune_correlation.rank_reading(summary)
    assert expected in rank and "PACTran-Dir, TR's transferred accuracy not ranked" in rank


def test_pseudo_label_readings_pair_the_two_fits():
    true = _pairs().assign(labels="true", value_failed=False)
    pseudo = true.assign(labels="pseudo", label_mismatch=true.label_mismatch + 0.2,
                         value=true.value + 0.2)
    text = pseudo_labels.pseudo_terms_reading(pd.concat([true, pseudo], ignore_index=True))
    assert "Mean task-relatedness 2.35 with labels -> 2.55 without" in text
    assert "the label mismatch 0.050 -> 0.250" in text and "r = +1.00 over 4 pairs (strong)" in text
    failed = pseudo.assign(value_failed=[True, True, False, False])
    assert "r = n/a over 2 pairs" in pseudo_labels.pseudo_terms_reading(pd.concat([true, failed], ignore_index=True))
    tvp = pd.DataFrame({"true labels": [-0.5, np.nan, -0.5], "pseudo-labels": [-0.4, 0.1, -0.15]},
                       index=["t1", "t2", "Average"])
    frac = pd.DataFrame({"fraction": [0.1, 0.1, 1.0], "seed": [0, 1, 0], "target": "t1",
                         "pearson_r": [-0.2, np.nan, -0.6]})
    text = pseudo_labels.label_free_summary(tvp, frac)
    assert "-0.50 with the target's labels, -0.15 without" in text
    assert "(mean over targets and seeds): 10% -0.20, 100% -0.60; from 10% to 100% the average moves by -0.40" in text
    assert "agree" not in text
    dep = pd.DataFrame({"target": ["t1", "t2"], "r_value": [0.99, 0.97], "agreement": [0.5, 0.8],
                        "w_spread": [2.0, 3.0], "w_change": [0.1, 0.2]})
    assert ("r +0.97 to +0.99 per target) while the pseudo-labels match the true ones on 50% to 80% of the points: "
            "W varies 2.00 to 3.00 (std) across the zoo and the labels move it by 0.10 to 0.20") in \
        pseudo_labels.label_free_summary(tvp, frac, dep)


def _dependence(**changes) -> pd.DataFrame:
    d = pd.DataFrame({"target": ["near", "far"], "n_encoders": 4, "agreement": [0.8, 0.5], "r_value": [0.99, 0.98],
                      "share_reweighted_reference_loss": [0.3, 0.25], "share_label_mismatch": [0.0, 0.01],
                      "share_distribution_mismatch": [0.7, 0.74], "r_reweighted_reference_loss": [1.0, 0.99],
                      "r_label_mismatch": [0.1, 0.2], "r_distribution_mismatch": [0.99, 0.98],
                      "w_true": [7.0, 8.3], "w_pseudo": [7.1, 8.2], "w_shuffled": [10.7, 9.9],
                      "w_spread": [2.9, 2.1], "w_change": [0.11, 0.15]})
    return d.assign(**changes)


def test_label_dependence_reading_explains_from_the_numbers():
    text = pseudo_labels.label_dependence_reading(_dependence())
    assert "L_C carries 25% to 30% of the label-free value's variance" in text and "tau W 70% to 74%" in text
    assert "label mismatch H 0% to 1%" in text and "correlate at r = +0.99 to +1.00" in text
    assert "`near` 7.00 / 7.10 / 10.70; `far` 8.30 / 8.20 / 9.90" in text
    assert "stays close to the true labels', even where its labels agree with them on only 50% (`far`)" in text
    assert "(std 2.10 to 2.90) 14 to 26 times as much as the labels move it" in text
    assert "r = +0.98 to +0.99 between the two values per target: the label-free value reproduces" in text
    far = pseudo_labels.label_dependence_reading(_dependence(w_pseudo=[7.1, 9.5], r_value=[0.99, 0.5]))
    assert "stays close" not in far and "W without labels ends at 9.50 against 8.30 with them" in far
    assert "reproduces" not in far
    assert "No pair" in pseudo_labels.label_dependence_reading(_dependence().iloc[:0])



def test_signed_never_writes_minus_zero():
    from taskrel_utils.present.reading.common import signed

    assert [signed(-0.004), signed(0.004), signed(-0.005001), signed(0.42), signed(np.nan), signed(None)] == \
        ["0.00", "0.00", "-0.01", "+0.42", "n/a", "n/a"]

def test_no_text_names_the_papers_zoo():
    """The material the kit was built from does not say which zoo the paper's table uses
    (data/published/README.md): the generated prose and notebooks 04 and 05 call it "its zoo", never
    a CLIP zoo or a CLIP-scale zoo."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = sorted((root / "taskrel_utils" / "present" / "reading").glob("*.py"))
    files += [root / "notebooks" / name for name in ("04_finetune_correlation.ipynb", "05_pseudo_labels.ipynb")]
    found = [f"{path.name}: {phrase}" for path in files for phrase in ("CLIP-scale", "CLIP scale", "CLIP-zoo", "CLIP zoo")
             if phrase.lower() in path.read_text(encoding="utf-8").lower()]
    assert not found, found


