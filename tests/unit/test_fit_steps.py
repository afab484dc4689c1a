"""The fit as visible steps: run by hand through the public step functions, it gives exactly the
numbers of ``task_relatedness``; the options split into the method's and the run's."""
import numpy as np
import torch
import pytest

from taskrel_utils.method.bound import evaluate_bound
from taskrel_utils.core.errors import TaskrelError, UnknownNameError
from taskrel_utils.core.numerics import euclidean
from taskrel_utils.method.fit_options import METHOD_OPTIONS, RUN_OPTIONS, default_options, resolve_options
from taskrel_utils.method.fit_steps import (class_loss_weights, draw_batches, gradient_step, initial_transformations,
                                     objective_terms, prepare, start_fit, thread_limit, transport_plan)
from taskrel_utils.method.reference_classifier import fit_reference_model, train_reference_classifier
from taskrel_utils.method.relatedness import ORIGINAL_FIT, task_relatedness

from test_relatedness import K

STEPS = 5


@pytest.mark.parametrize("schedule, extra", [
    ("fast", dict()),                                                 # kit default: closed-form B, D
    ("fast", dict(ORIGINAL_FIT, ot="full", reweighted_loss="pool")),  # Adam on everything, full plan
    ("reference", dict()),                                            # the original step, autograd
])
def test_five_steps_by_hand_equal_task_relatedness(small_pair, small_h_R, schedule, extra):
    kw = dict(seed=3, schedule=schedule, reference_classifier=small_h_R, batch_size=100, log_every=1,
              **dict(extra, steps=STEPS, stop="fixed"))
    res = task_relatedness(*small_pair, **kw)

    state = prepare(*small_pair, **kw)
    with thread_limit(state):
        tr = start_fit(state, initial_transformations(state))
        by_hand = []
        for _ in range(STEPS):
            ref_idx, tgt_idx = draw_batches(state, tr)
            plan = transport_plan(state, tr, ref_idx, tgt_idx)
            P = plan.dense()
            assert P.shape == (len(ref_idx), len(tgt_idx)) and P.sum() == pytest.approx(1.0)
            assert plan.class_mass.sum() == pytest.approx(1.0) and plan.class_mass.shape == (K, K)
            v = class_loss_weights(state, tr)
            before = objective_terms(state, tr, v)
            terms = gradient_step(state, tr, v)
            assert terms == before  # the step reports J at the transformations before the update
            by_hand.append(terms)
        A, A_inv, b, B, D = tr.current()
        bound = evaluate_bound(state, A, A_inv, b, B, D)

    assert [t["objective"] for t in by_hand] == [h["objective"] for h in res.history]
    for key in ("feature_term", "label_term", "H", "LC", "PM", "IC"):
        assert [t[key] for t in by_hand] == [h[key] for h in res.history]
    for name, x in zip("A A_inv b B D".split(), (A, A_inv, b, B, D)):
        assert np.array_equal(x, getattr(res, name)), name
    assert bound["value"] == res.value and bound["tau"] == res.terms["tau"]
    assert bound["target_accuracy"] == res.target_accuracy


def test_objective_terms_add_up_to_J(small_pair, small_h_R):
    state = prepare(*small_pair, reference_classifier=small_h_R, batch_size=100)
    tr = start_fit(state, initial_transformations(state))
    transport_plan(state, tr, *draw_batches(state, tr))
    t = objective_terms(state, tr)
    o = state.options
    J = (t["H"] + t["LC"] + o["lambda_wd"] * (t["feature_term"] + o["Lambda"] * t["label_term"])
         + o["lambda_pm"] * t["PM"] + o["lambda_ic"] * t["IC"])
    assert t["objective"] == pytest.approx(J, rel=1e-12)
    assert t["IC"] == pytest.approx(0.0, abs=1e-20)  # the start's A_inv is A's exact inverse


def test_by_hand_without_target_labels_is_refused(small_pair, small_h_R):
    R, R_te, T, T_te = small_pair
    state = prepare(R, R_te, (T[0], None), (T_te[0], None), n_target_classes=K, reference_classifier=small_h_R)
    with pytest.raises(TaskrelError, match="fit_without_labels"):
        initial_transformations(state)


def test_fit_reference_model_is_the_fits_h_R(small_pair):
    R, R_te, T, T_te = small_pair
    rc = dict(tau0=1.0, iterations=40)
    s_R, small_h_R = fit_reference_model(R, R_te, seed=4, options=rc)
    X = (R[0] - R[0].mean(0)) / R[0].std(0)
    np.testing.assert_allclose(s_R.transform(R[0]), X, atol=1e-12)
    direct = train_reference_classifier(s_R.transform(R[0]), R[1], K, Z_test=s_R.transform(R_te[0]),
                                        y_test=R_te[1], seed=4, **rc)
    assert np.array_equal(small_h_R.W, direct.W) and np.array_equal(small_h_R.c, direct.c)
    res = task_relatedness(R, R_te, T, T_te, seed=4, steps=1, batch_size=100, reference_classifier_options=rc)
    assert np.array_equal(res.reference_classifier.W, small_h_R.W)
    assert np.array_equal(res.reference_scaler.mean_, s_R.mean_)
    # the reference schedule: the original optimiser, by autograd
    _, h_orig = fit_reference_model(R, R_te, seed=4, schedule="reference", options=dict(tau0=1.0, iterations=20))
    assert h_orig.options["optimizer"] == "sgd" and h_orig.options["gradient"] == "autograd"
    # a cached h_R: only the scaler is fit, the classifier is returned as it is
    s_again, same = fit_reference_model(R, R_te, classifier=small_h_R)
    assert same is small_h_R and np.array_equal(s_again.scale_, s_R.scale_)
    with pytest.raises(TaskrelError, match="W of shape"):
        fit_reference_model(R, R_te, classifier=train_reference_classifier(X[:, :3], R[1], K, **rc))
    with pytest.raises(TaskrelError, match="schedule"):
        fit_reference_model(R, R_te, schedule="slow")
    with pytest.raises(TaskrelError, match="reference labels"):
        fit_reference_model(R, (R_te[0], None))


def test_options_split_into_method_and_run():
    for schedule in ("fast", "reference"):
        names = set(default_options("small", schedule))
        assert names == METHOD_OPTIONS | RUN_OPTIONS
    assert not METHOD_OPTIONS & RUN_OPTIONS
    assert {"device", "num_threads", "precision", "ot_every", "log_every"} <= RUN_OPTIONS
    assert {"Lambda", "lambda_wd", "lr", "steps", "batch_size", "stop", "update"} <= METHOD_OPTIONS


@pytest.mark.parametrize("kw, match", [
    (dict(ot="sinkhorn"), "ot must be 'class' or 'full'"), (dict(precision="float16"), "precision"),
    (dict(ot_every=0), "ot_every must be an integer >= 1"), (dict(ot_every=True), "ot_every"),
    (dict(min_steps=-1), "min_steps"), (dict(steps=2.5), "steps"), (dict(tol="small"), "tol"),
    (dict(closed_form_rate=1.5), "closed_form_rate"), (dict(reweighted_loss="mean"), "reweighted_loss"),
    (dict(pseudo_assign="greedy"), "pseudo_assign"), (dict(pseudo_wasserstein="w2"), "pseudo_wasserstein"),
    (dict(bogus=1), "unknown option"),
    # every numeric option: negative or non-finite rates and weights, non-integer counts
    (dict(lr=-0.01), r"lr must be a finite number in \(0, inf\), got -0.01"), (dict(lr=0.0), "lr must"),
    (dict(lr_delta=float("nan")), "lr_delta"), (dict(lambda_wd=-2), r"lambda_wd must be a finite number in \[0, inf\)"),
    (dict(Lambda=float("inf")), "Lambda"), (dict(lambda_pm=-1.0), "lambda_pm"), (dict(lambda_ic="1"), "lambda_ic"),
    (dict(tol=float("inf")), "tol"), (dict(b_init_eps=0.0), "b_init_eps"), (dict(adam_eps=-1e-7), "adam_eps"),
    (dict(adam_betas=(0.9, 1.0)), "adam_betas"), (dict(adam_betas=0.9), "adam_betas"),
    (dict(batch_size="100"), r"batch_size must be an integer >= 1, got '100' \(str\)"),
    (dict(batch_size=99.5), "batch_size must be an integer"), (dict(batch_size=True), "batch_size"),
    (dict(batch_size=0), "batch_size"), (dict(num_threads=0), "num_threads must be an integer >= 1 or None"),
    (dict(log_every=-1), "log_every"), (dict(pseudo_refresh=2.0), "pseudo_refresh"),
    (dict(pseudo_warmup_steps="10"), "pseudo_warmup_steps"), (dict(eval_steps=5), "eval_steps"),
    (dict(eval_steps=[1.5]), "eval_steps"), (dict(track_target_accuracy="yes"), "track_target_accuracy"),
    (dict(theorem_wasserstein=None), "theorem_wasserstein"),
    (dict(reference_classifier_options=0.5), "reference_classifier_options must be a dict"),
])
def test_resolve_options_refuses_bad_values(kw, match):
    with pytest.raises(TaskrelError, match=match):
        resolve_options("small", "fast", kw)


def test_resolve_options_accepts_numpy_numbers_and_none_where_allowed():
    opts = resolve_options("small", "fast", dict(lr=np.float32(0.02), batch_size=np.int64(64), log_every=None,
                                                 num_threads=None, pseudo_refresh=0, eval_steps=(0, 10), Lambda=0))
    assert opts["batch_size"] == 64 and opts["lr"] == pytest.approx(0.02)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid scales are: large, small") as info:
        resolve_options("tiny", "fast", {})
    assert info.value.name == "tiny"
    with pytest.raises(UnknownNameError, match="valid schedules are: fast, reference"):
        default_options("small", "slow")
    with pytest.raises(UnknownNameError, match="'bogus'; valid options are: .*Lambda"):
        resolve_options("small", "fast", dict(bogus=1))


def test_reference_schedule_needs_adam():
    with pytest.raises(TaskrelError, match="update='adam'"):
        resolve_options("small", "reference", dict(update="closed_form"))
    assert resolve_options("small", "fast", dict(closed_form_rate=1.0, tol=0))["tol"] == 0


def test_encoder_fit_options_set_the_ot_batch_per_family():
    from taskrel_utils.core.errors import TaskrelError
    from taskrel_utils.method.fit_options import OT_BATCH_BY_FAMILY, encoder_family, encoder_fit_options

    assert OT_BATCH_BY_FAMILY == {"clip": 1500, "resnet50-width": 2500}  # the authors' values
    assert encoder_family("open_clip:ViT-B-32:openai", 512) == "clip"
    assert encoder_family("timm:resnet50.tv_in1k", 2048) == "resnet50-width" and encoder_family("effnet-lite0", 1280) is None
    large = {"scale": "large"}
    assert encoder_fit_options(large, "open_clip:RN50:openai", 1024)["batch_size"] == 1500
    assert encoder_fit_options(large, "timm:resnet50", 2048)["batch_size"] == 2500
    assert "batch_size" not in encoder_fit_options(large, "effnet-lite0", 1280)  # the preset's 1,000
    assert "batch_size" not in encoder_fit_options({}, "open_clip:RN50", 1024)  # small scale: the preset's
    assert encoder_fit_options({**large, "batch_size": 700}, "timm:resnet50", 2048)["batch_size"] == 700
    assert encoder_fit_options({**large, "ot_batch": 300}, "timm:resnet50", 2048) == {"scale": "large", "batch_size": 300}
    per_family = {"scale": "small", "batch_size": 100, "ot_batch": {"clip": 200, "default": 50}}
    assert encoder_fit_options(per_family, "open_clip:x", 24)["batch_size"] == 200
    assert encoder_fit_options(per_family, "timm:resnet50", 2048)["batch_size"] == 2500  # the table's family value
    assert encoder_fit_options(per_family, "lenet", 84)["batch_size"] == 50
    assert encoder_fit_options({"ot_batch": {"clip": 9}}, "lenet", 84) == {}  # no family, no default: unchanged
    with pytest.raises(TaskrelError, match="ot_batch family"):
        encoder_fit_options({"ot_batch": {"vit": 9}}, "lenet", 84)
    with pytest.raises(TaskrelError, match="positive integer"):
        encoder_fit_options({"ot_batch": 0}, "lenet", 84)


def test_plan_sums_equal_the_sparse_products_bit_for_bit():
    """Row masses, barycentric sums and column masses of a plan given by its non-zeros (in any
    order) are exactly the row-sorted sparse matrix's sums and product."""
    from scipy.sparse import csr_matrix

    from taskrel_utils.method.fit_engine import plan_sums
    from taskrel_utils.method.transport import emd_plan

    rng = np.random.default_rng(3)
    u, t = rng.normal(size=(37, 5)), rng.normal(size=(41, 5))
    P = emd_plan(None, None, euclidean(u, t))  # rows and columns with several entries
    rows, cols = np.nonzero(P)
    order = rng.permutation(len(rows))
    rows, cols, vals = rows[order], cols[order], P[rows, cols][order]
    Pi = csr_matrix((vals, (rows, cols)), shape=P.shape)
    a, Pt, b = plan_sums(rows, cols, vals, t, len(u))
    assert np.array_equal(a, np.asarray(Pi.sum(1))[:, 0])
    assert np.array_equal(Pt, Pi @ t)
    assert np.array_equal(b, np.asarray(Pi.sum(0))[0])


def test_closed_form_step_back_props_nothing(small_pair, small_h_R):
    """update="closed_form" sets B and D from the plans: no gradient reaches beta or delta (the
    label terms are evaluated only), while update="adam" back-props them."""
    for update, expect_grads in (("closed_form", False), ("adam", True)):
        state = prepare(*small_pair, seed=0, reference_classifier=small_h_R, update=update, stop="fixed")
        tr = start_fit(state, initial_transformations(state))
        transport_plan(state, tr, *draw_batches(state, tr))
        gradient_step(state, tr)
        assert (tr.params.beta.grad is not None) == expect_grads
        assert (tr.params.delta.grad is not None) == expect_grads


def test_one_target_class_draws_a_target_batch_as_large_as_the_reference_batch(small_pair, small_h_R):
    """With one target class (the label-free start) the target batch matches the reference batch's
    size, which PriorSample's floors leave short of batch_size when D is uneven; with several
    target classes each side keeps its own PriorSample."""
    (Zr, yr), ref_te, (Zt, yt), (Zt_te, yt_te) = small_pair
    one = ((Zt, np.zeros_like(yt)), (Zt_te, np.zeros_like(yt_te)))
    for target, same_size in ((one, True), (((Zt, yt), (Zt_te, yt_te)), False)):
        state = prepare((Zr, yr), ref_te, *target, seed=0, reference_classifier=small_h_R, batch_size=37)
        tr = start_fit(state, initial_transformations(state))
        with torch.no_grad():
            tr.params.delta.copy_(torch.log(torch.linspace(1.0, 2.0, len(tr.params.delta), dtype=torch.float64)))
        ri, ti = draw_batches(state, tr)
        assert len(ri) < 37  # the floors of an uneven D
        assert (len(ti) == len(ri)) == same_size
