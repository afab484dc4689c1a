"""One (encoder, target) pair's fit: the reference classifier h_R and the task-relatedness fit,
each cached on disk by the content of the features, the options and the seed; the fit's table row;
and its transport plan on a few points, for a figure.
"""
from __future__ import annotations

import time

import numpy as np

from ..method import pseudo_labels, relatedness
from ..core.cache import MISSING, Namespace
from ..core.numerics import euclidean, stratified_groups
from ..method.reference_classifier import ReferenceClassifier, fit_reference_model
from ..method.transport import emd_plan

#: h_R of a pair: its values depend on the reference classifier's code (and what it imports)
REFERENCE_CLASSIFIERS = Namespace("reference_classifiers", code=("method.reference_classifier",), kind="arrays")
#: task-relatedness rows: the fit's code, the pseudo-label matching and this module's row schema
FITS = Namespace("relatedness", code=("study.cached_fits",), kind="json")
#: the fitted transformations of a pair with target labels, keyed WITHOUT the target test split
#: (the fit never reads it): a pair that differs only there (notebook 05's whole-data fraction,
#: evaluated on its own train split) is evaluated again instead of fitted again
TRANSFORMATIONS = Namespace("transformations", code=("study.cached_fits",), kind="arrays")


def reference_model(pair_kwargs: dict, *, seed: int = 0, scale: str = "small",
                    reference_classifier_options: dict | None = None, cache: bool = True):
    """``(s_R, h_R)``: the reference standardiser and classifier exactly as ``task_relatedness``
    builds them for this pair's encoder (:func:`reference_classifier.fit_reference_model`; they
    depend only on the reference features).

    ``h_R`` is cached (:data:`REFERENCE_CLASSIFIERS`) by the content of the two reference feature
    sets, the options, the seed and the code, so that every table of every notebook (fits with and
    without target labels, on fractions, the baseline scores) shares one h_R per encoder.
    """
    ref_train, ref_test = pair_kwargs["ref_train"], pair_kwargs["ref_test"]
    options = dict(reference_classifier_options or {})
    key = REFERENCE_CLASSIFIERS.key(seed=seed, scale=scale, options=options, reference=[ref_train, ref_test])

    trained = []

    def train():
        trained.append(fit_reference_model(ref_train, ref_test, seed=seed, scale=scale, options=options))
        h = trained[0][1]
        return {"W": h.W, "c": h.c, "tau0": h.tau0, "options": h.options, "history": h.history,
                "fit_info": h.fit_info}

    stored, hit = REFERENCE_CLASSIFIERS.get_or_compute(key, train, enabled=cache)
    if not hit:  # trained just now: the scaler is fitted already
        return trained[0]
    return fit_reference_model(ref_train, ref_test, classifier=ReferenceClassifier(**stored))


def cached_relatedness(pair_kwargs: dict, *, seed: int = 0, cache: bool = True, target_labels: bool = True,
                       **options) -> dict:
    """``task_relatedness(**pair_kwargs, seed=seed, **options)`` as a :func:`result_row` (plus
    ``seconds``), cached (:data:`FITS`) by the content of the four feature sets, the options, the
    seed and the code.

    ``target_labels=False``: the pseudo-label variant; the target labels of ``pair_kwargs`` are
    hidden from the fit (only their number of classes is passed) and used afterwards for the row's
    ``pseudo_label_accuracy`` (agreement on the target test set after the best class matching).
    h_R comes from :func:`reference_model`'s cache (the same numbers as training it in the fit).
    """
    defaults = relatedness.default_options(options.get("scale", "small"), options.get("schedule", "fast"))
    canonical = {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}  # same fit, same key
    key = FITS.key(pair=pair_kwargs, options=canonical, seed=seed, target_labels=bool(target_labels))
    keyed = canonical if cache and target_labels else None  # a miss only: the train sets are hashed again
    row, _ = FITS.get_or_compute(key, lambda: _fit_row(pair_kwargs, seed, cache, target_labels, options, keyed),
                                 enabled=cache)
    return row


def _fit_row(pair_kwargs: dict, seed: int, cache: bool, target_labels: bool, options: dict,
             keyed_options: dict | None = None) -> dict:
    """The row of :func:`cached_relatedness`, computed. ``keyed_options``: the options as keyed
    (None: no :data:`TRANSFORMATIONS` entry); the entry of the pair's train sets is read if it
    exists (no fit), else written."""
    t0 = time.perf_counter()
    fitted = None
    if keyed_options is not None:
        train_sets = {k: v for k, v in pair_kwargs.items() if k != "target_test"}
        fitted = TRANSFORMATIONS.path(TRANSFORMATIONS.key(pair=train_sets, options=keyed_options, seed=seed))
    kwargs = dict(pair_kwargs)
    if not target_labels:
        (Zt, yt), (Zt_te, yt_te) = pair_kwargs["target_train"], pair_kwargs["target_test"]
        kwargs.update(target_train=(Zt, None), target_test=(Zt_te, None), n_target_classes=int(yt.max()) + 1)
    # the shared, cached h_R (the reference schedule trains its own, by autograd, as the original)
    if options.get("reference_classifier") is None and options.get("schedule", "fast") == "fast":
        _, h_R = reference_model(pair_kwargs, seed=seed, scale=options.get("scale", "small"),
                                 reference_classifier_options=options.get("reference_classifier_options"), cache=cache)
        options = dict(options, reference_classifier=h_R)
    stored = MISSING if fitted is None else TRANSFORMATIONS.load(fitted)
    res = relatedness.task_relatedness(**kwargs, seed=seed, transformations=None if stored is MISSING else stored,
                                       **options)
    if fitted is not None and stored is MISSING:
        TRANSFORMATIONS.save(fitted, dict(A=res.A, A_inv=res.A_inv, b=res.b, B=res.B, D=res.D,
                                          fit_log=[dict(steps_used=res.terms["steps_used"],
                                                        converged=res.terms["converged"])]))
    row = dict(result_row(res), seconds=round(time.perf_counter() - t0, 3))
    if not target_labels:
        row["pseudo_label_accuracy"] = pseudo_labels.matched_accuracy(res.pseudo_labels(Zt_te), yt_te,
                                                                      kwargs["n_target_classes"])
    return row


def result_row(res, **labels) -> dict:
    """One table row of a task-relatedness result: the value, its terms and the transferred classifier."""
    t = res.terms
    return {**labels, "value": res.value, "value_wasserstein": t["value_wasserstein"],
            "value_failed": bool(t["wasserstein_failed"] and t["value_wasserstein"] == "code"),  # W's 1e10 flag
            "reweighted_reference_loss": t["reweighted_reference_loss"],
            "label_mismatch": t["label_mismatch"], "distribution_mismatch": t["distribution_mismatch"],
            "wasserstein": t["wasserstein"], "wasserstein_failed": t["wasserstein_failed"], "tau": t["tau"],
            "wasserstein_theorem": t.get("wasserstein_theorem"),
            "tau_input_space": t["tau_input_space"],
            "target_accuracy": res.target_accuracy, "target_cross_entropy": res.target_cross_entropy,
            "reference_accuracy": t["reference_test_accuracy"],
            "steps_used": t.get("steps_used"), "converged": t.get("converged"),
            "reference_iterations": res.reference_classifier.fit_info.get("iterations"),
            "reference_converged": res.reference_classifier.fit_info.get("converged"),
            "penalty_active": res.reference_classifier.fit_info.get("penalty_active_true_label"),
            "penalty_active_random": res.reference_classifier.fit_info.get("penalty_active_random_label")}


def example_plan(res, pair_kwargs: dict, n_per_side: int = 12, seed: int = 0) -> dict:
    """An exact transport plan between a few mapped reference points and target points, with the
    cost the fit's transport step uses: ``||A x + b - t|| + Lambda ||B e_y - e_s||`` (both
    non-squared, as in the original code).

    Points are taken class-balanced from the train sets and sorted by label for display.
    """
    rng = np.random.default_rng(seed)

    def pick(Z, y, scaler):
        (idx,) = stratified_groups(y, lambda n: [max(1, n_per_side // len(np.unique(y)))], rng)
        idx = idx[np.argsort(y[idx], kind="stable")][:n_per_side]  # by label; the first classes if too many
        return scaler.transform(Z[idx]), y[idx]

    Xr, yr = pick(*pair_kwargs["ref_train"], res.reference_scaler)
    Xt, yt = pick(*pair_kwargs["target_train"], res.target_scaler)
    U = Xr @ res.A.T + res.b
    K_T = res.B.shape[0]
    label_cost = euclidean(res.B[:, yr].T, np.eye(K_T)[yt])
    cost = euclidean(U, Xt) + res.options["Lambda"] * label_cost
    plan = emd_plan(np.full(len(U), 1 / len(U)), np.full(len(Xt), 1 / len(Xt)), cost)
    return {"plan": plan, "reference_labels": yr, "target_labels": yt}
