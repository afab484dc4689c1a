"""Choosing h_R's gradient-norm threshold tau0 from a sweep."""
import pandas as pd

from taskrel_utils.study import tau0_study


def test_choose_tau0_takes_the_best_separation_among_affordable_thresholds():
    sweep = pd.DataFrame({"tau0": [0.1, 0.1, 0.5, 0.5, 1.0, 1.0], "separation": [0.1, 0.2, 0.3, 0.3, 0.9, 0.7],
                          "penalty_price": [0.0, 0.01, 0.01, 0.01, 0.05, 0.03],
                          "reference_accuracy": [0.9] * 6, "penalty_active": [0.1] * 6})
    choice = tau0_study.choose_tau0(sweep, max_price=0.02)
    assert choice["tau0"] == 0.5 and choice["price_rule_met"]  # 1.0 separates best but costs 4 points
    assert tau0_study.choose_tau0(sweep)["tau0"] == 0.5  # the default price: 2 points
    assert tau0_study.choose_tau0(sweep, max_price=0.05)["tau0"] == 1.0
    fallback = tau0_study.choose_tau0(sweep.assign(penalty_price=0.5), max_price=0.02)
    assert fallback["tau0"] == 1.0 and not fallback["price_rule_met"]
