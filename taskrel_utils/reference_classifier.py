"""The reference classifier h_R: a linear softmax head with a gradient-norm penalty (METHOD 2.4).

``h_R(z) = softmax(W z + c)`` is trained on *standardised* reference features with

    loss = CE_mean + penalty_weight * (GP_y + GP_ytilde),
    GP_y = mean_n max(0, ||grad_z CE(h_R(z_n), y_n)||_2 - tau0)^2,

``ytilde`` an independent uniformly random label (the large-scale form of METHOD 2.4). The input
gradient has the closed form of METHOD 8.2 #5, ``grad_z CE(Wz + c, y) = W^T (softmax(Wz + c) - e_y)``,
and so have the penalty's gradients in ``W`` and ``c``: ``gradient="closed_form"`` (default) computes
loss and gradients without back-prop (:func:`_closed_form_loss_and_grads`); ``gradient="autograd"``
does the original double back-prop (same numbers up to rounding).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import TaskrelError

__all__ = ["ReferenceClassifier", "train_reference_classifier", "REFERENCE_CLASSIFIER_PRESETS"]

#: hyper-parameters per scale (METHOD 2.4 / 3.3). ``large``: the ResNet-18 / Other_Models scripts;
#: ``small``: the same optimiser and penalty form with the MNIST scripts' tau0 = 0.2 (METHOD 10's runs).
REFERENCE_CLASSIFIER_PRESETS = {
    "large": dict(tau0=0.02, penalty_weight=1e4, optimizer="sgd", lr=1e-4, momentum=0.9,
                  weight_decay=5e-4, betas=(0.9, 0.999), iterations=2001, batch_size=1000),
    "small": dict(tau0=0.2, penalty_weight=1e4, optimizer="sgd", lr=1e-4, momentum=0.9,
                  weight_decay=5e-4, betas=(0.9, 0.999), iterations=2001, batch_size=1000),
}


@dataclass
class ReferenceClassifier:
    """A fitted linear softmax head on standardised features: ``W`` (K x d), ``c`` (K)."""

    W: np.ndarray
    c: np.ndarray
    tau0: float
    options: dict = field(default_factory=dict)
    history: list = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return self.W.shape[0]

    def logits(self, X) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.W.T + self.c

    def predict_proba(self, X) -> np.ndarray:
        L = self.logits(X)
        L -= L.max(1, keepdims=True)
        P = np.exp(L)
        return P / P.sum(1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.logits(X).argmax(1)

    def cross_entropy(self, X, y) -> np.ndarray:
        """Per-sample ``-log h_R(x)_y`` (log-softmax, no clipping)."""
        L = self.logits(X)
        m = L.max(1, keepdims=True)
        lse = (m + np.log(np.exp(L - m).sum(1, keepdims=True)))[:, 0]
        return lse - L[np.arange(len(L)), np.asarray(y)]

    def accuracy(self, X, y) -> float:
        return float((self.predict(X) == np.asarray(y)).mean())

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


def _check_xy(X, y, n_classes, what):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (len(X),):
        raise TaskrelError(f"{what}: features must be (N, d) and labels (N,), got {X.shape} and {y.shape}")
    if not np.isfinite(X).all():
        raise TaskrelError(f"{what}: features contain NaN or infinite values; re-extract them")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= n_classes)):
        raise TaskrelError(f"{what}: labels must be integers in 0..{n_classes - 1}")
    return X, y.astype(np.int64)


def train_reference_classifier(Z, y, n_classes: int | None = None, *, scale: str = "small",
                               Z_test=None, y_test=None, seed: int = 0, log_every: int = 500,
                               gradient: str = "closed_form", dtype=torch.float64,
                               **options) -> ReferenceClassifier:
    """Train h_R on standardised features ``Z`` (N x d) with labels ``y`` in ``0..K-1``.

    Options (defaults from ``REFERENCE_CLASSIFIER_PRESETS[scale]``): ``tau0``, ``penalty_weight``,
    ``optimizer`` ("sgd" | "adam"), ``lr``, ``momentum``, ``weight_decay``, ``betas``,
    ``iterations``, ``batch_size`` (drawn with replacement every iteration, as the large-scale
    code). Initialisation as PyTorch's ``nn.Linear``: ``U(-1/sqrt(d), 1/sqrt(d))``, from ``seed``.
    ``history``: every ``log_every`` iterations the batch loss, CE, both penalties and, when a test
    set is given, its accuracy, CE and max random-label gradient norm.
    """
    if scale not in REFERENCE_CLASSIFIER_PRESETS:
        raise TaskrelError(f"unknown scale {scale!r}; valid scales are: large, small")
    opts = dict(REFERENCE_CLASSIFIER_PRESETS[scale])
    unknown = set(options) - set(opts)
    if unknown:
        raise TaskrelError(f"unknown reference-classifier option(s) {sorted(unknown)}; valid: {sorted(opts)}")
    opts.update(options)
    if gradient not in ("closed_form", "autograd"):
        raise TaskrelError(f"gradient must be 'closed_form' or 'autograd', got {gradient!r}")
    y = np.asarray(y)
    K = int(n_classes if n_classes is not None else (y.max() + 1 if len(y) else 0))
    X, y = _check_xy(Z, y, K, "reference train")
    if len(X) < K:
        raise TaskrelError(f"reference train has {len(X)} samples for {K} classes; need at least one per class")
    N, d = X.shape
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(d)
    W = torch.tensor(rng.uniform(-bound, bound, (K, d)), dtype=dtype, requires_grad=True)
    c = torch.tensor(rng.uniform(-bound, bound, K), dtype=dtype, requires_grad=True)
    if opts["optimizer"] == "sgd":
        opt = torch.optim.SGD([W, c], lr=opts["lr"], momentum=opts["momentum"], weight_decay=opts["weight_decay"])
    elif opts["optimizer"] == "adam":
        opt = torch.optim.Adam([W, c], lr=opts["lr"], betas=tuple(opts["betas"]), eps=1e-7,
                               weight_decay=opts["weight_decay"])
    else:
        raise TaskrelError(f"optimizer must be 'sgd' or 'adam', got {opts['optimizer']!r}")
    Xt = torch.tensor(X, dtype=dtype)
    yt = torch.tensor(y)
    tau0, weight, bs = float(opts["tau0"]), float(opts["penalty_weight"]), int(opts["batch_size"])
    history = []
    test = None
    if Z_test is not None:
        test = _check_xy(Z_test, y_test, K, "reference test")
    clf = ReferenceClassifier(W=np.zeros((K, d)), c=np.zeros(K), tau0=tau0,
                              options=dict(opts, seed=seed, gradient=gradient, scale=scale), history=history)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: extra threads only add synchronisation cost
    try:
        _train_loop(opts, rng, Xt, yt, W, c, opt, K, tau0, weight, bs, gradient, dtype, log_every, test, clf, history, seed)
    finally:
        torch.set_num_threads(n_threads)
    clf.W = W.detach().cpu().numpy().astype(np.float64).copy()
    clf.c = c.detach().cpu().numpy().astype(np.float64).copy()
    if not (np.isfinite(clf.W).all() and np.isfinite(clf.c).all()):
        raise TaskrelError(f"training h_R diverged (non-finite weights) with lr={opts['lr']} and "
                           f"penalty_weight={opts['penalty_weight']}; lower lr (the penalty step is lr x weight)")
    return clf


def _closed_form_loss_and_grads(W, c, X, y, y_rand, tau0, weight):
    """Loss of METHOD 2.4 and its exact gradients in W (K x d), c (K), no back-prop (METHOD 8.2 #5).

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


def _train_loop(opts, rng, Xt, yt, W, c, opt, K, tau0, weight, bs, gradient, dtype, log_every, test, clf, history, seed):
    N = len(Xt)
    for it in range(int(opts["iterations"])):
        idx = torch.from_numpy(rng.integers(0, N, bs))
        ytil = torch.from_numpy(rng.integers(0, K, bs))
        xb, yb = Xt[idx], yt[idx]
        if gradient == "closed_form":
            with torch.no_grad():
                loss, ce_m, gp_y, gp_t, gW, gc = _closed_form_loss_and_grads(W, c, xb, yb, ytil, tau0, weight)
            opt.zero_grad()
            W.grad, c.grad = gW, gc
        else:
            xb = xb.clone().requires_grad_(True)
            logits = xb @ W.T + c
            ce = torch.nn.functional.cross_entropy(logits, yb, reduction="none")
            ce_t = torch.nn.functional.cross_entropy(logits, ytil, reduction="none")
            norm_y = torch.autograd.grad(ce.sum(), xb, create_graph=True)[0].norm(dim=1)
            norm_t = torch.autograd.grad(ce_t.sum(), xb, create_graph=True)[0].norm(dim=1)
            gp_y = torch.relu(norm_y - tau0).pow(2).mean()
            gp_t = torch.relu(norm_t - tau0).pow(2).mean()
            ce_m = ce.mean()
            loss = ce_m + weight * (gp_y + gp_t)
            opt.zero_grad()
            loss.backward()
        opt.step()
        if log_every and (it % log_every == 0 or it == opts["iterations"] - 1):
            row = dict(iteration=it, loss=loss.item(), ce=ce_m.item(), gp_y=gp_y.item(), gp_random=gp_t.item())
            if test is not None:
                clf.W, clf.c = W.detach().cpu().numpy().astype(np.float64), c.detach().cpu().numpy().astype(np.float64)
                row.update(test_accuracy=clf.accuracy(*test), test_ce=float(clf.cross_entropy(*test).mean()),
                           test_max_grad_norm_random=float(clf.random_label_grad_norms(test[0], seed).max()))
            history.append(row)
