"""Baseline transferability scores: ours vs a re-implementation in the style of the original code.

    .venv/bin/python benchmarks/bench_scores.py            # about 1 minute on 2 cores
    .venv/bin/python benchmarks/bench_scores.py --n 2000   # smaller, quicker
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scores.py   # on a busy shared machine

On a machine whose cores are busy with other jobs, multi-threaded OpenBLAS oversubscribes them
and timings of the BLAS-heavy scores become erratic (seconds instead of ~100 ms); one BLAS thread
gives stable, comparable numbers.

Synthetic Gaussian class data: N = 5,000 target samples, D = 512, 37 target classes, source
probabilities over 1,000 source classes (softmax of a random linear map of the features), and a
reference set of the same size for OT-NCE / OTCE. Each score of ``taskrel_utils.study.scores`` runs side
by side with a straightforward re-implementation that follows the original code's approach
(thuml/LogME ``LogME.py`` fixed-point loop per class and ``LEEP.py``, tllib ``nce.py`` and
``hscore.py``, TencentARC/SFDA ``SFDA_Score`` with the generalised eigenproblem, pactran_metrics
``calculate_pac_*`` with the N x K x K_S einsum and separate loss/gradient functions, the OTCE demo's
``ot.emd`` with ``numItermax=100000`` and its nested-loop joint law), on the same inputs in one
process. Deviations of the original-style code from the originals: plain numpy instead of numba
(LogME), float64 instead of float32 (OTCE), a seeded ``default_rng`` for PACTran-Gauss's initial
weights and for the OT subsamples so that both sides start from the same point / use the same
points, inputs copied where the original writes into them (SFDA, PACTran-Gauss).

Prints milliseconds per call (best of up to 3 calls for calls under a second, else one call),
their ratio (original-style / ours, > 1 = ours faster) and the absolute difference of the two
values. Not a test.
"""
from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import ot
import scipy.linalg
import scipy.optimize
import scipy.special

from taskrel_utils.study import scores


# ------------------------------------------------------------------------------------------
# original-style re-implementations (written in the originals' style, not copied)
# ------------------------------------------------------------------------------------------
def _truncated_svd(x):
    _, s, vh = np.linalg.svd(x.T @ x)
    s = np.sqrt(s)
    k = int(np.sum(s > 1e-10))
    s, vh = s[:k], vh[:k]
    u = (x @ vh.T) / s.reshape(1, -1)
    return u, s.reshape(-1, 1), vh


def orig_logme(f, y):
    """thuml LogME.py ``_fit_fixed_point``: one SVD, a Python loop over classes."""
    f = f.astype(np.float64)
    N, D = f.shape
    if N > D:
        u, s, vh = _truncated_svd(f)
    else:
        u, s, vh = np.linalg.svd(f, full_matrices=False)
        s = s.reshape(-1, 1)
    sigma = s ** 2
    evidences = []
    for c in range(int(y.max() + 1)):
        yc = (y == c).astype(np.float64).reshape(-1, 1)
        x = u.T @ yc
        x2 = x ** 2
        res_x2 = (yc ** 2).sum() - x2.sum()
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            t = alpha / beta
            gamma = (sigma / (sigma + t)).sum()
            m2 = (sigma * x2 / ((t + sigma) ** 2)).sum()
            res2 = (x2 / ((1 + sigma / t) ** 2)).sum() + res_x2
            alpha = gamma / (m2 + 1e-5)
            beta = (N - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        ev = (D / 2.0 * np.log(alpha) + N / 2.0 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * sigma))
              - beta / 2.0 * res2 - alpha / 2.0 * m2 - N / 2.0 * np.log(2 * np.pi)) / N
        evidences.append(ev)
    return float(np.mean(evidences))


def orig_leep(prob, y):
    """thuml LEEP.py: joint by a loop over target classes, a list comprehension for the pick."""
    N, Cs = prob.shape
    Ct = int(y.max() + 1)
    normalized = prob / float(N)
    joint = np.zeros((Ct, Cs))
    for i in range(Ct):
        joint[i] = normalized[y == i].sum(axis=0)
    p_t_given_s = (joint / joint.sum(axis=0, keepdims=True)).T
    pred = prob @ p_t_given_s
    picked = np.array([row[lab] for row, lab in zip(pred, y)])
    return float(np.mean(np.log(picked)))


def orig_nce(prob, y):
    """tllib nce.py on the argmax source labels: a Python loop over samples."""
    src = np.argmax(prob, axis=1)
    Ct, Cs, N = int(y.max() + 1), int(src.max() + 1), len(src)
    joint = np.zeros((Ct, Cs))
    for s, t in zip(src, y):
        joint[int(t), int(s)] += 1.0 / N
    p_z = joint.sum(axis=0, keepdims=True)
    mask = p_z.reshape(-1) != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = (joint / p_z).T[mask] + 1e-20
    h = np.sum(-cond * np.log(cond), axis=1, keepdims=True)
    return float(-np.sum(h * p_z.reshape(-1, 1)[mask]))


def orig_hscore(f, y):
    """tllib hscore.py ``h_score``."""
    covf = np.cov(f, rowvar=False)
    g = np.zeros_like(f)
    for i in range(int(y.max() + 1)):
        g[y == i] = f[y == i].mean(axis=0)
    covg = np.cov(g, rowvar=False)
    return float(np.trace(np.linalg.pinv(covf, rcond=1e-15) @ covg))


def _iterative_A(A, max_iterations=3):
    x = A.sum(axis=1)
    for _ in range(max_iterations):
        t = A @ x
        yv = t / np.linalg.norm(t, 2)
        t = A @ yv
        x = t / np.linalg.norm(t, 2)
    return x.T @ A @ yv


def _shrunk_cov(X, shrinkage=-1):
    c = np.cov(np.asarray(X).T, bias=1)
    if shrinkage < 0:
        return c
    d = c.shape[0]
    out = (1.0 - shrinkage) * c
    out.flat[::d + 1] += shrinkage * np.trace(c) / d
    return out


def _orig_sfda_fit_proba(X, y, shrinkage=None):
    classes, yi = np.unique(y, return_inverse=True)
    priors = np.bincount(yi) / float(len(y))
    means = np.zeros((len(classes), X.shape[1]))
    np.add.at(means, yi, X)
    means /= np.bincount(yi)[:, None]
    Sw = np.zeros((X.shape[1], X.shape[1]))
    for idx, c in enumerate(classes):
        Sw += priors[idx] * np.atleast_2d(_shrunk_cov(X[yi == idx]))
    if shrinkage is None:
        shrinkage = max(np.exp(-5 * _iterative_A(Sw, 3)), 1e-10)
    St = _shrunk_cov(X, shrinkage)
    d = Sw.shape[0]
    Sw_s = (1.0 - shrinkage) * Sw
    Sw_s.flat[::d + 1] += shrinkage * np.trace(Sw) / d
    evals, evecs = scipy.linalg.eigh(St - Sw_s, Sw_s)
    evecs = evecs[:, np.argsort(evals)[::-1]]
    coef = (means @ evecs) @ evecs.T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    z = X @ coef.T + intercept
    z -= z.max(axis=1, keepdims=True)
    z = np.exp(z)
    return z / z.sum(axis=1, keepdims=True), shrinkage


def orig_sfda(X, y):
    """TencentARC/SFDA ``SFDA_Score`` (on a copy: the original writes into X)."""
    X = X.copy()
    n, K = len(y), len(np.unique(y))
    prob, lam = _orig_sfda_fit_proba(X, y)
    prob = np.exp(prob) / np.exp(prob).sum(axis=1, keepdims=True)
    means = np.stack([X[y == c].mean(0) for c in range(K)])
    outer = np.stack([(means.sum(0) - means[c]) / (K - 1) for c in range(K)])
    for c in range(K):
        idx = np.where(y == c)[0]
        p = prob[idx, c].reshape(-1, 1)
        X[idx] = p * X[idx] + (1 - p) * outer[c]
    prob, _ = _orig_sfda_fit_proba(X, y, lam)
    return float(np.sum(prob[np.arange(n), y]) / n)


def _one_hot(a):
    b = np.zeros((a.size, a.max() + 1))
    b[np.arange(a.size), a] = 1.0
    return b


def orig_pac_dir(prob, y, alpha=1.0):
    """pactran_metrics ``calculate_pac_dir`` (einsum over N x K x K_S)."""
    lab = _one_hot(y)
    tot = lab.sum(0)[:, None]
    a0 = alpha * tot / tot.sum() + 1e-10
    qz, log_s = prob, np.log(prob + 1e-10)
    for _ in range(10):
        aw = a0 + np.sum(np.einsum("BY,BZ->BYZ", lab, qz), axis=0)
        logits = log_s + lab @ scipy.special.digamma(aw) - scipy.special.digamma(aw.sum(0))[None, :]
        log_qz = logits - scipy.special.logsumexp(logits, axis=-1, keepdims=True)
        qz = np.exp(log_qz)
    log_c0 = scipy.special.loggamma(a0.sum()) - np.sum(scipy.special.loggamma(a0))
    log_c = scipy.special.loggamma(aw.sum(0)) - np.sum(scipy.special.loggamma(aw), axis=0)
    val = np.sum(log_c0 - log_c - np.sum(qz * (log_qz - log_s), axis=0))
    return float(-val / lab.size)


def orig_pac_gamma(prob, y, alpha=1.0):
    """pactran_metrics ``calculate_pac_gamma`` (beta = 1)."""
    lab = _one_hot(y)
    tot = lab.sum(0)[:, None]
    a0 = alpha * tot / tot.sum() + 1e-10
    beta, bw = 1.0, 1.0
    qz, s, log_s = prob, prob, np.log(prob + 1e-10)
    for _ in range(10):
        aw = a0 + np.sum(np.einsum("BY,BZ->BYZ", lab, qz), axis=0)
        lw = s @ np.sum(aw / bw, axis=0)[:, None]
        logits = log_s + lab @ (scipy.special.digamma(aw) - np.log(bw))
        log_qz = logits - scipy.special.logsumexp(logits, axis=-1, keepdims=True)
        qz = np.exp(log_qz)
    val = (np.sum(scipy.special.loggamma(a0) - scipy.special.loggamma(aw) + aw * np.log(bw) - a0 * np.log(beta))
           + np.sum(np.sum(qz * (log_qz - log_s), axis=-1) + np.log(lw[:, 0]) - 1.0))
    return float(np.real(val) / lab.size + 1.0)


def orig_pac_gauss(f, y, lda_factor=1.0, s2_factor=10.0, seed=0):
    """pactran_metrics ``calculate_pac_gauss`` (separate loss / gradient, L-BFGS-B)."""
    K = int(y.max() + 1)
    lab = _one_hot(y)
    x = f - f.mean(0, keepdims=True)  # the original centres in place
    bs, d = x.shape
    kd, ldas2 = d * K, lda_factor * bs

    def split(theta):
        th = theta.reshape(d + 1, K)
        return th[:d], th[d:]

    def loss_fn(theta):
        w, b = split(theta)
        logits = x @ w + b
        log_qz = logits - scipy.special.logsumexp(logits, axis=-1, keepdims=True)
        return np.sum(lab * (np.log(lab + 1e-10) - log_qz)) / bs + 0.5 * np.sum(w ** 2) / ldas2

    def grad_fn(theta):
        w, b = split(theta)
        g = scipy.special.softmax(x @ w + b, axis=-1)
        g = (g - lab) / bs
        return np.concatenate([x.T @ g + w / ldas2, g.sum(0, keepdims=True)]).ravel()

    def grad2(theta):
        w, b = split(theta)
        p = scipy.special.softmax(x @ w + b, axis=-1)
        g2 = p - p ** 2
        return np.concatenate([(x ** 2).T @ g2 + 1.0 / ldas2, g2.sum(0, keepdims=True)]).ravel()

    rng = np.random.default_rng(seed)
    theta0 = np.concatenate([rng.normal(size=(d, K)) * 0.03, np.zeros((1, K))]).ravel()
    theta = scipy.optimize.minimize(loss_fn, theta0, method="L-BFGS-B", jac=grad_fn,
                                    options=dict(maxiter=100), tol=1e-6).x
    pac_opt = loss_fn(theta)
    sigma2_inv = np.sum(grad2(theta)) * ldas2 / kd + 1e-10
    return float(pac_opt + 0.5 * kd / ldas2 * (s2_factor / d) * np.log(sigma2_inv))


def _same_draws(nR, nT, n_samples, n_repeats, seed):
    """The subsample indices ``scores.otce_components`` draws (same generator calls)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_repeats):
        iR = np.sort(rng.choice(nR, min(n_samples, nR), replace=False))
        iT = np.sort(rng.choice(nT, min(n_samples, nT), replace=False))
        out.append((iR, iT))
    return out


def orig_otce(XR, yR, XT, yT, n_samples=1000, n_repeats=3, seed=0):
    """OTCE demo: ``ot.emd`` (numItermax=1e5) on squared distances, nested-loop joint law, per draw."""
    Ws, CEs = [], []
    for iR, iT in _same_draws(len(yR), len(yT), n_samples, n_repeats, seed):
        xs, xt, ys, yt = XR[iR], XT[iT], yR[iR], yT[iT]
        C = (xs ** 2).sum(1)[:, None] + (xt ** 2).sum(1)[None, :] - 2 * xs @ xt.T
        C = np.maximum(C, 0)
        P = ot.emd(ot.unif(len(xs)), ot.unif(len(xt)), C, numItermax=100000)
        Ws.append(np.sum(P * C))
        joint = np.zeros((ys.max() + 1, yt.max() + 1))
        for a in set(ys.tolist()):
            ia = np.where(ys == a)[0]
            for b in set(yt.tolist()):
                ib = np.where(yt == b)[0]
                joint[a, b] = np.sum(P[ia.repeat(len(ib)), np.tile(ib, len(ia))])
        ps = joint.sum(1)
        ce = 0.0
        for a in set(ys.tolist()):
            for b in set(yt.tolist()):
                if joint[a, b] != 0:
                    ce += -(joint[a, b] * math.log(joint[a, b] / ps[a]))
        CEs.append(ce)
    return float(np.mean(Ws)), float(np.mean(CEs))


# ------------------------------------------------------------------------------------------
def synthetic(n, d, k, ks, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(k, d)) * (2.0 / np.sqrt(d / 16))
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    F = mu[y] + rng.normal(size=(n, d))
    A = rng.normal(size=(d, ks)) / np.sqrt(d)
    probs = scipy.special.softmax(2.0 * F @ A, axis=1)
    ref_mu = mu[rng.permutation(k)] + 0.5 * rng.normal(size=(k, d))
    yR = rng.integers(0, k, n)
    FR = ref_mu[yR] + rng.normal(size=(n, d))
    return F, y, probs, FR, yR


def timed(fn, *args):
    t0 = time.perf_counter()
    val = fn(*args)
    best = time.perf_counter() - t0
    if best < 1.0:
        for _ in range(2):
            t0 = time.perf_counter()
            fn(*args)
            best = min(best, time.perf_counter() - t0)
    return val, best * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=37)
    ap.add_argument("--ks", type=int, default=1000)
    args = ap.parse_args()
    F, y, P, FR, yR = synthetic(args.n, args.d, args.k, args.ks)
    print(f"N={args.n} D={args.d} K={args.k} K_S={args.ks}; OT: 3 draws of 1000 points per side")

    def otce_w(*a):
        return scores.otce_components(*a)[0]

    rows = [
        ("logme", scores.logme, orig_logme, (F, y)),
        ("leep", scores.leep, orig_leep, (P, y)),
        ("nce", scores.nce, orig_nce, (P, y)),
        ("h_score", scores.h_score, orig_hscore, (F, y)),
        ("sfda", scores.sfda, orig_sfda, (F, y)),
        ("pactran_dirichlet", scores.pactran_dirichlet, orig_pac_dir, (P, y)),
        ("pactran_gamma", scores.pactran_gamma, orig_pac_gamma, (P, y)),
        ("pactran_gaussian", scores.pactran_gaussian, orig_pac_gauss, (F, y)),
    ]
    print(f"{'score':<20}{'ours ms':>10}{'orig ms':>10}{'ratio':>8}{'value':>16}{'|diff|':>11}")
    for name, ours, orig, a in rows:
        v1, t1 = timed(ours, *a)
        v2, t2 = timed(orig, *a)
        print(f"{name:<20}{t1:>10.1f}{t2:>10.1f}{t2 / t1:>8.2f}{v1:>16.8g}{abs(v1 - v2):>11.2e}", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (W1, CE1), t1 = timed(scores.otce_components, FR, yR, F, y)
        (W2, CE2), t2 = timed(orig_otce, FR, yR, F, y)
    print(f"{'otce (W, CE)':<20}{t1:>10.1f}{t2:>10.1f}{t2 / t1:>8.2f}{W1:>16.8g}{abs(W1 - W2):>11.2e}")
    print(f"{'ot_nce (= -CE)':<20}{'':>10}{'':>10}{'':>8}{-CE1:>16.8g}{abs(CE1 - CE2):>11.2e}")
    for w in caught:
        print(f"  warning: {w.category.__name__}: {str(w.message)[:100]}")


if __name__ == "__main__":
    main()
