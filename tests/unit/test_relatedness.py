"""Known-answer tests of task-relatedness on planted data.

Reference: Gaussian classes; related target: the same classes pushed through a planted affine
map, labels permuted, prior shifted; unrelated target: the same target features, labels shuffled.
B need not equal the planted permutation: the tests check what the bound guarantees.
"""
import dataclasses

import numpy as np
import pytest
import torch

from taskrel_utils.core.errors import TaskrelError, UnknownNameError
from taskrel_utils.method.reference_classifier import ORIGINAL_OPTIMISER, train_reference_classifier
from taskrel_utils.method.bound import tau_grads_autograd, tau_grads_closed
from taskrel_utils.method.fit_engine import class_matching
from taskrel_utils.method.fit_steps import class_mean_map, fit_converged, prior_sample
from taskrel_utils.method.relatedness import ORIGINAL_FIT, task_relatedness
from taskrel_utils.method.transport import classwise_w1_code

D_FEAT, K = 8, 4
# batches of 150 from pools of 60 per class: PriorSample never runs out of a class (up to 35 % per class)
FAST = dict(steps=300, batch_size=150, log_every=50, reference_classifier_options=dict(tau0=1.0))


def planted(seed=0, d=D_FEAT, K=K, n_tr=60, n_te=40):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(K, d)) * 3

    def draw(counts):
        y = np.repeat(np.arange(K), counts)
        return mu[y] + rng.normal(size=(len(y), d)), y

    R, R_te = draw([n_tr] * K), draw([n_te] * K)
    M = rng.normal(size=(d, d)) / np.sqrt(d) + np.eye(d)
    c = rng.normal(size=d) * 2
    perm = rng.permutation(K)
    w = np.linspace(0.6, 1.4, K)
    (Zt, yt0), (Zt_te, yt0_te) = draw(np.round(n_tr * w).astype(int)), draw(np.round(n_te * w).astype(int))
    T = (Zt @ M.T + c, perm[yt0])
    T_te = (Zt_te @ M.T + c, perm[yt0_te])
    shuffle = np.random.default_rng(seed + 1)
    U = (T[0], shuffle.permutation(T[1]))
    U_te = (T_te[0], shuffle.permutation(T_te[1]))
    return R, R_te, T, T_te, U, U_te


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def h_R(data):
    R = data[0]
    X = (R[0] - R[0].mean(0)) / R[0].std(0)
    return train_reference_classifier(X, R[1], K, seed=0, **FAST["reference_classifier_options"])


@pytest.fixture(scope="module")
def related(data, h_R):
    R, R_te, T, T_te, _, _ = data
    return task_relatedness(R, R_te, T, T_te, seed=0, reference_classifier=h_R,
                            **{k: v for k, v in FAST.items() if k != "reference_classifier_options"})


@pytest.fixture(scope="module")
def unrelated(data, h_R):
    R, R_te, _, _, U, U_te = data
    return task_relatedness(R, R_te, U, U_te, seed=0, reference_classifier=h_R,
                            **{k: v for k, v in FAST.items() if k != "reference_classifier_options"})


def test_planted_target_transfers_as_well_as_reference(related):
    ref_acc = related.terms["reference_test_accuracy"]
    assert ref_acc > 0.9
    assert related.target_accuracy >= ref_acc - 0.15


def test_unrelated_target_has_larger_w_and_value(related, unrelated):
    assert unrelated.terms["wasserstein"] > 1.2 * related.terms["wasserstein"]
    assert unrelated.value > related.value
    assert unrelated.target_accuracy < related.target_accuracy - 0.3


def test_bound_holds_on_test_sets(related, unrelated):
    """The value bounds the transferred classifier's target CE on the planted pair. The value's tau
    is taken in h_R's input space (A_inv (z - b)), as the original code; in the target's own
    coordinates the Lipschitz constant is up to ||A_inv|| times larger, and with it the bound also
    holds on the shuffled control, whose CE the converged (sharper) fit makes large."""
    assert related.value >= related.target_cross_entropy
    for res in (related, unrelated):
        t = res.terms
        in_target_space = t["reweighted_reference_loss"] + t["label_mismatch"] + t["tau_input_space"] * t["wasserstein"]
        assert in_target_space >= res.target_cross_entropy
        assert res.value == pytest.approx(t["reweighted_reference_loss"] + t["label_mismatch"]
                                          + t["distribution_mismatch"])
        assert t["distribution_mismatch"] == pytest.approx(t["tau"] * round(t["wasserstein"], 3))


def test_B_column_stochastic_and_prior_matched(related, data):
    B, D = related.B, related.D
    assert B.shape == (K, K) and (B >= 0).all()
    np.testing.assert_allclose(B.sum(0), 1.0)
    np.testing.assert_allclose(D.sum(), 1.0)
    pi_T = np.bincount(data[2][1]) / len(data[2][1])
    # the kit's closed-form D matches the target prior through the class matching, B one-to-one
    assert np.abs(B @ D - pi_T).sum() < 0.01
    assert sorted(B.argmax(0)) == list(range(K)) and B.max(0).min() > 0.99


def test_label_mismatch_in_range(related, unrelated):
    for res in (related, unrelated):
        assert 0.0 <= res.terms["label_mismatch"] <= np.log(K) + 1e-12


def test_history_and_api(related, data):
    assert related.history[0]["IC"] == pytest.approx(0.0, abs=1e-20)  # A = A_inv = I at init
    assert {"objective", "H", "PM", "LC", "target_accuracy"} <= set(related.history[-1])
    Z_te, y_te = data[3]
    P = related.predict_proba(Z_te)
    np.testing.assert_allclose(P.sum(1), 1.0)
    assert (related.pseudo_labels(Z_te) == P.argmax(1)).mean() == 1.0
    assert related.target_accuracy == pytest.approx((P.argmax(1) == y_te).mean())
    for key in ("reweighted_reference_loss", "label_mismatch", "distribution_mismatch", "wasserstein", "tau",
                "wasserstein_theorem"):
        assert np.isfinite(related.terms[key])


def test_fixed_all_has_zero_ic_and_zero_entropy(data, h_R):
    R, R_te, T, T_te, _, _ = data
    res = task_relatedness(R, R_te, T, T_te, mode="fixed_all", reference_classifier=h_R)
    assert res.terms["inverse_consistency"] == 0.0 and res.terms["label_mismatch"] == 0.0
    np.testing.assert_array_equal(res.A, np.eye(D_FEAT))
    assert sorted(res.B.argmax(0)) == list(range(K)) and set(np.unique(res.B)) == {0.0, 1.0}


def test_learned_a_keeps_B_and_D_fixed(data, h_R):
    R, R_te, T, T_te, _, _ = data
    res = task_relatedness(R, R_te, T, T_te, mode="learned_a", reference_classifier=h_R, steps=30, batch_size=300)
    assert res.terms["label_mismatch"] == 0.0
    np.testing.assert_allclose(res.D, np.bincount(R[1]) / len(R[1]))
    np.testing.assert_array_equal(np.sort(res.B.argmax(0)), np.arange(K))
    # no ">= target CE" here: with a wrong random permutation the EMPIRICAL bound (tau is a max over
    # test points, W a finite-sample estimate) was measured slightly BELOW the target CE
    assert np.isfinite(res.value) and res.terms["inverse_consistency"] > 0


def test_label_channel_inequality_per_sample():
    """-log sum_k B_ik p_k <= -log B_iy - log p_y for every z, y, i (label channel)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        B = rng.dirichlet(np.ones(5), size=6).T  # 5 x 6, column-stochastic
        p = rng.dirichlet(np.ones(6))
        y, i = rng.integers(6), rng.integers(5)
        assert -np.log(B[i] @ p) <= -np.log(B[i, y]) - np.log(p[y]) + 1e-12
    # averaged form: E_{i ~ B[:, y]} -log (B p)_i <= -log p_y + H(B[:, y])
    B = rng.dirichlet(np.ones(5), size=6).T
    p = rng.dirichlet(np.ones(6))
    for y in range(6):
        lhs = -(B[:, y] * np.log(B @ p)).sum()
        assert lhs <= -np.log(p[y]) - (B[:, y] * np.log(B[:, y])).sum() + 1e-12


def test_prior_change_identity(related, data):
    """E_R[C_y l] = sum_j D_j mean-CE_j on a balanced test set with a uniform train prior (prior change)."""
    R_te = data[1]
    X_te = related.reference_scaler.transform(R_te[0])
    ce = related.reference_classifier.cross_entropy(X_te, R_te[1])
    per_class = np.array([ce[R_te[1] == j].mean() for j in range(K)])
    assert related.terms["reweighted_reference_loss"] == pytest.approx((related.D * per_class).sum())
    C = related.C
    assert (C * 0.25 * 4 * per_class).sum() / 4 == pytest.approx((related.D * per_class).sum())


def test_w_invariant_to_joint_translation(related, data):
    R_te, T_te = data[1], data[3]
    U = related.reference_scaler.transform(R_te[0]) @ related.A.T + related.b
    V = related.target_scaler.transform(T_te[0])
    hard = related.B.argmax(0)[R_te[1]]
    W0 = classwise_w1_code(U, hard, V, T_te[1])[0]
    shift = np.random.default_rng(0).normal(size=D_FEAT) * 5
    assert classwise_w1_code(U + shift, hard, V + shift, T_te[1])[0] == pytest.approx(W0, rel=1e-9)
    assert W0 == pytest.approx(related.terms["wasserstein"])


def test_tau_closed_form_equals_autograd():
    rng = np.random.default_rng(0)
    W, c = rng.normal(size=(4, 6)), rng.normal(size=4)
    B = rng.dirichlet(np.ones(3), size=4).T
    X, y = rng.normal(size=(50, 6)), rng.integers(0, 3, 50)
    np.testing.assert_allclose(tau_grads_closed(W, c, B, X, y), tau_grads_autograd(W, c, B, X, y), atol=1e-12)


def test_reference_classifier_closed_form_equals_double_backprop(data):
    R = data[0]
    X = (R[0] - R[0].mean(0)) / R[0].std(0)
    orig = dict(ORIGINAL_OPTIMISER, iterations=30, batch_size=50, lr=1e-5)
    a = train_reference_classifier(X, R[1], K, seed=3, **orig)
    b = train_reference_classifier(X, R[1], K, seed=3, gradient="autograd", **orig)
    np.testing.assert_allclose(a.W, b.W, atol=1e-10)
    g = a.input_gradients(X[:5], R[1][:5])
    Xt = torch.tensor(X[:5], requires_grad=True)
    ce = torch.nn.functional.cross_entropy(Xt @ torch.tensor(a.W).T + torch.tensor(a.c), torch.tensor(R[1][:5]),
                                           reduction="sum")
    np.testing.assert_allclose(g, torch.autograd.grad(ce, Xt)[0].numpy(), atol=1e-12)


def test_same_seed_same_numbers_and_fast_matches_reference(data, h_R):
    R, R_te, T, T_te, _, _ = data
    kw = dict(seed=5, reference_classifier=h_R, steps=40, batch_size=300, log_every=0)
    a = task_relatedness(R, R_te, T, T_te, **kw)
    b = task_relatedness(R, R_te, T, T_te, **kw)
    assert a.value == b.value and a.terms == b.terms
    np.testing.assert_array_equal(a.A, b.A)
    a = task_relatedness(R, R_te, T, T_te, **kw, **ORIGINAL_FIT)  # the original algorithm on the fast schedule
    ref = task_relatedness(R, R_te, T, T_te, schedule="reference", **kw)
    assert ref.value == pytest.approx(a.value, rel=0.03)
    np.testing.assert_allclose(ref.B, a.B, atol=1e-3)
    np.testing.assert_allclose(ref.A, a.A, atol=1e-3)


def test_b_init_class_means_runs(data, h_R):
    R, R_te, T, T_te, _, _ = data
    res = task_relatedness(R, R_te, T, T_te, reference_classifier=h_R, b_init="class_means", steps=20,
                           batch_size=300)
    np.testing.assert_allclose(res.B.sum(0), 1.0)


def test_prior_sample_follows_floor_rule():
    rng = np.random.default_rng(0)
    idx = [np.arange(0, 10), np.arange(10, 13), np.arange(13, 40)]
    out = prior_sample(rng, idx, 20, [0.5, 0.3, 0.2])
    counts = [np.isin(out, i).sum() for i in idx]
    assert counts == [10, 3, 4] and len(np.unique(out)) == len(out)


# ------------------------------------------------------------------------------- defaults, convergence
@pytest.mark.parametrize("d, k", [(D_FEAT, K), (16, 5)])
def test_planted_target_transfers_at_the_default_options(d, k):
    """At the defaults (scale "small", h_R and fit until converged) a planted affine copy with
    permuted labels and a shifted prior transfers almost perfectly."""
    R, R_te, T, T_te, _, _ = planted(seed=0, d=d, K=k, n_tr=200, n_te=50)
    res = task_relatedness(R, R_te, T, T_te, seed=0)
    assert res.target_accuracy >= 0.95
    assert res.terms["converged"] and res.terms["steps_used"] < res.options["steps"]
    assert res.reference_classifier.fit_info["converged"]
    assert res.value >= res.target_cross_entropy
    assert res.history[-1]["step"] == res.terms["steps_used"] - 1


def test_kit_default_reaches_a_lower_objective_than_the_original(data, h_R):
    """Same steps, same seed: the kit's start and closed-form B, D end with a lower J (moving
    average) and a lower label mismatch than the original algorithm."""
    R, R_te, T, T_te, _, _ = data
    kw = dict(seed=0, reference_classifier=h_R, steps=150, batch_size=150, log_every=10)
    kit = task_relatedness(R, R_te, T, T_te, stop="fixed", **kw)
    orig = task_relatedness(R, R_te, T, T_te, **ORIGINAL_FIT, **kw)
    assert kit.history[-1]["objective_moving_average"] < 0.5 * orig.history[-1]["objective_moving_average"]
    assert kit.terms["label_mismatch"] < orig.terms["label_mismatch"]
    assert kit.target_accuracy >= orig.target_accuracy


def test_stop_rule_on_sequences():
    o = dict(window=20, min_steps=40, tol=1e-3)
    rng = np.random.default_rng(0)
    flat = list(10.0 + 0.1 * rng.normal(size=60))
    assert fit_converged(flat, o)
    assert not fit_converged(flat[:39], o)  # before min_steps
    falling = list(10.0 - 0.05 * np.arange(60) + 0.01 * rng.normal(size=60))
    assert not fit_converged(falling, o)
    # a transient in the earlier window does not pass for noise
    transient = [1e6] * 20 + flat[:20]
    assert not fit_converged(transient, o)
    assert fit_converged([5.0] * 40, o)


def test_stop_fixed_runs_every_step_and_converged_reports(data, h_R):
    R, R_te, T, T_te, _, _ = data
    kw = dict(seed=0, reference_classifier=h_R, batch_size=150, log_every=25)
    fixed = task_relatedness(R, R_te, T, T_te, stop="fixed", steps=130, **kw)
    assert fixed.terms["steps_used"] == 130 and not fixed.terms["converged"]
    conv = task_relatedness(R, R_te, T, T_te, steps=1000, window=20, min_steps=40, **kw)
    assert conv.terms["converged"] and 40 <= conv.terms["steps_used"] < 1000
    rows = conv.history
    assert [r["step"] for r in rows[:-1]] == list(range(0, 25 * (len(rows) - 1), 25))
    assert {"objective", "objective_moving_average", "seconds"} <= set(rows[-1])
    assert rows[-1]["objective_moving_average"] < rows[0]["objective_moving_average"]


def test_class_matching_is_one_to_one_where_possible():
    g = np.array([[0.5, 0.4, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.3]])  # argmax would merge 0 and 1 on class 0
    np.testing.assert_array_equal(class_matching(g), [0, 1, 2])
    wide = np.array([[0.3, 0.2, 0.0], [0.0, 0.1, 0.4]])  # K_T > K_R: the leftover takes its largest block
    np.testing.assert_array_equal(class_matching(wide), [0, 0, 1])


def test_class_mean_map_recovers_a_planted_rigid_map():
    rng = np.random.default_rng(0)
    d, k = 4, 6
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    c = rng.normal(size=d)
    mu_R = rng.normal(size=(k, d)) * 3
    perm = rng.permutation(k)
    mu_T = np.empty_like(mu_R)
    mu_T[perm] = mu_R @ Q.T + c
    G = np.zeros((k, k))
    G[np.arange(k), perm] = 1.0 / k
    A, b = class_mean_map(mu_R, mu_T, G)
    np.testing.assert_allclose(A, Q, atol=1e-5)
    np.testing.assert_allclose(b, c, atol=1e-5)
    # coinciding target means (shuffled labels): still orthogonal, never singular
    A, _ = class_mean_map(mu_R, np.zeros_like(mu_T), G)
    np.testing.assert_allclose(A @ A.T, np.eye(d), atol=1e-10)


@pytest.mark.parametrize("kw, match", [
    (dict(stop="sometimes"), "stop"), (dict(tol=-1.0), "tol"), (dict(window=0), "window"),
    (dict(update="newton"), "update"), (dict(closed_form_rate=0.0), "closed_form_rate"),
    (dict(a_init="pca"), "a_init"), (dict(b_init="random"), "a_init='identity'"),
])
def test_bad_fit_options_raise(kw, match):
    with pytest.raises(TaskrelError, match=match):
        task_relatedness(**_ok(), steps=1, **kw)


# ------------------------------------------------------------------------------- bad input
def _ok():
    R, R_te, T, T_te, _, _ = planted(n_tr=10, n_te=5)
    return dict(ref_train=R, ref_test=R_te, target_train=T, target_test=T_te)


@pytest.mark.parametrize("mutate, match", [
    (lambda a: a.update(target_train=(a["target_train"][0][:, :-1], a["target_train"][1])), "dimension"),
    (lambda a: a["ref_train"][0].__setitem__((0, 0), np.nan), "NaN or infinite"),
    (lambda a: a["target_test"][0].__setitem__((1, 1), np.inf), "NaN or infinite"),
    (lambda a: a.update(target_test=(a["target_test"][0], a["target_test"][1] + 10)), "outside"),
    (lambda a: a.update(ref_train=(a["ref_train"][0], a["ref_train"][1] - 1)), "0..K-1"),
    (lambda a: a.update(ref_train=(a["ref_train"][0], np.where(a["ref_train"][1] == 1, 2, a["ref_train"][1]))),
     "no samples"),
    (lambda a: a.update(target_train=(a["target_train"][0][:2], np.array([0, 5]))), "at least one sample"),
    (lambda a: a.update(ref_train=(a["ref_train"][0], a["ref_train"][1][:-1])), "shape"),
    (lambda a: a.update(ref_train=(a["ref_train"][0], a["ref_train"][1] + 0.5)), "integers"),
])
def test_bad_input_raises_clear_errors(mutate, match):
    args = _ok()
    mutate(args)
    with pytest.raises(TaskrelError, match=match):
        task_relatedness(**args, steps=1)


def test_zero_width_features_and_negative_seeds_are_refused():
    args = _ok()
    with pytest.raises(TaskrelError, match="ref_train: features have no columns"):
        task_relatedness(**{k: (Z[:, :0], y) for k, (Z, y) in args.items()}, steps=1)
    with pytest.raises(TaskrelError, match="seed must be an integer >= 0"):
        task_relatedness(**args, seed=-1, steps=1)


def test_a_target_with_more_classes_than_the_reference_is_refused():
    args = _ok()  # K = 4 classes; the reference's classes merged into 2
    args.update(ref_train=(args["ref_train"][0], args["ref_train"][1] % 2),
                ref_test=(args["ref_test"][0], args["ref_test"][1] % 2))
    with pytest.raises(TaskrelError, match="the target has 4 classes, the reference only 2.*at least 4 classes"):
        task_relatedness(**args, steps=1)


def test_summary_says_when_the_value_is_the_failure_flag(related):
    assert not related.summary().startswith("NOT A BOUND")
    failed = dataclasses.replace(related, terms=dict(related.terms, wasserstein_failed=True))
    assert failed.summary().startswith("NOT A BOUND (W failed")


@pytest.mark.parametrize("scale, exact", [(2.0 ** -660, True), (2.0 ** 660, True), (1e-200, False), (1e200, False)])
def test_the_value_does_not_depend_on_the_features_global_scale(scale, exact):
    """Each domain is standardised: features scaled by 1e-200 or 1e200 give the value of unscaled
    ones (exactly for a power of two; else within the fit's sensitivity to rounding)."""
    args = _ok()
    kw = dict(steps=30, log_every=0, stop="fixed")
    base = task_relatedness(**args, **kw).value
    value = task_relatedness(**{k: (Z * scale, y) for k, (Z, y) in args.items()}, **kw).value
    assert value == base if exact else value == pytest.approx(base, rel=0.02)


def test_bad_options_raise():
    args = _ok()
    for kw, name in ((dict(mode="nope"), "nope"), (dict(schedule="slow"), "slow"), (dict(scale="huge"), "huge"),
                     (dict(no_such_option=1), "no_such_option")):
        with pytest.raises(UnknownNameError) as info:  # a TaskrelError, a ValueError
            task_relatedness(**args, **kw)
        assert info.value.name == name
    with pytest.raises(TaskrelError, match="b_init"):
        task_relatedness(**args, b_init="zeros")


# ------------------------------------------------------------------------------- fast-schedule options
def test_fast_with_full_ot_equals_reference_step_by_step(data, h_R):
    """ot="full", ot_every=1, float64: the fast reformulations give the reference's numbers."""
    R, R_te, T, T_te, _, _ = data
    kw = dict(seed=2, reference_classifier=h_R, steps=15, batch_size=300, log_every=5)
    ref = task_relatedness(R, R_te, T, T_te, schedule="reference", **kw)
    fast = task_relatedness(R, R_te, T, T_te, ot="full", ot_every=1, precision="float64", **ORIGINAL_FIT, **kw)
    np.testing.assert_allclose(fast.A, ref.A, atol=1e-10)
    np.testing.assert_allclose(fast.B, ref.B, atol=1e-10)
    for key in ("reweighted_reference_loss", "label_mismatch", "wasserstein", "tau", "wasserstein_theorem"):
        assert fast.terms[key] == pytest.approx(ref.terms[key], rel=1e-6)
    for a, b in zip(ref.history, fast.history):
        assert b["objective"] == pytest.approx(a["objective"], rel=1e-7)
        assert b["feature_term"] == pytest.approx(a["feature_term"], rel=1e-7)


def test_plan_moments_give_the_same_feature_gradient():
    from taskrel_utils.method.fit_engine import feature_grads, plan_moments
    g = torch.Generator().manual_seed(0)
    n, d = 30, 5
    Z, Pt = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    a = torch.rand(n, generator=g, dtype=torch.float64)
    A, b = torch.randn(d, d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    R = a[:, None] * (Z @ A.T + b) - Pt
    gA, gb = feature_grads(A, b, plan_moments(Z, a, Pt))
    torch.testing.assert_close(gA, R.T @ Z)
    torch.testing.assert_close(gb, R.sum(0))


def test_float32_algebra_close_to_float64(data, h_R):
    R, R_te, T, T_te, _, _ = data
    kw = dict(seed=1, reference_classifier=h_R, steps=60, batch_size=300, log_every=0, **ORIGINAL_FIT)
    f64 = task_relatedness(R, R_te, T, T_te, precision="float64", **kw)
    f32 = task_relatedness(R, R_te, T, T_te, precision="float32", **kw)
    np.testing.assert_allclose(f32.A, f64.A, atol=1e-2)
    np.testing.assert_allclose(f32.B, f64.B, atol=1e-2)
    for key in ("reweighted_reference_loss", "label_mismatch", "wasserstein", "tau"):
        assert f32.terms[key] == pytest.approx(f64.terms[key], rel=0.01)


def test_ot_every_reuses_the_plan_and_stays_close(data, h_R):
    R, R_te, T, T_te, _, _ = data
    kw = dict(seed=1, reference_classifier=h_R, steps=200, batch_size=300, log_every=0, stop="fixed")
    every = task_relatedness(R, R_te, T, T_te, ot_every=1, **kw)
    again = task_relatedness(R, R_te, T, T_te, ot_every=1, **kw)
    assert every.value == again.value
    k5 = task_relatedness(R, R_te, T, T_te, ot_every=5, **kw)
    assert k5.options["ot_every"] == 5
    assert k5.value == pytest.approx(every.value, rel=0.05)
    assert k5.target_accuracy >= every.target_accuracy - 0.05


@pytest.mark.parametrize("kw", [dict(ot_every=0), dict(ot_every=1.5), dict(precision="float16")])
def test_bad_fast_options_raise(kw):
    with pytest.raises(TaskrelError):
        task_relatedness(**_ok(), steps=1, **kw)


# ------------------------------------------------------------------ without target labels (pseudo-labels)
@pytest.fixture(scope="module")
def unlabelled(data):
    R, R_te, T, T_te, _, _ = data
    return task_relatedness(R, R_te, (T[0], None), (T_te[0], None), n_target_classes=K, seed=0, **FAST)


def test_pseudo_labels_recover_the_hidden_labels_up_to_renaming(unlabelled, data):
    from taskrel_utils.method.pseudo_labels import matched_accuracy

    _, _, T, T_te, _, _ = data
    assert matched_accuracy(unlabelled.pseudo_labels(T[0]), T[1]) >= 0.9
    assert matched_accuracy(unlabelled.pseudo_labels(T_te[0]), T_te[1]) >= 0.9
    # the re-estimated prior is the hidden one, up to the class names
    np.testing.assert_allclose(np.sort(unlabelled.options["target_prior"]), np.sort(np.bincount(T[1]) / len(T[1])),
                               atol=0.05)
    assert unlabelled.options["target_labels"] == "pseudo"
    assert {r["stage"] for r in unlabelled.history} == {"label-free start", "self-training"}


def test_balanced_pseudo_labels_keep_every_class_on_new_points(unlabelled, data):
    """Test points are labelled by the fit's balanced rule, not argmax: argmax can leave a class
    empty there, and an empty class makes the code's W fail (1e10)."""
    _, _, _, T_te, _, _ = data
    labels = unlabelled.pseudo_labels(T_te[0])
    shares = np.bincount(labels, minlength=K) / len(labels)
    np.testing.assert_allclose(shares, unlabelled.options["target_prior"], atol=1.5 / len(labels))
    assert not unlabelled.terms["wasserstein_failed"]
    from taskrel_utils.method.fit_steps import balanced_labels
    Q = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])  # argmax: all class 0
    assert list(balanced_labels(Q, [0.5, 0.5])) == [0, 0, 1, 1]  # the two least sure points go to class 1


def test_pseudo_label_fit_is_a_valid_bound(unlabelled):
    t = unlabelled.terms
    assert np.isfinite(unlabelled.value) and not t["wasserstein_failed"]
    assert unlabelled.value == pytest.approx(t["reweighted_reference_loss"] + t["label_mismatch"]
                                             + t["distribution_mismatch"])
    np.testing.assert_allclose(unlabelled.B.sum(0), 1.0)
    assert np.isnan(unlabelled.target_accuracy)  # no labels, no accuracy
    # its W is the theorem's (never the code's failure flag); "code" is the option
    assert t["value_wasserstein"] == "theorem"
    assert t["distribution_mismatch"] == pytest.approx(t["tau"] * t["wasserstein_theorem"])


def test_pseudo_label_fit_with_the_codes_wasserstein(data):
    R, R_te, T, T_te, _, _ = data
    res = task_relatedness(R, R_te, (T[0], None), (T_te[0], None), n_target_classes=K, seed=0,
                           pseudo_wasserstein="code", **FAST)
    t = res.terms
    assert t["value_wasserstein"] == "code"
    assert t["distribution_mismatch"] == pytest.approx(t["tau"] * t["wasserstein_rounded"])
    with pytest.raises(TaskrelError, match="pseudo_wasserstein"):
        task_relatedness(R, R_te, (T[0], None), (T_te[0], None), n_target_classes=K, pseudo_wasserstein="x", steps=1)


def test_pseudo_label_fit_is_deterministic(data, unlabelled):
    R, R_te, T, T_te, _, _ = data
    again = task_relatedness(R, R_te, (T[0], None), (T_te[0], None), n_target_classes=K, seed=0, **FAST)
    assert again.value == unlabelled.value and np.array_equal(again.B, unlabelled.B)


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "pass n_target_classes"),
    (dict(n_target_classes=1), "impossible"),
    (dict(n_target_classes=10_000), "impossible"),
    (dict(n_target_classes=2.5), "positive integer"),
    (dict(n_target_classes=True), "positive integer"),
    (dict(n_target_classes=K, mode="learned_a"), "learned_all"),
    (dict(n_target_classes=K, pseudo_assign="greedy"), "pseudo_assign"),
])
def test_pseudo_label_errors(data, kwargs, match):
    R, R_te, T, T_te, _, _ = data
    with pytest.raises(TaskrelError, match=match):
        task_relatedness(R, R_te, (T[0], None), (T_te[0], None), **dict(dict(steps=2), **kwargs))


def test_labels_on_one_side_only_are_refused(data):
    R, R_te, T, T_te, _, _ = data
    with pytest.raises(TaskrelError, match="both target_train and target_test, or for neither"):
        task_relatedness(R, R_te, (T[0], None), T_te, n_target_classes=K, steps=2)
