import numpy as np
import pytest
from scipy import stats

from taskrel_utils.study import correlation
from taskrel_utils.core.errors import TaskrelError, UnknownNameError


def naive_pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / np.sqrt((xc ** 2).sum() * (yc ** 2).sum())


def naive_weighted_tau(x, y):
    """Additive hyperbolic weighted tau without ties: mean of the taus weighted by the rank by x and by y."""
    x, y = np.asarray(x, float), np.asarray(y, float)

    def one_side(key):
        rank = np.empty(len(key), int)
        rank[np.argsort(-key)] = np.arange(len(key))      # 0 = largest value
        num = den = 0.0
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                w = 1 / (rank[i] + 1) + 1 / (rank[j] + 1)
                num += w * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
                den += w
        return num / den

    return (one_side(x) + one_side(y)) / 2


@pytest.fixture
def correlated():
    rng = np.random.default_rng(0)
    x = rng.normal(size=25)
    return x, x + rng.normal(size=25)


def test_pearson_matches_the_definition_and_is_affine_invariant():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=20), rng.normal(size=20)
    assert correlation.pearson(x, y) == pytest.approx(naive_pearson(x, y), abs=1e-12)
    assert correlation.pearson(3 * x + 1, y) == pytest.approx(correlation.pearson(x, y), abs=1e-12)
    assert correlation.pearson(x, -y) == pytest.approx(-correlation.pearson(x, y), abs=1e-12)
    assert correlation.pearson(x, 2 * x - 5) == pytest.approx(1.0)


def test_spearman_is_rank_based():
    x = np.arange(10.0)
    assert correlation.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert correlation.pearson(x, np.exp(x)) < 0.9


def test_rank_correlations_are_one_on_a_monotone_non_linear_relation_and_pearson_is_not():
    x = np.linspace(0.1, 5, 12)
    y = np.exp(2 * x)
    for name in ("spearman", "kendall", "weighted_kendall"):
        assert correlation.METHODS[name](x, y) == pytest.approx(1.0)
        assert correlation.METHODS[name](x, -y) == pytest.approx(-1.0)
    assert correlation.pearson(x, y) < 0.9


def test_kendall_hand_computed():
    # pairs of y = [3,1,2,5,4] in x order: 7 concordant, 3 discordant -> (7 - 3) / 10
    assert correlation.kendall([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]) == pytest.approx(0.4)
    # one pair tied in x: C = 5, D = 0, n0 = 6, n_x = 1 -> tau-b = 5 / sqrt(5 * 6), not tau-a = 5/6
    assert correlation.kendall([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / np.sqrt(30))


def test_weighted_kendall_is_scipys_default_and_matches_the_definition(correlated):
    x, y = correlated
    expected = stats.weightedtau(x, y, rank=True, weigher=None, additive=True).statistic
    assert correlation.weighted_kendall(x, y) == pytest.approx(expected, abs=1e-12)
    assert correlation.weighted_kendall(x, y) == pytest.approx(naive_weighted_tau(x, y), abs=1e-12)
    assert correlation.weighted_kendall(y, x) == pytest.approx(correlation.weighted_kendall(x, y), abs=1e-12)
    assert correlation.weighted_kendall(x, y) != pytest.approx(correlation.kendall(x, y), abs=1e-3)


def test_weighted_kendall_identical_and_reversed_rankings():
    acc = np.array([84.1, 84.6, 85.5, 86.3, 84.7, 84.2, 85.4, 66.5, 79.7, 80.3, 80.2])
    assert correlation.weighted_kendall(np.log(acc), acc) == pytest.approx(1.0)
    assert correlation.weighted_kendall(-acc, acc) == pytest.approx(-1.0)


def test_weighted_kendall_emphasises_the_top_ranks():
    acc = np.arange(10.0)                                    # top = largest
    swap_top, swap_bottom = acc.copy(), acc.copy()
    swap_top[[8, 9]] = swap_top[[9, 8]]
    swap_bottom[[0, 1]] = swap_bottom[[1, 0]]
    assert correlation.kendall(swap_top, acc) == pytest.approx(correlation.kendall(swap_bottom, acc))
    assert correlation.weighted_kendall(swap_top, acc) < correlation.weighted_kendall(swap_bottom, acc) < 1


def test_weighted_kendall_of_a_negated_score_is_not_the_negated_weighted_kendall(correlated):
    x, y = correlated
    assert correlation.kendall(-x, y) == pytest.approx(-correlation.kendall(x, y))
    assert correlation.weighted_kendall(-x, y) != pytest.approx(-correlation.weighted_kendall(x, y), abs=1e-3)


def test_methods_lists_the_four_coefficients():
    assert set(correlation.METHODS) == {"pearson", "spearman", "kendall", "weighted_kendall"}
    assert correlation.METHODS["pearson"] is correlation.pearson


@pytest.mark.parametrize("method", sorted(correlation.METHODS))
def test_bootstrap_distribution_equals_the_coefficient_on_each_resample(method):
    x = np.array([0.3, 0.3, 0.3, 2.9, 4.4])                 # ties: about 8% of resamples have a constant x
    y = np.array([1.0, 0.4, 2.5, 2.2, 5.0])
    draws = correlation.bootstrap_distribution(x, y, method=method, n_boot=300, seed=3)
    idx = np.random.default_rng(3).integers(0, x.size, size=(300, x.size))
    expected = [correlation.METHODS[method](x[i], y[i]) for i in idx if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0]
    assert 0 < len(expected) < 300                         # some resamples were constant and skipped
    np.testing.assert_allclose(draws, expected, atol=1e-12)


@pytest.mark.parametrize("n", [60, 120])                   # both Kendall code paths (vectorised up to 80 pairs)
def test_bootstrap_distribution_of_kendall_with_many_ties(n):
    rng = np.random.default_rng(n)
    x = rng.integers(0, 6, n).astype(float)
    y = x + rng.integers(0, 4, n)
    draws = correlation.bootstrap_distribution(x, y, method="kendall", n_boot=40, seed=0)
    idx = np.random.default_rng(0).integers(0, n, size=(40, n))
    np.testing.assert_allclose(draws, [correlation.kendall(x[i], y[i]) for i in idx], atol=1e-12)


@pytest.mark.parametrize("method", sorted(correlation.METHODS))
def test_bootstrap_ci_contains_the_estimate_and_is_reproducible(correlated, method):
    x, y = correlated
    ci = correlation.bootstrap_ci(x, y, method=method, n_boot=400, seed=1)
    assert ci.estimate == pytest.approx(correlation.METHODS[method](x, y))
    assert -1 <= ci.low < ci.estimate < ci.high <= 1
    assert (ci.method, ci.level, ci.n_boot, ci.n_used) == (method, 0.95, 400, 400)
    assert correlation.bootstrap_ci(x, y, method=method, n_boot=400, seed=1) == ci
    other = correlation.bootstrap_ci(x, y, method=method, n_boot=400, seed=2)
    assert (other.low, other.high) != (ci.low, ci.high)


def test_bootstrap_ci_is_the_central_percentile_interval_of_the_distribution(correlated):
    x, y = correlated
    draws = correlation.bootstrap_distribution(x, y, method="spearman", n_boot=500, seed=4)
    ci = correlation.bootstrap_ci(x, y, method="spearman", n_boot=500, level=0.8, seed=4)
    assert (ci.low, ci.high) == pytest.approx(tuple(np.quantile(draws, [0.1, 0.9])), abs=1e-12)
    assert np.mean((draws >= ci.low) & (draws <= ci.high)) == pytest.approx(0.8, abs=0.01)


def test_bootstrap_ci_narrows_with_more_points_and_widens_with_the_level():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y = x + rng.normal(size=400)
    few = correlation.bootstrap_ci(x[:15], y[:15])
    many = correlation.bootstrap_ci(x, y)
    assert many.high - many.low < 0.5 * (few.high - few.low)
    wide = correlation.bootstrap_ci(x, y, level=0.99)
    assert wide.low < many.low and wide.high > many.high


def test_bootstrap_refuses_too_many_constant_resamples():
    # P(constant x) = P(constant y) = 9/27, both at once 3/27: 15/27 > 1/2 of the resamples are skipped
    with pytest.raises(TaskrelError, match="constant x or y"):
        correlation.bootstrap_ci([0, 0, 1], [0, 1, 1], n_boot=500)
    assert correlation.bootstrap_ci([0, 1, 2], [0, 1, 1], n_boot=500).n_used < 500   # 9/27 skipped: allowed


def test_bootstrap_argument_errors(correlated):
    x, y = correlated
    with pytest.raises(UnknownNameError, match="pearson"):
        correlation.bootstrap_ci(x, y, method="pearsonr")
    with pytest.raises(TaskrelError, match="level"):
        correlation.bootstrap_ci(x, y, level=95)
    with pytest.raises(TaskrelError, match="n_boot"):
        correlation.bootstrap_ci(x, y, n_boot=0)


@pytest.mark.parametrize("function", [*correlation.METHODS.values(), correlation.bootstrap_ci])
@pytest.mark.parametrize("x,y,msg", [([1, 2], [1, 2], "at least 3"), ([1, 2, 3], [1, 2], "same length"),
                                     ([1, 2, np.nan], [1, 2, 3], "finite"), ([1, 1, 1], [1, 2, 3], "constant"),
                                     ([1, 2, 3], [4, 4, 4], "constant")])
def test_errors(function, x, y, msg):
    with pytest.raises(TaskrelError, match=msg):
        function(x, y)


def test_correlation_table_layout_and_average():
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for target, sign in (("a", 1.0), ("b", -1.0)):
        acc = rng.uniform(size=6)
        for i, a in enumerate(acc):
            rows.append({"target": target, "accuracy": a, "good": sign * a + 0.01 * i, "flat": 1.0})
    table = pd.DataFrame(rows)
    t = correlation.correlation_table(table, ["good", "flat"])
    assert list(t.index) == ["a", "b", "Average"] and list(t.columns) == ["good", "flat"]
    assert t.loc["a", "good"] == pytest.approx(correlation.pearson(table.good[:6], table.accuracy[:6]))
    assert t.loc["a", "good"] > 0.99 and t.loc["b", "good"] < -0.99
    assert t.loc["Average", "good"] == pytest.approx((t.loc["a", "good"] + t.loc["b", "good"]) / 2)
    assert np.isnan(t.loc["a", "flat"]) and np.isnan(t.loc["Average", "flat"])  # constant score: undefined
    k = correlation.correlation_table(table, ["good"], method="kendall")
    assert k.loc["a", "good"] == pytest.approx(1.0)
    with pytest.raises(TaskrelError, match="missing"):
        correlation.correlation_table(table, ["nope"])
    with pytest.raises(UnknownNameError):
        correlation.correlation_table(table, ["good"], method="cosine")


# ---------------------------------------------------------------------------- split-half reliability
def test_split_half_kendall_identical_seeds_is_one_and_opposite_halves_minus_one():
    acc = np.array([0.5, 0.9, 0.7, 0.6, 0.8])
    assert correlation.split_half_kendall(np.tile(acc[:, None], (1, 6))) == pytest.approx(1.0)
    assert correlation.split_half_kendall(np.column_stack([acc, -acc])) == pytest.approx(-1.0)


def test_split_half_kendall_of_pure_noise_is_near_zero():
    rng = np.random.default_rng(0)
    taus = [correlation.split_half_kendall(rng.normal(size=(40, 6))) for _ in range(20)]
    assert abs(np.mean(taus)) < 0.05 and max(abs(t) for t in taus) < 0.35


def test_split_half_kendall_averages_every_balanced_split_once():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(7, 4)) + np.arange(7)[:, None] * 0.3
    # four seeds: the three splits {0,1|2,3}, {0,2|1,3}, {0,3|1,2}
    splits = [([0, 1], [2, 3]), ([0, 2], [1, 3]), ([0, 3], [1, 2])]
    expected = np.mean([stats.kendalltau(a[:, s].mean(1), a[:, t].mean(1)).statistic for s, t in splits])
    assert correlation.split_half_kendall(a) == pytest.approx(expected, abs=1e-12)
    # three seeds: halves of sizes 1 and 2, three splits
    b = a[:, :3]
    expected = np.mean([stats.kendalltau(b[:, i], np.delete(b, i, axis=1).mean(1)).statistic for i in range(3)])
    assert correlation.split_half_kendall(b) == pytest.approx(expected, abs=1e-12)
    # two seeds: the Kendall tau of the two columns
    assert correlation.split_half_kendall(a[:, :2]) == pytest.approx(correlation.kendall(a[:, 0], a[:, 1]))


def test_split_half_kendall_samples_splits_beyond_max_splits():
    """Beyond max_splits balanced splits the average is over a seeded sample: close to the exhaustive
    value (S = 12: 462 splits), the same every time, and fast at S = 24 (1.35 million splits)."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(10, 1)) + 0.8 * rng.normal(size=(10, 12))
    exact = correlation.split_half_kendall(a)
    sampled = correlation.split_half_kendall(a, max_splits=100)
    assert sampled != exact and abs(sampled - exact) < 0.03
    assert correlation.split_half_kendall(a, max_splits=100) == sampled
    assert correlation.split_half_kendall(a, max_splits=462) == exact
    wide = rng.normal(size=(10, 1)) + 0.8 * rng.normal(size=(10, 24))
    assert -1 <= correlation.split_half_kendall(wide, max_splits=200) <= 1
    for bad in (0, -5, 2.5, True):
        with pytest.raises(TaskrelError, match="max_splits must be a positive integer"):
            correlation.split_half_kendall(a, max_splits=bad)


def test_split_half_kendall_hand_computed_and_skips_undefined_splits():
    # halves {0,1|2,3}: means [1, 2, 3] vs [1, 3, 2] -> tau (2 - 1) / 3; {0,2|1,3} and {0,3|1,2}
    a = np.array([[1, 1, 1, 1], [2, 2, 2, 4], [3, 3, 3, 1.0]])
    # {0,2|1,3}: [1,2,3] vs [1,3,2] -> 1/3 again; {0,3|1,2}: [1,3,2] vs [1,2,3] -> 1/3
    assert correlation.split_half_kendall(a) == pytest.approx(1 / 3)
    flat = np.array([[1, 1.0], [1, 2], [1, 3]])               # one column constant: the only split is undefined
    assert np.isnan(correlation.split_half_kendall(flat))


@pytest.mark.parametrize("a,msg", [(np.zeros(5), "2-D"), (np.ones((2, 4)), "at least 3 items"),
                                   (np.ones((5, 1)), "at least 2 repeats"),
                                   (np.array([[1, 2], [3, np.nan], [4, 5.0]]), "finite")])
def test_split_half_kendall_errors(a, msg):
    with pytest.raises(TaskrelError, match=msg):
        correlation.split_half_kendall(a)


# ------------------------------------------------------------------ tables the notebooks show
def _zoo_table(seed=0):
    import pandas as pd
    rng = np.random.default_rng(seed)
    rows = [{"encoder": f"e{i}", "target": t, "group": "main", "accuracy": rng.uniform(0.4, 0.9),
             "logme": rng.normal(), "leep": rng.normal()} for t in ("t1", "t2") for i in range(5)]
    return pd.DataFrame(rows)


def test_average_table_is_the_average_row_of_each_method():
    table = _zoo_table()
    cols = {"logme": "LogME", "leep": "LEEP"}
    out = correlation.average_table(table, cols, methods=("pearson", "kendall"))
    assert list(out.index) == ["pearson", "kendall"] and list(out.columns) == ["LogME", "LEEP"]
    for m in ("pearson", "kendall"):
        expected = correlation.correlation_table(table, list(cols), method=m).loc["Average"]
        np.testing.assert_allclose(out.loc[m].to_numpy(), expected.to_numpy())


def test_bootstrap_table_rows_and_nan_where_undefined():
    table = _zoo_table()
    table.loc[table.target == "t2", "leep"] = 1.0  # constant score on t2: no interval
    out = correlation.bootstrap_table({"main zoo": table}, {"logme": "LogME", "leep": "LEEP"}, n_boot=200, seed=1)
    assert list(out.columns) == ["group", "target", "score", "r", "low", "high"] and len(out) == 4
    row = out[(out.target == "t1") & (out.score == "LogME")].iloc[0]
    g = table[table.target == "t1"]
    ci = correlation.bootstrap_ci(g.logme, g.accuracy, n_boot=200, seed=1)
    assert (row.r, row.low, row.high) == (ci.estimate, ci.low, ci.high)
    assert out[(out.target == "t2") & (out.score == "LEEP")][["r", "low", "high"]].isna().all(axis=None)


def test_scores_long_and_true_vs_pseudo_table():
    table = _zoo_table()
    long = correlation.scores_long(table, {"logme": "LogME"})
    assert len(long) == len(table) and set(long.score) == {"LogME"}
    np.testing.assert_array_equal(long.score_value, table.logme)
    true = table.assign(value=table.logme, value_failed=False)
    pseudo = table.assign(value=-table.logme, value_failed=False)
    pseudo.loc[0, "value_failed"] = True  # a failed pair is left out
    out = correlation.true_vs_pseudo_table(true, pseudo, "main")
    assert list(out.columns) == ["true labels", "pseudo-labels"] and list(out.index) == ["t1", "t2", "Average"]
    g = table[table.target == "t2"]
    assert out.loc["t2", "true labels"] == pytest.approx(correlation.pearson(g.logme, g.accuracy))
    assert out.loc["t2", "pseudo-labels"] == pytest.approx(-out.loc["t2", "true labels"])
    g1 = table[table.target == "t1"].iloc[1:]
    assert out.loc["t1", "pseudo-labels"] == pytest.approx(correlation.pearson(-g1.logme, g1.accuracy))
    code = true.assign(value=true.logme ** 2)  # notebook 04's values (the code's W), shown beside
    beside = correlation.true_vs_pseudo_table(true, pseudo, "main", code_fits=code)
    assert list(beside.columns) == ["true labels", "pseudo-labels", "true labels, code's W"]
    assert beside["true labels, code's W"]["t2"] == pytest.approx(correlation.pearson(g.logme ** 2, g.accuracy))
