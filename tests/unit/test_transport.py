"""Known-answer tests of the OT helpers."""
import warnings

import numpy as np
import ot
import pytest

from taskrel_utils.core.errors import TaskrelError
from taskrel_utils.core.numerics import euclidean
from taskrel_utils.method.transport import (W_FAILURE, assignment, class_structured_plan, classwise_w1_code,
                                     classwise_w1_theorem, emd_plan, w1)


def test_emd_plan_marginals_and_no_warning():
    rng = np.random.default_rng(0)
    M = euclidean(rng.normal(size=(30, 4)), rng.normal(size=(20, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = emd_plan(None, None, M)
    np.testing.assert_allclose(P.sum(1), 1 / 30)
    np.testing.assert_allclose(P.sum(0), 1 / 20)


def test_emd_plan_warns_when_iteration_cap_hit():
    rng = np.random.default_rng(0)
    M = euclidean(rng.normal(size=(60, 3)), rng.normal(size=(59, 3)))  # not square: the network simplex
    with pytest.warns(UserWarning):
        emd_plan(None, None, M, num_itermax=5)


@pytest.mark.parametrize("n", [1, 2, 7, 40, 250])
def test_square_uniform_plan_is_the_network_simplex_plan(n):
    """Uniform marginals on n points each: the assignment gives the network simplex's plan and
    cost (a unique optimum on generic points), as a permutation with mass 1/n per pair."""
    rng = np.random.default_rng(n)
    M = euclidean(rng.normal(size=(n, 5)), rng.normal(size=(n, 5)) + 0.3)
    P, cost = emd_plan(None, None, M, return_cost=True)
    G = ot.emd(np.full(n, 1 / n), np.full(n, 1 / n), M, numItermax=10_000_000)
    np.testing.assert_allclose(P, G, atol=1e-15)
    assert cost == pytest.approx((G * M).sum(), rel=1e-12)
    assert (np.count_nonzero(P, axis=0) == 1).all() and (np.count_nonzero(P, axis=1) == 1).all()


def test_assignment_refuses_a_cost_that_is_not_square_or_not_finite():
    with pytest.raises(TaskrelError, match="square cost matrix, got shape \\(3, 2\\)"):
        assignment(np.ones((3, 2)))
    with pytest.raises(TaskrelError, match="NaN or infinite"):
        assignment(np.array([[0.0, np.inf], [1.0, 0.0]]))
    rows, cols = assignment(np.array([[5.0, 1.0], [1.0, 5.0]]))
    assert list(cols[np.argsort(rows)]) == [1, 0]


def test_explicit_marginals_keep_the_network_simplex():
    """Given marginals (even uniform ones) are solved by POT, whose plan may split mass."""
    M = np.array([[0.0, 1.0], [1.0, 0.0]])
    P = emd_plan(np.array([0.75, 0.25]), np.array([0.5, 0.5]), M)
    np.testing.assert_allclose(P, [[0.5, 0.25], [0.0, 0.25]])


def test_emd_plan_rejects_nan_cost():
    with pytest.raises(TaskrelError):
        emd_plan(None, None, np.array([[0.0, np.nan], [1.0, 0.0]]))


def test_w1_known_answer_and_translation_invariance():
    X = np.array([[0.0, 0.0], [1.0, 0.0]])
    assert w1(X, X + [0.0, 2.0]) == pytest.approx(2.0)
    rng = np.random.default_rng(1)
    U, V = rng.normal(size=(25, 5)), rng.normal(size=(30, 5)) + 1
    shift = rng.normal(size=5) * 10
    assert w1(U + shift, V + shift) == pytest.approx(w1(U, V), rel=1e-9)


def test_classwise_code_average_and_failure_flag():
    U = np.array([[0.0], [1.0], [10.0]])
    V = np.array([[0.5], [1.5], [12.0]])
    W, per, failed = classwise_w1_code(U, np.array([0, 0, 1]), V, np.array([0, 0, 1]))
    assert not failed and W == pytest.approx((0.5 + 2.0) / 2)
    W, _, failed = classwise_w1_code(U, np.array([0, 0, 0]), V, np.array([1, 1, 1]))
    assert failed and W == W_FAILURE


def test_classwise_theorem_with_identity_B_is_prior_weighted_average():
    rng = np.random.default_rng(2)
    U, y = rng.normal(size=(40, 3)), np.repeat([0, 1], 20)
    V, s = rng.normal(size=(30, 3)) + 1, np.repeat([0, 1], 15)
    Wt, per = classwise_w1_theorem(U, y, V, s, np.eye(2), np.array([0.5, 0.5]), np.array([0.3, 0.7]))
    assert per[0] == pytest.approx(w1(U[:20], V[:15]))
    assert Wt == pytest.approx(0.3 * per[0] + 0.7 * per[1])


def _blobs(rng, K, n_per, d, shift=0.0):
    mu = rng.normal(size=(K, d)) * 4
    y = np.repeat(np.arange(K), n_per)
    return mu[y] + rng.normal(size=(len(y), d)) + shift, y


@pytest.mark.parametrize("unbalanced", [False, True])
def test_class_structured_equals_full_plan_with_huge_lambda(unbalanced):
    """Per-class OT equals full OT when labels are hard and Lambda is huge (and, with a generic
    soft B, also when the class proportions differ)."""
    rng = np.random.default_rng(3)
    K, d = 4, 6
    u, y = _blobs(rng, K, 25, d)
    t, s = _blobs(rng, K, 25, d, shift=0.5)
    if unbalanced:
        t, s = t[5:], s[5:]  # class 0 of the target smaller
        B = rng.uniform(0, 0.05, (K, K)) + np.eye(K)
        B /= B.sum(0)
    else:
        B = np.eye(K)
    L = np.sqrt(np.maximum((B * B).sum(0)[:, None] - 2 * B.T + 1, 0))
    P = emd_plan(None, None, euclidean(u, t) + 1e8 * L[np.ix_(y, s)])
    r, c, v, gamma = class_structured_plan(u, y, t, s, L)
    Q = np.zeros_like(P)
    Q[r, c] = v
    np.testing.assert_allclose(Q, P, atol=1e-12)
    np.testing.assert_allclose(gamma.sum(1), np.bincount(y) / len(y))
    if not unbalanced:  # hard, balanced: one component per class, block-diagonal
        assert np.count_nonzero(gamma) == K and (y[r] == s[c]).all()


def test_support_components_label_like_scipy():
    """The union-find labelling equals scipy's connected components (numbered by smallest node) on
    random bipartite class graphs, isolated classes and repeated edges included."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from taskrel_utils.method.transport import support_components

    rng = np.random.default_rng(0)
    for _ in range(300):
        K_R, K_T = (int(k) for k in rng.integers(1, 9, 2))
        E = int(rng.integers(0, K_R + K_T + 2))
        jj, ii = rng.integers(0, K_R, E), rng.integers(0, K_T, E)
        graph = coo_matrix((np.ones(E), (jj, K_R + ii)), shape=(K_R + K_T,) * 2)
        np.testing.assert_array_equal(support_components(jj, ii, K_R, K_T),
                                      connected_components(graph, directed=False)[1])
