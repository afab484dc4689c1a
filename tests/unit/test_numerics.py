"""numerics: softmax / log_softmax and pairwise distances, against direct formulas and the
implementations they replaced (kept here verbatim so a change of numbers shows)."""
import numpy as np
import pytest
from scipy import special
from scipy.spatial.distance import cdist

from taskrel_utils.core import numerics
from taskrel_utils.study import scores
from taskrel_utils.core.errors import TaskrelError


def _old_scores_softmax(z):  # scores._softmax before numerics
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _old_euclidean_cost(X, Y):  # transport's Euclidean cost before numerics
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    sq = (X * X).sum(1)[:, None] + (Y * Y).sum(1)[None, :] - 2.0 * (X @ Y.T)
    np.maximum(sq, 0.0, out=sq)
    return np.sqrt(sq, out=sq)


def _old_sq_euclidean(A, B):  # scores._sq_euclidean before numerics
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.maximum(sq, 0.0)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_matches_scipy_and_sums_to_one(axis):
    z = np.random.default_rng(0).normal(scale=5, size=(7, 5))
    p = numerics.softmax(z, axis=axis)
    np.testing.assert_allclose(p, special.softmax(z, axis=axis), rtol=1e-13, atol=0)
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-14)
    np.testing.assert_allclose(numerics.log_softmax(z, axis=axis), special.log_softmax(z, axis=axis),
                               rtol=1e-13, atol=1e-13)


def test_softmax_is_stable_and_leaves_its_input_alone():
    z = np.array([[1000.0, 1001.0, -1000.0], [-1e4, -1e4, -1e4]])
    before = z.copy()
    p = numerics.softmax(z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p[1], 1 / 3)
    np.testing.assert_allclose(p[0, :2], special.softmax([0.0, 1.0]))
    lp = numerics.log_softmax(z)
    assert lp[0, 2] == pytest.approx(-2001.0 - np.log1p(np.exp(-1.0)), rel=1e-12)  # log(softmax) would be -inf
    np.testing.assert_array_equal(z, before)


def test_logsumexp_matches_scipy_and_the_replaced_cross_entropy():
    rng = np.random.default_rng(5)
    z = rng.normal(scale=20, size=(30, 7))
    np.testing.assert_allclose(numerics.logsumexp(z, axis=0), special.logsumexp(z, axis=0), rtol=1e-13)
    assert numerics.logsumexp(z, axis=1).shape == (30,)
    assert numerics.logsumexp(np.array([1000.0, 1000.0])) == pytest.approx(1000.0 + np.log(2.0), rel=1e-15)
    m = z.max(1, keepdims=True)  # reference_classifier.cross_entropy's log-normaliser before numerics
    np.testing.assert_array_equal(numerics.logsumexp(z, axis=1), (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0])


def test_softmax_reproduces_the_replaced_scores_softmax_bit_for_bit():
    z = np.random.default_rng(1).normal(scale=3, size=(50, 9))
    np.testing.assert_array_equal(numerics.softmax(z), _old_scores_softmax(z.copy()))


def test_distances_match_cdist_and_the_replaced_implementations():
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(40, 6)), rng.normal(size=(30, 6))
    np.testing.assert_allclose(numerics.euclidean(X, Y), cdist(X, Y), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(numerics.sq_euclidean(X, Y), cdist(X, Y, "sqeuclidean"), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(numerics.euclidean(X, Y), _old_euclidean_cost(X, Y))
    np.testing.assert_array_equal(numerics.sq_euclidean(X, Y), _old_sq_euclidean(X, Y))


def test_distances_are_clipped_at_zero_for_identical_points():
    X = np.random.default_rng(3).normal(scale=1e4, size=(20, 3))
    D2 = numerics.sq_euclidean(X, X)
    assert D2.min() >= 0.0
    assert np.isfinite(numerics.euclidean(X, X)).all()


def test_distances_refuse_mismatched_dimensions():
    with pytest.raises(TaskrelError, match="same number of columns"):
        numerics.euclidean(np.zeros((3, 2)), np.zeros((4, 3)))
    with pytest.raises(TaskrelError, match="2-D"):
        numerics.sq_euclidean(np.zeros(3), np.zeros((4, 3)))


def test_scores_using_numerics_keep_their_values():
    """sfda / pactran_gaussian (softmax) and ot_nce (squared distances) on a fixed case: the values
    the implementations before numerics gave (computed with those, to 1e-12)."""
    rng = np.random.default_rng(4)
    F = rng.normal(size=(60, 5))
    y = np.arange(60) % 3
    F[:, 0] += y
    FR = rng.normal(size=(50, 5))
    yR = np.arange(50) % 4
    assert scores.sfda(F, y) == pytest.approx(SFDA_BEFORE, rel=1e-12, abs=1e-12)
    assert scores.pactran_gaussian(F, y) == pytest.approx(PACTRAN_GAUSS_BEFORE, rel=1e-12, abs=1e-12)
    assert scores.ot_nce(FR, yR, F, y) == pytest.approx(OT_NCE_BEFORE, rel=1e-12, abs=1e-12)


# values of the implementations before numerics on the case above
SFDA_BEFORE = 0.3966890888440713
PACTRAN_GAUSS_BEFORE = 2.3976409640565857
OT_NCE_BEFORE = -1.0760627395640172


def test_finite_table_turns_nan_into_none():
    import pandas as pd
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": [np.inf, 2]}, index=["x", "y"])
    assert numerics.finite_table(frame) == {"x": {"a": 1.0, "b": None}, "y": {"a": None, "b": 2.0}}
    assert numerics.finite_or_none(np.float32(0.5)) == 0.5 and type(numerics.finite_or_none(np.int64(2))) is float


def test_stratified_groups_split_every_class_into_seeded_groups():
    labels = np.array([2, 0, 1, 2, 0, 2, 1, 0, 2, 2])  # class sizes 3, 2, 5
    ft, val = numerics.stratified_groups(labels, lambda n: [2, 2], np.random.default_rng(0))
    assert np.bincount(labels[ft]).tolist() == [2, 2, 2]
    assert np.bincount(labels[val], minlength=3).tolist() == [1, 0, 2]  # a small class fills the first group
    assert not set(ft) & set(val) and list(ft) == sorted(ft) and ft.dtype == np.int64
    again = numerics.stratified_groups(labels, lambda n: [2, 2], np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip((ft, val), again))
    other = numerics.stratified_groups(labels, lambda n: [2, 2], np.random.default_rng(5))
    assert not all(np.array_equal(a, b) for a, b in zip((ft, val), other))
    # the same draws as a per-class permutation in class order (the subsets of earlier versions)
    rng = np.random.default_rng(3)
    expected = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:1] for c in range(3)]))
    (got,) = numerics.stratified_groups(labels, lambda n: [1], np.random.default_rng(3))
    assert np.array_equal(got, expected)


def test_standard_scaler_gives_sklearns_numbers_to_the_bit():
    from sklearn.preprocessing import StandardScaler
    rng = np.random.default_rng(0)
    for scale in (1.0, 3.7e3, 1e-3):
        Z = rng.normal(size=(300, 6)) * scale + rng.normal(size=6) * 5 * scale
        Z[:, 2] = 7.0  # a constant column keeps scale 1
        ours, theirs = numerics.standard_scaler(Z), StandardScaler().fit(Z)
        for name in ("mean_", "scale_", "var_"):
            assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name


def test_standard_scaler_is_exact_at_any_global_scale():
    """Features scaled by 1e-200 (squares underflow) or 1e200 (squares overflow) standardise as
    unscaled ones: exactly for powers of two, to rounding otherwise; no warning."""
    import warnings
    Z = np.random.default_rng(1).normal(size=(50, 4)) + 3.0
    X = numerics.standard_scaler(Z).transform(Z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for s in (2.0 ** -660, 2.0 ** 660):
            assert np.array_equal(numerics.standard_scaler(Z * s).transform(Z * s), X)
        for s in (1e-200, 1e200):
            np.testing.assert_allclose(numerics.standard_scaler(Z * s).transform(Z * s), X, atol=1e-12)
