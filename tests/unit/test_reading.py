"""The notebooks' reading sentences follow the numbers they read."""
import numpy as np
import pandas as pd

from taskrel_utils import reading


def test_reading_sentences_follow_the_numbers():
    pearson = pd.DataFrame({"Ours (TR)": [-0.8, 0.2], "LogME": [0.5, -0.1]}, index=["a", "b"])
    pearson.loc["Average"] = pearson.mean()
    text = reading.correlation_reading(pearson)
    assert "`a` -0.80, `b` +0.20" in text and "average -0.30" in text and "1 of 2 targets" in text
    assert "ranks 1 of 2" in text  # sign-corrected: TR +0.30 beats LogME +0.20
    assert "ranks 2 of 2" in reading.correlation_reading(pearson, score="LogME")


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
    text = reading.bound_terms_reading(_pairs())
    assert "on `near` the re-weighted reference loss (71% of a mean task-relatedness of 1.55)" in text
    assert "on `far` the distribution mismatch" in text and "Over all 4 pairs the largest is the distribution" in text
    gap = reading.bound_gap_reading(_pairs())
    # gaps 1.0, 0.9, 1.6, 0.7: all above the probe; value >= transferred loss in 3 of 4 (3.7 < 3.9)
    assert "4 of 4 pairs; the gap is 1.05 on average (0.70 to 1.60)" in gap
    assert "in 3 of 4 pairs; the others" in gap


def test_bound_readings_skip_non_finite_pairs():
    assert "Over all 3 pairs" in reading.bound_terms_reading(_pairs(nan=True))
    assert "3 of 3 pairs" in reading.bound_gap_reading(_pairs(nan=True))
    empty = _pairs().assign(value=np.nan)
    assert "No pair" in reading.bound_terms_reading(empty) and "No pair" in reading.bound_gap_reading(empty)
    summary = reading.bound_summary(_pairs(nan=True), np.nan, {"far": np.nan}, related="far")
    assert "3 of 3 pairs" in summary and "by n/a" in summary
    assert "r = n/a (undefined; the bound promises a positive r)" in summary


def test_ordering_reading_follows_the_sign_and_the_strength():
    strong = reading.ordering_reading(0.8, pd.Series({"a": 0.9, "b": -0.2, "c": np.nan}), n_pairs=9)
    assert "A strong positive r over all 9 pairs (+0.80)" in strong and "the ordering the bound promises" in strong
    assert "`a` +0.90, `b` -0.20: positive on 1 of 2 targets" in strong
    assert "weak tendency" in reading.ordering_reading(0.1, pd.Series(dtype=float))
    assert "not the one the bound promises" in reading.ordering_reading(-0.7, pd.Series({"a": -0.7}))
    undefined = reading.ordering_reading(np.nan, pd.Series({"a": np.nan}))
    assert "undefined in this run" in undefined and "too few encoders" in undefined


def test_b_init_reading_compares_the_starts():
    one = pd.DataFrame({"b_init": ["class_means"], "mean value": [3.0], "mean gap": [1.0],
                        "pearson r (all pairs)": [np.nan]})
    assert "Only the `class_means` start ran" in reading.b_init_reading(one) and "r n/a" in reading.b_init_reading(one)
    two = pd.concat([one.assign(**{"pearson r (all pairs)": 0.3}),
                     pd.DataFrame({"b_init": ["random"], "mean value": [2.5], "mean gap": [0.5],
                                   "pearson r (all pairs)": [-0.2]})], ignore_index=True)
    text = reading.b_init_reading(two)
    assert "The `random` start gives the tighter bound (mean 2.50 against 3.00" in text
    assert "depends on the start" in text


def test_reference_training_reading_reads_the_change_per_target():
    longer = pd.DataFrame({"epochs": [1, 1, 10, 10], "target": ["near", "far"] * 2, "value": [3.0, 4.0, 2.5, np.nan],
                           "reference_accuracy": [0.8, 0.8, 0.9, 0.9]})
    text = reading.reference_training_reading(longer, related="near")
    assert "changes by +0.100" in text and "`near` -0.500, `far` n/a" in text and "falls on 1 of 2" in text
    assert "falls, as the paper claims" in text
    assert "cannot be read" in reading.reference_training_reading(longer, related="far")


def _scores() -> pd.DataFrame:
    return pd.DataFrame({"encoder": ["a", "b", "c", "r"] * 2, "target": ["t1"] * 4 + ["t2"] * 4,
                         "group": ["main", "main", "main", "contrast"] * 2,
                         "accuracy": [0.9, 0.8, 0.7, 0.95, 0.5, 0.6, 0.7, 0.1],
                         "accuracy_std": [0.01] * 8,
                         "task_relatedness": [1.0, 2.0, 3.0, 0.1, 1.0, 2.0, np.nan, 9.0],
                         "logme": [0.1, 0.2, 0.3, 0.0, 0.3, 0.2, 0.1, 0.0]})


def test_finetune_and_top_pick_readings_stay_in_the_main_zoo():
    text = reading.finetune_reading(_scores())
    assert "`t1` 0.700 to 0.900 (best `a`; spread 20.0 times" in text and "`t2` 0.500 to 0.700 (best `c`" in text
    assert "(best `c`)" in reading.finetune_reading(_scores().assign(accuracy_std=np.nan))
    tr = reading.top_pick_reading(_scores())  # lowest first; the NaN score of c on t2 is skipped
    assert "(lowest first)" in tr and "`t1` `a` (0.900, the best)" in tr and "`t2` `a` (0.500; best `b` 0.600)" in tr
    assert "costs 0.050" in tr
    logme = reading.top_pick_reading(_scores(), "logme")
    assert "(highest first)" in logme and "`t1` `c` (0.700; best `a` 0.900)" in logme
    assert "No finite score" in reading.top_pick_reading(_scores().assign(logme=np.nan), "logme")


def test_rank_interval_and_summary_readings():
    summary = pd.DataFrame({"Ours (TR)": [-0.5, -0.1], "LogME": [0.3, 0.4], "SFDA": [np.nan, 0.0]},
                           index=["pearson", "kendall"])
    text = reading.rank_reading(summary)
    assert "pearson -0.50 (rank 1 of 2, the best)" in text and "kendall -0.10 (rank 2 of 3; best LogME)" in text
    assert "moves with the method" in text
    intervals = pd.DataFrame({"target": ["t1", "t2", "t3"], "score": "Ours (TR)", "low": [-0.9, -0.5, np.nan],
                              "high": [-0.1, 0.4, np.nan]})
    assert reading.interval_reading(intervals, subject="X's").startswith("X's 95 % bootstrap intervals over "
                                                                          "encoders are 0.80 to 0.90 wide; 1 of 2")
    assert reading.interval_reading(intervals.assign(low=np.nan)) == ""
    pearson = pd.DataFrame({"Ours (TR)": [-0.6, 0.2, -0.2], "LogME": [0.1, 0.1, 0.1]}, index=["t1", "t2", "Average"])
    bullets = reading.correlation_summary(pearson, pd.Series({"t1": 0.9, "t2": np.nan}))
    assert "average Pearson r -0.20, the right sign on 1 of 2" in bullets and "ranks first of 2" in bullets
    assert "ranges 0.90 to 0.90" in bullets
    assert "nowhere" in reading.correlation_summary(pearson.assign(**{"Ours (TR)": np.nan}))


def test_pseudo_label_readings_pair_the_two_fits():
    true = _pairs().assign(labels="true", value_failed=False)
    pseudo = true.assign(labels="pseudo", label_mismatch=true.label_mismatch + 0.2,
                         value=true.value + 0.2)
    text = reading.pseudo_terms_reading(pd.concat([true, pseudo], ignore_index=True))
    assert "Mean task-relatedness 2.35 with labels -> 2.55 without" in text
    assert "the label mismatch 0.050 -> 0.250" in text and "r = +1.00 over 4 pairs (strong)" in text
    failed = pseudo.assign(value_failed=[True, True, False, False])
    assert "r = n/a over 2 pairs" in reading.pseudo_terms_reading(pd.concat([true, failed], ignore_index=True))
    tvp = pd.DataFrame({"true labels": [-0.5, np.nan, -0.5], "pseudo-labels": [-0.4, 0.1, -0.15]},
                       index=["t1", "t2", "Average"])
    frac = pd.DataFrame({"fraction": [0.1, 0.1, 1.0], "seed": [0, 1, 0], "target": "t1",
                         "pearson_r": [-0.2, np.nan, -0.6]})
    text = reading.label_free_summary(tvp, frac)
    assert "-0.50 with the target's labels, -0.15 without" in text and "With 10% of the target data: -0.20" in text
    assert "with 100%: -0.60" in text
