"""A profile turned into objects: its tasks (with the profile's per-class caps), its encoders
and the features of every (encoder, task, split). Notebooks call these three functions.
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from . import data, encoders, features
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
