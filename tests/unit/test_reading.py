"""The notebooks' reading sentences follow the numbers they read."""
import pandas as pd

from taskrel_utils import reading


def test_reading_sentences_follow_the_numbers():
    pearson = pd.DataFrame({"Ours (TR)": [-0.8, 0.2], "LogME": [0.5, -0.1]}, index=["a", "b"])
    pearson.loc["Average"] = pearson.mean()
    text = reading.correlation_reading(pearson)
    assert "`a` -0.80, `b` +0.20" in text and "average -0.30" in text and "1 of 2 targets" in text
    assert "ranks 1 of 2" in text  # sign-corrected: TR +0.30 beats LogME +0.20
    assert "ranks 2 of 2" in reading.correlation_reading(pearson, score="LogME")


# --- notebooks 01 and 02 ---
import numpy as np  # noqa: E402


def test_notebook_01_readings_quote_the_tables():
    tasks = pd.DataFrame({"task": ["ref", "t4", "t10"], "role": ["reference", "target", "target"],
                          "classes": [10, 4, 10], "train": [300, 120, 300], "test": [100, 40, 100]})
    ref_classes = pd.DataFrame({"target": ["t4", "t10"], "K_T": [4, 10], "K_R": [4, 10],
                                "reference_classes": ["a, b, c, d", "all"], "reference_train": [120, 300]})
    text = reading.tasks_reading(tasks, ref_classes)
    assert "`ref` has 10 classes (300 train / 100 test" in text and "`t4` 4 classes (120 / 40)" in text
    assert "For `t4` (4 classes) the reference is cut to 4 of its classes (a, b, c, d; 120" in text
    assert "`t10` (10" not in text  # not cut
    sep = pd.DataFrame({"encoder": ["e1", "e2", "rnd"] * 2, "task": ["ref"] * 3 + ["t4"] * 3,
                        "nearest_mean_accuracy": [0.9, 0.7, 0.2, 0.5, 0.6, 0.58]})
    text = reading.separability_reading(sep, {"ref": 10, "t4": 4}, contrasts=["rnd"], reference="ref")
    assert "`ref` (chance 0.10): the main zoo reaches 0.70 to 0.90 (best `e1`); contrasts `rnd` 0.20." in text
    assert "`t4` (chance 0.25): the main zoo reaches 0.50 to 0.60 (best `e2`)" in text
    assert "`rnd` on 1 of 2 tasks" in text  # below the main zoo's mean on ref only (0.58 > 0.55 on t4)
    photos = pd.DataFrame({"encoder": ["m"] * 2, "photo": ["cat", "cup"], "top-1": ["tabby, cat", "cup"],
                           "p(top-1)": [0.5, 0.25], "recognised_top5": [True, False]})
    text = reading.photo_reading(photos)
    assert "`m` recognises 1 of 2 photos" in text and "cat -> tabby (0.50)" in text and "check the weights" in text


def test_notebook_02_readings_quote_the_numbers():
    hand = pd.DataFrame({"step": [0, 1], "J_before": [100.0, 90.0], "J_after": [50.0, 95.0], "dA": [0.3, 0.2],
                         "dA_max": [0.01, 0.01], "db": [0.1, 0.1], "dB": [0.4, 0.0], "dD": [0.2, 0.0],
                         "feature_term": [12.0, 9.0], "label_term": [1e-3, 1e-6], "PM": [0.1, 0.0], "IC": [0.0, 1e-4]})
    text = reading.hand_steps_reading(hand, dict(lr=0.01, Lambda=1e4, lambda_wd=2.0))
    assert "it did in 1 of 2 steps (step 0: 100 -> 50)" in text and "learning rate, 0.01" in text
    assert "lambda_wd x Lambda = 2e+04, makes 20.0% of J" in text  # 2e4 x 1e-3 / 100
    assert "feature term 12 -> 9" in text
    assert "equal the hand ones in 2 of 2 steps (bit for bit" in reading.one_line_reading(
        [{"objective": 100.0}, {"objective": 90.0}, {"objective": 80.0}], hand)
    assert "in 1 of 2 steps (**they differ**" in reading.one_line_reading([{"objective": 100.0}, {"objective": 1.0}], hand)
    diag = dict(steps_used=120, steps=1000, min_steps=100, window=10, converged=True, mean_before=5.0, mean_last=4.99,
                change=0.01, tol=1e-3, tol_threshold=0.00499, noise_threshold=0.02, deciding="noise")
    text = reading.convergence_reading(diag)
    assert "held after 120 steps (cap 1000" in text and "the noise threshold" in text
    assert "ran into the cap of 1000" in reading.convergence_reading(dict(diag, converged=False))
    choice = {"tau0": 0.2, "price_rule_met": True, "means": pd.DataFrame({"tau0": [0.1, 0.2], "separation": [0.1, 0.3]})}
    assert "tau0 = 0.2 separates" in reading.tau0_reading(choice, 3, 0.02, 0.2) and "the same." in \
        reading.tau0_reading(choice, 3, 0.02, 0.2)
    assert "**a different value**" in reading.tau0_reading(choice, 3, 0.02, 0.5)
    starts = pd.DataFrame({"b_init": ["random", "random", "class_means", "class_means"],
                           "target_kind": ["related", "unrelated (shuffled labels)"] * 2,
                           "value": [3.0, 3.5, 2.0, 4.0], "steps_used": [200, 210, 100, 120]})
    text = reading.start_reading(starts)
    assert "+0.500 (`random`), +2.000 (`class_means`): the `class_means` start separates them more" in text
    B = np.array([[0.95, 0.5, 0.0], [0.05, 0.5, 1.0]])
    text = reading.label_map_reading(B, np.array([0.6, 0.3, 0.1]), np.full(3, 1 / 3), ["x", "y"], ["a", "b", "c"])
    assert "2 of 3 columns" in text and "a -> x, b -> x, c -> y" in text and "`a` (0.333 -> 0.600)" in text
    H = -(0.6 * (0.95 * np.log(0.95) + 0.05 * np.log(0.05)) + 0.3 * np.log(0.5))
    assert f"H = {H:.3f} nats" in text
    plan = {"plan": np.array([[0.5, 0.0], [0.25, 0.25]]), "reference_labels": np.array([0, 1]),
            "target_labels": np.array([0, 1])}
    assert "75.0% of its mass" in reading.example_plan_reading(plan, np.eye(2))
    history = [{"objective": 3.0, "PM": 0.5, "seconds": 0.0}, {"objective": 1.0, "PM": 0.0, "seconds": 2.0}]
    text = reading.fit_curves_reading(history)
    assert "* **objective**: J (14)" in text and "3 -> 1." in text and "**PM**" in text and "label_term" not in text
