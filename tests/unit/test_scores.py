"""Baseline transferability scores (taskrel_utils.study.scores) against naive second implementations.

Each score is compared with a loop / direct-formula version written here, with closed-form cases,
invariances, the sign convention, input validation and the no-mutation guarantee.
"""
import math
from collections import Counter

import numpy as np
import pytest
from scipy import linalg, optimize, special, stats

from taskrel_utils.study import scores
from taskrel_utils.core.errors import TaskrelError


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------
def gauss_classes(n, d, k, sep=1.0, seed=0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(k, d)) * sep
    y = rng.permutation(np.arange(n) % k)
    return mu[y] + rng.normal(size=(n, d)), y


def probs_for(y, ks, strength=2.0, seed=0):
    """Source probabilities: target class c favours source classes c, c + K, c + 2K, ..."""
    rng = np.random.default_rng(seed)
    n, k = len(y), int(y.max()) + 1
    logits = rng.normal(size=(n, ks))
    for c in range(k):
        logits[np.ix_(y == c, np.arange(c, ks, k))] += strength
    return special.softmax(logits, axis=1)


def call(name, data, **kw):
    spec = scores.SCORES[name]
    if spec.kind == "features":
        return spec.function(data["F"], data["y"], **kw)
    if spec.kind == "source_probs":
        return spec.function(data["P"], data["y"], **kw)
    return spec.function(data["FR"], data["yR"], data["F"], data["y"], **kw)


def make_data(n=48, d=5, k=3, ks=8, sep=1.5, seed=0):
    F, y = gauss_classes(n, d, k, sep, seed)
    FR, yR = gauss_classes(n + 6, d, k + 1, sep, seed + 1)
    return dict(F=F, y=y, P=probs_for(y, ks, seed=seed), FR=FR, yR=yR)


ALL = list(scores.SCORES)


# ------------------------------------------------------------------------------------------
# naive second implementations
# ------------------------------------------------------------------------------------------
def naive_logme_fixed_point(F, y, max_iter=11, rtol=1e-3, eps=1e-5):
    """thuml fixed point with direct matrices: m = (t I + F^T F)^-1 F^T y, slogdet of alpha I + beta F^T F."""
    N, D = F.shape
    G = F.T @ F
    sig = np.linalg.eigvalsh(G)
    out = []
    for c in range(int(y.max()) + 1):
        yc = (y == c).astype(float)
        alpha = beta = 1.0
        for _ in range(max_iter):
            t = alpha / beta
            m = np.linalg.solve(t * np.eye(D) + G, F.T @ yc)
            gamma = sum(max(s, 0.0) / (max(s, 0.0) + t) for s in sig)
            m2 = float(m @ m)
            res2 = float(np.sum((F @ m - yc) ** 2))
            alpha, beta = gamma / (m2 + eps), (N - gamma) / (res2 + eps)
            if abs(alpha / beta - t) / t <= rtol:
                break
        logdet = np.linalg.slogdet(alpha * np.eye(D) + beta * G)[1]
        ev = (D / 2 * math.log(alpha) + N / 2 * math.log(beta) - logdet / 2 - beta / 2 * res2 - alpha / 2 * m2
              - N / 2 * math.log(2 * math.pi))
        out.append(ev / N)
    return float(np.mean(out))


def brute_force_logme(F, y):
    """max over (alpha, beta) of log N(y_c | 0, F F^T / alpha + I / beta), per class, / N, averaged."""
    N = F.shape[0]
    FFt = F @ F.T
    out = []
    for c in range(int(y.max()) + 1):
        yc = (y == c).astype(float)

        def neg(p):
            cov = FFt * math.exp(-p[0]) + np.eye(N) * math.exp(-p[1])
            return -stats.multivariate_normal(np.zeros(N), cov).logpdf(yc)

        best = min((optimize.minimize(neg, x0, method="Nelder-Mead",
                                      options=dict(xatol=1e-9, fatol=1e-12, maxiter=4000))
                    for x0 in ([0.0, 0.0], [3.0, 2.0], [-3.0, 4.0])), key=lambda r: r.fun)
        out.append(-best.fun / N)
    return float(np.mean(out))


def naive_leep(P, y):
    N, Ks = P.shape
    K = int(y.max()) + 1
    joint = [[0.0] * Ks for _ in range(K)]
    for n in range(N):
        for z in range(Ks):
            joint[y[n]][z] += P[n, z] / N
    total = 0.0
    for n in range(N):
        e = 0.0
        for z in range(Ks):
            pz = sum(joint[i][z] for i in range(K))
            e += joint[y[n]][z] / pz * P[n, z]
        total += math.log(e)
    return total / N


def naive_nce(P, y):
    z = [int(np.argmax(row)) for row in P]
    N = len(z)
    pair, zc = Counter(zip(z, y.tolist())), Counter(z)
    return sum(c / N * math.log(c / zc[zz]) for (zz, _), c in pair.items())


def naive_h_score(F, y):
    N, D = F.shape
    mean = sum(F[n] for n in range(N)) / N
    covf = sum(np.outer(F[n] - mean, F[n] - mean) for n in range(N)) / (N - 1)
    g = np.zeros_like(F)
    for c in set(y.tolist()):
        idx = [n for n in range(N) if y[n] == c]
        mc = sum(F[n] for n in idx) / len(idx)
        for n in idx:
            g[n] = mc
    gmean = sum(g[n] for n in range(N)) / N
    covg = sum(np.outer(g[n] - gmean, g[n] - gmean) for n in range(N)) / (N - 1)
    return float(np.trace(np.linalg.pinv(covf, rtol=1e-15) @ covg))


def _naive_sfda_proba(X, y, K, shrinkage=None):
    N, D = X.shape
    priors = np.array([np.mean(y == c) for c in range(K)])
    means = np.array([X[y == c].mean(0) for c in range(K)])
    Sw = sum(priors[c] * np.cov(X[y == c].T, bias=True) for c in range(K))
    if shrinkage is None:  # SFDA utils.iterative_A
        x = Sw.sum(1)
        for _ in range(3):
            v = Sw @ x / np.linalg.norm(Sw @ x)
            x = Sw @ v / np.linalg.norm(Sw @ v)
        shrinkage = max(math.exp(-5 * float(x @ Sw @ v)), 1e-10)
    St = np.cov(X.T, bias=True)
    St = (1 - shrinkage) * St + shrinkage * np.trace(St) / D * np.eye(D)
    Sws = (1 - shrinkage) * Sw + shrinkage * np.trace(Sw) / D * np.eye(D)
    ev, V = linalg.eigh(St - Sws, Sws)
    V = V[:, np.argsort(ev)[::-1]]
    coef = means @ V @ V.T
    logits = X @ coef.T - 0.5 * np.diag(means @ coef.T) + np.log(priors)
    return special.softmax(logits, axis=1), shrinkage


def naive_sfda(F, y):
    K = int(y.max()) + 1
    X = F.copy()
    p, lam = _naive_sfda_proba(X, y, K)
    q = special.softmax(p, axis=1)
    means = np.array([X[y == c].mean(0) for c in range(K)])
    for n in range(len(y)):
        c = y[n]
        outer = sum(means[j] for j in range(K) if j != c) / (K - 1)
        X[n] = q[n, c] * X[n] + (1 - q[n, c]) * outer
    p2, _ = _naive_sfda_proba(X, y, K, lam)
    return float(np.mean([p2[n, y[n]] for n in range(len(y))]))


def _naive_pac_vb(P, y, alpha, dirichlet):
    N, Ks = P.shape
    K = int(y.max()) + 1
    a0 = [alpha * np.sum(y == k) / N + 1e-10 for k in range(K)]
    q = P.copy()
    for _ in range(10):
        aw = np.array([[a0[k] + sum(q[n, z] for n in range(N) if y[n] == k) for z in range(Ks)] for k in range(K)])
        lq = np.zeros((N, Ks))
        for n in range(N):
            for z in range(Ks):
                lq[n, z] = math.log(P[n, z] + 1e-10) + special.digamma(aw[y[n], z])
                if dirichlet:
                    lq[n, z] -= special.digamma(sum(aw[k, z] for k in range(K)))
            lq[n] -= special.logsumexp(lq[n])
        q = np.exp(lq)
    kl = sum(q[n, z] * (lq[n, z] - math.log(P[n, z] + 1e-10)) for n in range(N) for z in range(Ks))
    return N, Ks, K, a0, aw, q, kl


def naive_pac_dir(P, y, alpha=1.0):
    N, Ks, K, a0, aw, _, kl = _naive_pac_vb(P, y, alpha, True)
    log_c0 = math.lgamma(sum(a0)) - sum(math.lgamma(a) for a in a0)
    total = 0.0
    for z in range(Ks):
        log_cz = math.lgamma(sum(aw[k, z] for k in range(K))) - sum(math.lgamma(aw[k, z]) for k in range(K))
        total += log_c0 - log_cz
    return -(total - kl) / (N * K)


def naive_pac_gamma(P, y, alpha=1.0):
    N, Ks, K, a0, aw, _, kl = _naive_pac_vb(P, y, alpha, False)
    total = sum(math.lgamma(a0[k]) - math.lgamma(aw[k, z]) for k in range(K) for z in range(Ks)) + kl
    for n in range(N):
        lw = sum(P[n, z] * sum(aw[k, z] for k in range(K)) for z in range(Ks))
        total += math.log(lw) - 1
    return total / (N * K) + 1


def naive_pac_gauss(F, y, lda_factor=1.0, s2_factor=10.0):
    """Minimise J accurately with BFGS (finite-difference gradient), then h by explicit loops."""
    X = F - F.mean(0)
    N, D = X.shape
    K = int(y.max()) + 1
    lam = lda_factor * N

    def J(th):
        W, b = th[:D * K].reshape(D, K), th[D * K:]
        logits = X @ W + b
        return np.mean(special.logsumexp(logits, axis=1) - logits[np.arange(N), y]) + np.sum(W ** 2) / (2 * lam)

    res = optimize.minimize(J, np.zeros(D * K + K), method="BFGS", options=dict(gtol=1e-9))
    W, b = res.x[:D * K].reshape(D, K), res.x[D * K:]
    h = D * K / lam
    for n in range(N):
        p = special.softmax(X[n] @ W + b)
        for k in range(K):
            h += (sum(X[n, j] ** 2 for j in range(D)) + 1.0) * p[k] * (1 - p[k])
    sigma2_inv = h * lam / (D * K) + 1e-10
    return res.fun + D * K / (2 * lam) * (s2_factor / D) * math.log(sigma2_inv)


def naive_otce(FR, yR, F, y):
    """Exact OT by scipy's LP solver (not POT), then the joint label law and CE by loops."""
    n, m = len(FR), len(F)
    C = np.array([[float(np.sum((FR[i] - F[j]) ** 2)) for j in range(m)] for i in range(n)])
    A = np.zeros((n + m, n * m))
    for i in range(n):
        A[i, i * m:(i + 1) * m] = 1
    for j in range(m):
        A[n + j, j::m] = 1
    b = np.concatenate([np.full(n, 1 / n), np.full(m, 1 / m)])
    plan = optimize.linprog(C.ravel(), A_eq=A, b_eq=b, bounds=(0, None), method="highs").x.reshape(n, m)
    joint = Counter()
    for i in range(n):
        for j in range(m):
            joint[(yR[i], y[j])] += plan[i, j]
    pr = Counter()
    for (a, _), v in joint.items():
        pr[a] += v
    ce = -sum(v * math.log(v / pr[a]) for (a, _), v in joint.items() if v > 1e-12)
    return float(np.sum(plan * C)), ce


# ------------------------------------------------------------------------------------------
# agreement with the naive implementations
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,d", [(60, 8), (30, 50)])  # N > D and N < D
def test_logme_matches_direct_fixed_point_and_brute_force_evidence(n, d):
    F, y = gauss_classes(n, d, 3, 1.0, seed=n)
    ours = scores.logme(F, y)  # thuml's stopping rule: at most 11 updates, rtol 1e-3
    assert np.isfinite(ours)
    assert ours == pytest.approx(naive_logme_fixed_point(F, y), rel=1e-8, abs=1e-10)
    exact = scores.logme(F, y, max_iter=2000, rtol=1e-13, eps=0.0)
    assert exact == pytest.approx(naive_logme_fixed_point(F, y, 2000, 1e-13, 0.0), abs=1e-8)
    best = brute_force_logme(F, y)
    assert exact == pytest.approx(best, abs=1e-9)  # the unguarded fixed point is the maximum evidence
    assert best - 2e-3 < ours <= best + 1e-9  # thuml's capped, guarded iteration stops at or below it


def test_logme_counts_zero_eigenvalues_unlike_thuml_fixed_point():
    """thuml's fixed-point code keeps D/2 log(alpha) but drops the D - N zero eigenvalues (N < D)."""
    F, y = gauss_classes(25, 60, 3, 1.0, seed=3)
    ours = scores.logme(F, y, max_iter=2000, rtol=1e-13, eps=0.0)
    assert ours == pytest.approx(brute_force_logme(F, y), abs=1e-8)
    # duplicating every feature column (rank unchanged, D doubled) changes F F^T by a factor 2 only:
    # the correct evidence equals that of F * sqrt(2) (N < D and rank-deficient N > D alike)
    assert scores.logme(np.hstack([F, F]), y) == pytest.approx(scores.logme(F * math.sqrt(2), y), abs=1e-8)
    G, g = gauss_classes(80, 6, 3, 1.0, seed=4)
    assert scores.logme(np.hstack([G, G]), g) == pytest.approx(scores.logme(G * math.sqrt(2), g), abs=1e-8)


def test_leep_nce_h_score_match_loops():
    d = make_data(n=40, d=4, k=3, ks=7, seed=1)
    assert scores.leep(d["P"], d["y"]) == pytest.approx(naive_leep(d["P"], d["y"]), rel=1e-12)
    assert scores.nce(d["P"], d["y"]) == pytest.approx(naive_nce(d["P"], d["y"]), rel=1e-12)
    assert scores.h_score(d["F"], d["y"]) == pytest.approx(naive_h_score(d["F"], d["y"]), rel=1e-9)


def test_sfda_matches_original_structure():
    F, y = gauss_classes(90, 6, 3, 0.8, seed=4)
    assert scores.sfda(F, y) == pytest.approx(naive_sfda(F, y), rel=1e-9)
    # large-scale features: shrinkage 1e-10 branch
    assert scores.sfda(F * 30, y) == pytest.approx(naive_sfda(F * 30, y), rel=1e-7)


def test_pactran_dirichlet_and_gamma_match_loops():
    d = make_data(n=24, d=3, k=3, ks=5, seed=2)
    for a in (1.0, 0.3):
        assert scores.pactran_dirichlet(d["P"], d["y"], alpha=a) == pytest.approx(
            naive_pac_dir(d["P"], d["y"], a), rel=1e-10)
        assert scores.pactran_gamma(d["P"], d["y"], alpha=a) == pytest.approx(
            naive_pac_gamma(d["P"], d["y"], a), rel=1e-10)


TIGHT = dict(maxiter=5000, tol=1e-13)  # PACTran-Gauss run to its minimum


@pytest.mark.parametrize("lda,s2", [(1.0, 10.0), (0.1, 1.0), (10.0, 1000.0)])
def test_pactran_gaussian_matches_accurate_minimum(lda, s2):
    F, y = gauss_classes(40, 3, 3, 1.0, seed=5)
    accurate = naive_pac_gauss(F, y, lda, s2)
    assert scores.pactran_gaussian(F, y, lda, s2, **TIGHT) == pytest.approx(accurate, rel=1e-7)
    # the code's stopping rule (100 iterations, tol 1e-6) lands close to it
    assert scores.pactran_gaussian(F, y, lda, s2) == pytest.approx(accurate, rel=1e-3)


def test_pactran_gaussian_analytic_gradient():
    F, y = gauss_classes(30, 4, 3, 1.0, seed=6)
    X = F - F.mean(0)
    th = np.random.default_rng(0).normal(size=5 * 3)
    fun = lambda t: scores._pac_gauss_objective(t, X, y, 30.0)[0]  # noqa: E731
    jac = lambda t: scores._pac_gauss_objective(t, X, y, 30.0)[1]  # noqa: E731
    assert optimize.check_grad(fun, jac, th) < 1e-6 * max(1.0, np.linalg.norm(jac(th)))


@pytest.mark.parametrize("n,m", [(12, 12), (10, 15)])
def test_otce_components_match_lp_solution(n, m):
    FR, yR = gauss_classes(n, 3, 3, 1.0, seed=7)
    F, y = gauss_classes(m, 3, 2, 1.0, seed=8)
    W, CE = scores.otce_components(FR, yR, F, y)
    Wn, CEn = naive_otce(FR, yR, F, y)
    assert W == pytest.approx(Wn, rel=1e-9) and CE == pytest.approx(CEn, rel=1e-7, abs=1e-10)
    assert scores.ot_nce(FR, yR, F, y) == pytest.approx(-CEn, rel=1e-7, abs=1e-10)


def test_ot_subsampling_averages_seeded_draws():
    FR, yR = gauss_classes(40, 3, 3, 1.0, seed=9)
    F, y = gauss_classes(35, 3, 2, 1.0, seed=10)
    W, CE = scores.otce_components(FR, yR, F, y, n_samples=12, n_repeats=3, seed=4)
    rng = np.random.default_rng(4)
    draws = []
    for _ in range(3):
        iR = np.sort(rng.choice(40, 12, replace=False))
        iT = np.sort(rng.choice(35, 12, replace=False))
        draws.append(naive_otce(FR[iR], yR[iR], F[iT], y[iT]))
    assert W == pytest.approx(np.mean([w for w, _ in draws]), rel=1e-9)
    assert CE == pytest.approx(np.mean([c for _, c in draws]), rel=1e-7)
    assert scores.otce_components(FR, yR, F, y, n_samples=12, n_repeats=3, seed=4) == (W, CE)
    assert scores.otce_components(FR, yR, F, y, n_samples=12, n_repeats=3, seed=5) != (W, CE)


# ------------------------------------------------------------------------------------------
# closed-form cases
# ------------------------------------------------------------------------------------------
def test_nce_and_leep_zero_when_source_determines_target():
    z = np.arange(60) % 6
    y = z % 3  # target label is a function of the source label
    onehot = np.eye(6)[z]
    assert scores.nce(onehot, y) == 0.0
    assert scores.leep(onehot, y) == pytest.approx(0.0, abs=1e-14)
    soft = 0.7 * onehot + 0.3 / 6  # still argmax-determined: NCE 0, LEEP < 0
    assert scores.nce(soft, y) == 0.0 and scores.leep(soft, y) < -1e-3


def test_leep_and_nce_equal_minus_label_entropy_for_uninformative_source():
    y = np.array([0] * 10 + [1] * 20 + [2] * 30)
    P = np.tile(special.softmax(np.arange(5.0)), (60, 1))
    h = -sum(p * math.log(p) for p in (1 / 6, 2 / 6, 3 / 6))
    assert scores.leep(P, y) == pytest.approx(-h, rel=1e-12)
    assert scores.nce(P, y) == pytest.approx(-h, rel=1e-12)


def test_h_score_closed_forms():
    # features equal to their class means, D = K - 1: Cov(F) = Cov(E[F|y]) full rank -> H = K - 1
    rng = np.random.default_rng(11)
    y = np.arange(40) % 4
    F = rng.normal(size=(4, 3))[y]
    assert scores.h_score(F, y) == pytest.approx(3.0, rel=1e-10)
    # one dimension: H = between / total sum of squares (the correlation ratio eta^2)
    f, y = gauss_classes(50, 1, 3, 1.0, seed=12)
    f = f[:, 0]
    between = sum(np.sum(y == c) * (f[y == c].mean() - f.mean()) ** 2 for c in range(3))
    assert scores.h_score(f[:, None], y) == pytest.approx(between / np.sum((f - f.mean()) ** 2), rel=1e-12)


def test_ot_nce_zero_and_w_closed_forms():
    FR, yR = gauss_classes(30, 4, 5, 1.0, seed=13)
    y = np.array([0, 1, 1, 2, 0])[yR]  # target labels are a function of the reference labels
    W, CE = scores.otce_components(FR, yR, FR, y)
    assert W == pytest.approx(0.0, abs=1e-12) and CE == pytest.approx(0.0, abs=1e-15)
    assert scores.ot_nce(FR, yR, FR, y) == pytest.approx(0.0, abs=1e-15)
    shift = np.array([1.0, -2.0, 0.5, 3.0])  # squared cost: translation W = ||shift||^2
    assert scores.otce_components(FR, yR, FR + shift, y)[0] == pytest.approx(shift @ shift, rel=1e-10)
    # independent random labels: CE > 0
    assert scores.ot_nce(FR, yR, FR, np.random.default_rng(0).integers(0, 3, 30)) < -0.1


# ------------------------------------------------------------------------------------------
# invariances
# ------------------------------------------------------------------------------------------
KW = {"pactran_gaussian": TIGHT}  # invariant only at the minimum (L-BFGS path depends on the order)
REL = {"pactran_gaussian": 1e-7}


@pytest.mark.parametrize("name", ALL)
def test_row_permutation_invariance(name):
    d = make_data(seed=3)
    base = call(name, d, **KW.get(name, {}))
    perm = np.random.default_rng(1).permutation(len(d["y"]))
    permR = np.random.default_rng(2).permutation(len(d["yR"]))
    d2 = dict(F=d["F"][perm], y=d["y"][perm], P=d["P"][perm], FR=d["FR"][permR], yR=d["yR"][permR])
    assert call(name, d2, **KW.get(name, {})) == pytest.approx(base, rel=REL.get(name, 1e-9), abs=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_label_renaming_invariance(name):
    d = make_data(seed=4)
    base = call(name, d, **KW.get(name, {}))
    ren = np.array([2, 0, 1])
    d2 = dict(d, y=ren[d["y"]], yR=np.array([3, 1, 0, 2])[d["yR"]])
    assert call(name, d2, **KW.get(name, {})) == pytest.approx(base, rel=REL.get(name, 1e-9), abs=1e-12)


@pytest.mark.parametrize("name", [n for n, s in scores.SCORES.items() if s.kind == "source_probs"])
def test_source_class_permutation_invariance(name):
    d = make_data(seed=5)
    d2 = dict(d, P=d["P"][:, np.random.default_rng(3).permutation(d["P"].shape[1])])
    assert call(name, d2) == pytest.approx(call(name, d), rel=1e-10)


@pytest.mark.parametrize("name", ["leep", "nce", "h_score", "ot_nce"])
def test_empty_classes_do_not_matter_where_the_score_ignores_them(name):
    d = make_data(seed=6)
    d2 = dict(d, y=np.array([0, 2, 5])[d["y"]], yR=np.array([1, 4, 6, 7])[d["yR"]])
    assert call(name, d2) == pytest.approx(call(name, d), rel=1e-12, abs=1e-15)


# ------------------------------------------------------------------------------------------
# sign convention: a more separable / more informative input scores better
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_better_input_scores_better_in_the_stated_direction(name):
    rng = np.random.default_rng(7)
    good = make_data(n=90, d=6, k=3, sep=2.5, seed=7)
    bad = make_data(n=90, d=6, k=3, sep=0.2, seed=7)
    bad["P"] = probs_for(bad["y"], 8, strength=0.0, seed=7)
    # OT-NCE: reference labels that are / are not a function of the target classes
    good["FR"], good["yR"] = good["F"] + 0.01 * rng.normal(size=good["F"].shape), good["y"].copy()
    bad["FR"], bad["yR"] = good["FR"], rng.integers(0, 3, 90)
    bad["F"] = good["F"] if name == "ot_nce" else bad["F"]
    g, b = call(name, good), call(name, bad)
    assert (g > b) == scores.SCORES[name].higher_is_better, (g, b)


def test_registry_sign_conventions():
    assert {n for n, s in scores.SCORES.items() if not s.higher_is_better} == {
        "pactran_dirichlet", "pactran_gamma", "pactran_gaussian"}
    assert {s.kind for s in scores.SCORES.values()} == {"features", "source_probs", "reference_pair"}
    fn, kind, hib = scores.SCORES["logme"]
    assert fn is scores.logme and kind == "features" and hib


# ------------------------------------------------------------------------------------------
# contract: floats, float64, determinism, no mutation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_returns_python_float_and_leaves_read_only_inputs_unchanged(name):
    d = make_data(seed=8)
    copies = {k: v.copy() for k, v in d.items()}
    for v in d.values():
        v.setflags(write=False)  # any in-place write would raise
    v1 = call(name, d)
    assert type(v1) is float and np.isfinite(v1)
    for k in d:
        np.testing.assert_array_equal(d[k], copies[k])
    assert call(name, d) == v1  # deterministic


def test_otce_components_return_floats_and_keep_inputs():
    d = make_data(seed=9)
    copies = {k: v.copy() for k, v in d.items()}
    W, CE = scores.otce_components(d["FR"], d["yR"], d["F"], d["y"])
    assert type(W) is float and type(CE) is float
    for k in d:
        np.testing.assert_array_equal(d[k], copies[k])


@pytest.mark.parametrize("name", ALL)
def test_float32_input_is_computed_in_float64(name):
    d = make_data(seed=10)
    d32 = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in d.items()}
    d32["P"] = d32["P"] / d32["P"].sum(1, keepdims=True)
    d64 = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in d32.items()}
    assert call(name, d32) == call(name, d64)


def test_pactran_gaussian_seeded():
    F, y = gauss_classes(60, 20, 4, 1.0, seed=14)
    assert scores.pactran_gaussian(F, y, seed=3) == scores.pactran_gaussian(F, y, seed=3)


# ------------------------------------------------------------------------------------------
# input validation
# ------------------------------------------------------------------------------------------
def _bad_cases(name):
    d = make_data(seed=11)
    kind = scores.SCORES[name].kind
    main = "P" if kind == "source_probs" else "F"
    nan = d[main].copy()
    nan[3, 1] = np.nan
    inf = d[main].copy()
    inf[0, 0] = np.inf
    yield "length", dict(d, y=d["y"][:-1]), "to match the features"
    yield "nan", dict(d, **{main: nan}), "NaN"
    yield "inf", dict(d, **{main: inf}), "NaN or infinite"
    yield "negative", dict(d, y=np.where(d["y"] == 0, -1, d["y"])), "0..K-1"
    yield "non-integer", dict(d, y=d["y"] + 0.5), "integers"
    yield "strings", dict(d, y=np.array([str(v) for v in d["y"]])), "integer"
    yield "one class", dict(d, y=np.zeros_like(d["y"])), "fewer than 2 classes"
    yield "1-D", dict(d, **{main: d[main][:, 0]}), "2-D"
    if kind == "source_probs":
        yield "logits", dict(d, P=np.log(d["P"])), "logits"
        yield "unnormalised", dict(d, P=d["P"] * 1.1), "sum to 1"
    if kind == "reference_pair":
        yield "dims", dict(d, FR=d["FR"][:, :3]), "same dimension"
        yield "ref labels", dict(d, yR=d["yR"][:-2]), "to match the features"
    if name in ("logme", "sfda", "pactran_dirichlet", "pactran_gamma", "pactran_gaussian"):
        yield "empty class", dict(d, y=np.where(d["y"] == 1, 2, d["y"])), "no samples"


@pytest.mark.parametrize("name", ALL)
def test_bad_input_raises_taskrel_error_with_message(name):
    for case, data, msg in _bad_cases(name):
        with pytest.raises(TaskrelError, match=msg):
            call(name, data)
    with pytest.raises(ValueError):  # TaskrelError is a ValueError
        call(name, dict(make_data(seed=11), y=np.zeros(48, dtype=int)))


def test_integral_float_labels_are_accepted():
    d = make_data(seed=12)
    assert scores.logme(d["F"], d["y"].astype(float)) == scores.logme(d["F"], d["y"])
    assert scores.leep(d["P"], d["y"][:, None]) == scores.leep(d["P"], d["y"])
