"""The reference classifier h_R: a linear softmax head with a gradient-norm penalty.

``h_R(z) = softmax(W z + c)`` is trained on *standardised* reference features to minimise

    F(W, c) = CE_mean + penalty_weight * (GP_y + GP_ytilde) + weight_decay / 2 * (||W||^2 + ||c||^2),
    GP_y = mean_n max(0, ||grad_z CE(h_R(z_n), y_n)||_2 - tau0)^2,

``ytilde`` a uniformly random label (the large-scale form of the original code). The input
gradient has the closed form ``grad_z CE(Wz + c, y) = W^T (softmax(Wz + c) - e_y)``, and so have the
penalty's gradients in ``W`` and ``c`` (:func:`_closed_form_loss_and_grads`); ``gradient="autograd"``
does the original double back-prop instead (same numbers up to rounding).

Two ways to minimise F:

* the kit's default, ``optimizer="lbfgs"``: full-batch L-BFGS on the whole pool, with the random
  label's penalty replaced by its exact expectation over the K labels (``(1/K) sum_k``; the
  objective the stochastic original minimises on average), stopped when F stops improving
  (``stop="converged"``: relative improvement over the last ``window`` iterations below ``tol``,
  at most ``iterations``);
* the paper's original (:data:`ORIGINAL_OPTIMISER`): SGD with momentum on batches drawn with
  replacement, a fresh random label per sample, a fixed number of iterations (``stop="fixed"``).
  ``optimizer="sgd"`` / ``"adam"`` with ``stop="converged"`` evaluates F on the pool every
  ``check_every`` iterations for the same rule.

``fit_info`` records the iterations used, whether the rule stopped the fit, F, and the share of
training samples whose input-gradient norm is at or above tau0 (the penalty acts there) for the
true label and for a random label. :func:`train_plain_probe` trains the same head without the
penalty (multinomial logistic regression on the same features, same stopping rule): the price of
the penalty is the accuracy gap between the two.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import torch
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..core.checks import as_features, as_labels, as_pair, check_classes
from ..core.errors import TaskrelError, UnknownNameError
from ..core.numerics import logsumexp, softmax, standard_scaler

__all__ = ["ReferenceClassifier", "train_reference_classifier", "train_plain_probe", "fit_reference_model",
           "REFERENCE_CLASSIFIER_PRESETS", "ORIGINAL_OPTIMISER"]

_COMMON = dict(penalty_weight=1e4, weight_decay=5e-4, optimizer="lbfgs", stop="converged", iterations=2000,
               tol=1e-7, window=10, check_every=50, lr=1e-4, momentum=0.9, betas=(0.9, 0.999), batch_size=1000)
#: hyper-parameters per scale. ``large``: tau0 of the ResNet-18 / Other_Models scripts; ``small``:
#: the MNIST scripts' tau0 = 0.2, and only that: both presets minimise F of the module doc (the
#: large-scale objective), not the MNIST scripts' (one hinge on the gradient of CE(y) + CE(ytilde),
#: weight 1e10, no weight decay, Adam; docs/method.md §3.2). Both use the kit's optimiser
#: (full-batch L-BFGS until F stops improving: relative improvement below ``tol`` = 1e-7 over
#: ``window`` = 10 iterations, at most ``iterations`` = 2000); the paper's large-scale optimiser is
#: :data:`ORIGINAL_OPTIMISER`.
REFERENCE_CLASSIFIER_PRESETS = {
    "large": dict(_COMMON, tau0=0.02),
    "small": dict(_COMMON, tau0=0.2),
}
#: the original optimiser (paper's large-scale code): SGD lr 1e-4, momentum 0.9, weight decay
#: 5e-4, 2001 iterations of 1000 samples drawn with replacement. ``schedule="reference"`` of
#: ``task_relatedness`` trains h_R with these options.
ORIGINAL_OPTIMISER = dict(optimizer="sgd", stop="fixed", lr=1e-4, momentum=0.9, weight_decay=5e-4,
                          iterations=2001, batch_size=1000)
_OPTIMIZERS = ("lbfgs", "sgd", "adam")
_STOPS = ("converged", "fixed")


@dataclass
class ReferenceClassifier:
    """A fitted linear softmax head on standardised features: ``W`` (K x d), ``c`` (K).

    ``fit_info``: ``iterations`` used, ``converged`` (the stopping rule fired before the cap),
    ``objective`` (F on the training pool), ``penalty_active_true_label`` and
    ``penalty_active_random_label`` (shares of training samples at or above tau0, see
    :meth:`penalty_active`), ``train_accuracy``.
    """

    W: np.ndarray
    c: np.ndarray
    tau0: float
    options: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    fit_info: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return self.W.shape[0]

    def logits(self, X) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.W.T + self.c

    def predict_proba(self, X) -> np.ndarray:
        """``h_R(x) = softmax(W x + c)`` per row of ``X`` (N x K)."""
        return softmax(self.logits(X), axis=1)

    def predict(self, X) -> np.ndarray:
        return self.logits(X).argmax(1)

    def cross_entropy(self, X, y) -> np.ndarray:
        """Per-sample ``-log h_R(x)_y = logsumexp(W x + c) - (W x + c)_y`` (no clipping)."""
        L = self.logits(X)
        return logsumexp(L, axis=1) - L[np.arange(len(L)), np.asarray(y)]

    def accuracy(self, X, y) -> float:
        return float((self.predict(X) == np.asarray(y)).mean())

    def transferred_proba(self, X, A_inv, b, B) -> np.ndarray:
        """The transferred classifier ``h_T(x) = B h_R(A_inv (x - b))`` on standardised target
        features ``X`` (N x d), with the learned inverse feature map ``A_inv`` (d x d), ``b`` (d) and
        label map ``B`` (K_T x K_R) -> class probabilities (N x K_T)."""
        return self.predict_proba((X - b) @ A_inv.T) @ B.T

    def input_gradients(self, X, y) -> np.ndarray:
        """Per-sample ``grad_x CE(h_R(x), y) = W^T (p - e_y)`` (N x d)."""
        P = self.predict_proba(X)
        P[np.arange(len(P)), np.asarray(y)] -= 1.0
        return P @ self.W

    def grad_norms(self, X, y) -> np.ndarray:
        """Per-sample input-gradient norms ``||grad_x CE(h_R(x), y)||_2`` (for plots of the penalty)."""
        return np.linalg.norm(self.input_gradients(X, y), axis=1)

    def random_label_grad_norms(self, X, seed: int = 0) -> np.ndarray:
        """Gradient norms under uniformly random labels (what the penalty's ``ytilde`` term controls)."""
        rng = np.random.default_rng(seed)
        return self.grad_norms(X, rng.integers(0, self.n_classes, len(X)))

    def penalty_active(self, X, y, tau0: float | None = None) -> tuple[float, float]:
        """Shares of samples where the penalty acts, ``||grad_x CE(h_R(x), label)|| >= tau0``:
        ``(true label, random label)``; the random-label share is exact, averaged over all K labels
        (``(1/(N K)) sum_n sum_k``). ``tau0`` defaults to the classifier's."""
        tau0 = self.tau0 if tau0 is None else float(tau0)
        norms = _all_label_grad_norms(self.W, self.predict_proba(X))  # N x K
        y = np.asarray(y)
        return float((norms[np.arange(len(y)), y] >= tau0).mean()), float((norms >= tau0).mean())


def _all_label_grad_norms(W, P) -> np.ndarray:
    """``||W^T (p_n - e_k)||`` for every sample n and label k (N x K), from ``P`` (N x K)."""
    G = W @ W.T
    pGp = np.einsum("nk,kl,nl->n", P, G, P)
    return np.sqrt(np.maximum(pGp[:, None] - 2.0 * (P @ G) + np.diag(G)[None, :], 0.0))


def _check_xy(X, y, n_classes, what):
    X = as_features(X, what)
    y = as_labels(y, len(X), what)
    check_classes(y, n_classes, what, require_all=False)
    return X, y


def _options(scale, options) -> dict:
    """The preset of ``scale`` updated with ``options``, validated."""
    if scale not in REFERENCE_CLASSIFIER_PRESETS:
        raise UnknownNameError("scale", scale, REFERENCE_CLASSIFIER_PRESETS)
    opts = dict(REFERENCE_CLASSIFIER_PRESETS[scale])
    unknown = set(options) - set(opts)
    if unknown:
        raise UnknownNameError("reference-classifier option", sorted(unknown)[0], opts)
    opts.update(options)
    if opts["optimizer"] not in _OPTIMIZERS:
        raise TaskrelError(f"optimizer must be one of {', '.join(map(repr, _OPTIMIZERS))}, got {opts['optimizer']!r}")
    if opts["stop"] not in _STOPS:
        raise TaskrelError(f"stop must be 'converged' (stopping rule with a cap) or 'fixed' (exactly `iterations`), "
                           f"got {opts['stop']!r}")
    for key in ("iterations", "window", "check_every", "batch_size"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise TaskrelError(f"reference-classifier option {key} must be a positive integer, got {v!r}")
    for key in ("tol", "tau0", "penalty_weight", "weight_decay", "lr"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not v >= 0:
            raise TaskrelError(f"reference-classifier option {key} must be a number >= 0, got {v!r}")
    return opts


def train_reference_classifier(Z, y, n_classes: int | None = None, *, scale: str = "small",
                               Z_test=None, y_test=None, seed: int = 0, log_every: int = 500,
                               gradient: str = "closed_form", dtype=torch.float64, init=None,
                               **options) -> ReferenceClassifier:
    """Train h_R on standardised features ``Z`` (N x d) with labels ``y`` in ``0..K-1`` (module doc: F).

    Options (defaults from ``REFERENCE_CLASSIFIER_PRESETS[scale]``): ``tau0``, ``penalty_weight``,
    ``weight_decay``; ``optimizer`` ("lbfgs": the kit's full-batch default | "sgd": the original |
    "adam"); ``stop`` ("converged": stop when F's relative improvement over the last ``window``
    iterations (lbfgs) or checks (sgd/adam, one every ``check_every`` iterations) is below ``tol``,
    at most ``iterations`` | "fixed": exactly ``iterations``, the original); sgd/adam only: ``lr``,
    ``momentum``, ``betas``, ``batch_size`` (drawn with replacement every iteration, as the
    large-scale code; the weight decay is the optimiser's). The paper's optimiser:
    ``**ORIGINAL_OPTIMISER``. ``init``: a :class:`ReferenceClassifier` (or ``(W, c)``) to start from,
    e.g. the previous fit of a tau0 sweep; default PyTorch's ``nn.Linear`` start
    ``U(-1/sqrt(d), 1/sqrt(d))`` from ``seed``. ``history``: every ``log_every`` iterations the
    objective, CE, both penalties and, with a test set, its accuracy, CE and max random-label
    gradient norm. ``dtype``: of the sgd/adam loop (lbfgs runs in float64).
    """
    opts = _options(scale, options)
    if gradient not in ("closed_form", "autograd"):
        raise TaskrelError(f"gradient must be 'closed_form' or 'autograd', got {gradient!r}")
    y = np.asarray(y)
    K = int(n_classes if n_classes is not None else (y.max() + 1 if len(y) else 0))
    X, y = _check_xy(Z, y, K, "reference train")
    if len(X) < K:
        raise TaskrelError(f"reference train has {len(X)} samples for {K} classes; need at least one per class")
    N, d = X.shape
    rng = np.random.default_rng(seed)
    W0, c0 = _start(init, rng, K, d)
    test = None if Z_test is None else _check_xy(Z_test, y_test, K, "reference test")
    clf = ReferenceClassifier(W=W0, c=c0, tau0=float(opts["tau0"]),
                              options=dict(opts, seed=seed, gradient=gradient, scale=scale), history=[])
    pool = _Pool(X, y, K, opts, gradient)
    n_threads = torch.get_num_threads()
    # one torch and one BLAS thread: small matrices (extra threads only add synchronisation cost),
    # and the same sums, so the same h_R, in a notebook's kernel and in a worker process
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            fit = _fit_lbfgs if opts["optimizer"] == "lbfgs" else _fit_stochastic
            W, c, info = fit(pool, W0, c0, opts, rng, dtype, log_every, test, clf)
    finally:
        torch.set_num_threads(n_threads)
    clf.W, clf.c = W, c
    if not (np.isfinite(clf.W).all() and np.isfinite(clf.c).all()):
        raise TaskrelError(f"training h_R diverged (non-finite weights) with lr={opts['lr']} and "
                           f"penalty_weight={opts['penalty_weight']}; lower lr (the penalty step is lr x weight)")
    active_true, active_random = clf.penalty_active(X, y)
    clf.fit_info = dict(info, objective=pool.objective(W, c)[0], penalty_active_true_label=active_true,
                        penalty_active_random_label=active_random, train_accuracy=clf.accuracy(X, y))
    return clf


def fit_reference_model(ref_train, ref_test, *, seed: int = 0, scale: str = "small", schedule: str = "fast",
                        options: dict | None = None,
                        classifier: ReferenceClassifier | None = None) -> tuple[StandardScaler, ReferenceClassifier]:
    """The reference side of a fit: ``(s_R, h_R)`` from RAW ``(features, labels)`` pairs.

    ``s_R``: the z-scorer fit on the float64 reference train features; ``h_R``: trained on them
    (:func:`train_reference_classifier`, ``K_R = max label + 1``, the standardised test split for
    its history). ``schedule="fast"``: the kit's optimiser, closed-form gradients;
    ``"reference"``: the original (:data:`ORIGINAL_OPTIMISER`, gradients by autograd).
    ``options`` (e.g. ``dict(tau0=0.5)``) override both. ``classifier``: an h_R fitted before
    (e.g. read from a cache) to pair with the scaler instead of training one. This is the one
    place h_R and its scaler are built: ``task_relatedness`` gets both here.
    """
    if schedule not in ("fast", "reference"):
        raise UnknownNameError("schedule", schedule, ("fast", "reference"))
    Zr, yr = as_pair(ref_train, "ref_train")
    Zr_te, yr_te = as_pair(ref_test, "ref_test", Zr.shape[1])
    if yr is None or yr_te is None:
        raise TaskrelError("reference labels are required (ref_train and ref_test)")
    s_R = standard_scaler(Zr)
    if classifier is not None:
        K_R, d = int(yr.max()) + 1, Zr.shape[1]
        if not isinstance(classifier, ReferenceClassifier) or classifier.W.shape != (K_R, d):
            raise TaskrelError(f"reference_classifier must be a ReferenceClassifier with W of shape ({K_R}, {d})")
        return s_R, classifier
    original = dict(ORIGINAL_OPTIMISER) if schedule == "reference" else {}
    h_R = train_reference_classifier(s_R.transform(Zr), yr, int(yr.max()) + 1, scale=scale,
                                     Z_test=s_R.transform(Zr_te), y_test=yr_te, seed=seed,
                                     gradient="closed_form" if schedule == "fast" else "autograd",
                                     **dict(original, **(options or {})))
    return s_R, h_R


def train_plain_probe(Z, y, n_classes: int | None = None, **kwargs) -> ReferenceClassifier:
    """The same head and stopping rule WITHOUT the gradient-norm penalty (``penalty_weight=0``):
    multinomial logistic regression (with the same small weight decay) on the same standardised
    features. Compare its accuracy with h_R's to see the price of the penalty."""
    if "penalty_weight" in kwargs:
        raise TaskrelError("train_plain_probe has no penalty; use train_reference_classifier for penalty_weight")
    return train_reference_classifier(Z, y, n_classes, penalty_weight=0.0, **kwargs)


def _start(init, rng, K, d):
    """``(W0, c0)`` from ``init`` (a classifier or a pair) or PyTorch's ``nn.Linear`` start."""
    if init is None:
        bound = 1.0 / np.sqrt(d)
        return rng.uniform(-bound, bound, (K, d)), rng.uniform(-bound, bound, K)
    W0, c0 = (init.W, init.c) if isinstance(init, ReferenceClassifier) else init
    W0, c0 = np.array(W0, dtype=np.float64), np.array(c0, dtype=np.float64)
    if W0.shape != (K, d) or c0.shape != (K,):
        raise TaskrelError(f"init must have W of shape ({K}, {d}) and c of shape ({K},), got {W0.shape}, {c0.shape}")
    return W0, c0


class _Pool:
    """The training pool and F of the module doc on it, random-label penalty in expectation."""

    def __init__(self, X, y, K, opts, gradient):
        self.X, self.y, self.K = torch.from_numpy(X), torch.from_numpy(y), K
        self.args = (float(opts["tau0"]), float(opts["penalty_weight"]), float(opts["weight_decay"]))
        self.autograd = gradient == "autograd"

    def objective(self, W, c):
        """``(F, ce, gp_y, gp_random, dF/dW, dF/dc)`` at numpy ``W`` (K x d), ``c`` (K)."""
        W, c = torch.from_numpy(np.asarray(W, dtype=np.float64)), torch.from_numpy(np.asarray(c, dtype=np.float64))
        if self.autograd:
            out = pool_objective_autograd(W, c, self.X, self.y, *self.args)
        else:
            with torch.no_grad():
                out = pool_objective_closed_form(W, c, self.X, self.y, *self.args)
        return tuple(float(v) for v in out[:4]) + tuple(g.numpy() for g in out[4:])


def _stalled(values, tol, window) -> bool:
    """The stopping rule: ``(F[t - window] - F[t]) <= tol |F[t]|`` for the sequence ``values``."""
    return len(values) > window and values[-1 - window] - values[-1] <= tol * abs(values[-1])


def _fit_lbfgs(pool, W0, c0, opts, rng, dtype, log_every, test, clf):
    """Full-batch L-BFGS (scipy's L-BFGS-B, no bounds) on F; the stopping rule in its callback."""
    K, d = W0.shape

    def fun(x):
        F, _, _, _, gW, gc = pool.objective(x[:K * d].reshape(K, d), x[K * d:])
        return F, np.concatenate([gW.ravel(), gc])

    values = []

    def callback(intermediate_result):
        values.append(float(intermediate_result.fun))
        it = len(values) - 1
        if log_every and it % log_every == 0:
            x = intermediate_result.x
            _log(clf, pool, x[:K * d].reshape(K, d), x[K * d:], it, test)
        if opts["stop"] == "converged" and _stalled(values, float(opts["tol"]), int(opts["window"])):
            raise StopIteration

    iterations = int(opts["iterations"])
    res = scipy.optimize.minimize(fun, np.concatenate([W0.ravel(), c0]), jac=True, method="L-BFGS-B",
                                  callback=callback, options=dict(maxiter=iterations, maxfun=20 * iterations,
                                                                  maxcor=20, ftol=0.0, gtol=1e-12))
    W, c = res.x[:K * d].reshape(K, d).copy(), res.x[K * d:].copy()
    rule = opts["stop"] == "converged" and _stalled(values, float(opts["tol"]), int(opts["window"]))
    converged = bool(rule or (res.success and len(values) < iterations))
    if log_every:
        _log(clf, pool, W, c, len(values), test)
    return W, c, dict(iterations=len(values), converged=converged, message=str(res.message))


def _fit_stochastic(pool, W0, c0, opts, rng, dtype, log_every, test, clf):
    """Minibatch SGD / Adam (the original: SGD, ``stop="fixed"``); F on the pool every
    ``check_every`` iterations when ``stop="converged"``."""
    W = torch.tensor(W0, dtype=dtype, requires_grad=True)
    c = torch.tensor(c0, dtype=dtype, requires_grad=True)
    if opts["optimizer"] == "sgd":
        opt = torch.optim.SGD([W, c], lr=opts["lr"], momentum=opts["momentum"], weight_decay=opts["weight_decay"])
    else:
        opt = torch.optim.Adam([W, c], lr=opts["lr"], betas=tuple(opts["betas"]), eps=1e-7,
                               weight_decay=opts["weight_decay"])
    X, y, K = pool.X.to(dtype), pool.y, pool.K
    N = len(X)
    tau0, weight, _ = pool.args
    bs, iterations = int(opts["batch_size"]), int(opts["iterations"])
    checks, converged, it = [], False, -1

    def now():
        return W.detach().cpu().numpy().astype(np.float64), c.detach().cpu().numpy().astype(np.float64)

    for it in range(iterations):
        idx = torch.from_numpy(rng.integers(0, N, bs))
        ytil = torch.from_numpy(rng.integers(0, K, bs))
        xb, yb = X[idx], y[idx]
        if pool.autograd:
            loss, ce_m, gp_y, gp_t = _batch_loss_autograd(W, c, xb, yb, ytil, tau0, weight)
            opt.zero_grad()
            loss.backward()
        else:
            with torch.no_grad():
                loss, ce_m, gp_y, gp_t, gW, gc = _closed_form_loss_and_grads(W, c, xb, yb, ytil, tau0, weight)
            opt.zero_grad()
            W.grad, c.grad = gW, gc
        opt.step()
        if log_every and (it % log_every == 0 or it == iterations - 1):
            _log(clf, pool, *now(), it, test, batch=dict(loss=loss.item(), ce=ce_m.item(), gp_y=gp_y.item(),
                                                          gp_random=gp_t.item()))
        if opts["stop"] == "converged" and (it + 1) % int(opts["check_every"]) == 0:
            checks.append(pool.objective(*now())[0])
            if _stalled(checks, float(opts["tol"]), int(opts["window"])):
                converged = True
                break
    W, c = now()
    return W.copy(), c.copy(), dict(iterations=it + 1, converged=converged)


def _log(clf, pool, W, c, it, test, batch=None):
    """One history row: F and its parts on the pool (``batch``: the minibatch's too), test metrics."""
    F, ce, gp_y, gp_r = pool.objective(W, c)[:4]
    row = dict(iteration=it, objective=F, ce=ce, gp_y=gp_y, gp_random=gp_r)
    if batch is not None:
        row.update({f"batch_{k}": v for k, v in batch.items()})
    if test is not None:
        clf.W, clf.c = W, c
        row.update(test_accuracy=clf.accuracy(*test), test_ce=float(clf.cross_entropy(*test).mean()),
                   test_max_grad_norm_random=float(clf.random_label_grad_norms(test[0], clf.options["seed"]).max()))
    clf.history.append(row)


def pool_objective_closed_form(W, c, X, y, tau0, weight, wd):
    """F on a pool (module doc) with the random label's penalty in expectation, and its exact
    gradients, in O(N K^2 + N K d) without back-prop.

    With ``p_n = softmax(W x_n + c)``, ``v_nk = p_n - e_k``, ``G = W W^T``: the input-gradient norm
    ``g_nk = sqrt(v_nk^T G v_nk) = sqrt(p^T G p - 2 (G p)_k + G_kk)``. Each term ``w omega_nk / N
    relu(g_nk - tau0)^2`` (``omega_nk = 1/K + [k = y_n]``) has ``alpha_nk = 2 w omega_nk relu(g_nk -
    tau0) / (N g_nk)``; summed over k it contributes ``sum_k alpha_nk v_nk v_nk^T W`` to dF/dW and
    ``J_p G (A_n p_n - alpha_n)`` to the logit gradient (``A_n = sum_k alpha_nk``, ``J_p = diag p - p p^T``).
    Returns ``(F, ce, gp_y, gp_random, dW, dc)``.
    """
    N, K = len(X), W.shape[0]
    logp = torch.log_softmax(X @ W.T + c, 1)
    P = logp.exp()
    G = W @ W.T
    PG = P @ G
    sq = (PG * P).sum(1, keepdim=True) - 2.0 * PG + torch.diagonal(G)[None, :]
    norm = sq.clamp_min(torch.finfo(W.dtype).tiny).sqrt()  # N x K
    excess = torch.relu(norm - tau0)
    rows = torch.arange(N)
    gp_y = excess[rows, y].pow(2).mean()
    gp_r = excess.pow(2).mean()
    omega = torch.full_like(norm, 1.0 / K)
    omega[rows, y] += 1.0
    alpha = (2.0 * weight / N) * omega * excess / norm
    A = alpha.sum(1)
    dG = (P * A[:, None]).T @ P - P.T @ alpha - alpha.T @ P + torch.diag(alpha.sum(0))
    S = (A[:, None] * P - alpha) @ G
    onehot = torch.zeros_like(P)
    onehot[rows, y] = 1.0
    g_logits = (P - onehot) / N + P * S - P * (P * S).sum(1, keepdim=True)
    ce = -logp[rows, y].mean()
    F = ce + weight * (gp_y + gp_r) + 0.5 * wd * ((W * W).sum() + (c * c).sum())
    return F, ce, gp_y, gp_r, g_logits.T @ X + dG @ W + wd * W, g_logits.sum(0) + wd * c


def pool_objective_autograd(W, c, X, y, tau0, weight, wd):
    """F of :func:`pool_objective_closed_form` by double back-prop (input gradients per label)."""
    W, c = W.clone().requires_grad_(True), c.clone().requires_grad_(True)
    Xg = X.clone().requires_grad_(True)
    logits = Xg @ W.T + c
    K = W.shape[0]
    norms = []
    for k in range(K):
        ce_k = torch.nn.functional.cross_entropy(logits, torch.full_like(y, k), reduction="sum")
        norms.append(torch.autograd.grad(ce_k, Xg, create_graph=True)[0].norm(dim=1))
    excess = torch.relu(torch.stack(norms, 1) - tau0)
    gp_y = excess[torch.arange(len(y)), y].pow(2).mean()
    gp_r = excess.pow(2).mean()
    ce = torch.nn.functional.cross_entropy(logits, y)
    F = ce + weight * (gp_y + gp_r) + 0.5 * wd * ((W * W).sum() + (c * c).sum())
    dW, dc = torch.autograd.grad(F, (W, c))
    return F.detach(), ce.detach(), gp_y.detach(), gp_r.detach(), dW, dc


def _batch_loss_autograd(W, c, xb, yb, ytil, tau0, weight):
    """The original minibatch loss by double back-prop: ``(loss, ce, gp_y, gp_random)``."""
    xb = xb.clone().requires_grad_(True)
    logits = xb @ W.T + c
    ce = torch.nn.functional.cross_entropy(logits, yb, reduction="none")
    ce_t = torch.nn.functional.cross_entropy(logits, ytil, reduction="none")
    norm_y = torch.autograd.grad(ce.sum(), xb, create_graph=True)[0].norm(dim=1)
    norm_t = torch.autograd.grad(ce_t.sum(), xb, create_graph=True)[0].norm(dim=1)
    gp_y = torch.relu(norm_y - tau0).pow(2).mean()
    gp_t = torch.relu(norm_t - tau0).pow(2).mean()
    ce_m = ce.mean()
    return ce_m + weight * (gp_y + gp_t), ce_m, gp_y, gp_t


def _closed_form_loss_and_grads(W, c, X, y, y_rand, tau0, weight):
    """The original minibatch loss (module doc, one random label per sample) and its exact gradients
    in W (K x d), c (K), without back-prop.

    With ``p = softmax(W x + c)``, ``v = p - e_y`` and the Gram matrix ``G = W W^T``, the input
    gradient norm is ``g = ||W^T v|| = sqrt(v^T G v)``; a penalty term ``w/N relu(g - tau0)^2``
    has ``alpha = 2 w relu(g - tau0) / (N g)`` and contributes ``alpha v v^T W`` to the W-gradient
    (through G) and ``alpha J_p G v`` to the logit gradient, ``J_p = diag(p) - p p^T`` (through p).
    The CE contributes ``v / N`` to the logit gradient. Returns ``(loss, ce, gp_y, gp_random, dW, dc)``.
    """
    N, K = len(X), W.shape[0]
    logits = X @ W.T + c
    logp = torch.log_softmax(logits, 1)
    p = logp.exp()
    G = W @ W.T
    eye = torch.eye(K, dtype=W.dtype, device=W.device)
    g_logits = (p - eye[y]) / N  # the CE part
    dG = torch.zeros_like(G)
    gps = []
    for labels in (y, y_rand):
        v = p - eye[labels]
        Gv = v @ G
        norm = (Gv * v).sum(1).clamp_min(torch.finfo(W.dtype).tiny).sqrt()
        excess = torch.relu(norm - tau0)
        gps.append(excess.pow(2).mean())
        alpha = (2.0 * weight / N) * excess / norm
        dG += (v * alpha[:, None]).T @ v
        aGv = alpha[:, None] * Gv
        g_logits += p * aGv - p * (p * aGv).sum(1, keepdim=True)  # J_p (alpha G v)
    ce = -logp.gather(1, y[:, None]).mean()
    loss = ce + weight * (gps[0] + gps[1])
    return loss, ce, gps[0], gps[1], g_logits.T @ X + dG @ W, g_logits.sum(0)
