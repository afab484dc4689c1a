"""Task-relatedness of a reference task R and a target task T on one encoder's features.

    res = task_relatedness(ref_train=(Zr, yr), ref_test=(Zr_te, yr_te),
                           target_train=(Zt, yt), target_test=(Zt_te, yt_te),
                           mode="learned_all", schedule="fast", seed=0)
    res.value, res.terms, res.A, res.b, res.A_inv, res.B, res.D, res.target_accuracy

The method (docs/method.md §2-5). A reference classifier h_R is carried over to the target task through
three transformations of the reference task: a new class prior ``D``, a label map ``B`` (reference
class j -> target class i with probability ``B_ij``) and an affine feature map ``z -> A z + b``
(with a learned inverse ``A_inv``). The transferred classifier is ``h_T(z) = B h_R(A_inv (z - b))``
and its target loss is bounded by (the paper's main theorem; docs/method.md §3)

    task-relatedness = re-weighted reference loss L_C + label mismatch H + tau x W,

W the distribution mismatch between the transformed reference and the target, tau a Lipschitz
constant of the transferred loss. A small value says that little must change to turn R into T.

How the numbers are obtained:

1. each domain is standardised by a z-scorer fit on its own train split, and h_R is trained on
   the standardised reference features (:func:`~taskrel_utils.method.reference_classifier.fit_reference_model`);
2. the transformations are learned by the paper's alternating algorithm (docs/method.md §4): batches
   drawn with the current class priors, an exact transport plan between the mapped reference
   batch and the target batch, then an update of the transformations with the plan fixed
   (:mod:`taskrel_utils.method.fit_steps`, one public function per step; options in
   :mod:`taskrel_utils.method.fit_options`);
3. every term of the bound is evaluated on the test sets, as the original code computes it
   (:mod:`taskrel_utils.method.bound`).

Two schedules (defaults per schedule: :func:`default_options`):

* ``schedule="reference"`` - the original, step for step: the full point-level plan, every
  gradient by autograd, the original's start and stop (:data:`ORIGINAL_FIT`: B's logits uniform
  at random, A = I, b = 0, one Adam step on every parameter per plan, exactly ``steps`` steps);
  h_R by the original SGD schedule.
* ``schedule="fast"`` (default) - the same step by exact reformulations (barycentric feature
  term, class-level label term, closed-form gradients, the plan solved per connected component of
  its class-level support; ``ot="full"`` with ``update="adam"`` and :data:`ORIGINAL_FIT`
  reproduces the reference's numbers), in torch, on the GPU when there is one. The kit's
  defaults (:data:`KIT_FIT`): B and A, b start from the class means matched by OT, B and D are
  set in closed form from the recent plans, the fit stops when J stops improving; h_R by
  full-batch L-BFGS. ``benchmarks/bench_relatedness.py`` measures both.

The stopping rule (``stop="converged"``) makes ``steps`` a cap: ``res.terms["steps_used"]`` and
``res.terms["converged"]`` say how the fit ended, ``res.history`` has J and its terms every
``log_every`` steps.

Without target labels (``target_train=(Z, None), target_test=(Z_te, None), n_target_classes=K``,
the paper's pseudo-label variant): a label-free start, pseudo-labels from k-means on the mapped
target's reference-class posteriors, then self-training that re-labels the target every
``pseudo_refresh`` steps (:func:`~taskrel_utils.method.fit_steps.fit_without_labels`). The bound's target
side then uses the pseudo-labels and, by default, the theorem's class-mixture W
(``pseudo_wasserstein="theorem"``; the code's W fails whenever B leaves a pseudo-class without a
reference class).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.preprocessing import StandardScaler

from .bound import evaluate_bound
from ..core.checks import as_features
from ..core.errors import TaskrelError
from .fit_options import (KIT_FIT, METHOD_OPTIONS, MODES, ORIGINAL_FIT, RUN_OPTIONS, SCALE_PRESETS, SCHEDULES,
                          default_options)
from .fit_steps import (FitState, Transformations, TransportPlan, balanced_labels, class_loss_weights,
                        draw_batches, fit_converged, fit_transformations, fit_without_labels, gradient_step,
                        initial_transformations, objective_terms, prepare, prior_sample, start_fit, thread_limit,
                        transport_plan)
from .reference_classifier import ReferenceClassifier
from .transport import W_FAILURE

__all__ = ["task_relatedness", "TaskRelatedness", "SCALE_PRESETS", "MODES", "SCHEDULES", "prior_sample",
           "default_options", "ORIGINAL_FIT", "KIT_FIT", "METHOD_OPTIONS", "RUN_OPTIONS",
           # the fit's steps, to run by hand (taskrel_utils.method.fit_steps)
           "FitState", "Transformations", "TransportPlan", "prepare", "initial_transformations", "start_fit",
           "draw_batches", "transport_plan", "class_loss_weights", "objective_terms", "gradient_step",
           "fit_converged", "fit_transformations", "fit_without_labels", "thread_limit", "evaluate_bound"]


# --------------------------------------------------------------------------------------- result
@dataclass
class TaskRelatedness:
    """Result of :func:`task_relatedness`. ``value`` = the bound's right-hand side (lower = more related)."""

    value: float
    terms: dict
    A: np.ndarray
    b: np.ndarray
    A_inv: np.ndarray
    B: np.ndarray
    D: np.ndarray
    target_accuracy: float
    target_cross_entropy: float
    reference_classifier: ReferenceClassifier
    reference_scaler: StandardScaler
    target_scaler: StandardScaler
    history: list = field(default_factory=list)
    history_eval: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def C(self) -> np.ndarray:
        """Prior ratio ``D / pi^R``."""
        return self.D / self.options["reference_prior"]

    def predict_proba(self, Z) -> np.ndarray:
        """``h_T(z) = B h_R(A_inv (s_T(z) - b))`` for RAW target features ``Z`` (N x d) -> (N x K_T)."""
        X = self.target_scaler.transform(as_features(Z, "Z", self.A.shape[0]))
        return self.reference_classifier.transferred_proba(X, self.A_inv, self.b, self.B)

    def pseudo_labels(self, Z) -> np.ndarray:
        """``argmax_i [B h_R(A^{-1} z)]_i`` (the paper's pseudo-labels) for raw target features ``Z`` (N x d) -> (N,).

        A fit without target labels and ``pseudo_assign="balanced"`` labels as it labelled its own
        target: the balanced assignment that gives class i the share ``target_prior[i]`` of ``Z``.
        """
        options = self.options
        if options.get("target_labels") == "pseudo" and options.get("pseudo_assign") == "balanced":
            return balanced_labels(self.predict_proba(Z), options["target_prior"])
        return self.predict_proba(Z).argmax(1)

    def summary(self) -> str:
        """One line: the value, its terms, the transferred accuracy; says so when W failed."""
        t = self.terms
        warning = ""
        if t["wasserstein_failed"] and t["value_wasserstein"] == "code":
            warning = (f"NOT A BOUND (W failed: a target class got no mapped reference points, the value is tau x "
                       f"{W_FAILURE:g}): ")
        return (warning + f"task-relatedness {self.value:.4f} = reweighted loss {t['reweighted_reference_loss']:.4f}"
                f" + label mismatch {t['label_mismatch']:.4f} + tau x W {t['distribution_mismatch']:.4f}"
                f" (tau {t['tau']:.4f}, W {t['wasserstein']:.4f}); transferred acc {self.target_accuracy:.3f},"
                f" CE {self.target_cross_entropy:.4f}")


# --------------------------------------------------------------------------------------- main
def task_relatedness(ref_train, ref_test, target_train, target_test, n_target_classes=None,
                     mode="learned_all", schedule="fast", seed=0, scale="small", transformations=None,
                     **options) -> TaskRelatedness:
    """Task-relatedness of a reference task R and a target task T on the same encoder's features.

    Arguments are ``(features, labels)`` pairs of RAW features (standardised here, each domain on
    its own train split); target labels None (both splits) with ``n_target_classes``: the
    pseudo-label variant. ``mode``: "learned_all" (A, b, B, D learned), "learned_a" (B a random
    permutation, D = pi^R), "fixed_all" (nothing learned). ``schedule``: "fast" (default) or
    "reference" (module doc). ``scale``: "small" (default) or "large" presets of the original
    code (``SCALE_PRESETS``, ``REFERENCE_CLASSIFIER_PRESETS``). ``options``, flat: the method's
    (:data:`METHOD_OPTIONS`, e.g. ``Lambda``, ``steps``, ``batch_size``, ``stop``,
    ``reference_classifier_options=dict(tau0=0.5)``, ``reference_classifier`` to reuse an h_R)
    and the run's (:data:`RUN_OPTIONS`: ``device``, ``num_threads``, ``precision``, ``ot_every``,
    ``log_every``, ``eval_steps``, ``track_target_accuracy``); defaults :func:`default_options`
    (``scale``, ``schedule``), meanings in :mod:`taskrel_utils.method.fit_options`.
    ``res.terms`` adds ``steps_used`` and ``converged``.

    ``transformations``: ``dict(A, A_inv, b, B, D, fit_log)`` of an earlier fit with target labels
    on the same train sets, options and seed (the fit never reads the test sets): evaluated on
    these test sets without fitting again (the result has no history).
    """
    t_start = time.perf_counter()
    state = prepare(ref_train, ref_test, target_train, target_test, n_target_classes, mode=mode,
                    schedule=schedule, seed=seed, scale=scale, **options)
    start = None if state.pseudo or transformations is not None else initial_transformations(state)
    with thread_limit(state):
        t0 = time.perf_counter()
        if transformations is not None:
            if state.pseudo:
                raise TaskrelError("transformations are evaluated again only with target labels")
            A, A_inv, b, B, D = (np.asarray(transformations[k]) for k in ("A", "A_inv", "b", "B", "D"))
            state.fit_log.extend(transformations["fit_log"])
        elif mode == "fixed_all":
            A, A_inv, b, B, D = start.A, start.A_inv, start.b, start.B_fixed, start.D_fixed
        elif state.pseudo:
            A, A_inv, b, B, D = fit_without_labels(state)
        else:
            A, A_inv, b, B, D = fit_transformations(state, start).current()
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        ev = evaluate_bound(state, A, A_inv, b, B, D)
        t_eval = time.perf_counter() - t0
    target_accuracy, target_ce = ev.pop("target_accuracy"), ev.pop("target_cross_entropy")
    if state.pseudo:  # no labels, no accuracy: h_T agrees with its own pseudo-labels by construction
        target_accuracy = target_ce = float("nan")
    fit_log = state.fit_log  # one entry per fit stage (two without target labels); none for fixed_all
    terms = dict(ev, steps_used=sum(f["steps_used"] for f in fit_log),
                 converged=bool(fit_log[-1]["converged"]) if fit_log else True)
    opts_out = {k: v for k, v in state.options.items() if k != "reference_classifier"}
    opts_out.update(mode=mode, schedule=schedule, seed=seed, scale=scale, reference_prior=state.pi_R,
                    target_prior=state.pi_T, target_labels="pseudo" if state.pseudo else "true")
    return TaskRelatedness(
        value=ev["value"], terms=terms, A=A, b=b, A_inv=A_inv, B=B, D=D,
        target_accuracy=target_accuracy, target_cross_entropy=target_ce,
        reference_classifier=state.h_R, reference_scaler=state.reference_scaler,
        target_scaler=state.target_scaler, history=state.history, history_eval=state.history_eval,
        options=opts_out, timings=dict(reference_classifier=state.timings["reference_classifier"],
                                       transformations=t_loop, evaluation=t_eval,
                                       total=time.perf_counter() - t_start))
