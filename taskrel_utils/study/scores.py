"""Baseline transferability scores the paper compares with, vectorised re-implementations in float64.

Every score takes numpy arrays, validates them (:class:`~taskrel_utils.core.errors.TaskrelError` with a
message that says what to do), never modifies them, returns a Python ``float`` and keeps the sign
convention of the original authors' code: higher is better, except the three PACTran scores
(lower is better). :data:`SCORES` lists them for a notebook loop.

Notation: ``F`` (N x D) features of the target training data, ``y`` (N,) target labels in
``0..K-1``, ``Theta`` (N x K_S) source-classifier probabilities (rows sum to 1), ``onehot(y)``
(N x K).

=====================  ==============  ======  ===================================================
score                  inputs          better  original code followed
=====================  ==============  ======  ===================================================
``logme``              F, y            higher  thuml/LogME ``LogME.py`` (``LogME._fit_fixed_point``)
``leep``               Theta, y        higher  thuml/LogME ``LEEP.py``; tllib ``ranking/leep.py``
``nce``                Theta, y        higher  tllib ``ranking/nce.py`` (hard source labels)
``h_score``            F, y            higher  tllib ``ranking/hscore.py`` (``h_score``)
``sfda``               F, y            higher  TencentARC/SFDA ``metrics.py`` (``SFDA_Score``),
                                               ``utils.py`` (``iterative_A``)
``pactran_dirichlet``  Theta, y        lower   google-research/pactran_metrics
``pactran_gamma``      Theta, y        lower     ``compute_metrics.py`` (``calculate_pac_dir``,
``pactran_gaussian``   F, y            lower     ``calculate_pac_gamma``, ``calculate_pac_gauss``)
``ot_nce``             F_R, y_R, F, y  higher  tanyang1231/OTCE_Transferability_CVPR21
``otce_components``    F_R, y_R, F, y  (W,CE)    ``compute_otce_demo.py`` (``compute_coupling``,
                                                 ``compute_CE``)
=====================  ==============  ======  ===================================================

Papers: LogME - You et al., ICML 2021 and "Ranking and tuning pre-trained models", JMLR 2022
(arXiv 2110.10545); LEEP - Nguyen et al., ICML 2020; NCE - Tran et al., ICCV 2019; H-score - Bao
et al., ICIP 2019; SFDA - Shao et al., ECCV 2022; PACTran - Ding et al., ECCV 2022; OTCE / OT-NCE -
Tan et al., CVPR 2021.

Choices where the originals are ambiguous or wrong (see also each function):

* LogME: the default of thuml's ``LogME.py`` (the fixed-point version of arXiv 2110.10545, not the
  ICML-paper iteration of tllib): start ``alpha = beta = 1``, at most 11 MacKay updates per class,
  stop when ``alpha/beta`` changes by <= 1e-3 relatively, ``1e-5`` added to both denominators, and
  the evidence evaluated as that code does (new ``alpha, beta`` with the ``||m||^2`` and residual of
  the last update). One deliberate fix: the log-determinant counts the zero eigenvalues of
  ``F^T F`` (each contributes ``log alpha``). thuml's fixed-point code drops them but keeps
  ``D/2 log alpha``, which is wrong whenever ``rank(F) < D`` (always when N < D); with full column
  rank (the usual N > D case) both agree. thuml's cap of 11 updates and its 1e-5 guards stop short
  of the maximum evidence when N < D (slow convergence); ``logme(..., max_iter=2000, rtol=1e-13,
  eps=0)`` gives the exact maximum.
* LEEP: a source class ``z`` with ``sum_n Theta[n, z] == 0`` gets ``P(y|z) = 0`` (the originals
  produce NaN there; the value is unaffected because ``Theta[:, z] == 0``).
* H-score: pseudo-inverse of the unbiased feature covariance with a relative cut-off ``rcond``
  (1e-15 as in tllib, applied to eigenvalues). Plain H-score is ill-conditioned when N <= D or when
  features are (nearly) collinear - as in the originals; pass a larger ``rcond`` for a stable value.
* SFDA: the projection ``V V^T`` of the original (all generalised eigenvectors of
  ``(S_b, S_w~)``, normalised by scipy so that ``V^T S_w~ V = I``) equals ``S_w~^{-1}``; we use a
  Cholesky solve instead of the generalised eigenproblem (same result, and it fails exactly when
  the original's ``scipy.linalg.eigh(Sb, Sw)`` fails). Softmax applied to the probabilities
  ("soften") and the score without a log are kept as in the code.
* PACTran: ``K = max(y) + 1`` classes and ``N`` = all given samples (the ``pactran_metrics`` driver
  subsamples at most 8,000 examples and repeats 5 times - subsample outside if you want that).
  Gauss: features centred, ``lambda = lda_factor * N``, L-BFGS-B (``maxiter=100``, ``tol=1e-6``)
  from ``W0 ~ N(0, 0.03^2)`` (seeded generator instead of the global ``np.random``), ``b0 = 0``;
  the constant ``sum onehot * log(onehot + 1e-10)`` (1e-10) of the code's cross-entropy is dropped.
  100 iterations may stop short of the minimum for large ``D x K`` (the value then depends slightly
  on ``seed``); ``maxiter``/``tol`` lift that.
  See :func:`pactran_gaussian` for the choice of ``s2_factor``.
* OT-NCE / OTCE: squared Euclidean cost, exact OT with uniform marginals (``emd_plan``, cap 1e7
  iterations instead of the demo's 1e5), ``n_samples=1000`` points drawn uniformly without
  replacement from each side (all points if fewer), averaged over ``n_repeats=3`` draws of one
  seeded generator (a single draw is noisy). The demo uses one draw and float32 features.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy import linalg, optimize, sparse, special

from ..core.checks import as_features, as_labels
from ..core.errors import TaskrelError
from ..core.numerics import softmax, sq_euclidean
from ..method.transport import emd_plan

__all__ = ["logme", "leep", "nce", "h_score", "sfda", "pactran_dirichlet", "pactran_gamma",
           "pactran_gaussian", "ot_nce", "otce_components", "ScoreSpec", "SCORES"]

#: tolerance on the row sums of ``source_probs``
PROB_ROW_ATOL = 1e-3

_RELABEL_HINT = "relabel with labels = np.unique(labels, return_inverse=True)[1]"


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _features(x, name: str = "features") -> np.ndarray:
    """``x`` as a finite float64 (N, D) array with N >= 2, D >= 1 (never modified below)."""
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise TaskrelError(f"{name} must be a numeric (float) array, got dtype {x.dtype}")
    x = as_features(x, name)
    if x.shape[0] < 2 or x.shape[1] < 1:
        raise TaskrelError(f"{name} needs at least 2 samples and 1 dimension, got shape {x.shape}")
    return x


def _source_probs(p, name: str = "source_probs") -> np.ndarray:
    """``p`` as (N, K_S) probabilities: non-negative rows summing to 1 (within ``PROB_ROW_ATOL``)."""
    p = np.asarray(p)
    if p.dtype.kind in "iuf" and not np.isfinite(p).all():
        raise TaskrelError(f"{name} contains NaN or infinite values; pass the source classifier's softmax "
                           "probabilities (finite, rows summing to 1)")
    p = _features(p, name)
    if p.min() < 0:
        raise TaskrelError(f"{name} has negative entries (min {p.min():.3g}); pass softmax probabilities, "
                           "not logits (taskrel_utils.core.numerics.softmax(logits))")
    dev = np.abs(p.sum(1) - 1.0).max()
    if dev > PROB_ROW_ATOL:
        raise TaskrelError(f"rows of {name} must sum to 1 (worst row is off by {dev:.3g}); pass softmax "
                           "probabilities, not logits, or renormalise: P / P.sum(1, keepdims=True)")
    return p


def _labels(y, n: int, name: str = "labels", all_present: bool = False):
    """Return ``(y as intp in 0..K-1, K, counts)``.

    ``y``: n integer class indices (an (n, 1) column is accepted). With ``all_present`` every class
    ``0..max(y)`` must occur (the score depends on K); otherwise the labels are compressed to the
    classes that occur (the score does not depend on empty ones).
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    y = as_labels(y, n, name)
    classes, inv = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise TaskrelError(f"{name} contain fewer than 2 classes ({len(classes)}); a transferability "
                           "score needs at least 2")
    if all_present:
        K = int(classes[-1]) + 1
        if len(classes) != K:
            first = int(np.flatnonzero(classes != np.arange(len(classes)))[0])  # smallest missing class
            raise TaskrelError(f"{name}: {K - len(classes)} of the classes 0..{K - 1} have no samples (the first "
                               f"is {first}), and this score depends on the number of classes; drop empty "
                               f"classes and {_RELABEL_HINT}")
        y_out = y.astype(np.intp)
    else:
        K, y_out = len(classes), inv.astype(np.intp).reshape(-1)
    counts = np.bincount(y_out, minlength=K).astype(np.float64)
    return y_out, K, counts


def _class_sums(X: np.ndarray, y: np.ndarray, K: int) -> np.ndarray:
    """``onehot(y)^T X`` (K x D) with a sparse one-hot (O(N D))."""
    n = len(y)
    Y = sparse.csr_matrix((np.ones(n), (y, np.arange(n))), shape=(K, n))
    return np.asarray(Y @ X)


# --------------------------------------------------------------------------------------------
# LogME
# --------------------------------------------------------------------------------------------
_LOGME_MAX_ITER, _LOGME_RTOL, _LOGME_EPS = 11, 1e-3, 1e-5


def logme(features, labels, *, max_iter: int = _LOGME_MAX_ITER, rtol: float = _LOGME_RTOL,
          eps: float = _LOGME_EPS) -> float:
    """LogME (You et al.): mean over classes of the maximum log evidence per sample.

    ``features`` (N, D), ``labels`` (N,) in ``0..K-1`` (every class present). For each class ``c``,
    Bayesian linear regression of ``1[y = c]`` on ``F`` with ``w ~ N(0, alpha^-1 I)``, noise
    ``beta^-1``; ``L_c = D/2 log alpha + N/2 log beta - N/2 log 2 pi - beta/2 ||F m - y_c||^2
    - alpha/2 ||m||^2 - 1/2 log|alpha I + beta F^T F|`` at the MacKay fixed point
    ``alpha = gamma/||m||^2``, ``beta = (N - gamma)/||F m - y_c||^2``,
    ``gamma = sum_i beta s_i/(alpha + beta s_i)``. Returns ``mean_c L_c / N``.

    One eigendecomposition (of ``F^T F`` if N >= D, else of ``F F^T``) serves all classes; the
    iteration runs vectorised over classes, each class stopping on its own as in thuml's loop.
    The ``D - rank`` zero eigenvalues count in the log-determinant (module docstring).

    ``max_iter=11``, ``rtol=1e-3`` and the guard ``eps=1e-5`` added to ``||m||^2`` and to the
    residual in the updates are thuml's. They are harmless when N >> D (2-4 updates), but when
    N < D the iteration converges slowly and ``||m||^2`` and the residual are small, so the value
    can end ~1e-3 per sample below the maximum evidence; ``max_iter=2000, rtol=1e-13, eps=0`` gives
    the exact maximum (no longer the published procedure).
    """
    F = _features(features)
    N, D = F.shape
    y, K, counts = _labels(labels, N, all_present=True)
    tiny = np.finfo(np.float64).eps * max(N, D)  # relative rank cut-off for eigenvalues of the Gram matrix
    if not np.any(F):
        raise TaskrelError("features are all zero; LogME is undefined (check the feature extraction)")
    if int(max_iter) < 1 or not rtol > 0 or not eps >= 0:
        raise TaskrelError(f"need max_iter >= 1, rtol > 0, eps >= 0; got {max_iter}, {rtol}, {eps}")
    if N >= D:
        sig, V = np.linalg.eigh(F.T @ F)
        sig = np.maximum(sig, 0.0)
        pos = sig > sig.max() * tiny
        sig = np.where(pos, sig, 0.0)
        Z = V.T @ _class_sums(F, y, K).T                      # v_i^T F^T y_c = s_i x_ic   (D x K)
        x2 = np.where(pos[:, None], Z * Z / np.where(pos, sig, 1.0)[:, None], 0.0)
    else:
        sig, U = np.linalg.eigh(F @ F.T)
        sig = np.maximum(sig, 0.0)
        sig = np.where(sig > sig.max() * tiny, sig, 0.0)
        X = _class_sums(U, y, K).T                             # u_i^T y_c                (N x K)
        x2 = X * X
    # ||y_c||^2 - sum_i x_ic^2: the part of y_c outside the eigenvectors; exactly 0 when N < D
    # (U is a complete basis of R^N; thuml's code gets rounding noise of either sign there)
    res_x2 = np.maximum(counts - x2.sum(0), 0.0) if N >= D else np.zeros(K)
    s = sig[:, None]
    alpha, beta = np.ones(K), np.ones(K)
    m2, res2 = np.zeros(K), np.zeros(K)
    active = np.ones(K, dtype=bool)
    for _ in range(int(max_iter)):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        t = alpha[idx] / beta[idx]
        xx = x2[:, idx]
        gamma = (s / (s + t)).sum(0)
        m2[idx] = (s * xx / (t + s) ** 2).sum(0)
        res2[idx] = (xx / (1.0 + s / t) ** 2).sum(0) + res_x2[idx]
        alpha[idx] = gamma / (m2[idx] + eps)
        beta[idx] = (N - gamma) / (res2[idx] + eps)
        done = np.abs(alpha[idx] / beta[idx] - t) / t <= rtol
        active[idx[done]] = False
    logdet = np.log(alpha[None, :] + beta[None, :] * s).sum(0) + (D - len(sig)) * np.log(alpha)
    evidence = (D / 2.0 * np.log(alpha) + N / 2.0 * np.log(beta) - 0.5 * logdet
                - beta / 2.0 * res2 - alpha / 2.0 * m2 - N / 2.0 * np.log(2 * np.pi)) / N
    return float(np.mean(evidence))


# --------------------------------------------------------------------------------------------
# LEEP, NCE
# --------------------------------------------------------------------------------------------
def leep(source_probs, labels) -> float:
    """LEEP (Nguyen et al.): ``1/N sum_n log sum_z P(y_n | z) Theta[n, z]``.

    ``source_probs`` Theta (N, K_S) softmax probabilities, ``labels`` (N,). ``P(i, z) = 1/N
    sum_{n: y_n = i} Theta[n, z]``, ``P(i | z) = P(i, z) / sum_i' P(i', z)``. Always <= 0.
    """
    P = _source_probs(source_probs)
    N = P.shape[0]
    y, K, _ = _labels(labels, N)
    joint = _class_sums(P, y, K) / N                            # K x K_S
    pz = joint.sum(0)
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)
    eep = (P @ cond.T)[np.arange(N), y]
    return float(np.mean(np.log(eep)))


def nce(source_probs, labels) -> float:
    """NCE (Tran et al.): ``-H(Y | Z) = sum_{i,z} P(i, z) log(P(i, z) / P(z))``, ``Z = argmax Theta``.

    ``source_probs`` (N, K_S); hard source labels are ``argmax`` per row (first index on ties);
    ``P`` are empirical joint frequencies. Always <= 0; 0 when ``Z`` determines ``Y``.
    """
    P = _source_probs(source_probs)
    N = P.shape[0]
    y, K, _ = _labels(labels, N)
    _, z = np.unique(np.argmax(P, axis=1), return_inverse=True)
    Kz = int(z.max()) + 1
    joint = np.bincount(z.reshape(-1) * K + y, minlength=Kz * K).reshape(Kz, K) / N
    pz = joint.sum(1, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log((joint / pz)[nz])))


# --------------------------------------------------------------------------------------------
# H-score
# --------------------------------------------------------------------------------------------
def h_score(features, labels, rcond: float = 1e-15) -> float:
    """H-score (Bao et al.): ``tr(pinv(Cov(F)) Cov(E[F | y]))``, both covariances unbiased.

    ``features`` (N, D), ``labels`` (N,). Computed as ``sum_c n_c/(N-1) d_c^T pinv(Cov F) d_c``
    with ``d_c`` = class mean minus overall mean; ``pinv`` keeps eigenvalues with
    ``|lambda| > rcond * max |lambda|`` (numpy ``pinv`` semantics, tllib's ``rcond=1e-15``).
    """
    F = _features(features)
    N = F.shape[0]
    y, K, counts = _labels(labels, N)
    mu = F.mean(0)
    Fc = F - mu
    lam, V = np.linalg.eigh(Fc.T @ Fc / (N - 1))
    keep = np.abs(lam) > rcond * np.abs(lam).max()
    d = _class_sums(Fc, y, K) / counts[:, None]                 # class means - overall mean
    W = d @ V[:, keep]                                          # K x rank
    q = (W * W / lam[keep]).sum(1)
    return float(np.sum(counts * q) / (N - 1))


# --------------------------------------------------------------------------------------------
# SFDA
# --------------------------------------------------------------------------------------------
#: SFDA's shrinkage ``lambda = max(exp(-rate * sigma_max(S_w)), floor)``, with ``sigma_max`` from a few
#: power iterations: the values of TencentARC/SFDA (``SFDA_Score``, ``iterative_A``)
_SFDA_SHRINK_RATE, _SFDA_SHRINK_FLOOR, _SFDA_POWER_ITERS = 5.0, 1e-10, 3


def _power_iteration_top(A: np.ndarray, iters: int = _SFDA_POWER_ITERS) -> float:
    """Largest eigenvalue estimate exactly as SFDA ``utils.iterative_A`` (start: row sums)."""
    x = A.sum(axis=1)
    if not np.any(x):
        x = np.ones(A.shape[0])
    y = x
    for _ in range(iters):
        t = A @ x
        y = t / np.linalg.norm(t)
        t = A @ y
        x = t / np.linalg.norm(t)
    return float(x @ A @ y)


def _sfda_fit_proba(X, y, K, counts, shrinkage=None):
    """Regularised-Fisher (shrunk-LDA) posteriors ``p(c | x)`` of SFDA's class ``SFDA``."""
    N, D = X.shape
    means = _class_sums(X, y, K) / counts[:, None]
    Xw = X - means[y]
    Sw = Xw.T @ Xw / N                                          # sum_c pi_c Cov_c (biased)
    if shrinkage is None:
        shrinkage = max(np.exp(-_SFDA_SHRINK_RATE * _power_iteration_top(Sw)), _SFDA_SHRINK_FLOOR)
    Sw_s = (1.0 - shrinkage) * Sw
    Sw_s.flat[::D + 1] += shrinkage * np.trace(Sw) / D
    try:
        coef = linalg.cho_solve(linalg.cho_factor(Sw_s), means.T).T  # means V V^T = means Sw~^-1
    except linalg.LinAlgError as exc:
        raise TaskrelError("SFDA: the shrunk within-class scatter is not positive definite (features are "
                           "degenerate); remove constant/duplicate feature dimensions") from exc
    intercept = -0.5 * np.sum(means * coef, axis=1) + np.log(counts / N)
    return softmax(X @ coef.T + intercept), shrinkage


def sfda(features, labels) -> float:
    """SFDA (Shao et al.): mean probability of the true class after a self-challenging refit.

    ``features`` (N, D), ``labels`` (N,) in ``0..K-1`` (every class present). (1) shrunk LDA,
    ``lambda = max(exp(-5 sigma_max(S_w)), 1e-10)`` with ``sigma_max`` from 3 power iterations,
    ``S_w~ = (1 - lambda) S_w + lambda tr(S_w)/D I``, ``p(c|x) = softmax_c(x^T S_w~^-1 mu_c
    - mu_c^T S_w~^-1 mu_c / 2 + log pi_c)``; (2) ``q = softmax(p)``, ConfMix
    ``x_n <- q_{n,y_n} x_n + (1 - q_{n,y_n}) mean_{c != y_n} mu_c``; (3) refit with the same
    ``lambda``; score ``= 1/N sum_n p(y_n | x_n)`` (no log). Works on a copy.
    """
    F = _features(features)
    N = F.shape[0]
    y, K, counts = _labels(labels, N, all_present=True)
    prob, lam = _sfda_fit_proba(F, y, K, counts)
    q = softmax(prob)[np.arange(N), y][:, None]
    means = _class_sums(F, y, K) / counts[:, None]
    outer = (means.sum(0)[None, :] - means) / (K - 1)
    Fmix = q * F + (1.0 - q) * outer[y]
    prob2, _ = _sfda_fit_proba(Fmix, y, K, counts, shrinkage=lam)
    return float(np.mean(prob2[np.arange(N), y]))


# --------------------------------------------------------------------------------------------
# PACTran
# --------------------------------------------------------------------------------------------
#: PACTran as in google-research/pactran_metrics: variational updates, the guard added to
#: probabilities and prior counts (keeps logs and digammas finite), the scale of the random start
#: of the Gaussian version's weights
_PAC_VB_ITERS, _PAC_EPS, _PAC_GAUSS_W0_STD = 10, 1e-10, 0.03


def _pac_prior(counts, alpha):
    return alpha * counts / counts.sum() + _PAC_EPS


def _pac_posterior(S, y, base_logit):
    """``q[n, z] = S[n, z] exp(B[y_n, z]) / Z_n`` without an N x K_S exponential or logarithm.

    Each row of ``B`` is shifted by its maximum (cancels in the normalisation), so the largest
    factor is 1 and ``Z_n >= min(S) > 0``. Returns ``(q, shifted B, log Z)``; then
    ``log q[n, z] - log S[n, z] = B'[y_n, z] - log Z_n``, so the KL term
    ``sum_{n,z} q (log q - log S) = sum(B' * onehot^T q) - sum_n log Z_n`` needs no N x K_S log.
    """
    Bs = base_logit - base_logit.max(axis=1, keepdims=True)
    q = S * np.exp(Bs)[y]
    Z = q.sum(axis=1, keepdims=True)
    q /= Z
    return q, Bs, np.log(Z[:, 0])


def _pac_variational(source_probs, labels, alpha, base_logit):
    """The variational loop shared by PACTran-Dirichlet and -Gamma: ``_PAC_VB_ITERS`` updates
    ``a_w = a0 + onehot^T q``, ``q = _pac_posterior(Theta + 1e-10, y, base_logit(a_w))`` from
    ``q = Theta``. Returns ``(Theta, y, K, a0, a_w, kl)`` with ``a_w`` of the last update's start."""
    P = _source_probs(source_probs)
    y, K, counts = _labels(labels, P.shape[0], all_present=True)
    if alpha <= 0:
        raise TaskrelError(f"alpha must be > 0, got {alpha}")
    a0 = _pac_prior(counts, alpha)
    S, q = P + _PAC_EPS, P
    for _ in range(_PAC_VB_ITERS):
        aw = a0[:, None] + _class_sums(q, y, K)
        q, Bs, logZ = _pac_posterior(S, y, base_logit(aw))
    kl = np.sum(Bs * _class_sums(q, y, K)) - logZ.sum()
    return P, y, K, a0, aw, kl


def pactran_dirichlet(source_probs, labels, alpha: float = 1.0) -> float:
    """PACTran-Dirichlet (Ding et al.; ``calculate_pac_dir``). Lower is better.

    ``source_probs`` Theta (N, K_S), ``labels`` (N,) in ``0..K-1`` (every class present).
    Prior ``a0_k = alpha n_k / N + 1e-10``; 10 variational updates from ``q = Theta``:
    ``a_w = a0 + onehot^T q`` (K x K_S), ``log q[n, z] propto log(Theta[n, z] + 1e-10)
    + digamma(a_w[y_n, z]) - digamma(sum_k a_w[k, z])``. Score ``= -(K_S log C(a0)
    - sum_z log C(a_w[:, z]) - sum_{n,z} q (log q - log(Theta + 1e-10))) / (N K)`` with
    ``log C(a) = lgamma(sum a) - sum lgamma(a)``; ``a_w`` is the one of the last update's start,
    as in the code.
    """
    P, y, K, a0, aw, kl = _pac_variational(source_probs, labels, alpha,
                                           lambda aw: special.digamma(aw) - special.digamma(aw.sum(0))[None, :])
    N, Ks = P.shape
    log_c0 = special.gammaln(a0.sum()) - special.gammaln(a0).sum()
    log_c = special.gammaln(aw.sum(0)) - special.gammaln(aw).sum(0)
    return float(-(Ks * log_c0 - log_c.sum() - kl) / (N * K))


def pactran_gamma(source_probs, labels, alpha: float = 1.0) -> float:
    """PACTran-Gamma (Ding et al.; ``calculate_pac_gamma``, ``beta = 1``). Lower is better.

    Same prior ``a0`` and inputs as :func:`pactran_dirichlet`; 10 updates from ``q = Theta``:
    ``a_w = a0 + onehot^T q``, ``l_n = sum_z Theta[n, z] sum_k a_w[k, z]``,
    ``log q[n, z] propto log(Theta[n, z] + 1e-10) + digamma(a_w[y_n, z])``. Score ``= 1 +
    (sum_{k,z} [lgamma(a0_k) - lgamma(a_w[k, z])] + sum_n [sum_z q (log q - log(Theta + 1e-10))
    + log l_n - 1]) / (N K)``.
    """
    P, y, K, a0, aw, kl = _pac_variational(source_probs, labels, alpha, special.digamma)
    N, Ks = P.shape
    lw = P @ aw.sum(0)
    total = Ks * special.gammaln(a0).sum() - special.gammaln(aw).sum() + kl + np.sum(np.log(lw) - 1.0)
    return float(total / (N * K) + 1.0)


def _pac_gauss_objective(theta, X, y, lam):
    """``J(theta) = 1/N sum_n CE(softmax(x_n W + b), y_n) + ||W||^2 / (2 lam)`` and its gradient.

    ``theta`` is the code's layout: ``(D + 1) x K`` flattened, rows ``0..D-1`` = W, row D = b.
    """
    N, D = X.shape
    th = theta.reshape(D + 1, -1)
    W, b = th[:D], th[D]
    logits = X @ W + b
    lse = special.logsumexp(logits, axis=1)
    rows = np.arange(N)
    loss = (lse - logits[rows, y]).sum() / N + 0.5 * np.sum(W * W) / lam
    G = np.exp(logits - lse[:, None])
    G[rows, y] -= 1.0
    G /= N
    grad = np.empty_like(th)
    grad[:D] = X.T @ G + W / lam
    grad[D] = G.sum(0)
    return loss, grad.ravel()


def pactran_gaussian(features, labels, lda_factor: float = 1.0, s2_factor: float = 10.0, *,
                     seed: int = 0, maxiter: int = 100, tol: float = 1e-6) -> float:
    """PACTran-Gaussian (Ding et al.; ``calculate_pac_gauss``). Lower is better.

    ``features`` (N, D) (centred internally), ``labels`` (N,) in ``0..K-1`` (every class present).
    ``lambda = lda_factor * N``; ``theta* = argmin J`` (see
    :func:`_pac_gauss_objective`) by L-BFGS-B with the analytic gradient (``maxiter=100``,
    ``tol=1e-6`` as in the code, ``W0 ~ N(0, 0.03^2)`` from ``seed``, ``b0 = 0``); diagonal
    Hessian proxy summed over all entries ``sum h = sum_n (||x_n||^2 + 1) sum_k p_nk (1 - p_nk)
    + D K / lambda`` (not divided by N, as in the code); ``sigma^-2 = lambda sum h / (D K) + 1e-10``; score ``= J(theta*)
    + D K / (2 lambda) * s^2 * log sigma^-2`` with ``s^2 = s2_factor / D``.

    The code's 100 L-BFGS iterations do not always reach the minimum (large D x K, weak
    regularisation), so the value depends slightly on ``seed`` and on the order of samples and
    classes; ``maxiter=5000, tol=1e-12`` removes that (no longer the published procedure).

    Parameterisation: ``lda_factor`` and ``s2_factor`` are the code's. The code evaluates
    ``s2_factor`` in {1000, 100} for ``lda_factor = 10``, {100, 10} for 1 and {10, 1} for 0.1 (the
    second one of each pair is ``10 * lda_factor``). The default ``(lda_factor, s2_factor) =
    (1, 10)`` is the code's second value at ``lda_factor = 1``; the term added to ``J`` is
    ``K s2_factor / (2 lda_factor N) log sigma^-2``, so only ``s2_factor / lda_factor`` matters there.
    """
    F = _features(features)
    N, D = F.shape
    y, K, _ = _labels(labels, N, all_present=True)
    if lda_factor <= 0 or s2_factor <= 0:
        raise TaskrelError(f"lda_factor and s2_factor must be > 0, got {lda_factor}, {s2_factor}")
    X = F - F.mean(0)
    lam = lda_factor * N
    rng = np.random.default_rng(seed)
    theta0 = np.concatenate([rng.normal(size=(D, K)) * _PAC_GAUSS_W0_STD, np.zeros((1, K))]).ravel()
    res = optimize.minimize(_pac_gauss_objective, theta0, args=(X, y, lam), jac=True, method="L-BFGS-B",
                            options=dict(maxiter=int(maxiter)), tol=tol)
    pac_opt, _ = _pac_gauss_objective(res.x, X, y, lam)
    th = res.x.reshape(D + 1, K)
    p = softmax(X @ th[:D] + th[D])
    g2 = (p - p * p).sum(1)
    h_sum = np.sum(((X * X).sum(1) + 1.0) * g2) + D * K / lam
    sigma2_inv = h_sum * lam / (D * K) + _PAC_EPS
    return float(pac_opt + 0.5 * D * K / lam * (s2_factor / D) * np.log(sigma2_inv))


# --------------------------------------------------------------------------------------------
# OT-NCE / OTCE
# --------------------------------------------------------------------------------------------
def _ot_components(ref_features, ref_labels, features, labels, n_samples, n_repeats, seed):
    FR = _features(ref_features, "ref_features")
    FT = _features(features, "features")
    if FR.shape[1] != FT.shape[1]:
        raise TaskrelError(f"ref_features and features must come from the same encoder (same dimension), "
                           f"got {FR.shape[1]} and {FT.shape[1]}")
    yR, KR, _ = _labels(ref_labels, FR.shape[0], "ref_labels")
    yT, KT, _ = _labels(labels, FT.shape[0], "labels")
    if int(n_samples) < 2 or int(n_repeats) < 1:
        raise TaskrelError(f"n_samples must be >= 2 and n_repeats >= 1, got {n_samples}, {n_repeats}")
    nR, nT = min(int(n_samples), len(yR)), min(int(n_samples), len(yT))
    subsample = nR < len(yR) or nT < len(yT)
    rng = np.random.default_rng(seed)
    Ws, CEs = [], []
    for _ in range(int(n_repeats) if subsample else 1):
        iR = np.sort(rng.choice(len(yR), nR, replace=False)) if nR < len(yR) else np.arange(nR)
        iT = np.sort(rng.choice(len(yT), nT, replace=False)) if nT < len(yT) else np.arange(nT)
        C = sq_euclidean(FR[iR], FT[iT])
        plan, cost = emd_plan(None, None, C, return_cost=True)
        r, c = np.nonzero(plan)
        joint = np.bincount(yR[iR][r] * KT + yT[iT][c], weights=plan[r, c],
                            minlength=KR * KT).reshape(KR, KT)
        pr = joint.sum(1, keepdims=True)
        nz = joint > 0
        CEs.append(float(-np.sum(joint[nz] * np.log((joint / np.where(pr > 0, pr, 1.0))[nz]))))
        Ws.append(float(cost))
    return float(np.mean(Ws)), float(np.mean(CEs))


def otce_components(ref_features, ref_labels, features, labels, *, n_samples: int = 1000,
                    n_repeats: int = 3, seed: int = 0):
    """OTCE components (Tan et al.) ``(W, CE)``: OT cost and conditional entropy, as Python floats.

    ``ref_features`` (N_R, D) / ``ref_labels`` (N_R,) and ``features`` (N, D) / ``labels`` (N,)
    from the same encoder. Per draw of ``n_samples`` points per side: cost ``C[k, l] =
    ||f^R_k - f_l||^2``, exact OT plan ``pi`` with uniform marginals, ``W = <pi, C>``,
    ``P(j, i) = sum_{y^R_k = j, y_l = i} pi[k, l]``, ``CE = H(Y | Y_R) = -sum P(j, i) log(P(j, i) /
    P(j))``; both averaged over ``n_repeats`` draws (a single draw when no side is subsampled).
    OTCE itself is ``lambda_1 W + lambda_2 CE + b`` with coefficients fitted on auxiliary tasks.
    """
    return _ot_components(ref_features, ref_labels, features, labels, n_samples, n_repeats, seed)


def ot_nce(ref_features, ref_labels, features, labels, *, n_samples: int = 1000, n_repeats: int = 3,
           seed: int = 0) -> float:
    """OT-based NCE (Tan et al., appendix): ``-CE`` of :func:`otce_components`. Higher is better (<= 0)."""
    return -_ot_components(ref_features, ref_labels, features, labels, n_samples, n_repeats, seed)[1]


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
class ScoreSpec(NamedTuple):
    """How to call a score: ``kind`` is ``"features"`` -> ``f(features, labels)``,
    ``"source_probs"`` -> ``f(source_probs, labels)``, ``"reference_pair"`` ->
    ``f(ref_features, ref_labels, features, labels)``."""
    function: Callable[..., float]
    kind: str
    higher_is_better: bool


#: name -> ScoreSpec; raw values keep the original sign (PACTran: lower is better). OTCE is not
#: listed: it needs coefficients fitted on auxiliary tasks (use :func:`otce_components`).
SCORES: dict[str, ScoreSpec] = {
    "logme": ScoreSpec(logme, "features", True),
    "leep": ScoreSpec(leep, "source_probs", True),
    "nce": ScoreSpec(nce, "source_probs", True),
    "h_score": ScoreSpec(h_score, "features", True),
    "sfda": ScoreSpec(sfda, "features", True),
    "pactran_dirichlet": ScoreSpec(pactran_dirichlet, "source_probs", False),
    "pactran_gamma": ScoreSpec(pactran_gamma, "source_probs", False),
    "pactran_gaussian": ScoreSpec(pactran_gaussian, "features", False),
    "ot_nce": ScoreSpec(ot_nce, "reference_pair", True),
}


# --------------------------------------------------------------------------------------------
# OTCE with its coefficients fitted on the other targets
# --------------------------------------------------------------------------------------------
def otce_leave_one_target_out(table: "pd.DataFrame", accuracy: str = "accuracy") -> "pd.Series":
    """OTCE = lambda_1 W + lambda_2 CE + b0 with the coefficients fitted by least squares on the
    *other* targets' (encoder, accuracy) rows: the kit has no auxiliary tasks to fit them on, as
    the OTCE paper does, so each target's coefficients come from the rest (leave one target out).

    ``table``: columns target, otce_wasserstein, otce_conditional_entropy and ``accuracy``.
    Returns the OTCE score of every row (NaN where fewer rows than coefficients remain to fit on).
    """
    import pandas as pd

    out = pd.Series(np.nan, index=table.index, name="otce")
    X = np.column_stack([table["otce_wasserstein"], table["otce_conditional_entropy"], np.ones(len(table))])
    for target in table["target"].unique():
        held = (table["target"] == target).to_numpy()
        if (~held).sum() < X.shape[1]:  # fewer rows than the three coefficients (lambda_1, lambda_2, b0)
            continue
        coef, *_ = np.linalg.lstsq(X[~held], table.loc[~held, accuracy].to_numpy(), rcond=None)
        out[held] = X[held] @ coef
    return out
