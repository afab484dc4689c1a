"""One (encoder, target) pair's fit: the reference classifier h_R and the task-relatedness fit,
each cached on disk by the content of the features, the options and the seed; the fit's table row;
and its transport plan on a few points, for a figure.
"""
from __future__ import annotations

import json
import time
import warnings

import numpy as np
from sklearn.preprocessing import StandardScaler

from . import pseudo_labels, relatedness
from .io import atomic_path, content_key, jsonable, sha256_bytes, write_json
from .paths import cache_dir
from .reference_classifier import ReferenceClassifier, train_reference_classifier
from .transport import emd_plan, euclidean_cost

#: bump when task_relatedness changes its numbers (invalidates cached relatedness rows)
RELATEDNESS_CACHE_FORMAT = 7


#: bump when train_reference_classifier changes its numbers (invalidates cached h_R)
REFERENCE_CACHE_FORMAT = 2


def reference_model(pair_kwargs: dict, *, seed: int = 0, scale: str = "small",
                    reference_classifier_options: dict | None = None, cache: bool = True):
    """``(s_R, h_R)``: the reference standardiser and classifier exactly as ``task_relatedness``
    trains them for this pair's encoder (they depend only on the reference features).

    ``h_R`` is cached on disk (``cache_dir("reference_classifiers")``) by the content of the two
    reference feature sets, the options and the seed, so that every table of every notebook (fits
    with and without target labels, on fractions, the baseline scores) shares one h_R per encoder.
    """
    (Zr, yr), (Zr_te, yr_te) = pair_kwargs["ref_train"], pair_kwargs["ref_test"]
    Zr, Zr_te = (np.asarray(Z, dtype=np.float64) for Z in (Zr, Zr_te))  # as the fit: float32 features differ
    s_R = StandardScaler().fit(Zr)
    options = dict(reference_classifier_options or {})
    key = content_key({"format": REFERENCE_CACHE_FORMAT, "seed": seed, "scale": scale, "options": options,
                       "reference": _pair_digest({k: pair_kwargs[k] for k in ("ref_train", "ref_test")})})
    path = cache_dir("reference_classifiers") / f"{key}.npz"
    if cache and path.exists():
        try:
            with np.load(path) as f:
                meta = json.loads(str(f["meta"]))
                return s_R, ReferenceClassifier(W=f["W"], c=f["c"], tau0=meta["tau0"], options=meta["options"],
                                                history=meta["history"], fit_info=meta["fit_info"])
        except (OSError, ValueError, KeyError) as e:
            warnings.warn(f"cached reference classifier {path} is unreadable ({e}); training it again", RuntimeWarning)
    h_R = train_reference_classifier(s_R.transform(Zr), yr, int(np.max(yr)) + 1, scale=scale,
                                     Z_test=s_R.transform(Zr_te), y_test=yr_te, seed=seed, **options)
    if cache:
        meta = json.dumps({"tau0": h_R.tau0, "options": h_R.options, "history": h_R.history,
                           "fit_info": h_R.fit_info}, default=jsonable)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, W=h_R.W, c=h_R.c, meta=np.array(meta))
    return s_R, h_R


def _pair_digest(pair_kwargs: dict) -> str:
    """sha256 of a pair's (or part of a pair's) arrays: keys, dtypes, shapes and bytes (None: empty)."""
    parts = []
    for key in sorted(pair_kwargs):
        for a in pair_kwargs[key]:
            a = np.ascontiguousarray(a) if a is not None else np.zeros(0)
            parts += [key, str(a.dtype), str(a.shape), a.tobytes()]
    return sha256_bytes(*parts)


def cached_relatedness(pair_kwargs: dict, *, seed: int = 0, cache: bool = True, target_labels: bool = True,
                       **options) -> dict:
    """``task_relatedness(**pair_kwargs, seed=seed, **options)`` as a :func:`result_row` (plus
    ``seconds``), cached on disk by the content of the four feature sets, the options and the seed.

    ``target_labels=False``: the pseudo-label variant; the target labels of ``pair_kwargs`` are
    hidden from the fit (only their number of classes is passed) and used afterwards for the row's
    ``pseudo_label_accuracy`` (agreement on the target test set after the best class matching).
    h_R comes from :func:`reference_model`'s cache (the same numbers as training it in the fit).
    """
    defaults = relatedness.default_options(options.get("scale", "small"), options.get("schedule", "fast"))
    canonical = {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}  # same fit, same key
    key = content_key({"format": RELATEDNESS_CACHE_FORMAT, "pair": _pair_digest(pair_kwargs),
                       "options": canonical, "seed": seed, "target_labels": bool(target_labels)})
    path = cache_dir("relatedness") / f"{key}.json"
    if cache and path.exists():
        try:
            return json.loads(path.read_text())["row"]
        except (ValueError, KeyError) as e:
            warnings.warn(f"relatedness cache file {path} is corrupted ({e}); computing it again", RuntimeWarning)
    t0 = time.perf_counter()
    kwargs = dict(pair_kwargs)
    if not target_labels:
        (Zt, yt), (Zt_te, yt_te) = pair_kwargs["target_train"], pair_kwargs["target_test"]
        kwargs.update(target_train=(Zt, None), target_test=(Zt_te, None), n_target_classes=int(yt.max()) + 1)
    # the shared, cached h_R (the reference schedule trains its own, by autograd, as the original)
    if options.get("reference_classifier") is None and options.get("schedule", "fast") == "fast":
        _, h_R = reference_model(pair_kwargs, seed=seed, scale=options.get("scale", "small"),
                                 reference_classifier_options=options.get("reference_classifier_options"), cache=cache)
        options = dict(options, reference_classifier=h_R)
    res = relatedness.task_relatedness(**kwargs, seed=seed, **options)
    row = dict(result_row(res), seconds=round(time.perf_counter() - t0, 3))
    if not target_labels:
        row["pseudo_label_accuracy"] = pseudo_labels.matched_accuracy(res.pseudo_labels(Zt_te), yt_te,
                                                                      kwargs["n_target_classes"])
    if cache:
        write_json(path, {"key": key, "row": row})
    return row


def result_row(res, **labels) -> dict:
    """One table row of a task-relatedness result: the value, its terms and the transferred classifier."""
    t = res.terms
    return {**labels, "value": res.value, "value_wasserstein": t["value_wasserstein"],
            "value_failed": bool(t["wasserstein_failed"] and t["value_wasserstein"] == "code"),  # W's 1e10 flag
            "reweighted_reference_loss": t["reweighted_reference_loss"],
            "label_mismatch": t["label_mismatch"], "distribution_mismatch": t["distribution_mismatch"],
            "wasserstein": t["wasserstein"], "wasserstein_failed": t["wasserstein_failed"], "tau": t["tau"],
            "wasserstein_theorem": t.get("wasserstein_theorem"),
            "tau_input_space": t["tau_input_space"],
            "target_accuracy": res.target_accuracy, "target_cross_entropy": res.target_cross_entropy,
            "reference_accuracy": t["reference_test_accuracy"],
            "steps_used": t.get("steps_used"), "converged": t.get("converged"),
            "reference_iterations": res.reference_classifier.fit_info.get("iterations"),
            "reference_converged": res.reference_classifier.fit_info.get("converged"),
            "penalty_active": res.reference_classifier.fit_info.get("penalty_active_true_label"),
            "penalty_active_random": res.reference_classifier.fit_info.get("penalty_active_random_label")}


def example_plan(res, pair_kwargs: dict, n_per_side: int = 12, seed: int = 0) -> dict:
    """An exact transport plan between a few mapped reference points and target points, with the
    cost the fit's transport step uses: ``||A x + b - t|| + Lambda ||B e_y - e_s||`` (both
    non-squared, as in the original code).

    Points are taken class-balanced from the train sets and sorted by label for display.
    """
    rng = np.random.default_rng(seed)

    def pick(Z, y, scaler):
        idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:max(1, n_per_side // len(np.unique(y)))]
                              for c in np.unique(y)])[:n_per_side]
        idx = idx[np.argsort(y[idx], kind="stable")]
        return scaler.transform(Z[idx]), y[idx]

    Xr, yr = pick(*pair_kwargs["ref_train"], res.reference_scaler)
    Xt, yt = pick(*pair_kwargs["target_train"], res.target_scaler)
    U = Xr @ res.A.T + res.b
    K_T = res.B.shape[0]
    label_cost = euclidean_cost(res.B[:, yr].T, np.eye(K_T)[yt])
    cost = euclidean_cost(U, Xt) + res.options["Lambda"] * label_cost
    plan = emd_plan(np.full(len(U), 1 / len(U)), np.full(len(Xt), 1 / len(Xt)), cost)
    return {"plan": plan, "reference_labels": yr, "target_labels": yt}
