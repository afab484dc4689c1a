"""The reference classifier h_R: its objective, the kit's L-BFGS fit against the original SGD
schedule, the stopping rule, the penalty-active shares and the plain probe."""
import numpy as np
import pytest
import torch

from taskrel_utils.core.errors import TaskrelError, UnknownNameError
from taskrel_utils.method.reference_classifier import (ORIGINAL_OPTIMISER, ReferenceClassifier, pool_objective_autograd,
                                                pool_objective_closed_form, train_plain_probe,
                                                train_reference_classifier)


def blobs(seed=0, d=6, k=4, n=60, scale=2.0):
    """Train and test sets of k Gaussian classes, standardised with the train statistics."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(k, d)) * scale
    y = np.repeat(np.arange(k), n)
    X, X_te = mu[y] + rng.normal(size=(len(y), d)), mu[y] + rng.normal(size=(len(y), d))
    m, s = X.mean(0), X.std(0)
    return ((X - m) / s, y), ((X_te - m) / s, y)


@pytest.fixture(scope="module")
def pool():
    return blobs()


def test_pool_objective_closed_form_equals_double_backprop():
    """F with the random label's penalty in expectation: value and gradients, penalty active."""
    rng = np.random.default_rng(0)
    W, c = torch.tensor(rng.normal(size=(5, 7))), torch.tensor(rng.normal(size=5))
    X, y = torch.tensor(rng.normal(size=(40, 7))), torch.tensor(rng.integers(0, 5, 40))
    closed = pool_objective_closed_form(W, c, X, y, 0.5, 3.0, 0.01)
    auto = pool_objective_autograd(W, c, X, y, 0.5, 3.0, 0.01)
    assert float(closed[2]) > 0 and float(closed[3]) > 0  # both penalties act here
    for a, b in zip(closed, auto):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_lbfgs_converges_to_at_most_the_original_schedules_objective(pool):
    (X, y), (X_te, y_te) = pool
    kit = train_reference_classifier(X, y, 4, tau0=0.2, log_every=0)
    orig = train_reference_classifier(X, y, 4, tau0=0.2, log_every=0, **ORIGINAL_OPTIMISER)
    assert kit.fit_info["converged"] and kit.fit_info["iterations"] < 2000
    assert not orig.fit_info["converged"] and orig.fit_info["iterations"] == 2001
    assert kit.fit_info["objective"] <= orig.fit_info["objective"] + 1e-9
    assert kit.accuracy(X_te, y_te) >= orig.accuracy(X_te, y_te) - 0.02
    # deterministic
    again = train_reference_classifier(X, y, 4, tau0=0.2, log_every=0)
    np.testing.assert_array_equal(again.W, kit.W)


def test_stop_rule_and_cap(pool):
    (X, y), _ = pool
    capped = train_reference_classifier(X, y, 4, iterations=5, log_every=0)
    assert capped.fit_info["iterations"] == 5 and not capped.fit_info["converged"]
    adam = train_reference_classifier(X, y, 4, optimizer="adam", lr=1e-2, batch_size=100, iterations=5000,
                                      check_every=20, window=3, tol=1e-2, log_every=0)
    assert adam.fit_info["converged"] and adam.fit_info["iterations"] < 5000
    assert adam.fit_info["iterations"] % 20 == 0


def test_warm_start_from_the_solution_stops_at_once(pool):
    (X, y), _ = pool
    first = train_reference_classifier(X, y, 4, log_every=0)
    again = train_reference_classifier(X, y, 4, init=first, log_every=0)
    assert again.fit_info["converged"] and again.fit_info["iterations"] <= again.options["window"] + 2
    assert again.fit_info["objective"] <= first.fit_info["objective"] + 1e-12
    with pytest.raises(TaskrelError, match="init must have"):
        train_reference_classifier(X, y, 4, init=(first.W[:, :2], first.c))


def test_penalty_active_shares_match_the_gradient_norms(pool):
    (X, y), _ = pool
    clf = train_reference_classifier(X, y, 4, tau0=0.3, log_every=0)
    true_share, random_share = clf.penalty_active(X, y)
    norms = np.stack([clf.grad_norms(X, np.full(len(X), k)) for k in range(4)], 1)
    assert true_share == pytest.approx((clf.grad_norms(X, y) >= 0.3).mean())
    assert random_share == pytest.approx((norms >= 0.3).mean())
    assert clf.fit_info["penalty_active_true_label"] == true_share
    assert clf.fit_info["penalty_active_random_label"] == random_share
    # a lower threshold: the penalty acts on more samples
    assert clf.penalty_active(X, y, tau0=0.05)[1] > random_share


def test_penalty_bounds_the_gradient_norms_and_the_plain_probe_does_not(pool):
    (X, y), (X_te, y_te) = pool
    h = train_reference_classifier(X, y, 4, tau0=0.2, log_every=0)
    plain = train_plain_probe(X, y, 4, log_every=0)
    assert plain.options["penalty_weight"] == 0.0 and plain.fit_info["converged"]
    # the probe minimises CE + weight decay, which h_R's optimum can only match or exceed
    wd = 0.5 * h.options["weight_decay"] * ((h.W ** 2).sum() + (h.c ** 2).sum())
    assert plain.fit_info["objective"] <= h.cross_entropy(X, y).mean() + wd + 1e-9
    rng_norms = lambda clf: np.stack([clf.grad_norms(X, np.full(len(X), k)) for k in range(4)], 1)
    assert rng_norms(h).max() < 0.3 < rng_norms(plain).max()
    with pytest.raises(TaskrelError, match="no penalty"):
        train_plain_probe(X, y, 4, penalty_weight=1.0)


@pytest.mark.parametrize("kw, match", [
    (dict(optimizer="newton"), "optimizer"), (dict(stop="never"), "stop"), (dict(iterations=0), "iterations"),
    (dict(window=1.5), "window"), (dict(tol=-1.0), "tol"), (dict(tau0=float("nan")), "tau0"),
    (dict(no_such=1), "unknown"),
])
def test_bad_options_raise(pool, kw, match):
    (X, y), _ = pool
    with pytest.raises(TaskrelError, match=match):
        train_reference_classifier(X, y, 4, **kw)


def test_unknown_scale_and_option_name_the_valid_ones(pool):
    (X, y), _ = pool
    with pytest.raises(UnknownNameError, match="valid scales are: large, small"):
        train_reference_classifier(X, y, 4, scale="medium")
    with pytest.raises(UnknownNameError, match="'no_such'; valid reference-classifier options are: .*tau0"):
        train_reference_classifier(X, y, 4, no_such=1)


def test_classifier_built_without_fit_info_still_works():
    clf = ReferenceClassifier(W=np.eye(3), c=np.zeros(3), tau0=0.5)
    assert clf.fit_info == {} and clf.penalty_active(np.eye(3), [0, 1, 2])[0] in (0.0, 1.0)
