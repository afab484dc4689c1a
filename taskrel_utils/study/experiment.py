"""A profile turned into objects: its tasks (with the profile's per-class caps), its encoders, the
features of every (encoder, task, split), and the (encoder, target) pairs the analysis fits.

A pair is the keyword arguments of ``relatedness.task_relatedness``: the reference and target
features (train and test) of one encoder, with the reference cut down to as many classes as the
target has (K_R = K_T random reference classes, drawn with the profile's seed), its train split
cut to the profile's ``reference_pool`` images spread evenly over those classes (all of their
test images kept) and, when the profile asks for it, wide features projected on their top
principal axes.

With ImageNet as the reference (the paper's construction): for a target of K_T classes, K_T
random ImageNet classes, a 10,000-image train pool of them and their whole validation split. The
kit loads ImageNet once for all targets (the paper profile's ``task_options``): as many classes as
the largest target has, drawn with the task's seed, with enough train images per class for the
smallest target's pool; each target then draws its K_T classes among them (so a uniformly random
K_T of ImageNet's), whatever other targets a run includes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..inputs import cnn_zoo, data, encoders, feature_space, features
from .config import Profile
from ..core.errors import TaskrelError
from ..method.fit_options import encoder_fit_options
from ..core.io import sha256_bytes
from ..core.jobs import run_jobs

SPLITS = ("train", "test")

#: How many PCA projections one process keeps in memory (oldest dropped first). A projection
#: depends only on an encoder's reference-train features and the width kept, so a notebook needs
#: one per encoder of its zoo; each is a mean and a d x max_dim matrix, a few MB at most.
PROJECTION_MEMO_ENTRIES = 16


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
    """``{encoder name: Encoder}`` on the profile's device (:attr:`Profile.torch_device`); in-kit
    CNNs are pre-trained (in parallel, cached) on first use."""
    pretrain_zoo([(name, {}) for name in profile.encoders if name in cnn_zoo.ZOO], progress=progress)
    options = {"image_size": profile.image_size} if profile.image_size else {}
    device = profile.torch_device
    return {name: encoders.load_encoder(name, device=device, progress=progress, **options)
            for name in tqdm(profile.encoders, desc="encoders", disable=not progress)}


def pretrain_zoo(entries, n_jobs: int | None = None, progress: bool = True) -> None:
    """Pre-train (and cache) the in-kit CNNs ``entries = [(name, options)]`` that are not cached
    yet, in parallel processes (``n_jobs``); each trains on ``cnn_zoo.PRETRAIN_THREADS`` threads,
    so the weights are those of a sequential run."""
    jobs = [(name, dict(options)) for name, options in entries if not cnn_zoo.is_cached(name, **options)]
    if jobs:
        run_jobs(_pretrain_entry, jobs, n_jobs=n_jobs, desc="pre-training", progress=progress)


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
    """Which reference classes each target is paired with (one row per target): their names, their
    ids (ImageNet wnids, where the task has them), the train images of the pair (the
    ``reference_pool`` when the profile sets one) and the test images."""
    ref, ref_test = tasks[profile.reference]["train"], tasks[profile.reference]["test"]
    ids = ref.info.get("wnids", ref.class_names)
    rows = []
    for t in profile.targets:
        classes = reference_classes(ref.n_classes, tasks[t]["train"].n_classes, profile.seed)
        y = ref.labels[np.isin(ref.labels, classes)]
        pool = profile.reference_pool
        n_train = (len(reference_pool_indices(y, pool, profile.reference_pool_draw, profile.seed))
                   if pool is not None and len(y) > pool else len(y))
        rows.append({"target": t, "K_T": tasks[t]["train"].n_classes, "K_R": len(classes),
                     "reference_classes": ", ".join(ref.class_names[c] for c in classes),
                     "reference_ids": ", ".join(ids[c] for c in classes),
                     "reference_train": n_train,
                     "reference_test": int(np.isin(ref_test.labels, classes).sum())})
    return pd.DataFrame(rows)


def _restrict(Z, y, classes):
    """The rows of ``(Z, y)`` whose label is in ``classes``, relabelled 0..len(classes)-1."""
    keep = np.isin(y, classes)
    relabel = np.full(int(y.max()) + 1, -1)
    relabel[classes] = np.arange(len(classes))
    return Z[keep], relabel[y[keep]]


def reference_pool_indices(y, size: int, draw: str = "stratified", seed: int = 0) -> np.ndarray:
    """Sorted indices of the reference train pool of ``size`` samples among labels ``y``:
    ``draw="stratified"`` spreads them evenly over the classes (``data.stratified_pool``);
    ``"uniform"`` draws them uniformly at random without replacement, as the authors' first 50
    batches of 200 from a shuffled loader (so the class counts vary as the draw does)."""
    if draw == "stratified":
        return data.stratified_pool(y, size, seed=seed)
    if draw != "uniform":
        raise TaskrelError(f"reference pool draw must be 'stratified' or 'uniform', got {draw!r}")
    y = np.asarray(y)
    if size >= len(y):
        return np.arange(len(y))
    return np.sort(np.random.default_rng([seed, size]).choice(len(y), size, replace=False))


def pair(feats: dict, encoder: str, reference: str, target: str, max_dim: int | None = None,
         seed: int = 0, pool: int | None = None, pool_draw: str = "stratified") -> dict:
    """The keyword arguments of ``relatedness.task_relatedness`` for one (encoder, target).

    The reference keeps the classes :func:`reference_classes` pairs with the target (K_R = K_T);
    ``pool``: its train split is then cut to that many samples, spread evenly over those classes
    or drawn uniformly (``pool_draw``, :func:`reference_pool_indices`, seeded with ``seed``), its
    test split stays whole.
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
    Z, y = out["ref_train"]
    if pool is not None and len(y) > pool:
        keep = reference_pool_indices(y, pool, pool_draw, seed=seed)
        out["ref_train"] = (Z[keep], y[keep])
    return out


def profile_pair(profile: Profile, feats: dict, encoder: str, target: str) -> dict:
    """:func:`pair` with the profile's reference, projection, seed and reference pool (and its draw)."""
    return pair(feats, encoder, profile.reference, target, max_dim=profile.max_feature_dim, seed=profile.seed,
                pool=profile.reference_pool, pool_draw=profile.reference_pool_draw)


def relatedness_options(profile: Profile, feats: dict, encoder: str) -> dict:
    """The ``task_relatedness`` options of ``encoder``'s pairs: the profile's ``relatedness``
    mapping with the OT batch set for the encoder's family and raw feature width
    (:func:`fit_options.encoder_fit_options`)."""
    width = feats[encoder, profile.reference, "train"][0].shape[1]
    return encoder_fit_options(profile.relatedness, encoder, width)


_PROJECTIONS: dict = {}  # (content digest of Z_ref, k) -> (mean, axes), at most PROJECTION_MEMO_ENTRIES


def profile_fit(profile: Profile, feats: dict, encoder: str, target: str, **options):
    """``(pair, res)``: one pair of the profile (:func:`profile_pair`) and its task-relatedness fit
    as notebook 03's table fits it (:func:`relatedness_options`, the profile's seed, the encoder's
    cached h_R; ``options`` override), with the maps ``res.A``, ``res.b``, ``res.B``, ``res.D`` and
    the scalers that standardise its features.

    When the table has fitted the pair already, its maps come from the cache
    (:data:`cached_fits.TRANSFORMATIONS`) and are only evaluated, so that every term is the table's
    to the last bit: a fit run again in this process need not be, with ``precision="float32"``
    (the table fits in worker processes, whose float32 rounding can differ from the kernel's)."""
    from ..method.relatedness import default_options, task_relatedness
    from ..core.cache import MISSING
    from .cached_fits import TRANSFORMATIONS, reference_model

    the_pair = profile_pair(profile, feats, encoder, target)
    opts = {**relatedness_options(profile, feats, encoder), **options}
    # the key cached_fits.cached_relatedness gives the pair's maps: its options less their defaults
    defaults = default_options(opts.get("scale", "small"), opts.get("schedule", "fast"))
    canonical = {k: v for k, v in opts.items() if k not in defaults or defaults[k] != v}
    train_sets = {k: v for k, v in the_pair.items() if k != "target_test"}
    stored = TRANSFORMATIONS.load(TRANSFORMATIONS.path(TRANSFORMATIONS.key(pair=train_sets, options=canonical,
                                                                           seed=profile.seed)))
    _, h_R = reference_model(the_pair, seed=profile.seed, scale=opts.get("scale", "small"),
                             reference_classifier_options=opts.get("reference_classifier_options"))
    return the_pair, task_relatedness(**the_pair, seed=profile.seed, reference_classifier=h_R,
                                      transformations=None if stored is MISSING else stored, **opts)


def _projection(Z_ref, k: int):
    """``(mean, top-k principal axes)`` of ``Z_ref``, memoised by content: every target of an
    encoder (and every table of a notebook) projects with the same map, and the SVD of a wide
    reference set is the slow part."""
    key = (sha256_bytes(str(Z_ref.dtype), str(Z_ref.shape), np.ascontiguousarray(Z_ref).tobytes()), k)
    if key not in _PROJECTIONS:
        if len(_PROJECTIONS) >= PROJECTION_MEMO_ENTRIES:
            _PROJECTIONS.pop(next(iter(_PROJECTIONS)))
        _PROJECTIONS[key] = (Z_ref.mean(0), feature_space.principal_axes(Z_ref, k))
    return _PROJECTIONS[key]


def zoo_pairs(profile: Profile, feats: dict, encoders=None, targets=None) -> list:
    """``[(encoder, target, pair kwargs)]`` of the profile's pairs (projected as :func:`pair` does),
    ordered for parallel work: targets outermost, widest encoders first (the slowest jobs start
    early, and two workers rarely need the same encoder's h_R at once)."""
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    missing = [(e, t, s) for e in names for t in (profile.reference, *targets) for s in SPLITS if (e, t, s) not in feats]
    if missing:
        raise TaskrelError(f"no features for {len(missing)} (encoder, task, split) such as {missing[0]}; "
                           "compute them with experiment.profile_features(profile, encs, tasks)")
    width = {e: feats[e, profile.reference, "train"][0].shape[1] for e in names}
    return [(e, t, profile_pair(profile, feats, e, t)) for t in targets for e in sorted(names, key=lambda e: -width[e])]
