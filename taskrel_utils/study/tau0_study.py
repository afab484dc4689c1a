"""The price of h_R's gradient-norm penalty and the choice of its threshold tau0.

The reference classifier h_R is trained with a penalty on the input-gradient norms of its loss
above tau0, as in the original code. Here h_R is compared with the same linear head
trained without the penalty (the penalty's price: held-out reference accuracy), for every encoder
(:func:`reference_fit_table`) and over a grid of tau0 together with how well the task-relatedness
then separates a target from its shuffled-label control (:func:`tau0_sweep`, :func:`choose_tau0`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import Profile
from .controls import shuffled_target
from .experiment import profile_pair, zoo_pairs
from ..method.fit_options import encoder_fit_options
from .cached_fits import cached_relatedness, reference_model
from ..core.jobs import run_jobs
from ..method.reference_classifier import train_plain_probe

#: The default most held-out reference accuracy (a share, 0.02 = 2 points) the penalty may cost
#: h_R on average for a tau0 to be chosen (:func:`choose_tau0`).
MAX_PENALTY_PRICE = 0.02


def _h_R_report(kwargs: dict, *, seed: int, scale: str, clf_options: dict, plain=None):
    """h_R of a pair (:func:`reference_model`) against the same head without the penalty, on the
    held-out reference test split: ``(row, plain)``; pass ``plain`` back to reuse the probe."""
    s_R, h_R = reference_model(kwargs, seed=seed, scale=scale, reference_classifier_options=clf_options)
    (Zr, yr), (Zr_te, yr_te) = kwargs["ref_train"], kwargs["ref_test"]
    X_te = s_R.transform(np.asarray(Zr_te, np.float64))
    if plain is None:
        plain = train_plain_probe(s_R.transform(np.asarray(Zr, np.float64)), yr, h_R.n_classes, seed=seed)
    info = h_R.fit_info
    acc, plain_acc = h_R.accuracy(X_te, yr_te), plain.accuracy(X_te, yr_te)
    row = {"tau0": h_R.tau0, "reference_accuracy": acc, "plain_probe_accuracy": plain_acc,
           "penalty_price": plain_acc - acc, "reference_cross_entropy": float(h_R.cross_entropy(X_te, yr_te).mean()),
           "iterations": info.get("iterations"), "converged": info.get("converged"),
           "penalty_active": info.get("penalty_active_true_label", np.nan),
           "penalty_active_random": info.get("penalty_active_random_label", np.nan)}
    return row, plain


def tau0_sweep(profile: Profile, feats: dict, tau0_grid, *, encoders=None, target=None, seed: int = 0,
               progress: bool = True, n_jobs: int | None = None, **options) -> pd.DataFrame:
    """What the gradient-norm threshold tau0 does, measured without any fine-tuned accuracy.

    For every tau0 of ``tau0_grid`` and every encoder (default: the profile's main zoo) on
    ``target`` (default: the profile's first): h_R against a plain probe (:func:`_h_R_report`: the
    penalty's price is the held-out accuracy gap; the share of training samples at the threshold)
    and the task-relatedness of the real target and of its shuffled-label control. One row per
    (tau0, encoder), encoder-major. The encoders run in parallel processes (``n_jobs``,
    :func:`jobs.run_jobs`), with the numbers of a serial run.
    """
    names = list(encoders or profile.main_encoders)
    target = target or profile.targets[0]
    opts = {**profile.relatedness, **options}
    jobs = [(encoder, target, profile_pair(profile, feats, encoder, target), [float(t) for t in tau0_grid], seed,
             encoder_fit_options(opts, encoder, feats[encoder, profile.reference, "train"][0].shape[1]))
            for encoder in names]
    per_encoder = run_jobs(_tau0_rows, jobs, n_jobs=n_jobs, desc="tau0 sweep", progress=progress)
    return pd.DataFrame([row for rows in per_encoder for row in rows])


def _tau0_rows(encoder, target, kwargs, tau0_grid, seed, fit_opts) -> list:
    """The rows of :func:`tau0_sweep` for one encoder; runs in a worker process."""
    control = shuffled_target(kwargs, seed=seed)
    base = dict(fit_opts.get("reference_classifier_options") or {})
    rows, plain = [], None
    for tau0 in tau0_grid:
        clf_opts = {**base, "tau0": tau0}
        report, plain = _h_R_report(kwargs, seed=seed, scale=fit_opts.get("scale", "small"), clf_options=clf_opts,
                                    plain=plain)
        pair_opts = dict(fit_opts, reference_classifier_options=clf_opts)
        related = cached_relatedness(kwargs, seed=seed, **pair_opts)
        unrelated = cached_relatedness(control, seed=seed, **pair_opts)
        rows.append({"encoder": encoder, "target": target, **report,
                     "value_related": related["value"], "value_unrelated": unrelated["value"],
                     "separation": (unrelated["value"] - related["value"]) / related["value"],
                     "tau": related["tau"], "label_mismatch": related["label_mismatch"]})
    return rows


def reference_fit_table(profile: Profile, feats: dict, *, encoders=None, seed: int | None = None,
                        progress: bool = True, n_jobs: int | None = None) -> pd.DataFrame:
    """h_R of every encoder (and every set of reference classes the targets pair it with) against
    the same head without the penalty (:func:`_h_R_report`). One row per (encoder, K_R), in
    parallel processes (``n_jobs``) with the numbers of a serial run."""
    seed = profile.seed if seed is None else seed
    opts = profile.relatedness
    jobs, seen = [], set()
    for encoder, target, kwargs in zoo_pairs(profile, feats, encoders):
        K = int(kwargs["ref_train"][1].max()) + 1
        if (encoder, K) not in seen:
            seen.add((encoder, K))
            jobs.append((encoder, profile.group(encoder), K, kwargs, seed, opts.get("scale", "small"),
                         opts.get("reference_classifier_options")))
    return pd.DataFrame(run_jobs(_reference_fit_row, jobs, n_jobs=n_jobs, desc="h_R vs plain probe",
                                 progress=progress))


def _reference_fit_row(encoder, group, K, kwargs, seed, scale, clf_options) -> dict:
    """The row of :func:`reference_fit_table` for one (encoder, K_R); runs in a worker process."""
    report, _ = _h_R_report(kwargs, seed=seed, scale=scale, clf_options=clf_options)
    return {"encoder": encoder, "group": group, "K_R": K, **report}


def choose_tau0(sweep: pd.DataFrame, max_price: float = MAX_PENALTY_PRICE) -> dict:
    """The tau0 of ``sweep`` (:func:`tau0_sweep`) with the largest mean separation of the real
    target from its shuffled-label control, among those whose penalty costs h_R at most
    ``max_price`` held-out reference accuracy on average (all of them if none does). Returns the
    choice and the per-tau0 means it was made from."""
    means = sweep.groupby("tau0")[["separation", "penalty_price", "reference_accuracy", "penalty_active"]].mean()
    eligible = means[means.penalty_price <= max_price]
    pool = eligible if len(eligible) else means
    return {"tau0": float(pool.separation.idxmax()), "max_price": max_price,
            "price_rule_met": bool(len(eligible)), "means": means.reset_index()}
