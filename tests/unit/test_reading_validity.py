import pandas as pd

from taskrel_utils.present.reading import validity as rv


def test_premise_reading_names_both_groups_with_their_gains():
    premise = pd.DataFrame([
        {"target": "near", "main_median_probe": 0.8, "random_probe": 0.7, "gain": 0.1, "threshold": 0.05,
         "related": True, "measured": True},
        {"target": "digits", "main_median_probe": 0.8, "random_probe": 0.83, "gain": -0.03, "threshold": 0.05,
         "related": False, "measured": True}])
    text = rv.premise_reading(premise)
    assert "related targets are `near`" in text and "unrelated ones are `digits`" in text and "(-0.030)" in text
    unmeasured = premise.assign(measured=False)
    assert "Not measured" in rv.premise_reading(unmeasured)


def test_below_probe_reading_counts_pairs_beyond_the_margin():
    ft = pd.DataFrame({"encoder": ["a", "b", "c"], "target": "t", "accuracy": [0.80, 0.795, 0.70],
                       "probe_accuracy": [0.79, 0.80, 0.75]})
    text = rv.below_probe_reading(ft)
    assert "2 of 3 pairs (67%)" in text and "by target: `t` 1; by encoder: `c` 1" in text and "`b`" not in text
    assert text.endswith("(goal: 90%)") is False and "`a`" not in text
    many = pd.DataFrame({"encoder": list("aabbc"), "target": ["t", "u", "t", "u", "t"], "accuracy": 0.5,
                         "probe_accuracy": 0.6})
    assert "by target: `t` 3, `u` 2; by encoder: `a` 2, `b` 2, `c` 1" in rv.below_probe_reading(many)
    assert rv.below_probe_reading(many.assign(accuracy=0.7)).endswith("(goal: 90%).")


def test_headline_and_attribution_readings_quote_the_numbers():
    head = {"r": -0.61, "low": -0.9, "high": -0.2, "n_targets": 2}
    text = rv.headline_reading(head, -0.82, ["x", "y"], {"r": 0.3, "low": -0.1, "high": 0.6})
    assert "r = -0.61 (95 % interval -0.90 to -0.20" in text and "-0.82" in text and "+0.30" in text
    att = pd.DataFrame([{"target": "x", "quantity": q, "variance_share": s, "r_accuracy": -0.5, "r_probe_accuracy": rp}
                        for q, s, rp in [("reweighted_reference_loss", 0.2, 0.1), ("label_mismatch", 0.0, 0.0),
                                         ("distribution_mismatch", 0.8, 0.7), ("task_relatedness", 1.0, 0.8)]])
    text = rv.attribution_reading(att, ["x"])
    assert "distribution mismatch (tau W) 80%" in text and "On `x` task-relatedness rises" in text


def test_mechanism_reading_says_where_w_grows_with_the_probe():
    mech = pd.DataFrame({"w_vs_spread": [0.1, 0.2], "w_vs_probe": [0.9, -0.5], "spread_vs_probe": [0.3, 0.4]},
                        index=["digits", "near"])
    text = rv.mechanism_reading(mech)
    assert "collapse does not explain it" in text and "On `digits` W *grows*" in text and "on `near` it shrinks" in text
    assert "rewards collapse" in rv.mechanism_reading(mech.assign(w_vs_spread=[0.7, 0.1]))
