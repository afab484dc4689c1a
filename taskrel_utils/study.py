"""A profile turned into objects: its tasks (with the profile's per-class caps), its encoders,
the features of every (encoder, task, split), and the (encoder, target) pairs the analysis fits.
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from . import data, encoders, feature_space, features
from .config import Profile

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
    """``{encoder name: Encoder}``; in-kit CNNs are pre-trained (and cached) on first use."""
    options = {"image_size": profile.image_size} if profile.image_size else {}
    return {name: encoders.load_encoder(name, progress=progress, **options)
            for name in tqdm(profile.encoders, desc="encoders", disable=not progress)}


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


def pair(feats: dict, encoder: str, reference: str, target: str, max_dim: int | None = None) -> dict:
    """The keyword arguments of ``relatedness.task_relatedness`` for one (encoder, target).

    ``max_dim``: features wider than this are projected onto the top ``max_dim`` principal axes of
    the *reference train* features (one fixed linear map for both domains, i.e. part of the
    encoder); the mini profile uses it to keep the d x d feature map affordable on a CPU.
    """
    out = dict(ref_train=feats[encoder, reference, "train"], ref_test=feats[encoder, reference, "test"],
               target_train=feats[encoder, target, "train"], target_test=feats[encoder, target, "test"])
    Z_ref = out["ref_train"][0]
    if max_dim is None or Z_ref.shape[1] <= max_dim:
        return out
    P = feature_space.principal_axes(Z_ref, max_dim)
    return {key: ((Z - Z_ref.mean(0)) @ P, y) for key, (Z, y) in out.items()}


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
    return {**labels, "value": res.value, "reweighted_reference_loss": t["reweighted_reference_loss"],
            "label_mismatch": t["label_mismatch"], "distribution_mismatch": t["distribution_mismatch"],
            "wasserstein": t["wasserstein"], "tau": t["tau"], "wasserstein_theorem": t.get("wasserstein_theorem"),
            "target_accuracy": res.target_accuracy, "target_cross_entropy": res.target_cross_entropy}


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
