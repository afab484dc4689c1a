import numpy as np
import pandas as pd
import pytest

from taskrel_utils.study import correlation, drivers
from taskrel_utils.core.errors import TaskrelError


def _table(seed=0, n=8, targets=("a", "b")):
    rng = np.random.default_rng(seed)
    rows = []
    for t in targets:
        for e in range(n):
            terms = rng.normal(size=3) * [1.0, 0.1, 2.0]
            rows.append({"encoder": f"e{e}", "target": t, **dict(zip(drivers.TERMS, terms)),
                         "task_relatedness": terms.sum(), "accuracy": rng.uniform(), "probe_accuracy": rng.uniform()})
    return pd.DataFrame(rows)


def test_variance_shares_add_up_to_one_and_follow_the_terms():
    table = _table()
    att = drivers.term_attribution(table)
    for _, g in att.groupby("target"):
        terms = g[g.quantity.isin(drivers.TERMS)]
        assert terms.variance_share.sum() == pytest.approx(1.0)
        assert g.set_index("quantity").loc["task_relatedness", "variance_share"] == pytest.approx(1.0)
    # a term that is constant across encoders explains nothing
    table["label_mismatch"] = 0.3
    table["task_relatedness"] = table[list(drivers.TERMS)].sum(axis=1)
    att = drivers.term_attribution(table).set_index(["target", "quantity"])
    assert att.loc[("a", "label_mismatch"), "variance_share"] == pytest.approx(0.0)
    assert np.isnan(att.loc[("a", "label_mismatch"), "r_accuracy"])


def test_term_correlations_are_pearson_per_target():
    table = _table(1)
    att = drivers.term_attribution(table).set_index(["target", "quantity"])
    g = table[table.target == "b"]
    assert att.loc[("b", "distribution_mismatch"), "r_probe_accuracy"] == pytest.approx(
        correlation.pearson(g.distribution_mismatch, g.probe_accuracy))
    with pytest.raises(TaskrelError, match="missing"):
        drivers.term_attribution(table.drop(columns="probe_accuracy"))


def test_average_r_interval_brackets_the_average_and_is_seeded():
    table = _table(2, n=10, targets=("a", "b", "c"))
    table["accuracy"] = -table.task_relatedness + np.random.default_rng(3).normal(0, 0.5, len(table))
    out = drivers.average_r_interval(table, "task_relatedness", n_boot=300, seed=0)
    avg = correlation.correlation_table(table, ["task_relatedness"]).loc["Average", "task_relatedness"]
    assert out["r"] == pytest.approx(avg) and out["low"] <= out["r"] <= out["high"] < 0
    assert out == drivers.average_r_interval(table, "task_relatedness", n_boot=300, seed=0)
    assert out["n_targets"] == 3 and out["n_encoders"] == 10
    with pytest.raises(TaskrelError, match="at least 3 encoders"):
        drivers.average_r_interval(table[table.encoder.isin(["e0", "e1"])], "task_relatedness")


def test_feature_spread_counts_independent_directions():
    rng = np.random.default_rng(0)
    assert drivers.feature_spread(rng.normal(size=(4000, 5))) == pytest.approx(5, rel=0.02)
    line = rng.normal(size=(500, 1)) @ np.ones((1, 6)) + 1e-6 * rng.normal(size=(500, 6))
    assert drivers.feature_spread(line) == pytest.approx(1, rel=0.01)
    assert drivers.feature_spread(np.c_[rng.normal(size=(300, 3)), np.ones(300)]) == pytest.approx(3, rel=0.1)
