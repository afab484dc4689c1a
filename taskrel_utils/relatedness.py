"""Task-relatedness: learn the transformations R -> T and decompose the paper's transferability bound.

    res = task_relatedness(ref_train=(Zr, yr), ref_test=(Zr_te, yr_te),
                           target_train=(Zt, yt), target_test=(Zt_te, yt_te),
                           mode="learned_all", schedule="fast", seed=0)
    res.value, res.terms, res.A, res.b, res.A_inv, res.B, res.D, res.target_accuracy

Steps: separate standardisation of the two domains (each z-scorer fit on its own train split);
the reference classifier h_R (:mod:`taskrel_utils.reference_classifier`); the alternating fit
(PriorSample batches, an exact transport plan on the non-squared cost with label weight Lambda,
then an update of the transformations with the plan fixed, minimising the objective J: label
mismatch + re-weighted reference loss + lambda_wd (squared feature cost + Lambda label cost) under
the plan + prior mismatch + inverse consistency); evaluation of every term of the bound on the
test sets, as the original code computes it.

What is the paper's original and what is the kit's (defaults per schedule, :func:`default_options`):

* ``schedule="reference"`` - the original, step for step: point-level plan on the full n x m cost,
  the O(nmd) squared-distance feature term, every gradient by autograd, tau by autograd; with the
  original's choices (:data:`ORIGINAL_FIT`): B's logits uniform at random, A = I, b = 0, one Adam
  step on every parameter per plan, exactly ``steps`` steps; h_R by the original SGD schedule.
* ``schedule="fast"`` (default) - the same step by exact reformulations (barycentric feature term,
  class-level label term, closed-form gradients, class-structured OT: the plan solved per
  connected component of the class-level support, equal to the full plan whenever that puts no
  mass across components; ``ot="full"`` for the full point-level plan, then ``update="adam"`` with
  :data:`ORIGINAL_FIT` reproduces the reference's numbers). All in torch, float64, fused Adam, on
  the GPU when there is one (``device``). The kit's defaults (:data:`KIT_FIT`), which reach a
  lower J sooner: B starts from the class-level OT of the class means and A, b from the rigid map
  between matched class means (``b_init``, ``a_init``); B and D are set in closed form from the
  recent plans (``update="closed_form"``, :class:`_ClosedFormStep`), A, A_inv, b take Adam steps;
  h_R by full-batch L-BFGS until its objective stops improving.

Both schedules stop on J (``stop="converged"``, :func:`_fit_converged`): ``steps`` is then a cap,
``res.terms["steps_used"]`` and ``res.terms["converged"]`` say how it ended, and ``res.history``
has J, its moving average and the elapsed seconds every ``log_every`` steps.
``benchmarks/bench_relatedness.py`` measures the time each takes to converge and the per-step
cost of the fast schedule's opt-in approximations, ``precision="float32"`` (the d x d algebra of
A's Adam step in float32) and ``ot_every=k`` (new batches and plan every k steps; a different
random path).

Without target labels (``target_train=(Z, None), target_test=(Z_te, None), n_target_classes=K``,
the paper's pseudo-label variant): a label-free start (the fit with one target class, so that only
the feature map learns), then k-means on the mapped target's reference-class posteriors gives the
first pseudo-labels, the target prior and B's start, then the usual fit re-labelling the target
every ``pseudo_refresh`` steps; the bound's target side uses pseudo-labels, and its W is the
theorem's class-mixture W (``pseudo_wasserstein="theorem"``, default): the code's W fails (1e10)
whenever the learned B leaves a pseudo-class without a reference class, which self-trained labels
often do. ``pseudo_assign="balanced"`` (default) keeps the start's class shares when re-labelling;
``"argmax"`` re-labels freely and can merge classes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .checks import as_features, as_pair, check_classes
from .errors import TaskrelError
from .reference_classifier import ORIGINAL_OPTIMISER, ReferenceClassifier, train_reference_classifier
from .transport import (class_structured_plan, classwise_w1_code, classwise_w1_theorem,
                        emd_plan, euclidean_cost)

__all__ = ["task_relatedness", "TaskRelatedness", "SCALE_PRESETS", "MODES", "SCHEDULES", "prior_sample",
           "default_options"]

MODES = ("learned_all", "learned_a", "fixed_all")
SCHEDULES = ("fast", "reference")

#: hyper-parameters of the transformation learning per scale, the original code's values
#: (``steps`` is the cap of the stopping rule; ``lr_delta`` is the original's, which
#: :data:`KIT_FIT` raises for the fast schedule). Default: ``small`` (with h_R's tau0 = 0.2): on
#: planted standardised features it separated related from unrelated targets clearly, while
#: tau0 = 0.02 left h_R near uniform and the bound barely separated them. ``large`` = the
#: ImageNet-scale values (Lambda 1e6, batch 1000, 2001 steps, tau0 = 0.02). No preset turns on the
#: fast schedule's approximations (``precision="float32"``, ``ot_every``).
SCALE_PRESETS = {
    "large": dict(batch_size=1000, steps=2001, Lambda=1e6, lambda_wd=2.0, lambda_pm=1.0, lambda_ic=1.0,
                  lr=1e-2, lr_delta=1e-3, reweighted_loss="pool"),
    "small": dict(batch_size=500, steps=1001, Lambda=1e8, lambda_wd=2.0, lambda_pm=1.0, lambda_ic=1.0,
                  lr=1e-2, lr_delta=1e-4, reweighted_loss="batch"),
}
#: the original algorithm's start, updates and stop: ``schedule="reference"``'s defaults.
ORIGINAL_FIT = dict(b_init="random", a_init="identity", update="adam", stop="fixed")
#: the kit's defaults for ``schedule="fast"``: start from the class means, B from the plans in
#: closed form, D's Adam step 1e-2 (the original's 1e-4 / 1e-3 leaves D, and with it the label
#: term, far from converged after thousands of steps), stop when J stops improving.
KIT_FIT = dict(b_init="class_means", a_init="class_means", update="closed_form", stop="converged")
_OTHER_OPTIONS = dict(
    stop="converged",           # "converged": stop when J's moving average stops changing (tol, window,
                                #   min_steps), at most `steps`; "fixed": exactly `steps` (the original)
    tol=1e-3,                   # converged: relative change of J's moving average between two windows
    window=50,                  # converged: steps per moving-average window
    min_steps=100,              # converged: never stop before this many steps
    b_init="class_means",       # "class_means" (kit default): class-level OT start; "random": beta ~ U[0,1)
                                #   (the original)
    b_init_eps=1e-2,            # class_means: beta = log(B0 + eps)
    a_init="class_means",       # "class_means" (kit default, needs b_init="class_means"): A, b start as the
                                #   smallest change of (I, 0) that maps the reference class means onto the
                                #   target class means they are matched to; "identity": A = I, b = 0 (original)
    ot="class",                 # fast schedule: "class" (class-structured plan) or "full"
    update="closed_form",       # fast schedule: "closed_form" (kit default: B, D from the recent plans'
                                #   class matching, A, A_inv, b by Adam) or "adam" (Adam on all, the original)
    closed_form_rate=0.1,       # closed_form: plans' block masses averaged with weight max(1/t, rate)
    log_every=100,              # history rows every k steps (0: none)
    eval_steps=(),              # extra full evaluations of the bound at these steps, in history_eval
    adam_betas=(0.9, 0.999),
    adam_eps=1e-7,              # Keras default, as the official TF optimiser
    theorem_wasserstein=True,   # also compute the theorem's class-mixture W
    reference_classifier=None,  # a fitted ReferenceClassifier to reuse (skips training h_R)
    reference_classifier_options=None,  # dict passed to train_reference_classifier
    track_target_accuracy=True,  # target-test accuracy of h_T in the history rows
    num_threads=None,           # CPU threads in the loop (None: 1 below d = 384, else unchanged)
    ot_every=1,                 # fast schedule: new batches and plan every k steps (1: every step, exact)
    precision="float64",        # fast schedule: "float32" for the d x d algebra and gradients
    device=None,                # fast schedule: torch device (None: the GPU when there is one)
    pseudo_warmup_steps=None,   # no target labels: steps of the label-free start (None: steps // 2)
    pseudo_refresh=25,          # no target labels: re-label the target every k steps of the fit
    pseudo_assign="balanced",   # no target labels: "balanced" keeps the label-free start's class shares
                                #   when re-labelling; "argmax" re-labels freely (collapses, see doc)
    pseudo_wasserstein="theorem",  # no target labels: W of the value, "theorem" (class mixture) or "code"
                                #   (2.3(c): fails, 1e10, when B gives a pseudo-class no reference class)
)


def default_options(scale: str = "small", schedule: str = "fast") -> dict:
    """Every option of :func:`task_relatedness` with its default at ``scale`` for ``schedule``
    (the fast schedule: :data:`KIT_FIT`; the reference schedule: :data:`ORIGINAL_FIT`)."""
    if scale not in SCALE_PRESETS:
        raise TaskrelError(f"unknown scale {scale!r}; valid scales are: {', '.join(SCALE_PRESETS)}")
    if schedule not in SCHEDULES:
        raise TaskrelError(f"unknown schedule {schedule!r}; valid schedules are: {', '.join(SCHEDULES)}")
    return dict(SCALE_PRESETS[scale], **_OTHER_OPTIONS) | (KIT_FIT if schedule == "fast" else ORIGINAL_FIT)


def prior_sample(rng: np.random.Generator, class_index: list, N: int, q) -> np.ndarray:
    """PriorSample of the original code: per class c (in index order) shuffle its index list and take the
    first ``min(|pool_c|, floor(N q_c))``; concatenate; shuffle."""
    parts = []
    for c, idx in enumerate(class_index):
        k = min(len(idx), int(np.floor(N * float(q[c]))))
        if k > 0:
            parts.append(idx[rng.permutation(len(idx))[:k]])
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return out[rng.permutation(len(out))]


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

    def _pre_image(self, Z) -> np.ndarray:
        X = self.target_scaler.transform(as_features(Z, "Z", self.A.shape[0]))
        return (X - self.b) @ self.A_inv.T

    def predict_proba(self, Z) -> np.ndarray:
        """``h_T(z) = B h_R(A_inv (s_T(z) - b))`` for RAW target features ``Z`` (N x d) -> (N x K_T)."""
        return self.reference_classifier.predict_proba(self._pre_image(Z)) @ self.B.T

    def pseudo_labels(self, Z) -> np.ndarray:
        """``argmax_i [B h_R(A^{-1} z)]_i`` (the paper's pseudo-labels) for raw target features ``Z`` (N x d) -> (N,).

        A fit without target labels and ``pseudo_assign="balanced"`` labels as it labelled its own
        target: the balanced assignment that gives class i the share ``target_prior[i]`` of ``Z``.
        """
        o = self.options
        if o.get("target_labels") == "pseudo" and o.get("pseudo_assign") == "balanced":
            return _balanced_labels(self.predict_proba(Z), o["target_prior"])
        return self.predict_proba(Z).argmax(1)

    def summary(self) -> str:
        t = self.terms
        return (f"task-relatedness {self.value:.4f} = reweighted loss {t['reweighted_reference_loss']:.4f}"
                f" + label mismatch {t['label_mismatch']:.4f} + tau x W {t['distribution_mismatch']:.4f}"
                f" (tau {t['tau']:.4f}, W {t['wasserstein']:.4f}); transferred acc {self.target_accuracy:.3f},"
                f" CE {self.target_cross_entropy:.4f}")


# --------------------------------------------------------------------------------------- helpers
def _colsoftmax(beta):
    return torch.softmax(beta, dim=0)


def _entropy(B, D):
    """H(Y''|Y') = -sum_j D_j sum_i B_ij log B_ij with 0 log 0 = 0."""
    return -(D * torch.special.xlogy(B, B).sum(0)).sum()


def _label_sq_cost(B):
    """L2_ji = ||B[:, j] - e_i||^2 (K_R x K_T)."""
    return (B * B).sum(0)[:, None] - 2.0 * B.T + 1.0


def _tau_grads_closed(W, c, B, X, y):
    """Per-sample grad_x [-log (B softmax(Wx+c))_y] = -W^T (diag p - p p^T) B^T e_y / (Bp)_y."""
    L = X @ W.T + c
    L -= L.max(1, keepdims=True)
    P = np.exp(L)
    P /= P.sum(1, keepdims=True)
    Q = P @ B.T
    G = B[y] / Q[np.arange(len(y)), y][:, None]
    V = P * G - P * (P * G).sum(1, keepdims=True)
    return -V @ W


def _tau_grads_autograd(W, c, B, X, y):
    Xt = torch.tensor(X, requires_grad=True)
    p = torch.softmax(Xt @ torch.tensor(W).T + torch.tensor(c), 1) @ torch.tensor(B).T
    f = -torch.log(p[torch.arange(len(y)), torch.tensor(y)])
    (g,) = torch.autograd.grad(f.sum(), Xt)
    return g.numpy()


# --------------------------------------------------------------------------------------- main
def task_relatedness(ref_train, ref_test, target_train, target_test, n_target_classes=None,
                     mode="learned_all", schedule="fast", seed=0, scale="small", **options) -> TaskRelatedness:
    """Task-relatedness of a reference task R and a target task T on the same encoder's features.

    Arguments are ``(features, labels)`` pairs of RAW features (standardised here, each domain on its own train split).
    ``mode``: "learned_all" (A, b, B, D learned), "learned_a" (B a random permutation, D = pi^R),
    "fixed_all" (nothing learned). ``schedule``: "fast" (default) or "reference" (see module doc).
    ``scale``: "small" (default) or "large" presets of the original code (``SCALE_PRESETS``,
    ``REFERENCE_CLASSIFIER_PRESETS``). Every hyper-parameter is an option: ``batch_size``,
    ``steps``, ``Lambda``, ``lambda_wd``, ``lambda_pm``, ``lambda_ic``, ``lr``, ``lr_delta``,
    ``reweighted_loss`` ("pool" exact over the train pool | "batch" the small-scale class-balanced
    estimate), ``b_init``, ``b_init_eps``, ``ot``, ``log_every``, ``eval_steps``, ``adam_betas``,
    ``adam_eps``, ``theorem_wasserstein``, ``reference_classifier``,
    ``reference_classifier_options`` (e.g. ``dict(tau0=0.5)``), ``num_threads``; ``a_init``
    ("class_means" | "identity"); the stopping rule ``stop`` ("converged" | "fixed"), ``tol``,
    ``window``, ``min_steps`` (``steps`` is the cap); fast schedule only: ``update``
    ("closed_form" | "adam"), ``closed_form_rate``, ``device`` (None: the GPU when there is one)
    and the opt-in approximations ``precision`` ("float64" | "float32") and ``ot_every`` (k >= 1).
    Defaults: :func:`default_options` (``scale``, ``schedule``); see the module doc for which are
    the original's. ``res.terms`` adds ``steps_used`` and ``converged``.
    """
    t_start = time.perf_counter()
    if mode not in MODES:
        raise TaskrelError(f"unknown mode {mode!r}; valid modes are: {', '.join(MODES)}")
    if schedule not in SCHEDULES:
        raise TaskrelError(f"unknown schedule {schedule!r}; valid schedules are: {', '.join(SCHEDULES)}")
    if scale not in SCALE_PRESETS:
        raise TaskrelError(f"unknown scale {scale!r}; valid scales are: {', '.join(SCALE_PRESETS)}")
    opts = default_options(scale, schedule)
    unknown = set(options) - set(opts)
    if unknown:
        raise TaskrelError(f"unknown option(s) {sorted(unknown)}; valid options are: {', '.join(sorted(opts))}")
    opts.update(options)
    if opts["b_init"] not in ("random", "class_means"):
        raise TaskrelError(f"b_init must be 'random' or 'class_means', got {opts['b_init']!r}")
    if opts["a_init"] not in ("identity", "class_means"):
        raise TaskrelError(f"a_init must be 'identity' or 'class_means', got {opts['a_init']!r}")
    if opts["ot"] not in ("class", "full"):
        raise TaskrelError(f"ot must be 'class' or 'full', got {opts['ot']!r}")
    if opts["precision"] not in ("float64", "float32"):
        raise TaskrelError(f"precision must be 'float64' or 'float32', got {opts['precision']!r}")
    if isinstance(opts["ot_every"], bool) or not isinstance(opts["ot_every"], (int, np.integer)) or opts["ot_every"] < 1:
        raise TaskrelError(f"ot_every must be a positive integer, got {opts['ot_every']!r}")
    if opts["pseudo_assign"] not in ("balanced", "argmax"):
        raise TaskrelError(f"pseudo_assign must be 'balanced' or 'argmax', got {opts['pseudo_assign']!r}")
    if opts["pseudo_wasserstein"] not in ("theorem", "code"):
        raise TaskrelError(f"pseudo_wasserstein must be 'theorem' or 'code', got {opts['pseudo_wasserstein']!r}")
    if opts["stop"] not in ("converged", "fixed"):
        raise TaskrelError(f"stop must be 'converged' (stopping rule, `steps` is the cap) or 'fixed' (exactly "
                           f"`steps`), got {opts['stop']!r}")
    for key in ("steps", "window", "min_steps"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if key == "min_steps" else 1):
            raise TaskrelError(f"{key} must be an integer >= {0 if key == 'min_steps' else 1}, got {v!r}")
    if isinstance(opts["tol"], bool) or not isinstance(opts["tol"], (int, float, np.floating)) or not opts["tol"] >= 0:
        raise TaskrelError(f"tol must be a number >= 0, got {opts['tol']!r}")
    if opts["update"] not in ("closed_form", "adam"):
        raise TaskrelError(f"update must be 'closed_form' or 'adam', got {opts['update']!r}")
    if schedule == "reference" and opts["update"] != "adam":
        raise TaskrelError("the reference schedule is the original step (update='adam'); "
                           "update='closed_form' needs schedule='fast'")
    rate = opts["closed_form_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0 < rate <= 1:
        raise TaskrelError(f"closed_form_rate must be in (0, 1], got {rate!r}")
    if opts["reweighted_loss"] not in ("pool", "batch"):
        raise TaskrelError(f"reweighted_loss must be 'pool' or 'batch', got {opts['reweighted_loss']!r}")

    # ---- inputs
    Zr, yr = as_pair(ref_train, "ref_train")
    d = Zr.shape[1]
    Zr_te, yr_te = as_pair(ref_test, "ref_test", d)
    Zt, yt = as_pair(target_train, "target_train", d)
    Zt_te, yt_te = as_pair(target_test, "target_test", d)
    if yr is None or yr_te is None:
        raise TaskrelError("reference labels are required (ref_train and ref_test)")
    pseudo = yt is None
    if pseudo != (yt_te is None):
        raise TaskrelError("target labels must be given for both target_train and target_test, or for neither "
                           "(None: the pseudo-label variant labels both)")
    if n_target_classes is not None and (isinstance(n_target_classes, bool) or
                                         not isinstance(n_target_classes, (int, np.integer)) or n_target_classes < 1):
        raise TaskrelError(f"n_target_classes must be a positive integer, got {n_target_classes!r}")
    if pseudo and n_target_classes is None:
        raise TaskrelError("target labels are None (pseudo-label variant): pass n_target_classes, the number "
                           "of classes of the target task")
    if pseudo and mode != "learned_all":
        raise TaskrelError(f"the pseudo-label variant learns the label map: use mode='learned_all', not {mode!r}")
    K_R = int(yr.max()) + 1
    K_T = int(n_target_classes) if n_target_classes is not None else int(yt.max()) + 1
    if pseudo and not 2 <= K_T <= len(Zt):
        raise TaskrelError(f"n_target_classes = {K_T} is impossible for {len(Zt)} unlabelled target samples: "
                           "it needs 2 <= n_target_classes <= number of target training samples")
    check_classes(yr, K_R, "ref_train", True)
    check_classes(yr_te, K_R, "ref_test", False)
    if not pseudo:
        check_classes(yt, K_T, "target_train", True)
        check_classes(yt_te, K_T, "target_test", False)
    if len(Zr_te) == 0 or len(Zt_te) == 0:
        raise TaskrelError("the test sets must not be empty")
    if mode != "learned_all" and K_R != K_T:
        raise TaskrelError(f"mode {mode!r} needs as many reference as target classes (got {K_R} and {K_T})")

    # ---- standardisation: two independent z-scorers, each fit on its train split
    s_R = StandardScaler().fit(Zr)
    s_T = StandardScaler().fit(Zt)
    Xr, Xr_te = s_R.transform(Zr), s_R.transform(Zr_te)
    Xt, Xt_te = s_T.transform(Zt), s_T.transform(Zt_te)
    pi_R = np.bincount(yr, minlength=K_R) / len(yr)
    pi_T = None if pseudo else np.bincount(yt, minlength=K_T) / len(yt)

    # ---- reference classifier
    t0 = time.perf_counter()
    h_R = opts["reference_classifier"]
    if h_R is None:
        # the reference schedule trains h_R as the original (SGD, fixed iterations, double back-prop)
        original = dict(ORIGINAL_OPTIMISER) if schedule == "reference" else {}
        h_R = train_reference_classifier(Xr, yr, K_R, scale=scale, Z_test=Xr_te, y_test=yr_te, seed=seed,
                                         gradient="closed_form" if schedule == "fast" else "autograd",
                                         **dict(original, **(opts["reference_classifier_options"] or {})))
    elif not isinstance(h_R, ReferenceClassifier) or h_R.W.shape != (K_R, d):
        raise TaskrelError(f"reference_classifier must be a ReferenceClassifier with W of shape ({K_R}, {d})")
    t_href = time.perf_counter() - t0
    ce_tr = h_R.cross_entropy(Xr, yr)
    ce_te = h_R.cross_entropy(Xr_te, yr_te)
    S_tr = np.bincount(yr, weights=ce_tr, minlength=K_R)
    S_te = np.bincount(yr_te, weights=ce_te, minlength=K_R)

    # ---- initial transformations
    rng = np.random.default_rng(seed)
    A = np.eye(d)
    A_bar = np.eye(d)
    b = np.zeros(d)
    if pseudo:
        beta = delta = None  # set by the label-free start (_fit_without_labels)
    elif mode == "learned_all":
        if opts["b_init"] == "random":
            beta = rng.uniform(0.0, 1.0, (K_T, K_R))
        else:
            G = emd_plan(pi_R, pi_T, euclidean_cost(_class_means(Xr, yr, K_R), _class_means(Xt, yt, K_T)))
            B0 = G.T / G.T.sum(0, keepdims=True)
            beta = np.log(B0 + opts["b_init_eps"])
        delta = pi_R.copy()  # logits initialised to the numeric values of pi^R (as the original code)
    else:
        perm = rng.permutation(K_R)
        beta = None
        B_fixed = np.zeros((K_T, K_R))
        B_fixed[perm, np.arange(K_R)] = 1.0
        D_fixed = pi_R.copy()
        G = (B_fixed * D_fixed).T  # the class matching of the fixed permutation, reference class masses
    init = None
    if opts["a_init"] == "class_means" and not pseudo and mode != "fixed_all":
        if mode == "learned_all" and opts["b_init"] != "class_means":
            raise TaskrelError("a_init='class_means' maps the class means matched by b_init='class_means'; "
                               "with b_init='random' use a_init='identity' (the original start)")
        A, b = _class_mean_map(_class_means(Xr, yr, K_R), _class_means(Xt, yt, K_T), G)
        A_bar = np.linalg.inv(A)
        init = (A, A_bar, b)

    history, history_eval = [], []
    ctx = dict(Xr=Xr, yr=yr, Xt=Xt, yt=yt, Xr_te=Xr_te, yr_te=yr_te, Xt_te=Xt_te, yt_te=yt_te, pi_R=pi_R,
               pi_T=pi_T, S_tr=S_tr, S_te=S_te, ce_tr=ce_tr, h_R=h_R, K_R=K_R, K_T=K_T, seed=seed,
               schedule=schedule, opts=opts, pseudo=pseudo, fit_log=[])
    n_threads = torch.get_num_threads()
    # small problems: a second thread only adds waiting (10x slower on a busy 2-core machine)
    threads = int(opts["num_threads"] or (1 if d < 384 else n_threads))
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads, user_api="blas"):
            t0 = time.perf_counter()
            if mode == "fixed_all":
                B, D = B_fixed, D_fixed
            elif pseudo:
                A, A_bar, b, B, D = _fit_without_labels(ctx, rng, history, history_eval)
                yt, yt_te, pi_T = ctx["yt"], ctx["yt_te"], ctx["pi_T"]
            else:
                A, A_bar, b, B, D = _learn(ctx, rng, beta, delta if mode == "learned_all" else None,
                                           None if mode == "learned_all" else (B_fixed, D_fixed), history,
                                           history_eval, init=init)
            t_loop = time.perf_counter() - t0
            t0 = time.perf_counter()
            ev = _evaluate(ctx, A, A_bar, b, B, D)
            t_eval = time.perf_counter() - t0
    finally:
        torch.set_num_threads(n_threads)
    terms = {k: v for k, v in ev.items() if k not in ("target_accuracy", "target_cross_entropy")}
    fit_log = ctx["fit_log"]  # one entry per fit stage (two without target labels); none for fixed_all
    terms.update(steps_used=sum(f["steps_used"] for f in fit_log),
                 converged=bool(fit_log[-1]["converged"]) if fit_log else True)
    if pseudo:  # no labels, no accuracy: h_T agrees with its own pseudo-labels by construction
        ev["target_accuracy"] = ev["target_cross_entropy"] = float("nan")
    opts_out = {k: v for k, v in opts.items() if k != "reference_classifier"}
    opts_out.update(mode=mode, schedule=schedule, seed=seed, scale=scale, reference_prior=pi_R, target_prior=pi_T,
                    target_labels="pseudo" if pseudo else "true")
    return TaskRelatedness(
        value=ev["value"], terms=terms, A=A, b=b, A_inv=A_bar, B=B, D=D,
        target_accuracy=ev["target_accuracy"], target_cross_entropy=ev["target_cross_entropy"],
        reference_classifier=h_R, reference_scaler=s_R, target_scaler=s_T, history=history,
        history_eval=history_eval, options=opts_out,
        timings=dict(reference_classifier=t_href, transformations=t_loop, evaluation=t_eval,
                     total=time.perf_counter() - t_start))


def _class_means(X, y, K) -> np.ndarray:
    """Class means (K x d) of features ``X`` (N x d) with labels ``y``."""
    return np.stack([X[y == k].mean(0) for k in range(K)])


def _class_mean_map(mu_R, mu_T, G, ridge=1e-6):
    """The a_init="class_means" start ``(A, b)``, A orthogonal, from class means ``mu_R``
    (K_R x d), ``mu_T`` (K_T x d) and class-level masses ``G`` (K_R x K_T).

    1. the smallest change ``I + Delta``, ``b`` of (I, 0) that maps each reference class mean onto
       the barycentre of the target class means it is matched to (weighted least squares with a
       tiny ridge ``eps (||Delta||^2 + ||b||^2)``, ``eps = ridge`` x the mean eigenvalue of the
       weighted Gram matrix of the augmented means);
    2. ``A`` = its nearest orthogonal matrix (``U V^T`` of its SVD; a well-conditioned start even
       when the target class means coincide, as with shuffled labels, where step 1 is nearly
       singular), ``b`` = the best translation for that ``A``.
    """
    K_R, d = mu_R.shape
    w = G.sum(1)
    keep = w > 0
    w, mu = w[keep], mu_R[keep]
    nu = (G[keep] @ mu_T) / w[:, None]  # barycentres of the matched target class means
    X = np.hstack([mu, np.ones((len(mu), 1))])  # augmented class means
    gram = X.T @ (w[:, None] * X)
    eps = ridge * np.trace(gram) / (d + 1)
    sol = np.linalg.solve(gram + eps * np.eye(d + 1), X.T @ (w[:, None] * (nu - mu))).T  # d x (d + 1)
    U, _, Vt = np.linalg.svd(np.eye(d) + sol[:, :d])
    A = U @ Vt
    return A, (w[:, None] * (nu - mu @ A.T)).sum(0) / w.sum()


def _learn(ctx, rng, beta0, delta0, fixed, history, history_eval, init=None, refresh=0):
    """The alternating fit (module doc). ``fixed=(B, D)`` for learned_a (only A, A_bar, b learn).

    Per step: PriorSample batches, a transport plan (fast schedule: a new one every ``ot_every``
    steps), one Adam step. ``init``: starting ``(A, A_bar, b)`` (default I, I, 0). ``refresh = k``:
    every k steps the target is re-labelled by the current transferred classifier and its prior
    re-estimated (pseudo-label variant, self-training; ``ctx`` is updated). Returns numpy
    ``(A, A_bar, b, B, D)``.
    """
    o = ctx["opts"]
    Xr, yr, Xt, yt = ctx["Xr"], ctx["yr"], ctx["Xt"], ctx["yt"]
    K_R, K_T, pi_R, pi_T = ctx["K_R"], ctx["K_T"], ctx["pi_R"], ctx["pi_T"]
    N = int(o["batch_size"])
    reference = ctx["schedule"] == "reference"
    closed = not reference and o["update"] == "closed_form"
    par = _Params(Xr.shape[1], beta0, delta0, fixed, o, torch.device("cpu") if reference else _device(o["device"]),
                  fused=None if reference else True, init=init, adam_beta_delta=not closed)  # fused Adam: one kernel per tensor
    stepper = _ReferenceStep(ctx, par) if reference else (_ClosedFormStep if closed else _FastStep)(ctx, par)
    ot_every = 1 if reference else int(o["ot_every"])
    ref_idx = [np.flatnonzero(yr == j) for j in range(K_R)]
    tgt_idx = [np.flatnonzero(yt == i) for i in range(K_T)]
    v_pool = ctx["S_tr"] / (pi_R * len(yr))
    eval_steps = set(int(s) for s in o["eval_steps"])
    steps = int(o["steps"])
    log_every = int(o["log_every"] or 0)
    objectives, converged = [], False
    t_start = time.perf_counter()

    for step in range(steps):
        B_now, D_now = par.numpy_B_D()
        if refresh and step and step % refresh == 0:
            A, A_bar, b, _, _ = par.numpy_all()
            yt = _transferred_labels(ctx["h_R"], Xt, A_bar, b, B_now, ctx.get("pseudo_prior"))
            pi_T = np.bincount(yt, minlength=K_T) / len(yt)
            tgt_idx = [np.flatnonzero(yt == i) for i in range(K_T)]
            stepper.pi_T = torch.from_numpy(pi_T).to(par.device)
            ctx.update(yt=yt, pi_T=pi_T)
        if step % ot_every == 0:
            ri = prior_sample(rng, ref_idx, N, D_now)
            ti = prior_sample(rng, tgt_idx, N, pi_T)
            if len(ri) == 0 or len(ti) == 0:
                raise TaskrelError(f"batch_size {N} is too small: PriorSample drew an empty batch")
            stepper.new_batches(Xr[ri], yr[ri], Xt[ti], yt[ti], B_now)
        v = v_pool
        if par.learned and o["reweighted_loss"] == "batch":
            v = _batch_class_weights(rng, ref_idx, yr, ctx["ce_tr"], N, pi_R, v_pool)
        rec = stepper.step(torch.from_numpy(v).to(par.device))
        objectives.append(rec["objective"])
        converged = o["stop"] == "converged" and _fit_converged(objectives, o)
        if log_every and (step % log_every == 0 or step == steps - 1 or converged):
            rec = dict(step=step, n_ref=stepper.n, n_target=stepper.m, **rec,
                       objective_moving_average=float(np.mean(objectives[-int(o["window"]):])),
                       seconds=time.perf_counter() - t_start)
            if o["track_target_accuracy"] and ctx["yt_te"] is not None:
                A, A_bar, b, B, _ = par.numpy_all()
                P = ctx["h_R"].predict_proba((ctx["Xt_te"] - b) @ A_bar.T) @ B.T
                rec["target_accuracy"] = float((P.argmax(1) == ctx["yt_te"]).mean())
            history.append(rec)
        if step in eval_steps:
            history_eval.append(dict(step=step, **_evaluate(ctx, *par.numpy_all())))
        if converged:
            break
    ctx["fit_log"].append(dict(steps_used=len(objectives), converged=converged))
    return par.numpy_all()


def _fit_converged(objectives, o) -> bool:
    """The stopping rule of the alternating fit. J is a minibatch objective: after ``min_steps``
    steps, stop when the means of J over the last two windows of ``window`` steps differ by at
    most ``tol`` times their size or by at most twice the standard error of that difference (the
    change can no longer be told from the minibatch noise):
    ``|m_t - m_{t-w}| <= max(tol |m_t|, 2 s_t sqrt(2 / w))``, ``m`` the window's mean, ``s_t`` the
    standard deviation of J in the LAST window (the earlier one may hold the start's transient)."""
    w = int(o["window"])
    if len(objectives) < max(int(o["min_steps"]), 2 * w):
        return False
    now, before = np.asarray(objectives[-w:]), np.asarray(objectives[-2 * w:-w])
    noise = 2.0 * now.std(ddof=1) * np.sqrt(2.0 / w) if w > 1 else 0.0
    return bool(abs(now.mean() - before.mean()) <= max(float(o["tol"]) * abs(now.mean()), noise))


def _transferred_labels(h_R, X, A_bar, b, B, prior=None) -> np.ndarray:
    """``argmax_i [B h_R(A_bar (x - b))]_i`` for standardised target features ``X`` (N x d).

    ``prior`` (K_T): instead of the argmax, the balanced assignment that gives class i a share
    ``prior_i`` of the points (exact OT between the points and the classes, cost -log h_T(x)_i).
    """
    Q = h_R.predict_proba((X - b) @ A_bar.T) @ B.T
    return Q.argmax(1) if prior is None else _balanced_labels(Q, prior)


def _balanced_labels(Q, prior) -> np.ndarray:
    """Labels of ``N`` points with class probabilities ``Q`` (N x K) giving class i the share
    ``prior[i]``: exact OT between the points and the classes with cost ``-log Q``."""
    plan = emd_plan(np.full(len(Q), 1.0 / len(Q)), np.asarray(prior, dtype=np.float64),
                    -np.log(np.maximum(Q, 1e-300)))
    return plan.argmax(1)


def _fit_without_labels(ctx, rng, history, history_eval):
    """The pseudo-label variant (the target labels are unknown, K_T is given).

    1. label-free start (V2): the fit with ONE target class, so that the label cost, the label
       mismatch and PM vanish and only the feature map (and D, through L_C) learns;
    2. B's start from the target's reference-class posteriors under that map (k-means into K_T
       groups, :func:`pseudo_labels.label_map_from_posteriors`); pseudo-labels = argmax B h_R(...);
    3. self-training (V1): the usual fit from there, re-labelling the target and re-estimating its
       prior every ``pseudo_refresh`` steps. The target test set is labelled at the end, by the same rule.
    Updates ``ctx`` (yt, yt_te, pi_T) and returns ``(A, A_bar, b, B, D)``.
    """
    from .pseudo_labels import label_map_from_posteriors

    o, K_R, K_T, h_R, Xt = ctx["opts"], ctx["K_R"], ctx["K_T"], ctx["h_R"], ctx["Xt"]
    warm_steps = int(o["steps"]) // 2 if o["pseudo_warmup_steps"] is None else int(o["pseudo_warmup_steps"])
    # (Adam on every parameter: the closed-form D would put all mass on one class with one target class)
    warm = dict(ctx, yt=np.zeros(len(Xt), dtype=np.int64), yt_te=None, K_T=1, pi_T=np.ones(1),
                opts=dict(o, steps=warm_steps, eval_steps=(), update="adam"))
    A, A_bar, b, _, D = _learn(warm, rng, np.zeros((1, K_R)), ctx["pi_R"].copy(), None, history, [])
    for row in history:
        row["stage"] = "label-free start"
    # the k-means groups are the first pseudo-labels (argmax B0 h_R would favour the largest group
    # when h_R's posteriors are flat, as the gradient-norm penalty makes them)
    B0, yt = label_map_from_posteriors(h_R.predict_proba((Xt - b) @ A_bar.T), K_T, seed=ctx["seed"])
    prior = np.bincount(yt, minlength=K_T) / len(yt)
    ctx.update(yt=yt, yt_te=None, pi_T=prior, pseudo_prior=prior if o["pseudo_assign"] == "balanced" else None)
    n_warm = len(history)
    A, A_bar, b, B, D = _learn(ctx, rng, np.log(B0 + o["b_init_eps"]), np.log(D), None, history, history_eval,
                               init=(A, A_bar, b), refresh=int(o["pseudo_refresh"] or 0))
    for row in history[n_warm:]:
        row["stage"] = "self-training"
    yt = _transferred_labels(h_R, Xt, A_bar, b, B, ctx["pseudo_prior"])
    pi_T = np.bincount(yt, minlength=K_T) / len(yt)
    # the test set is labelled by the same rule (argmax could leave a class empty there: W fails)
    ctx.update(yt=yt, pi_T=pi_T, yt_te=_transferred_labels(h_R, ctx["Xt_te"], A_bar, b, B,
                                                          pi_T if ctx["pseudo_prior"] is not None else None))
    return A, A_bar, b, B, D


def _device(name):
    """``None``: the GPU when there is one, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batch_class_weights(rng, ref_idx, yr, ce_tr, N, pi_R, v_pool):
    """Small-scale L_C estimate of the original code: v_j = sum of r CE values of class j / (pi^R_j r K_R)
    on a class-balanced sub-batch of a PriorSample(pi^R) batch; ``v_pool`` if a class is absent."""
    K_R = len(ref_idx)
    bi = prior_sample(rng, ref_idx, N, pi_R)
    counts = np.bincount(yr[bi], minlength=K_R)
    r = int(counts.min())
    if r == 0:
        return v_pool
    sums = np.array([ce_tr[bi[yr[bi] == j][:r]].sum() for j in range(K_R)])
    return sums / (pi_R * r * K_R)


class _Params:
    """The learned transformations (float64, on ``device``) and their Adam optimiser.

    ``A``, ``A_bar`` (d x d), ``b`` (d); learned_all: ``beta`` (K_T x K_R), ``delta`` (K_R) with
    ``B = colsoftmax(beta)``, ``D = softmax(delta)``; learned_a: ``B``, ``D`` fixed.
    """

    def __init__(self, d, beta0, delta0, fixed, o, device, fused, init=None, adam_beta_delta=True):
        f64 = dict(dtype=torch.float64, device=device)
        self.device = device
        A0, A_bar0, b0 = init if init is not None else (np.eye(d), np.eye(d), np.zeros(d))
        self.A = torch.tensor(A0, **f64).requires_grad_(True)
        self.A_bar = torch.tensor(A_bar0, **f64).requires_grad_(True)
        self.b = torch.tensor(b0, **f64).requires_grad_(True)
        self.learned = fixed is None
        if self.learned:
            self.beta = torch.tensor(beta0, **f64).requires_grad_(True)
            self.delta = torch.tensor(delta0, **f64).requires_grad_(True)
            groups = [dict(params=[self.A, self.A_bar, self.b, self.beta], lr=o["lr"]),
                      dict(params=[self.delta], lr=o["lr_delta"])]
        else:
            self.B_fix, self.D_fix = (torch.tensor(x, **f64) for x in fixed)
            self.fixed = fixed
            groups = [dict(params=[self.A, self.A_bar, self.b], lr=o["lr"])]
        if self.learned and not adam_beta_delta:  # update="closed_form": B and D are set from the plans
            groups = [dict(params=[self.A, self.A_bar, self.b], lr=o["lr"])]
        self.opt = torch.optim.Adam(groups, betas=tuple(o["adam_betas"]), eps=o["adam_eps"], fused=fused)

    def B(self):
        return _colsoftmax(self.beta) if self.learned else self.B_fix

    def D(self):
        return torch.softmax(self.delta, 0) if self.learned else self.D_fix

    def numpy_B_D(self):
        if not self.learned:
            return self.fixed
        with torch.no_grad():
            return self.B().cpu().numpy(), self.D().cpu().numpy()

    def numpy_all(self):
        """Copies of ``(A, A_bar, b, B, D)`` as float64 numpy arrays."""
        B, D = self.numpy_B_D()
        return tuple(x.detach().cpu().numpy().copy() for x in (self.A, self.A_bar, self.b)) + (B.copy(), D.copy())


def _label_terms(par, gamma, v, pi_T):
    """Small terms of J as tensors: label term sum_ji Gamma_ji ||B e_j - e_i||^2
    (class level), H, L_C = D . v and PM."""
    B, D = par.B(), par.D()
    lab = (gamma * _label_sq_cost(B)).sum()
    H = _entropy(B, D)
    LC = (D * v).sum()
    PM = ((pi_T - B @ D) ** 2).sum()
    return lab, H, LC, PM


class _ReferenceStep:
    """The original step: full point-level plan, O(nmd) squared-distance term, autograd everywhere."""

    def __init__(self, ctx, par):
        self.par, self.o, self.K_T = par, ctx["opts"], ctx["K_T"]
        self.pi_T = torch.from_numpy(ctx["pi_T"])
        self.I = torch.eye(par.A.shape[0], dtype=torch.float64)

    def new_batches(self, z, yk, t, sl, B_now):
        self.z, self.t, self.yk, self.sl = torch.from_numpy(z), torch.from_numpy(t), yk, sl
        self.n, self.m = len(yk), len(sl)

    def step(self, v):
        """One Adam step; returns J and its terms at the parameters before the step."""
        par, o = self.par, self.o
        Lam, lwd, lpm, lic = (float(o[k]) for k in ("Lambda", "lambda_wd", "lambda_pm", "lambda_ic"))
        A, A_bar, b, z, t = par.A, par.A_bar, par.b, self.z, self.t
        u = z @ A.T + b
        Bg, Dg = par.B(), par.D()
        q = Bg[:, torch.from_numpy(self.yk)].T  # n x K_T soft transformed labels
        with torch.no_grad():
            E = np.eye(self.K_T)[self.sl]
            M = euclidean_cost(u.detach().numpy(), t.numpy()) + Lam * euclidean_cost(q.detach().numpy(), E)
        Pi = torch.from_numpy(emd_plan(None, None, M))
        sq = (u * u).sum(1)[:, None] + (t * t).sum(1)[None, :] - 2.0 * u @ t.T
        feat = (Pi * sq).sum()
        lab_sq = (q * q).sum(1)[:, None] - 2.0 * q[:, torch.from_numpy(self.sl)] + 1.0
        lab = (Pi * lab_sq).sum()
        H = _entropy(Bg, Dg)
        LC = (Dg * v).sum()
        PM = ((self.pi_T - Bg @ Dg) ** 2).sum()
        IC = ((A @ A_bar - self.I) ** 2).sum() + ((A_bar @ A - self.I) ** 2).sum()
        J = H + LC + lwd * (feat + Lam * lab) + lpm * PM + lic * IC
        par.opt.zero_grad()
        J.backward()
        par.opt.step()
        return dict(objective=J.item(), feature_term=feat.item(), label_term=lab.item(), H=H.item(),
                    LC=LC.item(), PM=PM.item(), IC=IC.item())


class _FastStep:
    """The same step by the exact reformulations of the module doc.

    The plan enters only through its row masses ``a`` (n), barycentric sums ``Pt = Pi t`` (n x d)
    and class-level block masses ``gamma`` (K_R x K_T). With ``ot_every = k > 1`` plan and batches
    are kept for k steps and the feature term uses the plan's moments (no O(n d^2) work per step).
    ``precision="float32"``: the d x d algebra and the gradients of A, A_bar, b in float32 (costs,
    plan and Adam stay float64).
    """

    def __init__(self, ctx, par):
        o = self.o = ctx["opts"]
        self.par, self.K_R, self.K_T = par, ctx["K_R"], ctx["K_T"]
        self.dev = par.device
        self.alg = torch.float32 if o["precision"] == "float32" else torch.float64
        self.pi_T = torch.from_numpy(ctx["pi_T"]).to(self.dev)
        self.I = torch.eye(par.A.shape[0], dtype=self.alg, device=self.dev)
        self.moments_needed = int(o["ot_every"]) > 1
        self.fresh = False

    def new_batches(self, z, yk, t, sl, B_now):
        """Solve the plan for the new batches at the current (A, b, B) and keep what the steps need."""
        par, o, dev = self.par, self.o, self.dev
        self.n, self.m = n, m = len(yk), len(sl)
        self.z = torch.from_numpy(z).to(dev)
        with torch.no_grad():
            u = (self.z @ par.A.T + par.b).cpu().numpy()
        Lc = np.sqrt(np.maximum(_label_sq_cost(torch.from_numpy(B_now)).numpy(), 0.0))
        # a fixed permutation B has tied label costs (degenerate class-level LP): full OT
        if o["ot"] == "class" and par.learned:
            rows, cols, vals, gamma = class_structured_plan(u, yk, t, sl, Lc)
        else:
            P = emd_plan(None, None, euclidean_cost(u, t) + float(o["Lambda"]) * Lc[np.ix_(yk, sl)])
            rows, cols = np.nonzero(P)
            vals = P[rows, cols]
            gamma = np.zeros((self.K_R, self.K_T))
            np.add.at(gamma, (yk[rows], sl[cols]), vals)
        Pi = csr_matrix((vals, (rows, cols)), shape=(n, m))
        self.a = torch.from_numpy(np.asarray(Pi.sum(1))[:, 0]).to(dev)
        self.Pt = torch.from_numpy(Pi @ t).to(dev)  # sum_l Pi_kl t_l
        self.gamma = torch.from_numpy(gamma).to(dev)
        self.const = float((np.asarray(Pi.sum(0))[0] * (t * t).sum(1)).sum())  # sum_l b_l ||t_l||^2
        self.u_fresh = torch.from_numpy(u).to(dev)
        if self.moments_needed:
            self.moments = _plan_moments(self.z.to(self.alg), self.a.to(self.alg), self.Pt.to(self.alg))

    def step(self, v):
        """One Adam step; returns J and its terms at the parameters before the step."""
        par, o = self.par, self.o
        Lam, lwd, lpm, lic = (float(o[k]) for k in ("Lambda", "lambda_wd", "lambda_pm", "lambda_ic"))
        feat = None
        with torch.no_grad():
            A, A_bar, b = (x.detach().to(self.alg) for x in (par.A, par.A_bar, par.b))
            if self.u_fresh is not None:  # the plan was solved at these parameters: use u
                R = (self.a[:, None] * self.u_fresh - self.Pt).to(self.alg)  # a_k (u_k - t_hat_k)
                gA, gb = R.T @ self.z.to(self.alg), R.sum(0)
                feat = self._feature_term_at(self.u_fresh)
            else:
                gA, gb = _feature_grads(A, b, self.moments)
            gA *= 2.0 * lwd
            gb *= 2.0 * lwd
            E1 = A @ A_bar - self.I
            E2 = A_bar @ A - self.I
            gA += (2.0 * lic) * (E1 @ A_bar.T + A_bar.T @ E2)
            gAb = (2.0 * lic) * (A.T @ E1 + E2 @ A.T)
        par.opt.zero_grad()
        par.A.grad, par.A_bar.grad, par.b.grad = (g.to(torch.float64) for g in (gA, gAb, gb))
        lab, H, LC, PM = _label_terms(par, self.gamma, v, self.pi_T)
        if par.learned:
            (H + LC + lwd * Lam * lab + lpm * PM).backward()
        if feat is None:
            with torch.no_grad():
                feat = self._feature_term_at(self.z @ A.T.to(torch.float64) + b.to(torch.float64))
        IC = float((E1 ** 2).sum() + (E2 ** 2).sum())
        rec = dict(objective=(H + LC + lwd * (feat + Lam * lab) + lpm * PM + lic * IC).item(),
                   feature_term=feat, label_term=lab.item(), H=H.item(), LC=LC.item(), PM=PM.item(), IC=IC)
        par.opt.step()
        self.u_fresh = None
        return rec

    def _feature_term_at(self, u):
        """sum_kl Pi_kl ||u_k - t_l||^2 = sum_k a_k ||u_k||^2 - 2 sum_k u_k . Pt_k + sum_l b_l ||t_l||^2."""
        return float((self.a * (u * u).sum(1)).sum() - 2.0 * (u * self.Pt).sum()) + self.const


class _ClosedFormStep(_FastStep):
    """The fast step with ``update="closed_form"`` (the kit's default): A, A_bar and b take the
    usual Adam step; B and D jump to the minimisers of J's dominant term, the label term
    ``Lambda sum_ji gamma_ji ||B e_j - e_i||^2``, given the recent plans.

    The plans' class-level block masses ``gamma`` (K_R x K_T) are averaged with weight
    ``max(1/t, rate)`` for the t-th plan (``rate = closed_form_rate``: a running mean, then an
    exponential one). Then

    * ``B[:, j] = gamma[j, :] / sum_i gamma[j, i]``, the plans' conditional class masses: the
      minimiser of the label term for fixed plans (a class absent from the plans keeps its column);
    * ``D_j = sum of pi^T_i over the target classes i matched to reference class j``, the
      matching being the one-to-one assignment of classes that keeps the most plan mass
      (:func:`_class_matching`): the reference prior under which the batches' class proportions
      match the target's, so that the next plans need not split a class (the label term's
      minimiser through the batches; the original's D takes small Adam steps on H + L_C + PM only).

    Both are stored as logits (``log(x + 1e-12)``); a reference class no target class picks gets
    ``D_j ~ 1e-12`` and leaves the batches.
    """

    FLOOR = 1e-12

    def __init__(self, ctx, par):
        super().__init__(ctx, par)
        self.gamma_avg, self.t = None, 0

    def new_batches(self, z, yk, t, sl, B_now):
        super().new_batches(z, yk, t, sl, B_now)
        self.t += 1
        rate = max(1.0 / self.t, float(self.o["closed_form_rate"]))
        self.gamma_avg = self.gamma if self.gamma_avg is None else (1 - rate) * self.gamma_avg + rate * self.gamma

    def step(self, v):
        """J and its terms before the update (as :meth:`_FastStep.step`, whose Adam step leaves
        beta and delta out here), then B and D in closed form."""
        rec = super().step(v)
        par = self.par
        if par.learned:
            with torch.no_grad():
                g = self.gamma_avg
                cols = g.T  # K_T x K_R
                mass = cols.sum(0, keepdim=True)
                B = torch.where(mass > 0, cols / mass.clamp_min(1e-300), _colsoftmax(par.beta))
                par.beta.copy_(torch.log(B + self.FLOOR))
                match = torch.from_numpy(_class_matching(g.cpu().numpy())).to(g.device)
                D = torch.zeros_like(par.delta).index_add_(0, match, self.pi_T)
                par.delta.copy_(torch.log(D + self.FLOOR))
        return rec


def _class_matching(gamma) -> np.ndarray:
    """For block masses ``gamma`` (K_R x K_T), the reference class matched to each target class
    (K_T,): the one-to-one assignment with the largest total mass (Hungarian algorithm); when
    K_T > K_R the unassigned target classes take the reference class of their largest block."""
    match = gamma.argmax(0)
    rows, cols = linear_sum_assignment(gamma, maximize=True)
    match[cols] = rows
    return match


def _plan_moments(Z, a, Pt):
    """Moments of a fixed plan (barycentric form of the feature term): ``S = Z^T diag(a) Z``, ``T = Pt^T Z`` (d x d),
    ``s = Z^T a``, ``p = Pt^T 1`` (d), ``mass = sum a`` for a batch ``Z`` (n x d)."""
    return dict(S=(Z * a[:, None]).T @ Z, T=Pt.T @ Z, s=Z.T @ a, p=Pt.sum(0), mass=a.sum())


def _feature_grads(A, b, mom):
    """Half-gradients of sum_k a_k ||A z_k + b - t_hat_k||^2 from the plan's moments:
    ``A S + b s^T - T`` (d x d) and ``A s + mass b - p`` (d)."""
    return A @ mom["S"] + torch.outer(b, mom["s"]) - mom["T"], A @ mom["s"] + mom["mass"] * b - mom["p"]


def _evaluate(ctx, A, A_bar, b, B, D) -> dict:
    """Every term as the original code computes it, plus the theorem's class-mixture W and companions."""
    o = ctx["opts"]
    h_R, pi_R, pi_T = ctx["h_R"], ctx["pi_R"], ctx["pi_T"]
    Xr_te, yr_te, Xt_te, yt_te = ctx["Xr_te"], ctx["yr_te"], ctx["Xt_te"], ctx["yt_te"]
    K_T = ctx["K_T"]
    # (a) re-weighted reference loss on the reference TEST set, train prior in C (as the original code)
    LC = float((D / pi_R * ctx["S_te"]).sum() / len(yr_te))
    # (b) label mismatch, 0 log 0 = 0
    H = float(-(D * np.where(B > 0, B * np.log(np.where(B > 0, B, 1.0)), 0.0).sum(0)).sum())
    # (c) W as the code: hard labels, plain class average
    U = Xr_te @ A.T + b
    hard = B.argmax(0)[yr_te]
    W, _, failed = classwise_w1_code(U, hard, Xt_te, yt_te)
    # (d) tau: max input-gradient norm in the pre-image space of h_R (as the original code)
    eval_rng = np.random.default_rng([ctx["seed"], 7919])
    X_ref = (Xr_te @ A.T) @ A_bar.T  # A_bar (A z + b - b)
    X_tgt = (Xt_te - b) @ A_bar.T
    X = np.concatenate([X_ref, X_tgt, X_tgt])
    y_tau = np.concatenate([eval_rng.integers(0, K_T, len(X_ref) + len(X_tgt)), yt_te])
    grads = (_tau_grads_autograd if ctx["schedule"] == "reference" else _tau_grads_closed)(h_R.W, h_R.c, B, X, y_tau)
    gn = np.linalg.norm(grads, axis=1)
    tau = float(gn.max())
    W_r = float(np.round(W, 3))
    dm = tau * W_r
    value = LC + H + dm
    # transferred classifier on target test (probabilities clipped at 1e-7, as the code)
    Pt = h_R.predict_proba(X_tgt) @ B.T
    acc = float((Pt.argmax(1) == yt_te).mean())
    ce = float(-np.log(np.maximum(Pt[np.arange(len(yt_te)), yt_te], 1e-7)).mean())
    # same classifier on transformed reference test, soft labels B[:, y]
    Pr = h_R.predict_proba(X_ref) @ B.T
    Q = B[:, yr_te].T
    soft_ce = float(-(Q * np.log(np.maximum(Pr, 1e-7))).sum(1).mean())
    ref_acc = float((Pr.argmax(1) == hard).mean())
    I = np.eye(A.shape[0])
    terms = dict(
        value=value, value_wasserstein="code", reweighted_reference_loss=LC, label_mismatch=H, distribution_mismatch=dm,
        wasserstein=float(W), wasserstein_rounded=W_r, wasserstein_failed=bool(failed), tau=tau,
        tau_min=float(gn.min()), tau_mean=float(gn.mean()),
        tau_input_space=tau * float(np.linalg.norm(A_bar, 2)),
        reweighted_plus_label=LC + H,
        transformed_reference_soft_ce=soft_ce, transformed_reference_accuracy=ref_acc,
        alternative_bound=soft_ce + dm,
        inverse_consistency=float(((A @ A_bar - I) ** 2).sum() + ((A_bar @ A - I) ** 2).sum()),
        prior_mismatch=float(((pi_T - B @ D) ** 2).sum()),
        reference_test_accuracy=h_R.accuracy(Xr_te, yr_te),
        reference_test_cross_entropy=float(ctx["S_te"].sum() / len(yr_te)),
        target_accuracy=acc, target_cross_entropy=ce,
    )
    theorem_value = ctx["pseudo"] and o["pseudo_wasserstein"] == "theorem"  # the value's W: the theorem's
    if o["theorem_wasserstein"] or theorem_value:
        Wt, _ = classwise_w1_theorem(U, yr_te, Xt_te, yt_te, B, D, pi_T)
        terms.update(wasserstein_theorem=Wt, value_theorem=LC + H + tau * Wt)
    if theorem_value:  # (never fails, unlike the code's W)
        terms.update(value=terms["value_theorem"], distribution_mismatch=tau * terms["wasserstein_theorem"],
                     value_wasserstein="theorem")
    return terms
