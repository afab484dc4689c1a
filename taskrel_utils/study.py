"""A profile turned into objects: its tasks (with the profile's per-class caps), its encoders,
the features of every (encoder, task, split), and the (encoder, target) pairs the analysis fits.
"""
from __future__ import annotations

import copy
import json
import os
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from . import cnn_zoo, data, encoders, feature_space, features, pseudo_labels, relatedness
from .config import Profile
from .errors import TaskrelError
from .io import atomic_path, content_key, jsonable, sha256_bytes, write_json
from .paths import cache_dir
from .reference_classifier import ReferenceClassifier, train_reference_classifier

#: bump when task_relatedness changes its numbers (invalidates cached relatedness rows)
RELATEDNESS_CACHE_FORMAT = 7

SPLITS = ("train", "test")


def profile_tasks(profile: Profile) -> dict[str, dict[str, "data.Task"]]:
    """``{task name: {split: Task}}`` for the reference and every target, capped per class."""
    tasks = {}
    for name in (profile.reference, *profile.targets):
        options = dict(profile.task_options.get(name, {}))
        tasks[name] = {}
        for split in SPLITS:
            task = data.load_task(name, split, **options)
            cap = profile.max_per_class(split)
            if cap is not None and np.bincount(task.labels).max() > cap:
                task = task.stratified_subset(cap, seed=profile.seed)
            tasks[name][split] = task
    return tasks


def profile_encoders(profile: Profile, progress: bool = True) -> dict[str, "encoders.Encoder"]:
    """``{encoder name: Encoder}``; in-kit CNNs are pre-trained (in parallel, cached) on first use."""
    pretrain_zoo([(name, {}) for name in profile.encoders if name in cnn_zoo.ZOO], progress=progress)
    options = {"image_size": profile.image_size} if profile.image_size else {}
    return {name: encoders.load_encoder(name, progress=progress, **options)
            for name in tqdm(profile.encoders, desc="encoders", disable=not progress)}


def pretrain_zoo(entries, n_jobs: int | None = None, progress: bool = True) -> None:
    """Pre-train (and cache) the in-kit CNNs ``entries = [(name, options)]`` that are not cached
    yet, in parallel processes (``n_jobs``); each trains on ``cnn_zoo.PRETRAIN_THREADS`` threads,
    so the weights are those of a sequential run."""
    jobs = [(name, dict(options)) for name, options in entries if not cnn_zoo.is_cached(name, **options)]
    if jobs:
        _map(_pretrain_entry, jobs, n_jobs, "pre-training", progress)


def _pretrain_entry(name, options):
    cnn_zoo.load_zoo_encoder(name, progress=False, **options)


def profile_features(profile: Profile, encs: dict, tasks: dict, progress: bool = True):
    """Features of every (encoder, task, split): ``{(encoder, task, split): (Z, y)}``.

    Also returns one row per extraction (cache hit, seconds, images per second) for a table.
    """
    feats, rows = {}, []
    jobs = [(e, t, s) for e in encs for t in tasks for s in SPLITS]
    for enc_name, task_name, split in tqdm(jobs, desc="features", disable=not progress):
        info = {}
        task = tasks[task_name][split]
        feats[enc_name, task_name, split] = features.extract_features(
            encs[enc_name], task, batch_size=profile.batch_size, progress=progress, info=info)
        rows.append({"encoder": enc_name, "task": task_name, "split": split, "images": len(task),
                     "cache_hit": info["cache_hit"], "seconds": round(info["seconds"], 3),
                     "images_per_second": info["images_per_second"]})
    return feats, rows


def progress(iterable, desc: str):
    """``tqdm.auto`` progress over ``iterable`` (notebook-friendly, quiet with TQDM_DISABLE=1)."""
    return tqdm(iterable, desc=desc)


def reference_classes(n_reference_classes: int, n_target_classes: int, seed: int = 0) -> np.ndarray:
    """The reference classes paired with a target of ``n_target_classes`` classes (K_R = K_T, as the
    paper cuts ImageNet down to K_T random classes): all of them when the target has as many or
    more, else a sorted random subset of ``n_target_classes`` drawn with ``seed`` (the same
    subset for every encoder)."""
    if n_target_classes >= n_reference_classes:
        return np.arange(n_reference_classes)
    rng = np.random.default_rng([seed, n_target_classes])
    return np.sort(rng.permutation(n_reference_classes)[:n_target_classes])


def reference_class_table(profile: Profile, tasks: dict) -> pd.DataFrame:
    """Which reference classes each target is paired with (one row per target)."""
    ref = tasks[profile.reference]["train"]
    rows = []
    for t in profile.targets:
        classes = reference_classes(ref.n_classes, tasks[t]["train"].n_classes, profile.seed)
        rows.append({"target": t, "K_T": tasks[t]["train"].n_classes, "K_R": len(classes),
                     "reference_classes": ", ".join(ref.class_names[c] for c in classes),
                     "reference_train": int(np.isin(ref.labels, classes).sum()),
                     "reference_test": int(np.isin(tasks[profile.reference]["test"].labels, classes).sum())})
    return pd.DataFrame(rows)


def _restrict(Z, y, classes):
    """The rows of ``(Z, y)`` whose label is in ``classes``, relabelled 0..len(classes)-1."""
    keep = np.isin(y, classes)
    relabel = np.full(int(y.max()) + 1, -1)
    relabel[classes] = np.arange(len(classes))
    return Z[keep], relabel[y[keep]]


def pair(feats: dict, encoder: str, reference: str, target: str, max_dim: int | None = None,
         seed: int = 0) -> dict:
    """The keyword arguments of ``relatedness.task_relatedness`` for one (encoder, target).

    The reference keeps the classes :func:`reference_classes` pairs with the target (K_R = K_T).
    ``max_dim``: features wider than this are projected onto the top ``max_dim`` principal axes of
    the *reference train* features (all classes; one fixed linear map for both domains, i.e. part
    of the encoder); the mini profile uses it to keep the d x d feature map affordable on a CPU.
    """
    out = dict(ref_train=feats[encoder, reference, "train"], ref_test=feats[encoder, reference, "test"],
               target_train=feats[encoder, target, "train"], target_test=feats[encoder, target, "test"])
    Z_ref = out["ref_train"][0]
    if max_dim is not None and Z_ref.shape[1] > max_dim:
        mean, P = _projection(Z_ref, max_dim)
        out = {key: ((Z - mean) @ P, y) for key, (Z, y) in out.items()}
    K_R, K_T = int(out["ref_train"][1].max()) + 1, int(out["target_train"][1].max()) + 1
    classes = reference_classes(K_R, K_T, seed)
    if len(classes) < K_R:
        out.update(ref_train=_restrict(*out["ref_train"], classes), ref_test=_restrict(*out["ref_test"], classes))
    return out


_PROJECTIONS: dict = {}  # (content digest of Z_ref, k) -> (mean, axes); a few entries per process


def _projection(Z_ref, k: int):
    """``(mean, top-k principal axes)`` of ``Z_ref``, memoised by content: every target of an
    encoder (and every table of a notebook) projects with the same map; the SVD of a 4000 x 1280
    matrix costs ~2 s."""
    key = (sha256_bytes(str(Z_ref.dtype), str(Z_ref.shape), np.ascontiguousarray(Z_ref).tobytes()), k)
    if key not in _PROJECTIONS:
        if len(_PROJECTIONS) >= 16:
            _PROJECTIONS.pop(next(iter(_PROJECTIONS)))
        _PROJECTIONS[key] = (Z_ref.mean(0), feature_space.principal_axes(Z_ref, k))
    return _PROJECTIONS[key]


def shuffled_target(pair_kwargs: dict, seed: int = 0) -> dict:
    """The unrelated control: the same target features with their labels shuffled (train and test)."""
    rng = np.random.default_rng(seed)
    out = dict(pair_kwargs)
    for key in ("target_train", "target_test"):
        Z, y = pair_kwargs[key]
        out[key] = (Z, y[rng.permutation(len(y))])
    return out


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
    cost of the fit (METHOD 3.2): ``||A x + b - t|| + Lambda ||B e_y - e_s||`` (both non-squared).

    Points are taken class-balanced from the train sets and sorted by label for display.
    """
    from .transport import emd_plan, euclidean_cost

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


# ---------------------------------------------------------------------------- choosing tau0
def _h_R_report(kwargs: dict, *, seed: int, scale: str, clf_options: dict, plain=None):
    """h_R of a pair (:func:`reference_model`) against the same head without the penalty, on the
    held-out reference test split: ``(row, plain)``; pass ``plain`` back to reuse the probe."""
    from .reference_classifier import train_plain_probe

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
               progress: bool = True, **options) -> pd.DataFrame:
    """What the gradient-norm threshold tau0 does, measured without any fine-tuned accuracy.

    For every tau0 of ``tau0_grid`` and every encoder (default: the profile's main zoo) on
    ``target`` (default: the profile's first): h_R against a plain probe (:func:`_h_R_report`: the
    penalty's price is the held-out accuracy gap; the share of training samples at the threshold)
    and the task-relatedness of the real target and of its shuffled-label control. One row per
    (tau0, encoder).
    """
    names = list(encoders or profile.main_encoders)
    target = target or profile.targets[0]
    opts = {**profile.relatedness, **options}
    base = dict(opts.get("reference_classifier_options") or {})
    rows = []
    for encoder in tqdm(names, desc="tau0 sweep", disable=not progress):
        kwargs = pair(feats, encoder, profile.reference, target, max_dim=profile.max_feature_dim, seed=profile.seed)
        control = shuffled_target(kwargs, seed=seed)
        plain = None
        for tau0 in tau0_grid:
            clf_opts = {**base, "tau0": float(tau0)}
            report, plain = _h_R_report(kwargs, seed=seed, scale=opts.get("scale", "small"), clf_options=clf_opts,
                                        plain=plain)
            fit_opts = dict(opts, reference_classifier_options=clf_opts)
            related = cached_relatedness(kwargs, seed=seed, **fit_opts)
            unrelated = cached_relatedness(control, seed=seed, **fit_opts)
            rows.append({"encoder": encoder, "target": target, **report,
                         "value_related": related["value"], "value_unrelated": unrelated["value"],
                         "separation": (unrelated["value"] - related["value"]) / related["value"],
                         "tau": related["tau"], "label_mismatch": related["label_mismatch"]})
    return pd.DataFrame(rows)


def reference_fit_table(profile: Profile, feats: dict, *, encoders=None, seed: int | None = None,
                        progress: bool = True) -> pd.DataFrame:
    """h_R of every encoder (and every set of reference classes the targets pair it with) against
    the same head without the penalty (:func:`_h_R_report`). One row per (encoder, K_R)."""
    seed = profile.seed if seed is None else seed
    opts = profile.relatedness
    rows, seen = [], set()
    for encoder, target, kwargs in tqdm(zoo_pairs(profile, feats, encoders), desc="h_R vs plain probe",
                                        disable=not progress):
        K = int(kwargs["ref_train"][1].max()) + 1
        if (encoder, K) not in seen:
            seen.add((encoder, K))
            report, _ = _h_R_report(kwargs, seed=seed, scale=opts.get("scale", "small"),
                                    clf_options=opts.get("reference_classifier_options"))
            rows.append({"encoder": encoder, "group": profile.group(encoder), "K_R": K, **report})
    return pd.DataFrame(rows)


def choose_tau0(sweep: pd.DataFrame, max_price: float = 0.02) -> dict:
    """The tau0 of ``sweep`` (:func:`tau0_sweep`) with the largest mean separation of the real
    target from its shuffled-label control, among those whose penalty costs h_R at most
    ``max_price`` held-out reference accuracy on average (all of them if none does). Returns the
    choice and the per-tau0 means it was made from."""
    means = sweep.groupby("tau0")[["separation", "penalty_price", "reference_accuracy", "penalty_active"]].mean()
    eligible = means[means.penalty_price <= max_price]
    pool = eligible if len(eligible) else means
    return {"tau0": float(pool.separation.idxmax()), "max_price": max_price,
            "price_rule_met": bool(len(eligible)), "means": means.reset_index()}


# ---------------------------------------------------------------------------- relatedness over the zoo
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


def zoo_pairs(profile: Profile, feats: dict, encoders=None, targets=None) -> list:
    """``[(encoder, target, pair kwargs)]`` of the profile's pairs (projected as :func:`pair` does),
    ordered for parallel work: targets outermost, widest encoders first (the slowest jobs start
    early, and two workers rarely need the same encoder's h_R at once)."""
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    missing = [(e, t, s) for e in names for t in (profile.reference, *targets) for s in SPLITS if (e, t, s) not in feats]
    if missing:
        raise TaskrelError(f"no features for {len(missing)} (encoder, task, split) such as {missing[0]}; "
                           "compute them with study.profile_features(profile, encs, tasks)")
    width = {e: feats[e, profile.reference, "train"][0].shape[1] for e in names}
    return [(e, t, pair(feats, e, profile.reference, t, max_dim=profile.max_feature_dim, seed=profile.seed))
            for t in targets for e in sorted(names, key=lambda e: -width[e])]


def _zoo_table(rows: list, encoders: list, targets: list) -> pd.DataFrame:
    """Rows of per-pair jobs as a table in the profile's order (encoder-major)."""
    order = {(e, t): i for i, (e, t) in enumerate((e, t) for e in encoders for t in targets)}
    return pd.DataFrame(sorted(rows, key=lambda r: order[r["encoder"], r["target"]])).reset_index(drop=True)


def relatedness_table(profile: Profile, feats: dict, *, encoders=None, targets=None, seed: int | None = None,
                      cache: bool = True, progress: bool = True, target_labels: bool = True,
                      fraction: float | None = None, fraction_seed: int = 0, n_jobs: int | None = None,
                      **options) -> pd.DataFrame:
    """Task-relatedness of every (encoder, target) of the profile: one :func:`result_row` per pair.

    ``options`` override the profile's ``relatedness`` options; each encoder's h_R is trained once
    (and cached, :func:`reference_model`); results come from the cache when nothing changed.
    ``target_labels=False``: the pseudo-label variant (see :func:`cached_relatedness`);
    ``fraction``: only a stratified fraction of the target data (see :func:`target_fraction`).
    Pairs run in parallel processes (``n_jobs``, see :func:`n_jobs_default`; METHOD 8.2 #11:
    exact, every fit is deterministic on its own).
    """
    opts = {**profile.relatedness, **options}
    seed = profile.seed if seed is None else seed
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    jobs = [(e, t, kwargs, seed, cache, target_labels, fraction, fraction_seed, opts)
            for e, t, kwargs in zoo_pairs(profile, feats, names, targets)]
    return _zoo_table(_map(_relatedness_row, jobs, n_jobs, "task-relatedness", progress), names, targets)


def _relatedness_row(enc_name, target, kwargs, seed, cache, target_labels, fraction, fraction_seed, opts) -> dict:
    """The row of one pair; runs in a worker process."""
    if fraction is not None:
        kwargs = target_fraction(kwargs, fraction, seed=fraction_seed)
    row = cached_relatedness(kwargs, seed=seed, cache=cache, target_labels=target_labels, **opts)
    return {"encoder": enc_name, "target": target, **row}


def n_jobs_default(n_tasks: int) -> int:
    """Worker processes for ``n_tasks`` independent jobs: ``TASKREL_JOBS`` if set, else the CPU count."""
    env = os.environ.get("TASKREL_JOBS", "").strip()
    n = int(env) if env else (os.cpu_count() or 1)
    return max(1, min(n, n_tasks))


def _map(fn, jobs: list, n_jobs: int | None, desc: str, progress: bool) -> list:
    """``[fn(*job) for job in jobs]``, in ``n_jobs`` processes (joblib) when more than one, in order."""
    n_jobs = n_jobs_default(len(jobs)) if n_jobs is None else max(1, min(int(n_jobs), len(jobs)))
    if n_jobs == 1:
        return [fn(*job) for job in tqdm(jobs, desc=desc, disable=not progress)]
    from joblib import Parallel, delayed

    cache_env = os.environ.get("TASKREL_CACHE")  # reused workers keep the environment they started with
    results = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_in_cache)(cache_env, fn, *job) for job in jobs)
    return list(tqdm(results, total=len(jobs), desc=desc, disable=not progress))


def _in_cache(cache_env, fn, *args):
    """``fn(*args)`` in a worker, with the caller's ``TASKREL_CACHE`` (None: the default folder)."""
    if cache_env is None:
        os.environ.pop("TASKREL_CACHE", None)
    else:
        os.environ["TASKREL_CACHE"] = cache_env
    return fn(*args)


def probe_table(profile: Profile, feats: dict, *, encoders=None, targets=None, seed: int | None = None,
                progress: bool = True, n_jobs: int | None = None) -> pd.DataFrame:
    """The linear probe (METHOD 5.1, ``finetune.linear_probe``) of every (encoder, target) on the
    same (projected) target features as the fits, with h_R's options: cross-entropy and accuracy."""
    seed = profile.seed if seed is None else seed
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    options = dict(profile.relatedness.get("reference_classifier_options") or {},
                   scale=profile.relatedness.get("scale", "small"))
    jobs = [(e, t, kwargs, seed, options) for e, t, kwargs in zoo_pairs(profile, feats, names, targets)]
    return _zoo_table(_map(_probe_row, jobs, n_jobs, "linear probes", progress), names, targets)


def _probe_row(enc_name, target, kwargs, seed, options) -> dict:
    from .finetune import linear_probe

    probe = linear_probe(kwargs["target_train"], kwargs["target_test"], seed=seed, **options)
    return {"encoder": enc_name, "target": target, "probe_cross_entropy": probe.cross_entropy,
            "probe_accuracy": probe.accuracy}


# ---------------------------------------------------------------------------- baseline scores over the zoo
def score_table(profile: Profile, feats: dict, *, encoders=None, targets=None, seed: int | None = None,
                progress: bool = True, source: str = "reference_classifier", encs: dict | None = None,
                n_jobs: int | None = None) -> pd.DataFrame:
    """Every baseline score of :data:`scores.SCORES` for every (encoder, target), plus the OTCE
    components ``otce_wasserstein`` and ``otce_conditional_entropy``.

    Feature-based scores see the encoder's target-train features as the fits do (raw, as in the
    original code, unless the profile projects wide features, ``max_feature_dim``);
    probability-based ones (LEEP, NCE, PACTran-Dirichlet/Gamma) see the source probabilities of
    ``source``: "reference_classifier" (default; the encoder's h_R on the reference task, the same
    source task for the whole zoo, METHOD 6) or "imagenet_head" (the encoder's own ImageNet head,
    ``encs[name].head``; only the probability-based scores, only for encoders that have a head).
    OT-NCE / OTCE pair the reference-train and target-train features. Pairs run in parallel
    processes (``n_jobs``, as :func:`relatedness_table`).
    """
    if source not in ("reference_classifier", "imagenet_head"):
        raise ValueError(f"source must be 'reference_classifier' or 'imagenet_head', got {source!r}")
    head_only = source == "imagenet_head"
    if head_only and encs is None:
        raise ValueError("source='imagenet_head' needs encs={name: Encoder} (the heads live on the encoders)")
    opts = profile.relatedness
    seed = profile.seed if seed is None else seed
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    if head_only:
        names = [e for e in names if encs[e].head is not None]
        if not names:
            return pd.DataFrame()
    reference = dict(seed=seed, scale=opts.get("scale", "small"),
                     reference_classifier_options=opts.get("reference_classifier_options"))
    heads = {e: copy.deepcopy(encs[e].head).cpu() for e in names} if head_only else {}  # CPU copies for the workers
    jobs = [(e, t, kwargs, source, heads.get(e), feats[e, t, "train"][0] if head_only else None, reference)
            for e, t, kwargs in zoo_pairs(profile, feats, names, targets)]
    return _zoo_table(_map(_score_row, jobs, n_jobs, "baseline scores", progress), names, targets)


def _score_row(enc_name, target, kwargs, source, head, Z_raw, reference) -> dict:
    """The baseline scores of one pair; runs in a worker process. ``head``, ``Z_raw``: the
    encoder's ImageNet head and raw target-train features (``source="imagenet_head"`` only)."""
    from . import scores

    (Zr, yr), (Zt, yt) = kwargs["ref_train"], kwargs["target_train"]
    row = {"encoder": enc_name, "target": target, "source": source}
    if head is not None:
        probs = _head_probabilities(head, Z_raw)
    else:
        s_R, h_R = reference_model(kwargs, **reference)
        probs = h_R.predict_proba(s_R.transform(Zt))
    for name, spec in scores.SCORES.items():
        if spec.kind == "source_probs":
            row[name] = spec.function(probs, yt)
        elif spec.kind == "features" and head is None:
            row[name] = spec.function(Zt, yt)
    if head is None:
        w, ce = scores.otce_components(Zr, yr, Zt, yt, seed=reference["seed"])
        row.update(ot_nce=-ce, otce_wasserstein=w, otce_conditional_entropy=ce)
    return row


def _head_probabilities(head, Z) -> np.ndarray:
    """softmax of an encoder's own classifier ``head`` (a torch module) on its (raw, pooled) features ``Z`` (N, d)."""
    import torch

    with torch.no_grad():
        weight = next(head.parameters())
        logits = head(torch.tensor(np.asarray(Z), dtype=weight.dtype, device=weight.device))  # a copy: Z may be read-only
        return torch.softmax(logits.double(), dim=1).cpu().numpy()


def otce_leave_one_target_out(table: pd.DataFrame, accuracy: str = "accuracy") -> pd.Series:
    """OTCE = lambda_1 W + lambda_2 CE + b0 with the coefficients fitted by least squares on the
    *other* targets' (encoder, accuracy) rows (METHOD 6: no auxiliary tasks, so leave one target out).

    ``table``: columns target, otce_wasserstein, otce_conditional_entropy and ``accuracy``.
    Returns the OTCE score of every row (NaN where fewer than 3 rows remain to fit on).
    """
    out = pd.Series(np.nan, index=table.index, name="otce")
    X = np.column_stack([table["otce_wasserstein"], table["otce_conditional_entropy"], np.ones(len(table))])
    for target in table["target"].unique():
        held = (table["target"] == target).to_numpy()
        if (~held).sum() < 3:
            continue
        coef, *_ = np.linalg.lstsq(X[~held], table.loc[~held, accuracy].to_numpy(), rcond=None)
        out[held] = X[held] @ coef
    return out


# ---------------------------------------------------------------------------- little target data
def target_fraction(pair_kwargs: dict, fraction: float, seed: int = 0) -> dict:
    """The pair with only a stratified ``fraction`` of the target training data (METHOD 4.3).

    Per class ``max(1, round(fraction * n_c))`` samples, drawn with ``seed``. The subset is used
    for *everything* on the target side: it replaces ``target_train`` and, reused, ``target_test``
    (a user with little target data has no separate labelled test set), so ``s_T``, the target
    prior, the batches and the target side of W and tau all see only it.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    Z, y = pair_kwargs["target_train"]
    if fraction == 1:
        keep = np.arange(len(y))
    else:
        rng = np.random.default_rng(seed)
        keep = np.sort(np.concatenate([
            rng.permutation(idx)[:max(1, int(round(fraction * len(idx))))]
            for idx in (np.flatnonzero(y == c) for c in np.unique(y))]))
    subset = (Z[keep], y[keep])
    return dict(pair_kwargs, target_train=subset, target_test=subset)
