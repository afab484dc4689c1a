"""The final evaluation: every term of the transferability bound on the test sets (docs/method.md §5).

For learned transformations ``(A, A_inv, b, B, D)`` the bound on the transferred classifier's
target loss is

    value = L_C + H + tau x W

* ``L_C``: the re-weighted reference loss, h_R's per-class test cross-entropy weighted by the
  prior ratio ``C = D / pi^R`` (the train prior, as the original code);
* ``H``: the label mismatch ``-sum_j D_j sum_i B_ij log B_ij`` (0 log 0 = 0);
* ``W``: the distribution mismatch between the transformed reference test set and the target test
  set, a class-wise 1-Wasserstein distance - as the original code computes it (hard labels
  ``argmax B``, plain class average; :func:`~taskrel_utils.method.transport.classwise_w1_code`) and, with
  ``theorem_wasserstein``, the theorem's class mixture (:func:`~taskrel_utils.method.transport.classwise_w1_theorem`);
* ``tau``: the largest input-gradient norm of the transferred loss in h_R's input space, over
  mapped reference points and target points with random and true labels (the original's estimate
  of the Lipschitz constant in the paper's bound).
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.numerics import softmax
from .transport import classwise_w1_code, classwise_w1_theorem

__all__ = ["evaluate_bound", "EVAL_STREAM", "W_DECIMALS", "PROBABILITY_CLIP"]

#: the random labels of tau's estimate come from their own stream ``[seed, EVAL_STREAM]`` (a
#: prime, arbitrary), so that evaluating the bound (e.g. at ``eval_steps``) never moves the fit's
#: random path
EVAL_STREAM = 7919
#: the original code rounds W to 3 decimals before it multiplies it by tau; the value keeps that
#: (``terms["wasserstein"]`` is the unrounded W)
W_DECIMALS = 3
#: probabilities are clipped at this value before the log of the transferred cross-entropy, as
#: the original code does
PROBABILITY_CLIP = 1e-7


def tau_grads_closed(W, c, B, X, y):
    """Per-sample grad_x [-log (B softmax(Wx+c))_y] = -W^T (diag p - p p^T) B^T e_y / (Bp)_y."""
    P = softmax(X @ W.T + c, axis=1)
    Q = P @ B.T
    G = B[y] / Q[np.arange(len(y)), y][:, None]
    V = P * G - P * (P * G).sum(1, keepdims=True)
    return -V @ W


def tau_grads_autograd(W, c, B, X, y):
    """The gradients of :func:`tau_grads_closed` by autograd (the original's way)."""
    Xt = torch.tensor(X, requires_grad=True)
    p = torch.softmax(Xt @ torch.tensor(W).T + torch.tensor(c), 1) @ torch.tensor(B).T
    f = -torch.log(p[torch.arange(len(y)), torch.tensor(y)])
    (g,) = torch.autograd.grad(f.sum(), Xt)
    return g.numpy()


def _tau(state, A, A_inv, b, B):
    """tau: the largest input-gradient norm of the transferred loss in h_R's input space, over the
    mapped reference test set (random target labels) and the mapped target test set (random and
    true labels), as the original code takes it."""
    eval_rng = np.random.default_rng([state.seed, EVAL_STREAM])
    X_ref = (state.Xr_te @ A.T) @ A_inv.T  # A_inv (A z + b - b)
    X_tgt = (state.Xt_te - b) @ A_inv.T
    X = np.concatenate([X_ref, X_tgt, X_tgt])
    y_tau = np.concatenate([eval_rng.integers(0, state.K_T, len(X_ref) + len(X_tgt)), state.yt_te])
    grads = (tau_grads_autograd if state.schedule == "reference" else tau_grads_closed)(
        state.h_R.W, state.h_R.c, B, X, y_tau)
    return float(np.linalg.norm(grads, axis=1).max())


def evaluate_bound(state, A, A_inv, b, B, D) -> dict:
    """Every term of the bound on the test sets, as the original code computes it, plus the
    theorem's class-mixture W (``theorem_wasserstein``; the value's W without target labels
    unless ``pseudo_wasserstein="code"``) and the transferred classifier's target-test accuracy
    and cross-entropy. ``state``: a :class:`~taskrel_utils.method.fit_steps.FitState` with target test labels."""
    h_R, pi_R, yr_te, Xt_te, yt_te = state.h_R, state.pi_R, state.yr_te, state.Xt_te, state.yt_te
    LC = float((D / pi_R * state.class_ce_test).sum() / len(yr_te))
    H = float(-(D * np.where(B > 0, B * np.log(np.where(B > 0, B, 1.0)), 0.0).sum(0)).sum())
    U = state.Xr_te @ A.T + b
    W, _, failed = classwise_w1_code(U, B.argmax(0)[yr_te], Xt_te, yt_te)
    tau = _tau(state, A, A_inv, b, B)
    W_r = float(np.round(W, W_DECIMALS))
    dm = tau * W_r
    Pt = h_R.transferred_proba(Xt_te, A_inv, b, B)
    I = np.eye(A.shape[0])
    terms = dict(
        value=LC + H + dm, value_wasserstein="code", reweighted_reference_loss=LC, label_mismatch=H,
        distribution_mismatch=dm, wasserstein=float(W), wasserstein_rounded=W_r, wasserstein_failed=bool(failed),
        tau=tau, tau_input_space=tau * float(np.linalg.norm(A_inv, 2)),
        inverse_consistency=float(((A @ A_inv - I) ** 2).sum() + ((A_inv @ A - I) ** 2).sum()),
        reference_test_accuracy=h_R.accuracy(state.Xr_te, yr_te),
        target_accuracy=float((Pt.argmax(1) == yt_te).mean()),
        target_cross_entropy=float(-np.log(np.maximum(Pt[np.arange(len(yt_te)), yt_te], PROBABILITY_CLIP)).mean()),
    )
    theorem_value = state.pseudo and state.options["pseudo_wasserstein"] == "theorem"
    if state.options["theorem_wasserstein"] or theorem_value:
        Wt, _ = classwise_w1_theorem(U, yr_te, Xt_te, yt_te, B, D, state.pi_T)
        terms.update(wasserstein_theorem=Wt)
    if theorem_value:  # the theorem's W never fails, unlike the code's
        terms.update(value=LC + H + tau * Wt, distribution_mismatch=tau * Wt, value_wasserstein="theorem")
    return terms
