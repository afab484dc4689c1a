"""Optimal-transport helpers on POT.

* :func:`emd_plan` - exact EMD (network simplex) with a high iteration cap that warns when POT
  reports that it did not converge (POT's default cap of 100,000 can truncate at N >= 2,500);
  uniform marginals on equally many points are solved as an assignment (:func:`assignment`).
* :func:`classwise_w1_code` - the distribution-mismatch ``W`` exactly as the official code computes
  it (hard labels, plain average over ``0..K~-1``, failure value 1e10).
* :func:`classwise_w1_theorem` - the theorem's ``W_d`` (B-mixture,
  D-reweighting, target-prior class weights).
* :func:`class_structured_plan` - the lexicographic OT: a tiny class-level OT on
  the label cost, then exact point-level OT independently per connected component of its support.

Everything works in float64 numpy arrays.
"""
from __future__ import annotations

import warnings

import numpy as np
import ot
from threadpoolctl import ThreadpoolController
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix

from ..core.errors import TaskrelError
from ..core.numerics import euclidean

#: iteration cap of the network simplex (POT's default 1e5 can truncate large problems)
NUM_ITERMAX = 10_000_000
#: value of ``W`` when a hard-label class is empty on exactly one side (official code's flag)
W_FAILURE = 1e10


_THREADPOOLS = []  # one ThreadpoolController, created on first use (scanning the libraries takes ms)


def _one_blas_thread():
    """Context manager: BLAS limited to one thread (many small products: threads only add waiting)."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


class OTConvergenceWarning(UserWarning):
    """POT's network simplex stopped before optimality (iteration cap or numerical trouble)."""



def emd_plan(a, b, M, num_itermax: int = NUM_ITERMAX, return_cost: bool = False):
    """Exact OT plan between histograms ``a`` (n) and ``b`` (m) for cost ``M`` (n x m).

    ``a``/``b`` may be ``None`` (uniform); both uniform and ``n == m``: the plan is an optimal
    assignment (:func:`assignment`), otherwise POT's network simplex, which warns with
    :class:`OTConvergenceWarning` when POT reports non-convergence. Returns the dense plan (and its
    cost when ``return_cost``).
    """
    M = np.ascontiguousarray(M, dtype=np.float64)
    n, m = M.shape
    if a is None and b is None and n == m:
        rows, cols = assignment(M)  # checks the costs
        G = np.zeros((n, m))
        G[rows, cols] = 1.0 / n
        return (G, float(M[rows, cols].sum() / n)) if return_cost else G
    a = np.full(n, 1.0 / n) if a is None else np.asarray(a, dtype=np.float64)
    b = np.full(m, 1.0 / m) if b is None else np.asarray(b, dtype=np.float64)
    if a.shape != (n,) or b.shape != (m,):
        raise TaskrelError(f"marginals of shapes {a.shape}, {b.shape} do not fit a cost of shape {M.shape}")
    _check_finite(M)
    G, log = ot.emd(a, b, M, numItermax=int(num_itermax), log=True)
    if log.get("result_code", 1) != 1 or log.get("warning"):
        warnings.warn(f"exact OT did not converge: {log.get('warning')} (numItermax={num_itermax}); "
                      "raise num_itermax or check the costs", OTConvergenceWarning, stacklevel=2)
    if return_cost:
        return G, float(log["cost"])
    return G


def _check_finite(M) -> None:
    """Refuse a cost matrix with NaN or infinite entries (the solvers would return garbage)."""
    if not np.isfinite(M).all():
        raise TaskrelError("the OT cost matrix contains NaN or infinite values")


def assignment(M) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of a minimum-cost assignment for the square cost ``M`` (n x n): the exact OT
    plan between uniform measures on n points each, ``1/n`` on every pair (an optimal plan can be
    taken at a vertex of the set of doubly stochastic matrices, and those are permutations).
    scipy's Jonker-Volgenant solver, faster than the network simplex on dense square problems."""
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise TaskrelError(f"an assignment needs a square cost matrix, got shape {M.shape}; use emd_plan with "
                           "marginals for unequal point sets")
    _check_finite(M)
    return linear_sum_assignment(M)


def emd_cost(a, b, M, num_itermax: int = NUM_ITERMAX) -> float:
    """``min_P <P, M>`` over couplings of ``a`` and ``b`` (exact)."""
    return emd_plan(a, b, M, num_itermax, return_cost=True)[1]


def w1(X, Y, a=None, b=None) -> float:
    """Exact W1 (plain Euclidean cost) between two weighted point clouds (uniform by default)."""
    return emd_cost(a, b, euclidean(X, Y))


def classwise_w1_code(U, hard_labels, V, v_labels):
    """``W`` of the official code, returned as ``(W, per_class, failed)``.

    ``U`` are the mapped reference points with hard labels ``argmax_i B[i, y]``, ``V`` the target
    points with their labels. ``K~`` = number of distinct hard labels; for ``k = 0..K~-1`` the exact
    EMD between uniform measures on ``U_k`` and ``V_k`` is computed; the result is their plain mean.
    If a class is empty on exactly one side the value is the code's failure flag 1e10 (``failed``);
    a class empty on both sides contributes 0 (the code would hand empty arrays to the solver).
    """
    hard_labels = np.asarray(hard_labels)
    v_labels = np.asarray(v_labels)
    k_tilde = len(np.unique(hard_labels))
    per_class = {}
    for k in range(k_tilde):
        Uk, Vk = U[hard_labels == k], V[v_labels == k]
        if len(Uk) == 0 and len(Vk) == 0:
            per_class[k] = 0.0
            continue
        if len(Uk) == 0 or len(Vk) == 0:
            return W_FAILURE, per_class, True
        per_class[k] = w1(Uk, Vk)
    return float(np.mean(list(per_class.values()))), per_class, False


def classwise_w1_theorem(U, y_ref, V, v_labels, B, D, target_prior, rel_weight_floor: float = 1e-12):
    """The theorem's ``W_d``: ``sum_i pi^T_i W1(P_R'''(.|i), P_T(.|i))``.

    ``P_R'''(.|i)`` puts weight ``prop. B[i, j] D[j] / n_j`` on every mapped reference point of class
    ``j`` (``n_j`` = its class count in ``y_ref``). Points whose weight is below
    ``rel_weight_floor`` times the largest weight are dropped (changes W by at most that fraction of
    the diameter). Target classes with no test point or zero prior are skipped. Returns
    ``(W, per_class)``.
    """
    y_ref = np.asarray(y_ref)
    v_labels = np.asarray(v_labels)
    K_T, K_R = B.shape
    counts = np.bincount(y_ref, minlength=K_R).astype(np.float64)
    per_class, total = {}, 0.0
    for i in range(K_T):
        Vi = V[v_labels == i]
        if len(Vi) == 0 or target_prior[i] <= 0:
            continue
        col = np.where(counts > 0, B[i] * D / np.maximum(counts, 1), 0.0)
        w = col[y_ref]
        if w.sum() <= 0:
            continue
        keep = w > rel_weight_floor * w.max()
        w = w[keep] / w[keep].sum()
        per_class[i] = w1(U[keep], Vi, a=w)
        total += target_prior[i] * per_class[i]
    return float(total / sum(target_prior[i] for i in per_class)) if per_class else float("nan"), per_class


def class_structured_plan(u, y, t, s, label_cost, *, num_itermax: int = NUM_ITERMAX):
    """Lexicographic OT for uniform marginals ``1/n`` and ``1/m``.

    ``label_cost[j, i]`` is the label cost between reference class ``j`` and target class ``i``
    (``||B[:, j] - e_i||``). First the exact class-level OT with the batch class proportions as
    marginals; its support is a forest (a basic solution), so the block masses of every plan
    supported on it are fixed by the marginals and the label cost is a constant there. Then, per
    connected component of the support, the exact point-level OT with the plain Euclidean feature
    cost on the support blocks only, computed block by block (POT's sparse network simplex; a
    star, one class on one side, has every block allowed and is solved dense).

    This is the limit ``Lambda -> infinity`` of the official cost ``feature + Lambda * label``; it
    equals the official plan whenever that plan puts no mass outside the class-level support
    (true once ``Lambda`` exceeds a finite, LP-dependent threshold), so no ``Lambda`` is needed.

    Returns ``(rows, cols, vals, gamma)``: the plan's non-zeros and the class-level block masses
    ``gamma`` (K_R x K_T).
    """
    y = np.asarray(y)
    s = np.asarray(s)
    n, m = len(y), len(s)
    K_R, K_T = label_cost.shape
    a_cls = np.bincount(y, minlength=K_R) / n
    b_cls = np.bincount(s, minlength=K_T) / m
    rj, ci = np.flatnonzero(a_cls > 0), np.flatnonzero(b_cls > 0)
    G = emd_plan(a_cls[rj], b_cls[ci], label_cost[np.ix_(rj, ci)], num_itermax)
    gamma = np.zeros((K_R, K_T))
    gamma[np.ix_(rj, ci)] = G
    jj, ii = np.nonzero(gamma > 0)
    comp = support_components(jj, ii, K_R, K_T)
    ref_of = [np.flatnonzero(y == j) for j in range(K_R)]
    tgt_of = [np.flatnonzero(s == i) for i in range(K_T)]
    rows, cols, vals = [], [], []
    for c in np.unique(comp[jj]):
        edges = np.flatnonzero(comp[jj] == c)
        r_cls, c_cls = np.unique(jj[edges]), np.unique(ii[edges])
        if len(r_cls) == 1 or len(c_cls) == 1:  # a star: every block of the component is allowed, solve it dense
            rk = np.concatenate([ref_of[j] for j in r_cls])
            tl = np.concatenate([tgt_of[i] for i in c_cls])
            pr, pc, pv = _solve_block(u[rk], t[tl], len(rk) / n, num_itermax)
        else:
            rk, tl, Ms = _support_cost(u, t, ref_of, tgt_of, jj[edges], ii[edges])
            a = np.full(len(rk), 1.0 / n)
            b = np.full(len(tl), 1.0 / m)
            b *= a.sum() / b.sum()  # equal up to rounding: a component is balanced by construction
            P, log = ot.emd(a, b, Ms, numItermax=int(num_itermax), log=True)
            if log.get("result_code", 1) != 1 or log.get("warning"):
                warnings.warn(f"exact OT did not converge: {log.get('warning')}", OTConvergenceWarning, stacklevel=2)
            P = P.tocoo()
            keep = P.data > 0
            pr, pc, pv = P.row[keep], P.col[keep], P.data[keep]
        rows.append(rk[pr])
        cols.append(tl[pc])
        vals.append(pv)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), gamma


def support_components(jj, ii, K_R: int, K_T: int) -> np.ndarray:
    """Connected components of the bipartite graph with edges ``(jj[e], ii[e])`` between reference
    classes (nodes ``0..K_R-1``) and target classes (nodes ``K_R..K_R+K_T-1``): a label per node,
    numbered by each component's smallest node (as ``scipy.sparse.csgraph.connected_components``).
    Union-find: the graph has at most K_R + K_T - 1 edges (a basic solution's support)."""
    parent = list(range(K_R + K_T))

    def root(x):
        while parent[x] != x:
            parent[x] = x = parent[parent[x]]
        return x

    for j, i in zip(np.asarray(jj).tolist(), (np.asarray(ii) + K_R).tolist()):
        rj, ri = root(j), root(i)
        parent[max(rj, ri)] = min(rj, ri)  # a component's root is its smallest node
    labels: dict = {}
    return np.array([labels.setdefault(root(x), len(labels)) for x in range(K_R + K_T)])


def _solve_block(u, t, mass, num_itermax):
    """Dense exact OT between uniform measures of mass ``mass`` on ``u`` and on ``t`` (one class
    block, or a star of blocks: a component is balanced by construction); an assignment when
    they have as many points."""
    if len(u) == len(t):
        pr, pc = assignment(euclidean(u, t))
        return pr, pc, np.full(len(u), mass / len(u))
    a = np.full(len(u), mass / len(u))
    b = np.full(len(t), mass / len(t))
    P = emd_plan(a, b, euclidean(u, t), num_itermax)
    pr, pc = np.nonzero(P)
    return pr, pc, P[pr, pc]


def _support_cost(u, t, ref_of, tgt_of, jj, ii):
    """Sparse Euclidean cost on the allowed blocks ``(jj[e], ii[e])`` of one component.

    Only the allowed blocks are computed (O(sum_e n_j m_i d) instead of O(nmd)). Returns the
    component's reference and target point indices (class by class) and the COO cost matrix in
    their local numbering.
    """
    r_cls, c_cls = np.unique(jj), np.unique(ii)
    rk = np.concatenate([ref_of[j] for j in r_cls])
    tl = np.concatenate([tgt_of[i] for i in c_cls])
    r_off = dict(zip(r_cls, np.cumsum([0] + [len(ref_of[j]) for j in r_cls[:-1]])))
    c_off = dict(zip(c_cls, np.cumsum([0] + [len(tgt_of[i]) for i in c_cls[:-1]])))
    er, ec, ev = [], [], []
    with _one_blas_thread():
        for j, i in zip(jj, ii):
            nj, mi = len(ref_of[j]), len(tgt_of[i])
            er.append(np.repeat(np.arange(r_off[j], r_off[j] + nj), mi))
            ec.append(np.tile(np.arange(c_off[i], c_off[i] + mi), nj))
            ev.append(euclidean(u[ref_of[j]], t[tgt_of[i]]).ravel())
    Ms = coo_matrix((np.concatenate(ev), (np.concatenate(er), np.concatenate(ec))), shape=(len(rk), len(tl)))
    return rk, tl, Ms
