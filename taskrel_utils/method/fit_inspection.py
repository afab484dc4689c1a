"""Looking inside the alternating fit: what one step of :mod:`taskrel_utils.method.fit_steps` drew,
solved and changed, and why the fit stopped (docs/method.md §4).

A notebook runs the steps by hand and passes what they return here::

    ref_idx, tgt_idx = draw_batches(state, tr)
    plan = transport_plan(state, tr, ref_idx, tgt_idx)
    cost = cost_matrix(state, tr, plan)          # before the update: the plan was solved at these maps
    before = tr.current()
    terms = gradient_step(state, tr, v)
    row = step_row(0, plan, terms, objective_terms(state, tr, v), before, tr.current())

Nothing here changes the fit or draws from its random stream: a fit inspected by hand gives the
same numbers as one that is not.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.errors import TaskrelError
from .fit_steps import FitState, Transformations, TransportPlan, fit_converged
from ..core.numerics import euclidean

__all__ = ["cost_matrix", "batch_table", "plan_summary", "step_changes", "step_row", "first_stop",
           "convergence_diagnostics", "last_gradients", "STEP_QUANTITIES", "step_quantities", "agreement_table"]


def cost_matrix(state: FitState, tr: Transformations, plan: TransportPlan) -> dict:
    """The two parts of the transport cost (12) between the plan's batches at the CURRENT maps.

    Call it right after :func:`~taskrel_utils.method.fit_steps.transport_plan`, before the update: the
    plan was solved at these maps. Returns ``feature`` (n x m, ``||A z_k + b - t_l||``), ``label``
    (n x m, ``||B e_{y_k} - e_{s_l}||``), ``Lambda`` (so that ``M = feature + Lambda * label``),
    the batches' labels ``ref_labels`` (n), ``target_labels`` (m) and the ``B`` (K_T x K_R) and
    ``D`` (K_R) they were solved with.
    """
    A, _, b, B, D = tr.current()
    yk, sl = state.yr[plan.ref_idx], state.yt[plan.tgt_idx]
    u = state.Xr[plan.ref_idx] @ A.T + b
    label = euclidean(B[:, yk].T, np.eye(state.K_T)[sl])
    return dict(feature=euclidean(u, state.Xt[plan.tgt_idx]), label=label, Lambda=float(state.options["Lambda"]),
                ref_labels=yk, target_labels=sl, B=B, D=D)


def batch_table(state: FitState, plan: TransportPlan, D) -> pd.DataFrame:
    """PriorSample (11) per class: the proportion asked for, ``floor(N q_c)`` and the points drawn,
    for the reference batch (proportions ``D``, K_R) and the target batch (``pi^T``, K_T); one row
    per class index (NaN where a side has fewer classes)."""
    N = int(state.options["batch_size"])

    def side(labels, q, K, name):
        q = np.asarray(q, dtype=np.float64)
        return pd.DataFrame({f"{name} proportion": q, f"{name} floor(N q)": np.floor(N * q).astype(int),
                             f"{name} drawn": np.bincount(labels, minlength=K)})

    ref = side(state.yr[plan.ref_idx], D, state.K_R, "reference")
    tgt = side(state.yt[plan.tgt_idx], state.pi_T, state.K_T, "target")
    table = ref.join(tgt, how="outer")
    table.index.name = "class"
    return table


def plan_summary(plan: TransportPlan, cost: dict) -> dict:
    """What a plan did, in numbers: batch sizes ``n``, ``m``; ``support`` (its non-zero entries; an
    exact plan has at most n + m - 1); ``matched_mass`` (the share of its mass on pairs whose
    reference class B sends, by its largest entry, to the target point's class);
    ``plan_feature_cost`` (``sum Pi ||A z + b - t||``: the feature distance the plan pays per unit
    of mass) against ``mean_feature_cost`` (the same under the uniform coupling: every point
    paired with every point) and ``same_class_feature_cost`` (uniform over the matched pairs);
    ``label_cost`` (``sum Pi ||B e_y - e_s||``). ``cost``: :func:`cost_matrix` of the plan."""
    P = plan.dense()
    matched = cost["B"].argmax(0)[cost["ref_labels"]][:, None] == cost["target_labels"][None, :]
    F = cost["feature"]
    return dict(n=P.shape[0], m=P.shape[1], support=int((P > 0).sum()),
                matched_mass=float(P[matched].sum() / P.sum()),
                plan_feature_cost=float((P * F).sum() / P.sum()), mean_feature_cost=float(F.mean()),
                same_class_feature_cost=float(F[matched].mean()) if matched.any() else float("nan"),
                label_cost=float((P * cost["label"]).sum() / P.sum()))


def step_changes(before: tuple, after: tuple) -> dict:
    """How far one update moved the maps: ``before`` / ``after`` are ``tr.current()`` tuples
    ``(A, A_inv, b, B, D)``. ``dA``, ``dA_inv``: Frobenius norms of the changes; ``dA_max``: the
    largest change of one entry of A (an Adam step moves each entry by about the learning rate);
    ``db``: Euclidean norm; ``dB``, ``dD``: the largest change of one entry."""
    dA, dAi, db, dB, dD = (np.asarray(y) - np.asarray(x) for x, y in zip(before, after))
    return dict(dA=float(np.linalg.norm(dA)), dA_max=float(np.abs(dA).max()), dA_inv=float(np.linalg.norm(dAi)),
                db=float(np.linalg.norm(db)), dB=float(np.abs(dB).max()), dD=float(np.abs(dD).max()))


def step_row(step: int, plan: TransportPlan, terms: dict, terms_after: dict, before: tuple, after: tuple) -> dict:
    """One row of a hand-run fit: the batch sizes, J and its terms under the step's plan before the
    update (``terms``, what :func:`~taskrel_utils.method.fit_steps.gradient_step` returns), ``J_after``
    (J under the SAME plan after the update: ``terms_after["objective"]``) and
    :func:`step_changes` of the maps."""
    return dict(step=step, n_ref=len(plan.ref_idx), n_target=len(plan.tgt_idx),
                J_before=terms["objective"], J_after=terms_after["objective"],
                **{k: v for k, v in terms.items() if k != "objective"}, **step_changes(before, after))


def first_stop(objectives, options: dict) -> int | None:
    """The number of steps after which the stopping rule (16) first holds on the sequence of J
    values ``objectives`` with ``options`` (``window``, ``tol``, ``min_steps``); None if never."""
    objectives = list(objectives)
    for k in range(1, len(objectives) + 1):
        if fit_converged(objectives[:k], options):
            return k
    return None


def convergence_diagnostics(history, options: dict) -> dict:
    """Why a fit stopped where it did: the stopping rule (16) re-evaluated on its history.

    ``history``: ``res.history`` (or a DataFrame of it) with a row at EVERY step (a fit run with
    ``log_every=1``); ``options``: ``res.options``. Returns ``steps_used``, the cap ``steps``,
    ``window``, ``min_steps``, ``tol``; ``first_stop`` (:func:`first_stop`) and ``converged``
    (whether the rule holds at the last step); at the last step the window means ``mean_last``
    (m_t) and ``mean_before`` (m_{t-w}), their ``change``, the two thresholds ``tol_threshold``
    (tol |m_t|) and ``noise_threshold`` (2 s_t sqrt(2 / w)), and ``deciding``: which threshold is the
    larger (the one the change is held against), or None with fewer than two windows.
    """
    frame = pd.DataFrame(history)
    if frame.empty or list(frame["step"]) != list(range(len(frame))):
        raise TaskrelError("the stopping rule needs J at every step: run task_relatedness with log_every=1 "
                           "(its history then has one row per step)")
    J = frame["objective"].to_numpy(dtype=np.float64)
    w = int(options["window"])
    out = dict(steps_used=len(J), steps=int(options["steps"]), window=w, min_steps=int(options["min_steps"]),
               tol=float(options["tol"]), first_stop=first_stop(J, options), converged=fit_converged(list(J), options),
               mean_last=float("nan"), mean_before=float("nan"), change=float("nan"), tol_threshold=float("nan"),
               noise_threshold=float("nan"), deciding=None)
    if len(J) >= 2 * w:
        now, before = J[-w:], J[-2 * w:-w]
        out.update(mean_last=float(now.mean()), mean_before=float(before.mean()),
                   change=float(abs(now.mean() - before.mean())), tol_threshold=float(options["tol"] * abs(now.mean())),
                   noise_threshold=float(2.0 * now.std(ddof=1) * np.sqrt(2.0 / w)) if w > 1 else 0.0)
        out["deciding"] = "tolerance" if out["tol_threshold"] >= out["noise_threshold"] else "noise"
    return out


def last_gradients(tr: Transformations) -> dict:
    """The gradients of J with respect to ``A``, ``A_inv`` and ``b`` that the last
    :func:`~taskrel_utils.method.fit_steps.gradient_step` handed to Adam, as float64 numpy arrays
    (``dJ/dA``, ``dJ/dA_inv``, ``dJ/db``; None before the first step)."""
    par = tr.params
    return {f"dJ/d{name}": None if x.grad is None else x.grad.detach().cpu().numpy().astype(np.float64)
            for name, x in (("A", par.A), ("A_inv", par.A_inv), ("b", par.b))}


#: what one step produces, in the order of the step: the plan (12)-(13), the terms of J that the
#: feature map moves (before the update), their gradients, the maps after the update, B and D in
#: closed form (17)
STEP_QUANTITIES = ("plan", "feature term", "IC", "dJ/dA", "dJ/dA_inv", "dJ/db", "A", "A_inv", "b", "B", "D")


def step_quantities(tr: Transformations, plan: TransportPlan, terms: dict) -> dict:
    """The kit's own values of :data:`STEP_QUANTITIES` for one step, read right after
    :func:`~taskrel_utils.method.fit_steps.gradient_step`: ``plan`` (its dense plan), ``terms``
    (what ``gradient_step`` returned: J's terms before the update), the gradients
    (:func:`last_gradients`) and the maps after the update (``tr.current()``)."""
    A, A_inv, b, B, D = tr.current()
    return {"plan": plan.dense(), "feature term": terms["feature_term"], "IC": terms["IC"], **last_gradients(tr),
            "A": A, "A_inv": A_inv, "b": b, "B": B, "D": D}


def agreement_table(by_hand: dict, kit: dict) -> pd.DataFrame:
    """How well quantities computed by hand agree with the kit's: one row per name of ``by_hand``
    (numbers or arrays; torch tensors are taken as numpy; None, e.g. a gradient never computed,
    differs infinitely) with ``size`` (the largest absolute entry of
    the kit's value), ``difference`` (the largest absolute difference of an entry) and ``relative``
    (difference / size; the difference itself when size is 0). Names in the order of
    :data:`STEP_QUANTITIES` first."""
    order = [k for k in STEP_QUANTITIES if k in by_hand] + [k for k in by_hand if k not in STEP_QUANTITIES]
    missing = [k for k in order if k not in kit]
    if missing:
        raise TaskrelError(f"no kit value for {missing}; the kit's values are: {', '.join(kit)}")
    rows = []
    for name in order:
        theirs = _as_array(kit[name])
        if by_hand[name] is None:  # e.g. a gradient that was never computed: no agreement
            mine = np.full_like(theirs, np.inf)
        else:
            mine = _as_array(by_hand[name])
        if mine.shape != theirs.shape:
            raise TaskrelError(f"{name}: the value by hand has shape {mine.shape}, the kit's {theirs.shape}")
        size = float(np.abs(theirs).max()) if theirs.size else 0.0
        diff = float(np.abs(mine - theirs).max()) if theirs.size else 0.0
        rows.append(dict(quantity=name, shape=" x ".join(map(str, theirs.shape)) or "scalar", size=size,
                         difference=diff, relative=diff / size if size > 0 else diff))
    return pd.DataFrame(rows)


def _as_array(x) -> np.ndarray:
    """A number, array or torch tensor as a float64 numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
