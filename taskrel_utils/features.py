"""Encoder features of a task: batched extraction with a content-addressed, checksummed cache.

``extract_features(encoder, task)`` returns ``(Z, y)``: ``Z`` float32 of shape (N, feature_dim),
``y`` int64 of shape (N,). The cache key covers everything that changes the numbers: the encoder's
name and weights hash, the task's content id (images, labels, split, subset) and the preprocessing.
A rerun with the same parameters is a cache hit; a corrupted cache file is detected by its
checksum, reported and recomputed, never used.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import TaskrelError
from .io import atomic_path, content_key, sha256_bytes
from .paths import cache_dir

FORMAT_VERSION = 1  # bump when the extraction itself changes meaning


def feature_key(encoder, task) -> str:
    """Content key of the features of ``task`` under ``encoder`` (hex string)."""
    return content_key({
        "format": FORMAT_VERSION,
        "encoder": encoder.name,
        "weights": encoder.weights_id,
        "preprocess": encoder.preprocess.description,
        "task": task.name,
        "split": task.split,
        "content": task.content_id,
    })


def cache_path(encoder, task, root=None) -> Path:
    root = Path(root) if root is not None else cache_dir("features")
    safe = encoder.name.replace("/", "_").replace(":", "_")
    return root / f"{safe}__{task.name}-{task.split}__{feature_key(encoder, task)}.npz"


def extract_features(encoder, task, *, batch_size: int = 256, cache: bool = True, cache_root=None,
                     progress: bool = True, info: dict | None = None):
    """Features of every image of ``task`` under ``encoder``; ``(Z, y)`` as numpy arrays.

    Z: (N, encoder.feature_dim) float32; y: (N,) int64 (= ``task.labels``).
    ``cache=False`` always recomputes (and does not write); ``info``, if given, is filled with
    ``cache_hit``, ``seconds``, ``images_per_second`` and ``path``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TaskrelError(f"batch_size must be a positive integer, got {batch_size}")
    path = cache_path(encoder, task, cache_root)
    info = {} if info is None else info
    info.update(path=str(path), cache_hit=False)
    y = np.asarray(task.labels, dtype=np.int64)
    if cache and path.exists():
        Z = _read_cache(path, n=len(task), dim=encoder.feature_dim)
        if Z is not None:
            info.update(cache_hit=True, seconds=0.0, images_per_second=None)
            return Z, y

    start = time.perf_counter()
    Z = _compute(encoder, task, batch_size, progress)
    seconds = time.perf_counter() - start
    info.update(seconds=seconds, images_per_second=len(task) / max(seconds, 1e-9))
    if cache:
        _write_cache(path, Z, {"encoder": encoder.name, "weights": encoder.weights_id,
                               "preprocess": encoder.preprocess.description, "task": task.name,
                               "split": task.split, "content": task.content_id})
    return Z, y


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


def _write_cache(path: Path, Z: np.ndarray, meta: dict) -> None:
    meta = dict(meta, sha256=sha256_bytes(Z.tobytes()), shape=list(Z.shape))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, Z=Z, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))


def _read_cache(path: Path, n: int, dim: int):
    """The cached array, or ``None`` (with a warning) if the file fails any check."""
    try:
        with np.load(path, allow_pickle=False) as f:
            Z = f["Z"]
            meta = json.loads(f["meta"].tobytes().decode())
        ok = Z.shape == (n, dim) and sha256_bytes(Z.tobytes()) == meta["sha256"]
    except Exception as exc:  # truncated zip, bad JSON, missing member ...
        ok, Z = False, None
        reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = "checksum or shape mismatch"
    if not ok:
        warnings.warn(f"feature cache file {path} is corrupted ({reason}); recomputing it", stacklevel=3)
        path.unlink(missing_ok=True)
        return None
    return Z
