"""The numerical engine of the alternating fit (the paper's algorithm; docs/method.md §4), behind
the public steps of :mod:`taskrel_utils.method.fit_steps` (whose ``Transformations`` holds one
:class:`Params` and one step engine):

* :class:`Params` - the learned maps ``A``, ``A_inv`` (d x d), ``b`` (d) and the logits of ``B``
  and ``D`` as float64 torch tensors, with their Adam optimiser;
* :class:`ReferenceStep` - the original step: full point-level plan, squared-distance feature
  term on the n x m cost, every gradient by autograd;
* :class:`FastStep` - the same step by exact reformulations: the plan enters only through its
  row masses, barycentric sums and class-level block masses, the feature and inverse-consistency
  gradients are written out in closed form (optionally in float32), the plan may be kept for
  ``ot_every`` steps (its moments then give the feature gradient: :func:`plan_moments`,
  :func:`feature_grads`);
* :class:`ClosedFormStep` - the fast step, with ``B`` and ``D`` set in closed form from the
  recent plans instead of Adam steps (the kit's default).

Each engine keeps the current batch pair's transport plan; ``options`` is the fit's resolved
options (:mod:`taskrel_utils.method.fit_options`).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..core.numerics import euclidean
from .transport import class_structured_plan, emd_plan

#: floor inside the logarithms that store closed-form ``B`` and ``D`` as logits: a class that gets
#: no mass gets a probability of about this size (it then leaves the batches) instead of log 0
LOGIT_FLOOR = 1e-12


def colsoftmax(beta):
    """Column-wise softmax: ``B = colsoftmax(beta)`` is column-stochastic (K_T x K_R)."""
    return torch.softmax(beta, dim=0)


def label_entropy(B, D):
    """The label mismatch ``H(Y''|Y') = -sum_j D_j sum_i B_ij log B_ij`` with 0 log 0 = 0."""
    return -(D * torch.special.xlogy(B, B).sum(0)).sum()


def label_sq_cost(B):
    """``L2_ji = ||B[:, j] - e_i||^2`` (K_R x K_T): squared label cost between reference class j
    mapped by ``B`` and target class i."""
    return (B * B).sum(0)[:, None] - 2.0 * B.T + 1.0


def device_for(name):
    """Torch device of the ``device`` option; ``None``: the GPU when there is one, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Params:
    """The learned transformations (float64, on ``device``) and their Adam optimiser.

    ``A``, ``A_inv`` (d x d), ``b`` (d); learned: ``beta`` (K_T x K_R), ``delta`` (K_R) with
    ``B = colsoftmax(beta)``, ``D = softmax(delta)``; otherwise ``B``, ``D`` fixed.
    ``adam_beta_delta=False``: beta and delta are not in the optimiser (set in closed form).
    """

    def __init__(self, start, options, device, fused, adam_beta_delta=True):
        f64 = dict(dtype=torch.float64, device=device)
        self.device = device
        self.A = torch.tensor(start.A, **f64).requires_grad_(True)
        self.A_inv = torch.tensor(start.A_inv, **f64).requires_grad_(True)
        self.b = torch.tensor(start.b, **f64).requires_grad_(True)
        self.learned = start.B_fixed is None
        self.adam_beta_delta = self.learned and adam_beta_delta  # B and D by Adam: their gradients are needed
        if self.learned:
            self.beta = torch.tensor(start.beta, **f64).requires_grad_(True)
            self.delta = torch.tensor(start.delta, **f64).requires_grad_(True)
            groups = [dict(params=[self.A, self.A_inv, self.b, self.beta], lr=options["lr"]),
                      dict(params=[self.delta], lr=options["lr_delta"])]
            if not adam_beta_delta:
                groups = [dict(params=[self.A, self.A_inv, self.b], lr=options["lr"])]
        else:
            self.fixed = (start.B_fixed, start.D_fixed)
            self.B_fix, self.D_fix = (torch.tensor(x, **f64) for x in self.fixed)
            groups = [dict(params=[self.A, self.A_inv, self.b], lr=options["lr"])]
        self.opt = torch.optim.Adam(groups, betas=tuple(options["adam_betas"]), eps=options["adam_eps"], fused=fused)

    def B(self):
        return colsoftmax(self.beta) if self.learned else self.B_fix

    def D(self):
        return torch.softmax(self.delta, 0) if self.learned else self.D_fix

    def numpy_B_D(self):
        if not self.learned:
            return self.fixed
        with torch.no_grad():
            return self.B().cpu().numpy(), self.D().cpu().numpy()

    def numpy_all(self):
        """Copies of ``(A, A_inv, b, B, D)`` as float64 numpy arrays."""
        B, D = self.numpy_B_D()
        return tuple(x.detach().cpu().numpy().copy() for x in (self.A, self.A_inv, self.b)) + (B.copy(), D.copy())


def _label_terms(par, gamma, v, pi_T):
    """Small terms of J as tensors: label term sum_ji Gamma_ji ||B e_j - e_i||^2
    (class level), H, L_C = D . v and PM."""
    B, D = par.B(), par.D()
    lab = (gamma * label_sq_cost(B)).sum()
    H = label_entropy(B, D)
    LC = (D * v).sum()
    PM = ((pi_T - B @ D) ** 2).sum()
    return lab, H, LC, PM


def _weights(options):
    return tuple(float(options[k]) for k in ("Lambda", "lambda_wd", "lambda_pm", "lambda_ic"))


def _record(options, feat, lab, H, LC, PM, IC) -> dict:
    """J = H + L_C + lambda_wd (feature term + Lambda label term) + lambda_pm PM + lambda_ic IC, and its terms."""
    Lam, lwd, lpm, lic = _weights(options)
    J = H + LC + lwd * (feat + Lam * lab) + lpm * PM + lic * IC
    f = (lambda x: x) if isinstance(feat, float) else (lambda x: x.item())
    return dict(objective=J.item(), feature_term=f(feat), label_term=lab.item(), H=H.item(), LC=LC.item(),
                PM=PM.item(), IC=IC if isinstance(IC, float) else IC.item())


def plan_sums(rows, cols, vals, t, n):
    """What a step needs of the plan ``Pi`` (n x m; non-zeros ``Pi[rows[k], cols[k]] = vals[k]``, at
    most one entry per (row, column)) and target batch ``t`` (m x d): its row masses ``a = Pi 1``
    (n), barycentric sums ``Pt = Pi t`` (n x d) and column masses ``b = Pi^T 1`` (m). The entries
    are added in CSR order (by row, then column), so the sums are those of ``scipy.sparse``."""
    order = np.lexsort((cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    a = np.bincount(rows, weights=vals, minlength=n)
    index = np.arange(len(rows))
    rank = index - np.maximum.accumulate(np.where(np.r_[True, rows[1:] != rows[:-1]], index, 0))  # within its row
    Pt = np.zeros((n, t.shape[1]))
    for k in range(int(rank.max(initial=-1)) + 1):  # the k-th entries of the rows (rows differ within a level)
        level = rank == k
        Pt[rows[level]] += vals[level, None] * t[cols[level]]
    return a, Pt, np.bincount(cols, weights=vals, minlength=len(t))


def _plan_summary(P, yk, sl, K_R, K_T):
    """Nonzero entries ``(rows, cols, vals)`` of a dense plan and its class-level block masses."""
    rows, cols = np.nonzero(P)
    vals = P[rows, cols]
    gamma = np.zeros((K_R, K_T))
    np.add.at(gamma, (yk[rows], sl[cols]), vals)
    return rows, cols, vals, gamma


class ReferenceStep:
    """The original step: full point-level plan, O(nmd) squared-distance term, autograd everywhere."""

    def __init__(self, state, par):
        self.par, self.options, self.K_R, self.K_T = par, state.options, state.K_R, state.K_T
        self.pi_T = torch.from_numpy(state.pi_T)
        self.I = torch.eye(par.A.shape[0], dtype=torch.float64)

    def new_batches(self, z, yk, t, sl, B_now):
        """Solve the point-level plan on the cost ``||A z + b - t|| + Lambda ||B e_y - e_s||``."""
        self.z, self.t, self.yk, self.sl = torch.from_numpy(z), torch.from_numpy(t), yk, sl
        self.n, self.m = len(yk), len(sl)
        par, Lam = self.par, float(self.options["Lambda"])
        with torch.no_grad():
            u = self.z @ par.A.T + par.b
            q = par.B()[:, torch.from_numpy(yk)].T  # n x K_T soft transformed labels
            M = euclidean(u.numpy(), self.t.numpy()) + Lam * euclidean(q.numpy(), np.eye(self.K_T)[sl])
        P = emd_plan(None, None, M)
        self.Pi = torch.from_numpy(P)
        return _plan_summary(P, yk, sl, self.K_R, self.K_T)

    def _terms(self, v):
        par = self.par
        A, A_inv, b, z, t = par.A, par.A_inv, par.b, self.z, self.t
        u = z @ A.T + b
        Bg, Dg = par.B(), par.D()
        q = Bg[:, torch.from_numpy(self.yk)].T
        sq = (u * u).sum(1)[:, None] + (t * t).sum(1)[None, :] - 2.0 * u @ t.T
        feat = (self.Pi * sq).sum()
        lab_sq = (q * q).sum(1)[:, None] - 2.0 * q[:, torch.from_numpy(self.sl)] + 1.0
        lab = (self.Pi * lab_sq).sum()
        H = label_entropy(Bg, Dg)
        LC = (Dg * v).sum()
        PM = ((self.pi_T - Bg @ Dg) ** 2).sum()
        IC = ((A @ A_inv - self.I) ** 2).sum() + ((A_inv @ A - self.I) ** 2).sum()
        Lam, lwd, lpm, lic = _weights(self.options)
        J = H + LC + lwd * (feat + Lam * lab) + lpm * PM + lic * IC
        return J, _record(self.options, feat, lab, H, LC, PM, IC)

    def terms(self, v) -> dict:
        with torch.no_grad():
            return self._terms(v)[1]

    def step(self, v) -> dict:
        """One Adam step; returns J and its terms at the parameters before the step."""
        J, rec = self._terms(v)
        self.par.opt.zero_grad()
        J.backward()
        self.par.opt.step()
        return rec


class FastStep:
    """The same step by the exact reformulations of the module doc.

    The plan enters only through its row masses ``a`` (n), barycentric sums ``Pt = Pi t`` (n x d)
    and class-level block masses ``gamma`` (K_R x K_T). With ``ot_every = k > 1`` plan and batches
    are kept for k steps and the feature term uses the plan's moments (no O(n d^2) work per step).
    ``precision="float32"``: the d x d algebra and the gradients of A, A_inv, b in float32 (costs,
    plan and Adam stay float64).
    """

    def __init__(self, state, par):
        options = self.options = state.options
        self.par, self.K_R, self.K_T = par, state.K_R, state.K_T
        self.dev = par.device
        self.alg = torch.float32 if options["precision"] == "float32" else torch.float64
        self.pi_T = torch.from_numpy(state.pi_T).to(self.dev)
        self.I = torch.eye(par.A.shape[0], dtype=self.alg, device=self.dev)
        self.moments_needed = int(options["ot_every"]) > 1
        self.u_fresh = None

    def new_batches(self, z, yk, t, sl, B_now):
        """Solve the plan for the new batches at the current (A, b, B) and keep what the steps need."""
        par, options, dev = self.par, self.options, self.dev
        n = self.n = len(yk)
        self.m = len(sl)
        self.z = torch.from_numpy(z).to(dev)
        with torch.no_grad():
            u = (self.z @ par.A.T + par.b).cpu().numpy()
        Lc = np.sqrt(np.maximum(label_sq_cost(torch.from_numpy(B_now)).numpy(), 0.0))
        # a fixed permutation B has tied label costs (degenerate class-level LP): full OT
        if options["ot"] == "class" and par.learned:
            rows, cols, vals, gamma = class_structured_plan(u, yk, t, sl, Lc)
        else:
            P = emd_plan(None, None, euclidean(u, t) + float(options["Lambda"]) * Lc[np.ix_(yk, sl)])
            rows, cols, vals, gamma = _plan_summary(P, yk, sl, self.K_R, self.K_T)
        a, Pt, b = plan_sums(rows, cols, vals, t, n)
        self.a = torch.from_numpy(a).to(dev)
        self.Pt = torch.from_numpy(Pt).to(dev)  # sum_l Pi_kl t_l
        self.gamma = torch.from_numpy(gamma).to(dev)
        self.const = float((b * (t * t).sum(1)).sum())  # sum_l b_l ||t_l||^2
        self.u_fresh = torch.from_numpy(u).to(dev)
        if self.moments_needed:
            self.moments = plan_moments(self.z.to(self.alg), self.a.to(self.alg), self.Pt.to(self.alg))
        return rows, cols, vals, gamma

    def _feature_term_now(self, A, b):
        """The feature term at ``A``, ``b`` (in the algebra's precision): at the plan's own ``u`` when
        the plan was solved at these parameters."""
        if self.u_fresh is not None:
            return self._feature_term_at(self.u_fresh)
        with torch.no_grad():
            return self._feature_term_at(self.z @ A.T.to(torch.float64) + b.to(torch.float64))

    def terms(self, v) -> dict:
        """J and its terms at the current parameters, no step."""
        with torch.no_grad():
            A, A_inv, b = (x.detach().to(self.alg) for x in (self.par.A, self.par.A_inv, self.par.b))
            E1, E2 = A @ A_inv - self.I, A_inv @ A - self.I
            lab, H, LC, PM = _label_terms(self.par, self.gamma, v, self.pi_T)
            feat = self._feature_term_now(A, b)
            return _record(self.options, feat, lab, H, LC, PM, float((E1 ** 2).sum() + (E2 ** 2).sum()))

    def step(self, v) -> dict:
        """One Adam step; returns J and its terms at the parameters before the step."""
        par = self.par
        Lam, lwd, lpm, lic = _weights(self.options)
        with torch.no_grad():
            A, A_inv, b = (x.detach().to(self.alg) for x in (par.A, par.A_inv, par.b))
            if self.u_fresh is not None:  # the plan was solved at these parameters: use u
                R = (self.a[:, None] * self.u_fresh - self.Pt).to(self.alg)  # a_k (u_k - t_hat_k)
                gA, gb = R.T @ self.z.to(self.alg), R.sum(0)
            else:
                gA, gb = feature_grads(A, b, self.moments)
            gA *= 2.0 * lwd
            gb *= 2.0 * lwd
            E1 = A @ A_inv - self.I
            E2 = A_inv @ A - self.I
            gA += (2.0 * lic) * (E1 @ A_inv.T + A_inv.T @ E2)
            gA_inv = (2.0 * lic) * (A.T @ E1 + E2 @ A.T)
        par.A.grad, par.A_inv.grad, par.b.grad = (g.to(torch.float64) for g in (gA, gA_inv, gb))
        if par.adam_beta_delta:  # back-prop the label terms into beta and delta
            par.beta.grad = par.delta.grad = None
            lab, H, LC, PM = _label_terms(par, self.gamma, v, self.pi_T)
            (H + LC + lwd * Lam * lab + lpm * PM).backward()
        else:  # B, D fixed or set in closed form after the step: the terms' values only
            with torch.no_grad():
                lab, H, LC, PM = _label_terms(par, self.gamma, v, self.pi_T)
        feat = self._feature_term_now(A, b)
        rec = _record(self.options, feat, lab, H, LC, PM, float((E1 ** 2).sum() + (E2 ** 2).sum()))
        par.opt.step()
        self.u_fresh = None
        return rec

    def _feature_term_at(self, u):
        """sum_kl Pi_kl ||u_k - t_l||^2 = sum_k a_k ||u_k||^2 - 2 sum_k u_k . Pt_k + sum_l b_l ||t_l||^2."""
        return float((self.a * (u * u).sum(1)).sum() - 2.0 * (u * self.Pt).sum()) + self.const


class ClosedFormStep(FastStep):
    """The fast step with ``update="closed_form"`` (the kit's default): A, A_inv and b take the
    usual Adam step; B jumps to the minimiser of J's dominant term, the label term
    ``Lambda sum_ji gamma_ji ||B e_j - e_i||^2``, given the recent plans, and D is set by a class
    matching rule that minimises no term of J (it ignores H and L_C; docs/method.md §4.6).

    The plans' class-level block masses ``gamma`` (K_R x K_T) are averaged with weight
    ``max(1/t, rate)`` for the t-th plan (``rate = closed_form_rate``: a running mean, then an
    exponential one). Then

    * ``B[:, j] = gamma[j, :] / sum_i gamma[j, i]``, the plans' conditional class masses: the
      minimiser of the label term for fixed plans (a class absent from the plans keeps its column);
    * ``D_j = sum of pi^T_i over the target classes i matched to reference class j``, the
      matching being the one-to-one assignment of classes that keeps the most plan mass
      (:func:`class_matching`): the reference prior under which the batches' class proportions
      match the target's, so that the next plans need not split a class (the original's D takes
      small Adam steps on H + L_C + PM only).

    Both are stored as logits (``log(x + LOGIT_FLOOR)``); a reference class no target class picks
    gets ``D_j ~ LOGIT_FLOOR`` and leaves the batches.
    """

    def __init__(self, state, par):
        super().__init__(state, par)
        self.gamma_avg, self.t = None, 0

    def new_batches(self, z, yk, t, sl, B_now):
        out = super().new_batches(z, yk, t, sl, B_now)
        self.t += 1
        rate = max(1.0 / self.t, float(self.options["closed_form_rate"]))
        self.gamma_avg = self.gamma if self.gamma_avg is None else (1 - rate) * self.gamma_avg + rate * self.gamma
        return out

    def step(self, v) -> dict:
        """J and its terms before the update (as :meth:`FastStep.step`, whose Adam step leaves
        beta and delta out here), then B and D in closed form."""
        rec = super().step(v)
        par = self.par
        if par.learned:
            with torch.no_grad():
                g = self.gamma_avg
                cols = g.T  # K_T x K_R
                mass = cols.sum(0, keepdim=True)
                B = torch.where(mass > 0, cols / mass.clamp_min(1e-300), colsoftmax(par.beta))
                par.beta.copy_(torch.log(B + LOGIT_FLOOR))
                match = torch.from_numpy(class_matching(g.cpu().numpy())).to(g.device)
                D = torch.zeros_like(par.delta).index_add_(0, match, self.pi_T)
                par.delta.copy_(torch.log(D + LOGIT_FLOOR))
        return rec


def class_matching(gamma) -> np.ndarray:
    """For block masses ``gamma`` (K_R x K_T), the reference class matched to each target class
    (K_T,): the one-to-one assignment with the largest total mass (Hungarian algorithm); when
    K_T > K_R the unassigned target classes take the reference class of their largest block."""
    match = gamma.argmax(0)
    rows, cols = linear_sum_assignment(gamma, maximize=True)
    match[cols] = rows
    return match


def plan_moments(Z, a, Pt):
    """Moments of a fixed plan (barycentric form of the feature term): ``S = Z^T diag(a) Z``, ``T = Pt^T Z`` (d x d),
    ``s = Z^T a``, ``p = Pt^T 1`` (d), ``mass = sum a`` for a batch ``Z`` (n x d)."""
    return dict(S=(Z * a[:, None]).T @ Z, T=Pt.T @ Z, s=Z.T @ a, p=Pt.sum(0), mass=a.sum())


def feature_grads(A, b, mom):
    """Half-gradients of sum_k a_k ||A z_k + b - t_hat_k||^2 from the plan's moments:
    ``A S + b s^T - T`` (d x d) and ``A s + mass b - p`` (d)."""
    return A @ mom["S"] + torch.outer(b, mom["s"]) - mom["T"], A @ mom["s"] + mom["mass"] * b - mom["p"]
