"""OTCE with its coefficients fitted on the other targets (``scores.otce_leave_one_target_out``)."""
import numpy as np
import pandas as pd

from taskrel_utils.study import scores


def test_otce_leave_one_target_out_never_sees_the_held_out_accuracies():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"target": np.repeat(["a", "b", "c"], 5), "otce_wasserstein": rng.normal(size=15),
                          "otce_conditional_entropy": rng.normal(size=15)})
    table["accuracy"] = 0.5 * table.otce_wasserstein - 2 * table.otce_conditional_entropy + 1
    exact = scores.otce_leave_one_target_out(table)
    np.testing.assert_allclose(exact, table.accuracy, atol=1e-10)  # a linear truth is recovered
    poisoned = table.copy()
    poisoned.loc[poisoned.target == "a", "accuracy"] = 99.0
    s = scores.otce_leave_one_target_out(poisoned)
    np.testing.assert_allclose(s[table.target == "a"], table.accuracy[table.target == "a"], atol=1e-10)
    assert not np.allclose(s[table.target == "b"], table.accuracy[table.target == "b"])


def test_otce_leave_one_target_out_needs_as_many_rows_as_coefficients():
    table = pd.DataFrame({"target": ["a", "a", "b", "b", "b"], "otce_wasserstein": [0.1, 0.2, 0.3, 0.5, 0.4],
                          "otce_conditional_entropy": [1.0, 0.5, 0.2, 0.9, 0.3], "accuracy": [0.5] * 5})
    s = scores.otce_leave_one_target_out(table)
    assert s[table.target == "b"].isna().all()  # only 2 rows of "a" to fit 3 coefficients on
    np.testing.assert_allclose(s[table.target == "a"], 0.5, atol=1e-10)  # 3 rows of "b": a constant truth
