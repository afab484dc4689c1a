"""Encoder features of a task: batched extraction with a content-addressed, checksummed cache.

``extract_features(encoder, task)`` returns ``(Z, y)``: ``Z`` float32 of shape (N, feature_dim),
``y`` int64 of shape (N,). The cache key covers everything that changes the numbers: the encoder's
name and weights hash, the task's content id (images, labels, split, subset), the preprocessing
and the code of the extraction (the :data:`FEATURES` namespace of :mod:`taskrel_utils.core.cache`).
A rerun with the same parameters is a cache hit; a corrupted cache file is detected by its
checksum, reported and recomputed, never used.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.cache import Namespace
from ..core.errors import CorruptedFileError, TaskrelError

#: the cache of features: the code of the encoders (their forward pass, the preprocessing) is in every key
FEATURES = Namespace("features", code=("inputs.features", "inputs.encoders"), kind="arrays")


def _inputs(encoder, task) -> dict:
    return {"encoder": encoder.name, "weights": encoder.weights_id, "preprocess": encoder.preprocess.description,
            "task": task.name, "split": task.split, "content": task.content_id}


def feature_key(encoder, task) -> str:
    """Content key of the features of ``task`` under ``encoder`` (hex string)."""
    return FEATURES.key(**_inputs(encoder, task))


def _label(encoder, task) -> str:
    return f"{encoder.name.replace('/', '_').replace(':', '_')}__{task.name}-{task.split}"


def cache_path(encoder, task, root=None) -> Path:
    """The cache entry of the features of ``task`` under ``encoder`` (``root``: another folder)."""
    return FEATURES.path(feature_key(encoder, task), _label(encoder, task), root)


def extract_features(encoder, task, *, batch_size: int = 256, cache: bool = True, cache_root=None,
                     progress: bool = True, info: dict | None = None):
    """Features of every image of ``task`` under ``encoder``; ``(Z, y)`` as numpy arrays.

    Z: (N, encoder.feature_dim) float32; y: (N,) int64 (= ``task.labels``).
    ``cache=False`` always recomputes (and does not write); ``info``, if given, is filled with
    ``cache_hit``, ``seconds``, ``images_per_second`` and ``path``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TaskrelError(f"batch_size must be a positive integer, got {batch_size}")
    key, label = feature_key(encoder, task), _label(encoder, task)
    info = {} if info is None else info
    info.update(path=str(FEATURES.path(key, label, cache_root)))
    y = np.asarray(task.labels, dtype=np.int64)
    timing = {}

    def compute():
        start = time.perf_counter()
        Z = _compute(encoder, task, batch_size, progress)
        timing["seconds"] = time.perf_counter() - start
        return {"Z": Z, **_inputs(encoder, task)}

    def validate(entry):
        if entry["Z"].shape != (len(task), encoder.feature_dim):
            raise CorruptedFileError(f"shape {entry['Z'].shape}, expected ({len(task)}, {encoder.feature_dim})")

    entry, hit = FEATURES.get_or_compute(key, compute, label=label, root=cache_root, enabled=cache, validate=validate)
    seconds = timing.get("seconds", 0.0)
    info.update(cache_hit=hit, seconds=seconds,
                images_per_second=None if hit else len(task) / max(seconds, 1e-9))
    return entry["Z"], y


def _batches(task, batch_size):
    n = len(task)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if getattr(task, "images", None) is not None:
            yield task.images[start:stop]
        else:
            yield [task.image(i) for i in range(start, stop)]


@torch.no_grad()
def _compute(encoder, task, batch_size, progress):
    device = next(encoder.model.parameters(), torch.empty(0)).device
    out = np.empty((len(task), encoder.feature_dim), dtype=np.float32)
    n_batches = -(-len(task) // batch_size)
    bar = tqdm(_batches(task, batch_size), total=n_batches, disable=not progress, leave=False,
               desc=f"{encoder.name} on {task.name}/{task.split}", unit="batch")
    row = 0
    for images in bar:
        z = encoder.encode(encoder.preprocess(images).to(device))
        z = z.detach().float().cpu().numpy()
        if z.shape != (len(images), encoder.feature_dim):
            raise TaskrelError(f"encoder {encoder.name!r} returned shape {z.shape}, "
                               f"expected ({len(images)}, {encoder.feature_dim})")
        out[row:row + len(z)] = z
        row += len(z)
    if not np.isfinite(out).all():
        raise TaskrelError(f"encoder {encoder.name!r} produced NaN or infinite features on {task.name}/"
                           f"{task.split}: check its weights and preprocessing")
    return out
