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


def _fits(seed=0, n=6, targets=("a", "b")):
    """Labelled, label-free and shuffled-label rows of the same pairs, with the theorem's W."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in targets:
        for e in range(n):
            lc, w, tau = rng.uniform(0.5, 2.0), rng.uniform(2.0, 10.0), 0.2
            rows.append({"encoder": f"e{e}", "target": t, "reweighted_reference_loss": lc, "label_mismatch": 0.0,
                         "tau": tau, "wasserstein_theorem": w, "distribution_mismatch": tau * w, "value": lc + tau * w,
                         "wasserstein": w, "value_failed": False, "value_wasserstein": "theorem"})
    true = pd.DataFrame(rows)
    pseudo = true.assign(wasserstein_theorem=true.wasserstein_theorem + rng.normal(scale=0.1, size=len(true)),
                         pseudo_label_accuracy=np.linspace(0.4, 0.9, len(true)))
    shuffled = true.assign(wasserstein_theorem=true.wasserstein_theorem + 3.0)
    return true, pseudo, shuffled


def test_label_dependence_measures_what_the_labels_change():
    true, pseudo, shuffled = _fits()
    dep = drivers.label_dependence(true, pseudo, shuffled).set_index("target")
    assert list(dep.index) == ["a", "b"] and (dep.n_encoders == 6).all()
    shares = dep[[f"share_{t}" for t in drivers.TERMS]]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert (dep.share_label_mismatch == 0).all()
    g = true[true.target == "a"]
    p = pseudo[pseudo.target == "a"]
    assert dep.loc["a", "w_true"] == pytest.approx(g.wasserstein_theorem.mean())
    assert dep.loc["a", "w_shuffled"] == pytest.approx(g.wasserstein_theorem.mean() + 3.0)
    assert dep.loc["a", "w_pseudo"] == pytest.approx(p.wasserstein_theorem.mean())
    assert dep.loc["a", "w_spread"] == pytest.approx(g.wasserstein_theorem.std(ddof=0))
    assert dep.loc["a", "w_change"] == pytest.approx((p.wasserstein_theorem - g.wasserstein_theorem).std(ddof=0))
    assert dep.loc["a", "agreement"] == pytest.approx(p.pseudo_label_accuracy.mean())
    # every value is taken with the theorem's W: the label-free value here is L_C + H + tau W_pseudo
    pv = p.reweighted_reference_loss + p.tau * p.wasserstein_theorem
    assert dep.loc["a", "r_value"] == pytest.approx(correlation.pearson(g.value, pv))
    assert dep.loc["a", "r_reweighted_reference_loss"] == pytest.approx(1.0)
    # a labelled value with the code's W (another number) is put on the theorem's W first
    code = true.assign(value=true.value + 5.0, distribution_mismatch=0.0, value_wasserstein="code")
    assert drivers.label_dependence(code, pseudo, shuffled).equals(drivers.label_dependence(true, pseudo, shuffled))
