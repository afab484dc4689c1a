"""Notebook 02's step written out from scratch (the cells tagged ``by-hand``) and the exercises that
compute the bound's terms by hand (notebook 02's exercise 1, notebook 03's exercise 1): their cells
run here on planted features, next to the kit's own step and values.

The comparison is sharp: a changed line in a by-hand cell (a squared cost, a transposed B, the wrong
class matching, a missing weight) fails :func:`test_a_wrong_line_by_hand_is_caught`.
"""
import nbformat
import numpy as np
import ot
import pandas as pd
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.special import xlogy

from taskrel_utils.core.paths import NOTEBOOKS_DIR
from taskrel_utils.method import fit_inspection, fit_steps
from taskrel_utils.method.relatedness import task_relatedness
from taskrel_utils.present.reading import fit_transformations as reading
from taskrel_utils.study.cached_fits import result_row

NB02 = NOTEBOOKS_DIR / "02_fit_transformations.ipynb"
NB03 = NOTEBOOKS_DIR / "03_bound_decomposition.ipynb"
#: what the notebooks import, for the cells run here
BASE = dict(np=np, ot=ot, pd=pd, torch=torch, linear_sum_assignment=linear_sum_assignment, xlogy=xlogy,
            fit_steps=fit_steps, fit_inspection=fit_inspection, reading=reading,
            display=lambda *a, **k: None, Markdown=str)


def _cells(path):
    return nbformat.read(path, as_version=4).cells


def _by_hand_sources():
    """The by-hand cells of notebook 02, then the cell that compares them with the kit's step."""
    cells = _cells(NB02)
    hand = [c.source for c in cells if "by-hand" in c.metadata.get("tags", [])]
    compare = [c.source for c in cells if "fit_inspection.agreement_table(by_hand" in c.source]
    assert len(hand) == 3 and len(compare) == 1
    return hand, compare[0]


def _exercise(path, number):
    """``(student cell, solution cell)`` sources of exercise ``number``."""
    cells = _cells(path)
    start = next(i for i, c in enumerate(cells) if c.source.startswith(f"### Exercise {number}:"))
    student = next(c for c in cells[start + 1:] if c.cell_type == "code")
    solution = next(c for c in cells[start + 1:] if "solution" in c.metadata.get("tags", []))
    return student.source, solution.source


def _run(sources, namespace):
    for source in sources:
        exec(compile(source, "<notebook cell>", "exec"), namespace)
    return namespace


def _pair(small_pair, target_classes=None):
    R, R_te, T, T_te = small_pair
    if target_classes is not None:  # a target with fewer classes than the reference
        keep, keep_te = T[1] < target_classes, T_te[1] < target_classes
        T, T_te = (T[0][keep], T[1][keep]), (T_te[0][keep_te], T_te[1][keep_te])
    return dict(ref_train=R, ref_test=R_te, target_train=T, target_test=T_te)


def _step_by_hand(small_pair, h_R, replace=(), target_classes=None, perturb_inverse=False, **options):
    """Notebook 02's first step: the kit's batches and plan, the by-hand cells (with ``replace``
    applied to their source), then the notebook's cell that takes the kit's step and compares."""
    state = fit_steps.prepare(**_pair(small_pair, target_classes), seed=0, reference_classifier=h_R,
                              batch_size=100, **options)
    start = fit_steps.initial_transformations(state)
    if perturb_inverse:  # A_inv no longer A's inverse: the inverse-consistency term has a gradient
        start.A_inv = start.A_inv + 0.05 * np.random.default_rng(1).normal(size=start.A_inv.shape)
    tr = fit_steps.start_fit(state, start)
    with fit_steps.thread_limit(state):
        ref_idx, tgt_idx = fit_steps.draw_batches(state, tr)
        plan = fit_steps.transport_plan(state, tr, ref_idx, tgt_idx)
    hand, compare = _by_hand_sources()
    for old, new in replace:
        assert any(old in s for s in hand), f"the by-hand cells no longer contain {old!r}"
        hand = [s.replace(old, new) for s in hand]
    ns = _run([*hand, compare], dict(BASE, state=state, tr=tr, ref_idx=ref_idx, tgt_idx=tgt_idx, plan=plan))
    return ns, state


@pytest.mark.parametrize("options", [dict(), dict(target_classes=3), dict(perturb_inverse=True),
                                     dict(reweighted_loss="pool", ot="full")],
                         ids=["K_T = K_R", "K_T < K_R", "A_inv not the inverse", "full OT"])
def test_the_step_by_hand_is_the_kits_step(small_pair, small_h_R, options):
    ns, state = _step_by_hand(small_pair, small_h_R, **options)
    agreement = ns["agreement"].set_index("quantity")
    assert list(agreement.index) == list(fit_inspection.STEP_QUANTITIES)
    assert (agreement.relative <= reading.BY_HAND_TOLERANCE["float64"]).all(), agreement
    # and without the notebook's comparison cell: the plan, B, D, the gradient and the step themselves
    A, A_inv, b, B, D = ns["tr"].current()
    np.testing.assert_allclose(ns["P"], ns["plan"].dense(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ns["B_new"], B, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ns["D_new"], D, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ns["A_t"].grad.numpy(), ns["tr"].params.A.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ns["A_t"].detach().numpy(), A, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ns["b_t"].detach().numpy(), b, rtol=0, atol=1e-12)
    assert np.abs(A - ns["A"]).max() > 1e-3  # the step moved A: the comparison is not of two starts
    if options.get("target_classes"):
        assert (ns["D_new"] == 0).sum() == state.K_R - state.K_T  # an unmatched reference class leaves D
    assert "agree" in reading.by_hand_reading(ns["agreement"], state.options)


@pytest.mark.parametrize("old, new, wrong", [
    ("M = np.sqrt(np.maximum(feature_sq, 0)) +", "M = feature_sq +", "plan"),         # a squared cost
    ('state.options["Lambda"] * np.sqrt', "1.0 * np.sqrt", "plan"),                 # no label weight
    ("np.divide(Gamma.T, sent,", "np.divide(Gamma, sent[:, None],", "B"),           # B transposed
    ("maximize=True", "maximize=False", "D"),                                       # the worst matching
    ('J_maps = state.options["lambda_wd"] * feature_term', "J_maps = feature_term", "dJ/dA"),
    ('+ state.options["lambda_ic"] * IC', "", "dJ/dA_inv"),                         # no inverse consistency
], ids=["squared cost", "Lambda", "B transposed", "matching", "lambda_wd", "IC"])
def test_a_wrong_line_by_hand_is_caught(small_pair, small_h_R, old, new, wrong):
    ns, state = _step_by_hand(small_pair, small_h_R, replace=[(old, new)], perturb_inverse=True)
    agreement = ns["agreement"].set_index("quantity")
    assert agreement.loc[wrong, "relative"] > 1e-3, agreement
    assert "differ beyond rounding" in reading.by_hand_reading(ns["agreement"], state.options)


def test_float32_steps_are_explained_not_hidden(small_pair, small_h_R):
    """With precision float32 the kit's gradients are rounded to float32: A, b and the plan still
    agree; A_inv, whose true gradient is zero at the start, is moved by Adam's normalised noise,
    and the reading says why."""
    ns, state = _step_by_hand(small_pair, small_h_R, precision="float32")
    agreement = ns["agreement"].set_index("quantity")
    close = agreement.drop(index=["A_inv", "dJ/dA_inv", "IC"])
    assert (close.relative <= reading.BY_HAND_TOLERANCE["float32"]).all(), agreement
    assert agreement.loc["A_inv", "difference"] <= state.options["lr"] * 1.0001  # Adam moves an entry by lr at most
    text = reading.by_hand_reading(ns["agreement"], state.options)
    assert "float32" in text and "beyond rounding" not in text


@pytest.fixture(scope="module")
def fitted(small_pair, small_h_R):
    """A short fit whose B is still soft (Adam steps on B): H is not zero."""
    pair = _pair(small_pair)
    options = dict(seed=0, reference_classifier=small_h_R, batch_size=100, update="adam", steps=20, stop="fixed")
    res = task_relatedness(**pair, **options)
    return pair, res, fit_steps.prepare(**pair, **options)


def test_notebook_02_exercise_1_solution_gives_the_kits_terms(fitted, small_h_R):
    pair, res, state = fitted
    student, solution = _exercise(NB02, 1)
    ns = _run([student], dict(BASE, res=res, state=state, h_R=small_h_R))
    assert ns["H_by_hand"] is None  # the student's cell runs and does nothing yet
    ns = _run([solution], ns)
    t = res.terms
    assert t["label_mismatch"] > 1e-3  # a soft B: H has something to check
    assert ns["H_by_hand"] == pytest.approx(t["label_mismatch"], rel=1e-12, abs=1e-12)
    assert ns["LC_by_hand"] == pytest.approx(t["reweighted_reference_loss"], rel=1e-12)
    assert ns["W_by_hand"] == pytest.approx(t["wasserstein"], rel=1e-12)


def test_notebook_03_exercise_1_solution_gives_both_wassersteins(fitted):
    pair, res, _ = fitted
    _, solution = _exercise(NB03, 1)
    U = res.reference_scaler.transform(pair["ref_test"][0]) @ res.A.T + res.b
    V = res.target_scaler.transform(pair["target_test"][0])
    row = pd.Series(result_row(res, encoder="e", target="t"))
    ns = _run([solution], dict(BASE, fit=res, row=row, U=U, y_ref=pair["ref_test"][1], V=V,
                                y_tgt=pair["target_test"][1], prior_T=res.options["target_prior"]))
    assert ns["W_code"] == pytest.approx(res.terms["wasserstein"], rel=1e-12)
    assert ns["W_theorem"] == pytest.approx(res.terms["wasserstein_theorem"], rel=1e-9)
    # the planted target's prior is uneven: the two distances differ, which is the exercise's point
    assert abs(ns["W_code"] - ns["W_theorem"]) > 1e-3
