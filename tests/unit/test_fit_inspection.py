"""fit_inspection: what a hand-run step drew, solved and changed, and why a fit stopped; reading it
never changes the fit."""
import numpy as np
import pandas as pd
import pytest

from taskrel_utils.method import fit_inspection
from taskrel_utils.core.errors import TaskrelError
from taskrel_utils.method.fit_steps import (class_loss_weights, draw_batches, gradient_step, initial_transformations,
                                     objective_terms, prepare, start_fit, transport_plan)
from taskrel_utils.method.relatedness import task_relatedness

from test_relatedness import K


def _first_step(small_pair, small_h_R, **options):
    state = prepare(*small_pair, seed=1, reference_classifier=small_h_R, batch_size=100, **options)
    tr = start_fit(state, initial_transformations(state))
    plan = transport_plan(state, tr, *draw_batches(state, tr))
    return state, tr, plan


def test_cost_matrix_is_the_plans_cost_and_the_plan_keeps_bs_matching(small_pair, small_h_R):
    state, tr, plan = _first_step(small_pair, small_h_R, ot="full")
    cost = fit_inspection.cost_matrix(state, tr, plan)
    A, _, b, B, D = tr.current()
    k, l = 3, 5
    z, t = state.Xr[plan.ref_idx[k]], state.Xt[plan.tgt_idx[l]]
    assert cost["feature"][k, l] == pytest.approx(np.linalg.norm(A @ z + b - t))
    e = np.eye(K)[state.yt[plan.tgt_idx[l]]]
    assert cost["label"][k, l] == pytest.approx(np.linalg.norm(B[:, state.yr[plan.ref_idx[k]]] - e))
    assert cost["feature"].shape == cost["label"].shape == (len(plan.ref_idx), len(plan.tgt_idx))
    s = fit_inspection.plan_summary(plan, cost)
    # Lambda = 1e8: as much mass on B's (one-to-one) matching as the batches' class shares allow
    sigma = B.argmax(0)
    shares_R = np.bincount(state.yr[plan.ref_idx], minlength=K) / len(plan.ref_idx)
    shares_T = np.bincount(state.yt[plan.tgt_idx], minlength=K) / len(plan.tgt_idx)
    assert sorted(sigma) == list(range(K))
    assert s["matched_mass"] == pytest.approx(np.minimum(shares_R, shares_T[sigma]).sum())
    assert s["support"] <= s["n"] + s["m"] - 1
    # the plan pays less feature distance than pairing at random within the matched classes
    assert s["plan_feature_cost"] < s["same_class_feature_cost"] <= s["mean_feature_cost"] * 1.5
    P = plan.dense()
    assert s["plan_feature_cost"] == pytest.approx((P * cost["feature"]).sum())


def test_a_small_label_weight_lets_the_plan_cross_classes(small_pair, small_h_R):
    state, tr, plan = _first_step(small_pair, small_h_R, ot="full", Lambda=1e-6)
    s = fit_inspection.plan_summary(plan, fit_inspection.cost_matrix(state, tr, plan))
    assert s["matched_mass"] < 0.95


def test_batch_table_counts_prior_sample(small_pair, small_h_R):
    state, tr, plan = _first_step(small_pair, small_h_R)
    D = tr.current()[4]
    table = fit_inspection.batch_table(state, plan, D)
    assert list(table.index) == list(range(K))
    assert table["reference drawn"].sum() == len(plan.ref_idx) and table["target drawn"].sum() == len(plan.tgt_idx)
    np.testing.assert_array_equal(table["target floor(N q)"], np.floor(100 * state.pi_T).astype(int))
    # PriorSample takes min(pool, floor(N q)) per class
    pool = np.bincount(state.yr, minlength=K)
    np.testing.assert_array_equal(table["reference drawn"], np.minimum(pool, np.floor(100 * D).astype(int)))


def test_step_row_reports_j_before_and_after_and_the_moves(small_pair, small_h_R):
    state, tr, plan = _first_step(small_pair, small_h_R)
    v = class_loss_weights(state, tr)
    before = tr.current()
    terms = gradient_step(state, tr, v)
    after_terms = objective_terms(state, tr, v)
    row = fit_inspection.step_row(0, plan, terms, after_terms, before, tr.current())
    assert row["J_before"] == terms["objective"] and row["J_after"] == after_terms["objective"]
    assert row["J_after"] < row["J_before"]  # the update lowers J under its own plan
    assert row["n_ref"] == len(plan.ref_idx) and row["label_term"] == terms["label_term"]
    A0, A1 = before[0], tr.current()[0]
    assert row["dA"] == pytest.approx(np.linalg.norm(A1 - A0)) and row["dA"] > 0
    assert row["dA_max"] == pytest.approx(state.options["lr"], rel=0.05)  # Adam's first step: about lr per entry


def test_first_stop_and_diagnostics_agree_with_the_fit(small_pair, small_h_R):
    opts = dict(reference_classifier=small_h_R, batch_size=100, log_every=1, steps=300, window=10, min_steps=20, tol=1e-2)
    res = task_relatedness(*small_pair, seed=2, **opts)
    history = pd.DataFrame(res.history)
    diag = fit_inspection.convergence_diagnostics(history, res.options)
    assert diag["steps_used"] == res.terms["steps_used"] == len(history)
    assert diag["converged"] == res.terms["converged"]
    if res.terms["converged"]:
        assert diag["first_stop"] == res.terms["steps_used"]
        assert diag["change"] <= max(diag["tol_threshold"], diag["noise_threshold"])
    J = history["objective"].to_numpy()
    assert diag["mean_last"] == pytest.approx(J[-10:].mean()) and diag["mean_before"] == pytest.approx(J[-20:-10].mean())
    assert fit_inspection.first_stop(J, dict(res.options, tol=np.inf)) == 20  # the rule holds as soon as allowed
    assert fit_inspection.first_stop(J[:15], res.options) is None  # fewer than min_steps


def test_diagnostics_need_a_row_per_step(small_pair, small_h_R):
    res = task_relatedness(*small_pair, seed=2, reference_classifier=small_h_R, batch_size=100, steps=30, log_every=10,
                           stop="fixed")
    with pytest.raises(TaskrelError, match="log_every=1"):
        fit_inspection.convergence_diagnostics(res.history, res.options)
