"""The fit of the transformations R -> T as visible steps (the paper's alternating algorithm; docs/method.md §4).

:func:`~taskrel_utils.method.relatedness.task_relatedness` is a short orchestration of these functions;
a notebook can run the same iterations by hand and get the same numbers::

    state = prepare(ref_train, ref_test, target_train, target_test, seed=0, stop="fixed")
    tr = start_fit(state, initial_transformations(state))
    for _ in range(5):
        ref_idx, tgt_idx = draw_batches(state, tr)         # PriorSample(D) and PriorSample(pi^T)
        plan = transport_plan(state, tr, ref_idx, tgt_idx)  # exact OT on the fit's cost
        terms = gradient_step(state, tr)                    # J and its terms, then one update
    A, A_inv, b, B, D = tr.current()
    bound = evaluate_bound(state, A, A_inv, b, B, D)        # taskrel_utils.method.bound

(for bit-identical numbers with the orchestration, run the loop inside ``with thread_limit(state):``).
Each step: draw a reference batch with class proportions ``D`` and a target batch with the target
prior, solve the transport plan between the mapped reference batch and the target batch (cost
``||A z + b - t|| + Lambda ||B e_y - e_s||``), then, with the plan fixed, update the
transformations to lower ``J = H + L_C + lambda_wd (feature term + Lambda label term) +
lambda_pm PM + lambda_ic IC`` (label mismatch, re-weighted reference loss, the plan's squared
costs, prior mismatch, inverse consistency).
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..core.checks import as_pair, as_seed, check_classes
from ..core.errors import TaskrelError, UnknownNameError
from .fit_engine import ClosedFormStep, FastStep, Params, ReferenceStep, device_for
from .fit_options import MODES, resolve_options
from .reference_classifier import ReferenceClassifier, fit_reference_model
from ..core.numerics import euclidean, standard_scaler
from .transport import emd_plan

__all__ = ["FitState", "Start", "Transformations", "TransportPlan", "prepare", "initial_transformations",
           "start_fit", "draw_batches", "transport_plan", "class_loss_weights", "objective_terms",
           "gradient_step", "fit_converged", "fit_transformations", "fit_without_labels", "prior_sample",
           "thread_count", "thread_limit", "SMALL_FEATURE_DIM"]

#: below this feature dimension the fit runs on one CPU thread by default: its d x d algebra is
#: too small for a second thread to pay for the synchronisation (on a busy machine it only waits)
SMALL_FEATURE_DIM = 384


@dataclass
class FitState:
    """Everything a fit reads: the standardised data, h_R and its losses, the priors and options.

    ``Xr``, ``Xr_te`` (reference train / test, standardised by ``reference_scaler``), ``Xt``,
    ``Xt_te`` (target, by ``target_scaler``); labels ``yr``, ``yr_te``, ``yt``, ``yt_te`` (target
    ones None without target labels until the fit labels them); ``pi_R`` (K_R), ``pi_T`` (K_T)
    the train priors; ``ce_train`` the per-sample CE of h_R on the reference train set and
    ``class_ce_train`` / ``class_ce_test`` its per-class sums (K_R); ``rng`` the fit's one random
    stream (starts, batches, class weights). ``history`` / ``history_eval`` / ``fit_log`` collect
    the records of :func:`fit_transformations`.
    """

    Xr: np.ndarray
    yr: np.ndarray
    Xr_te: np.ndarray
    yr_te: np.ndarray
    Xt: np.ndarray
    yt: np.ndarray | None
    Xt_te: np.ndarray
    yt_te: np.ndarray | None
    reference_scaler: StandardScaler
    target_scaler: StandardScaler
    h_R: ReferenceClassifier
    K_R: int
    K_T: int
    pi_R: np.ndarray
    pi_T: np.ndarray | None
    ce_train: np.ndarray
    class_ce_train: np.ndarray
    class_ce_test: np.ndarray
    mode: str
    schedule: str
    scale: str
    seed: int
    options: dict
    rng: np.random.Generator
    pseudo: bool = False
    pseudo_prior: np.ndarray | None = None
    ref_class_index: list = field(default_factory=list)
    target_class_index: list = field(default_factory=list)
    history: list = field(default_factory=list)
    history_eval: list = field(default_factory=list)
    fit_log: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    def set_target_labels(self, yt, yt_te=None) -> None:
        """New target train labels (and their prior and class index), e.g. fresh pseudo-labels."""
        self.yt, self.yt_te = yt, yt_te
        self.pi_T = np.bincount(yt, minlength=self.K_T) / len(yt)
        self.target_class_index = [np.flatnonzero(yt == i) for i in range(self.K_T)]


@dataclass
class Start:
    """Where the fit starts: ``A``, ``A_inv`` (d x d), ``b`` (d) and either the logits ``beta``
    (K_T x K_R, ``B = colsoftmax(beta)``) and ``delta`` (K_R, ``D = softmax(delta)``) of a learned
    label map, or a fixed ``B_fixed`` / ``D_fixed`` (modes learned_a and fixed_all)."""

    A: np.ndarray
    A_inv: np.ndarray
    b: np.ndarray
    beta: np.ndarray | None = None
    delta: np.ndarray | None = None
    B_fixed: np.ndarray | None = None
    D_fixed: np.ndarray | None = None


@dataclass
class TransportPlan:
    """The plan between a reference batch (train indices ``ref_idx``, n) and a target batch
    (``tgt_idx``, m): ``plan[rows[k], cols[k]] = mass[k]``, and its class-level block masses
    ``class_mass`` (K_R x K_T)."""

    ref_idx: np.ndarray
    tgt_idx: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    mass: np.ndarray
    class_mass: np.ndarray

    def dense(self) -> np.ndarray:
        """The plan as an n x m array."""
        P = np.zeros((len(self.ref_idx), len(self.tgt_idx)))
        P[self.rows, self.cols] = self.mass
        return P


class Transformations:
    """The transformations being learned, with their optimiser and the current batch pair's plan.

    :meth:`current` gives numpy copies of ``(A, A_inv, b, B, D)``.
    """

    def __init__(self, state: FitState, start: Start):
        options = state.options
        reference = state.schedule == "reference"
        closed = not reference and options["update"] == "closed_form"
        device = torch.device("cpu") if reference else device_for(options["device"])
        # fused Adam: one kernel per tensor
        self.params = Params(start, options, device, fused=None if reference else True, adam_beta_delta=not closed)
        engine = ReferenceStep if reference else (ClosedFormStep if closed else FastStep)
        self.engine = engine(state, self.params)
        self.plan: TransportPlan | None = None

    @property
    def device(self):
        return self.params.device

    def current(self) -> tuple:
        """Copies of ``(A, A_inv, b, B, D)`` as float64 numpy arrays."""
        return self.params.numpy_all()


# ------------------------------------------------------------------------------------------- prepare
def _check_inputs(ref_train, ref_test, target_train, target_test, n_target_classes, mode):
    """Validated raw features and labels, ``K_R``, ``K_T`` and whether the target is unlabelled."""
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
    if not pseudo and K_T > K_R:
        raise TaskrelError(f"the target has {K_T} classes, the reference only {K_R}: the bound's W (as the original "
                           f"code computes it) sends each reference class to one target class, so target classes "
                           f"beyond {K_R} get no reference points and W fails. Use a reference task with at least "
                           f"{K_T} classes, or merge target classes")
    return (Zr, yr), (Zr_te, yr_te), (Zt, yt), (Zt_te, yt_te), K_R, K_T, pseudo


def prepare(ref_train, ref_test, target_train, target_test, n_target_classes=None, *, mode="learned_all",
            schedule="fast", seed=0, scale="small", **options) -> FitState:
    """Validate the inputs and options, standardise each domain on its own train split, train (or
    take) h_R and its losses: the :class:`FitState` of one fit. Arguments as
    :func:`~taskrel_utils.method.relatedness.task_relatedness` (raw ``(features, labels)`` pairs)."""
    if mode not in MODES:
        raise UnknownNameError("mode", mode, MODES)
    seed = as_seed(seed)
    opts = resolve_options(scale, schedule, options)  # checks scale, schedule and the options
    (Zr, yr), (Zr_te, yr_te), (Zt, yt), (Zt_te, yt_te), K_R, K_T, pseudo = _check_inputs(
        ref_train, ref_test, target_train, target_test, n_target_classes, mode)
    t0 = time.perf_counter()
    s_R, h_R = fit_reference_model((Zr, yr), (Zr_te, yr_te), seed=seed, scale=scale, schedule=schedule,
                                   options=opts["reference_classifier_options"], classifier=opts["reference_classifier"])
    t_href = time.perf_counter() - t0
    s_T = standard_scaler(Zt)
    Xr, Xr_te = s_R.transform(Zr), s_R.transform(Zr_te)
    ce_tr, ce_te = h_R.cross_entropy(Xr, yr), h_R.cross_entropy(Xr_te, yr_te)
    state = FitState(
        Xr=Xr, yr=yr, Xr_te=Xr_te, yr_te=yr_te, Xt=s_T.transform(Zt), yt=yt, Xt_te=s_T.transform(Zt_te),
        yt_te=yt_te, reference_scaler=s_R, target_scaler=s_T, h_R=h_R, K_R=K_R, K_T=K_T,
        pi_R=np.bincount(yr, minlength=K_R) / len(yr), pi_T=None, ce_train=ce_tr,
        class_ce_train=np.bincount(yr, weights=ce_tr, minlength=K_R),
        class_ce_test=np.bincount(yr_te, weights=ce_te, minlength=K_R),
        mode=mode, schedule=schedule, scale=scale, seed=seed, options=opts, rng=np.random.default_rng(seed),
        pseudo=pseudo, ref_class_index=[np.flatnonzero(yr == j) for j in range(K_R)],
        timings=dict(reference_classifier=t_href))
    if not pseudo:
        state.set_target_labels(yt, yt_te)
    return state


# ------------------------------------------------------------------------------------------- start
def class_means(X, y, K) -> np.ndarray:
    """Class means (K x d) of features ``X`` (N x d) with labels ``y``."""
    return np.stack([X[y == k].mean(0) for k in range(K)])


def initial_transformations(state: FitState) -> Start:
    """The fit's start (option ``b_init`` for B, ``a_init`` for A and b; D starts from pi^R).

    learned_all: ``beta`` uniform in [0, 1) (``b_init="random"``, the original) or
    ``log(B0 + b_init_eps)`` with ``B0`` the conditional class masses of the class-level OT between
    the class means; ``delta = pi^R`` (the original sets D's logits to pi^R's values).
    learned_a / fixed_all: B a random permutation, D = pi^R. ``a_init="class_means"`` (not
    fixed_all): :func:`class_mean_map`; else A = I, b = 0.
    """
    if state.pseudo:
        raise TaskrelError("without target labels the fit starts from a label-free fit: use fit_without_labels")
    options, rng, K_R, K_T = state.options, state.rng, state.K_R, state.K_T
    Xr, yr, Xt, yt, pi_R = state.Xr, state.yr, state.Xt, state.yt, state.pi_R
    d = Xr.shape[1]
    start = Start(A=np.eye(d), A_inv=np.eye(d), b=np.zeros(d))
    if state.mode == "learned_all":
        if options["b_init"] == "random":
            start.beta = rng.uniform(0.0, 1.0, (K_T, K_R))
        else:
            G = emd_plan(pi_R, state.pi_T, euclidean(class_means(Xr, yr, K_R), class_means(Xt, yt, K_T)))
            start.beta = np.log(G.T / G.T.sum(0, keepdims=True) + options["b_init_eps"])
        start.delta = pi_R.copy()
    else:
        perm = rng.permutation(K_R)
        start.B_fixed = np.zeros((K_T, K_R))
        start.B_fixed[perm, np.arange(K_R)] = 1.0
        start.D_fixed = pi_R.copy()
        G = (start.B_fixed * start.D_fixed).T  # the class matching of the fixed permutation
    if options["a_init"] == "class_means" and state.mode != "fixed_all":
        if state.mode == "learned_all" and options["b_init"] != "class_means":
            raise TaskrelError("a_init='class_means' maps the class means matched by b_init='class_means'; "
                               "with b_init='random' use a_init='identity' (the original start)")
        start.A, start.b = class_mean_map(class_means(Xr, yr, K_R), class_means(Xt, yt, K_T), G)
        start.A_inv = np.linalg.inv(start.A)
    return start


def class_mean_map(mu_R, mu_T, G, ridge=1e-6):
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


def start_fit(state: FitState, start: Start) -> Transformations:
    """The learnable :class:`Transformations` at ``start``, with their optimiser and step engine."""
    return Transformations(state, start)


# ------------------------------------------------------------------------------------------- one step
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


def draw_batches(state: FitState, tr: Transformations) -> tuple[np.ndarray, np.ndarray]:
    """A reference batch by PriorSample with class proportions ``D`` and a target batch by
    PriorSample with the target prior (``batch_size`` each at most): train indices ``(ref, tgt)``.

    With ONE target class (the label-free start of the pseudo-label variant) the target batch has
    as many points as the reference batch, which PriorSample's per-class floors leave a few points
    short of ``batch_size``: the plan between two equal uniform batches is an assignment, which an
    exact assignment solver finds faster than the network simplex finds a plan between unequal ones.
    """
    N = int(state.options["batch_size"])
    _, D = tr.params.numpy_B_D()
    ri = prior_sample(state.rng, state.ref_class_index, N, D)
    ti = prior_sample(state.rng, state.target_class_index, len(ri) if state.K_T == 1 else N, state.pi_T)
    if len(ri) == 0 or len(ti) == 0:
        raise TaskrelError(f"batch_size {N} is too small: PriorSample drew an empty batch")
    return ri, ti


def transport_plan(state: FitState, tr: Transformations, ref_idx, tgt_idx) -> TransportPlan:
    """The exact plan between the mapped reference batch and the target batch at the current
    transformations (cost ``||A z + b - t|| + Lambda ||B e_y - e_s||``; fast schedule with
    ``ot="class"``: solved per connected component of the class-level support). The following
    steps use it until the next call."""
    B, _ = tr.params.numpy_B_D()
    rows, cols, mass, gamma = tr.engine.new_batches(state.Xr[ref_idx], state.yr[ref_idx], state.Xt[tgt_idx],
                                                    state.yt[tgt_idx], B)
    tr.plan = TransportPlan(ref_idx, tgt_idx, rows, cols, mass, np.asarray(gamma))
    return tr.plan


def class_loss_weights(state: FitState, tr: Transformations) -> np.ndarray:
    """``v`` (K_R) of the re-weighted reference loss ``L_C = sum_j D_j v_j``: the per-class mean
    CE of h_R over pi^R_j (``reweighted_loss="pool"``: on the whole train pool), or the original's
    small-scale estimate on a class-balanced sub-batch (``"batch"``, drawn from ``state.rng``)."""
    v_pool = state.class_ce_train / (state.pi_R * len(state.yr))
    if tr.params.learned and state.options["reweighted_loss"] == "batch":
        return _batch_class_weights(state, v_pool)
    return v_pool


def _batch_class_weights(state, v_pool):
    """Small-scale L_C estimate of the original code: v_j = sum of r CE values of class j / (pi^R_j r K_R)
    on a class-balanced sub-batch of a PriorSample(pi^R) batch; ``v_pool`` if a class is absent."""
    yr, pi_R, K_R = state.yr, state.pi_R, state.K_R
    bi = prior_sample(state.rng, state.ref_class_index, int(state.options["batch_size"]), pi_R)
    counts = np.bincount(yr[bi], minlength=K_R)
    r = int(counts.min())
    if r == 0:
        return v_pool
    sums = np.array([state.ce_train[bi[yr[bi] == j][:r]].sum() for j in range(K_R)])
    return sums / (pi_R * r * K_R)


def objective_terms(state: FitState, tr: Transformations, v=None) -> dict:
    """J and its terms at the current transformations under the current plan, no update:
    ``objective`` (J), ``feature_term`` (sum Pi ||A z + b - t||^2), ``label_term`` (sum Pi
    ||B e_y - e_s||^2), ``H``, ``LC``, ``PM``, ``IC``. ``v``: class weights of L_C (default: the
    pool's, which draws nothing from the fit's random stream)."""
    v = state.class_ce_train / (state.pi_R * len(state.yr)) if v is None else v
    return tr.engine.terms(torch.from_numpy(np.asarray(v, dtype=np.float64)).to(tr.device))


def gradient_step(state: FitState, tr: Transformations, v=None) -> dict:
    """One update of the transformations with the plan fixed (Adam; ``update="closed_form"``:
    B and D set from the recent plans); returns :func:`objective_terms` before the update.
    ``v``: class weights of L_C (default :func:`class_loss_weights`)."""
    v = class_loss_weights(state, tr) if v is None else v
    return tr.engine.step(torch.from_numpy(v).to(tr.device))


def fit_converged(objectives, options) -> bool:
    """The stopping rule of the alternating fit. J is a minibatch objective: after ``min_steps``
    steps, stop when the means of J over the last two windows of ``window`` steps differ by at
    most ``tol`` times their size or by at most twice the standard error of that difference (the
    change can no longer be told from the minibatch noise):
    ``|m_t - m_{t-w}| <= max(tol |m_t|, 2 s_t sqrt(2 / w))``, ``m`` the window's mean, ``s_t`` the
    standard deviation of J in the LAST window (the earlier one may hold the start's transient)."""
    w = int(options["window"])
    if len(objectives) < max(int(options["min_steps"]), 2 * w):
        return False
    now, before = np.asarray(objectives[-w:]), np.asarray(objectives[-2 * w:-w])
    noise = 2.0 * now.std(ddof=1) * np.sqrt(2.0 / w) if w > 1 else 0.0
    return bool(abs(now.mean() - before.mean()) <= max(float(options["tol"]) * abs(now.mean()), noise))


# ------------------------------------------------------------------------------------------- threads
def thread_count(options: dict, d: int) -> int:
    """CPU threads of the fit: ``num_threads``, else 1 below :data:`SMALL_FEATURE_DIM`, else torch's."""
    return int(options["num_threads"] or (1 if d < SMALL_FEATURE_DIM else torch.get_num_threads()))


@contextmanager
def thread_limit(state: FitState):
    """Run the enclosed steps on :func:`thread_count` torch and BLAS threads."""
    n_threads = torch.get_num_threads()
    threads = thread_count(state.options, state.Xr.shape[1])
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads, user_api="blas"):
            yield threads
    finally:
        torch.set_num_threads(n_threads)


# ------------------------------------------------------------------------------------------- the loop
def fit_transformations(state: FitState, start: Start, relabel_every: int = 0) -> Transformations:
    """The alternating fit from ``start``: per step new batches and their plan (every
    ``ot_every`` steps on the fast schedule), then :func:`gradient_step`; ``steps`` steps
    (``stop="fixed"``) or until :func:`fit_converged`. Rows every ``log_every`` steps go to
    ``state.history``, full evaluations at ``eval_steps`` to ``state.history_eval``, the steps used
    to ``state.fit_log``. ``relabel_every = k``: every k steps the target is re-labelled by the
    current transferred classifier (pseudo-label variant, self-training)."""
    from .bound import evaluate_bound

    options = state.options
    tr = start_fit(state, start)
    ot_every = 1 if state.schedule == "reference" else int(options["ot_every"])
    eval_steps = set(int(s) for s in options["eval_steps"])
    steps, log_every = int(options["steps"]), int(options["log_every"] or 0)
    objectives, converged = [], False
    t_start = time.perf_counter()
    for step in range(steps):
        if relabel_every and step and step % relabel_every == 0:
            relabel_target(state, tr)
        if step % ot_every == 0:
            transport_plan(state, tr, *draw_batches(state, tr))
        rec = gradient_step(state, tr)
        objectives.append(rec["objective"])
        converged = options["stop"] == "converged" and fit_converged(objectives, options)
        if log_every and (step % log_every == 0 or step == steps - 1 or converged):
            state.history.append(_history_row(state, tr, step, rec, objectives, t_start))
        if step in eval_steps:
            state.history_eval.append(dict(step=step, **evaluate_bound(state, *tr.current())))
        if converged:
            break
    state.fit_log.append(dict(steps_used=len(objectives), converged=converged))
    return tr


def _history_row(state, tr, step, rec, objectives, t_start) -> dict:
    """One row of ``state.history``: J and its terms, J's moving average, time, target-test accuracy."""
    row = dict(step=step, n_ref=tr.engine.n, n_target=tr.engine.m, **rec,
               objective_moving_average=float(np.mean(objectives[-int(state.options["window"]):])),
               seconds=time.perf_counter() - t_start)
    if state.options["track_target_accuracy"] and state.yt_te is not None:
        A, A_inv, b, B, _ = tr.current()
        P = state.h_R.transferred_proba(state.Xt_te, A_inv, b, B)
        row["target_accuracy"] = float((P.argmax(1) == state.yt_te).mean())
    return row


def transferred_labels(h_R, X, A_inv, b, B, prior=None) -> np.ndarray:
    """``argmax_i [B h_R(A_inv (x - b))]_i`` for standardised target features ``X`` (N x d).

    ``prior`` (K_T): instead of the argmax, the balanced assignment that gives class i a share
    ``prior_i`` of the points (:func:`balanced_labels`).
    """
    Q = h_R.transferred_proba(X, A_inv, b, B)
    return Q.argmax(1) if prior is None else balanced_labels(Q, prior)


#: floor of the probabilities inside ``-log Q`` of :func:`balanced_labels` (a zero probability
#: becomes a very large but finite cost)
_PROBABILITY_FLOOR = 1e-300


def balanced_labels(Q, prior) -> np.ndarray:
    """Labels of ``N`` points with class probabilities ``Q`` (N x K) giving class i the share
    ``prior[i]``: exact OT between the points and the classes with cost ``-log Q``."""
    plan = emd_plan(np.full(len(Q), 1.0 / len(Q)), np.asarray(prior, dtype=np.float64),
                    -np.log(np.maximum(Q, _PROBABILITY_FLOOR)))
    return plan.argmax(1)


def relabel_target(state: FitState, tr: Transformations) -> None:
    """Re-label the target train set by the current transferred classifier (balanced when
    ``state.pseudo_prior`` is set) and re-estimate the target prior the steps use."""
    A, A_inv, b, B, _ = tr.current()
    state.set_target_labels(transferred_labels(state.h_R, state.Xt, A_inv, b, B, state.pseudo_prior), state.yt_te)
    tr.engine.pi_T = torch.from_numpy(state.pi_T).to(tr.device)


def fit_without_labels(state: FitState) -> tuple:
    """The pseudo-label variant (the target labels are unknown, K_T is given); returns numpy
    ``(A, A_inv, b, B, D)`` and leaves the final pseudo-labels in ``state`` (yt, yt_te, pi_T).

    1. label-free start: the fit with ONE target class, so that the label cost, the label
       mismatch and PM vanish and only the feature map (and D, through L_C) learns;
    2. B's start from the target's reference-class posteriors under that map (k-means into K_T
       groups, :func:`pseudo_labels.label_map_from_posteriors`); its groups are the first
       pseudo-labels (argmax B0 h_R would favour the largest group when h_R's posteriors are flat);
    3. self-training: the usual fit from there, re-labelling the target and re-estimating its
       prior every ``pseudo_refresh`` steps. The target test set is labelled at the end, by the
       same rule.
    """
    from .pseudo_labels import label_map_from_posteriors

    options, K_R, K_T, h_R, Xt = state.options, state.K_R, state.K_T, state.h_R, state.Xt
    d = Xt.shape[1]
    warm_steps = (int(options["steps"]) // 2 if options["pseudo_warmup_steps"] is None
                  else int(options["pseudo_warmup_steps"]))
    # (Adam on every parameter: the closed-form D would put all mass on one class with one target class)
    warm = dataclasses.replace(state, yt=np.zeros(len(Xt), dtype=np.int64), yt_te=None, K_T=1, pi_T=np.ones(1),
                               target_class_index=[np.arange(len(Xt))], history_eval=[],
                               options=dict(options, steps=warm_steps, eval_steps=(), update="adam"))
    start = Start(A=np.eye(d), A_inv=np.eye(d), b=np.zeros(d), beta=np.zeros((1, K_R)), delta=state.pi_R.copy())
    A, A_inv, b, _, D = fit_transformations(warm, start).current()
    for row in state.history:
        row["stage"] = "label-free start"
    B0, yt = label_map_from_posteriors(h_R.predict_proba((Xt - b) @ A_inv.T), K_T, seed=state.seed)
    state.set_target_labels(yt, None)
    state.pseudo_prior = state.pi_T if options["pseudo_assign"] == "balanced" else None
    n_warm = len(state.history)
    start = Start(A=A, A_inv=A_inv, b=b, beta=np.log(B0 + options["b_init_eps"]), delta=np.log(D))
    A, A_inv, b, B, D = fit_transformations(state, start, relabel_every=int(options["pseudo_refresh"] or 0)).current()
    for row in state.history[n_warm:]:
        row["stage"] = "self-training"
    state.set_target_labels(transferred_labels(h_R, Xt, A_inv, b, B, state.pseudo_prior), None)
    # the test set is labelled by the same rule (argmax could leave a class empty there: W fails)
    state.yt_te = transferred_labels(h_R, state.Xt_te, A_inv, b, B,
                                     state.pi_T if state.pseudo_prior is not None else None)
    return A, A_inv, b, B, D
