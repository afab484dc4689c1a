"""A task: a labelled image set, in memory or on disk, with a content id that keys every cache.

:class:`Task` is what :func:`taskrel_utils.inputs.data.load_task` returns; ``FileDataset`` and
:func:`read_image` read images from files (a folder, ImageNet, the paper's datasets), and
:func:`array_content_id` / :func:`files_content_id` are the content ids of the two kinds.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.checks import as_seed
from ..core.errors import TaskrelError
from ..core.io import sha256_bytes
from ..core.numerics import stratified_groups
from .preprocessing import eight_bit


def labels_array(labels) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise TaskrelError(f"labels must be 1-D (one integer per image), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TaskrelError(f"labels must be integers 0..K-1, got dtype {arr.dtype}; map class names to indices first")
    return arr.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Task:
    """A labelled image set: in memory (``images``) or on disk (``dataset[i] -> (PIL RGB, int)``).

    ``content_id`` identifies exactly these images and labels; the feature cache keys on it.
    """

    name: str
    split: str
    labels: np.ndarray
    class_names: tuple
    images: np.ndarray | None = None
    dataset: object | None = None
    content_id: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        labels = labels_array(self.labels)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        k = len(self.class_names)
        if k == 0:
            raise TaskrelError(f"task {self.name!r} has no classes; pass class_names (one name per label value)")
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise TaskrelError(f"task {self.name!r}: labels must lie in 0..{k - 1} (one per class name), got "
                               f"{labels.min()}..{labels.max()}")
        if (self.images is None) == (self.dataset is None):
            raise TaskrelError("a Task holds exactly one of images (in memory) or dataset (on disk); pass one of them")
        n = len(self.images) if self.images is not None else len(self.dataset)
        if n != len(labels):
            raise TaskrelError(f"task {self.name!r}: {n} images but {len(labels)} labels; pass one label per image")
        if self.images is not None:
            if self.images.dtype != np.uint8 or self.images.ndim not in (3, 4):
                raise TaskrelError("in-memory images must be uint8 (N,H,W) or (N,H,W,3), got "
                                   f"{self.images.dtype} {self.images.shape}")
            if not self.content_id:
                object.__setattr__(self, "content_id", array_content_id(self.images, labels, self.class_names))
        elif not self.content_id:
            raise TaskrelError("an on-disk task needs a content_id (a string that identifies exactly these images "
                               "and labels; the feature cache keys on it)")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        where = f"images={self.images.shape}" if self.images is not None else f"dataset={type(self.dataset).__name__}"
        return (f"Task(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"n_classes={self.n_classes}, {where}, content_id={self.content_id!r})")

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def prior(self) -> np.ndarray:
        """Class frequencies, shape (K,)."""
        return np.bincount(self.labels, minlength=self.n_classes) / max(len(self.labels), 1)

    def image(self, i):
        """Image ``i``: a numpy array (in-memory tasks) or an RGB PIL image (on-disk tasks)."""
        if self.images is not None:
            return self.images[i]
        return self.dataset[int(i)][0]

    def subset(self, indices) -> "Task":
        """The task restricted to ``indices`` (in that order); its content_id changes accordingly."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise TaskrelError(f"a boolean mask must have shape ({len(self)},) (one entry per sample), got {idx.shape}")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise TaskrelError("indices must be a 1-D integer array or a boolean mask")
        idx = idx.astype(np.int64)
        if idx.size == 0:
            raise TaskrelError(f"an empty subset of task {self.name!r}: pass at least one index")
        if idx.min() < -len(self) or idx.max() >= len(self):
            raise TaskrelError(f"indices out of range for task {self.name!r} with {len(self)} samples; pass indices "
                               f"in -{len(self)}..{len(self) - 1}")
        idx = idx % len(self)
        labels = self.labels[idx]
        if self.images is not None:
            return Task(self.name, self.split, labels, self.class_names, images=self.images[idx], info=self.info)
        cid = sha256_bytes("subset", self.content_id, idx.tobytes())[:20]
        return Task(self.name, self.split, labels, self.class_names, dataset=Subset(self.dataset, idx),
                    content_id=cid, info=self.info)

    def stratified_subset(self, per_class: int, seed: int = 0) -> "Task":
        """At most ``per_class`` samples of every class, drawn with ``seed`` (all of a smaller class)."""
        per_class = check_int("per_class", per_class, 1)
        (picked,) = stratified_groups(self.labels, lambda n: [per_class], np.random.default_rng(as_seed(seed)))
        return self.subset(picked)


def array_content_id(images: np.ndarray, labels: np.ndarray, class_names) -> str:
    return sha256_bytes("arrays", str(images.shape), str(images.dtype), np.ascontiguousarray(images).tobytes(),
                        labels.astype("<i8").tobytes(), json.dumps(list(class_names)))[:20]


def files_content_id(kind: str, root, files, labels, class_names, stat: bool = False) -> str:
    root = Path(root)
    rel = []
    for f in files:
        f = Path(f)
        try:
            r = f.relative_to(root).as_posix()
        except ValueError:
            r = f.as_posix()
        if stat:
            st = f.stat()
            r = f"{r}:{st.st_size}:{st.st_mtime_ns}"
        rel.append(r)
    return sha256_bytes("files", kind, "\n".join(rel), np.asarray(labels, np.int64).astype("<i8").tobytes(),
                        json.dumps(list(class_names)))[:20]


class Subset:
    """``base`` restricted to ``indices``."""

    def __init__(self, base, indices):
        self.base, self.indices = base, np.asarray(indices, np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.base[int(self.indices[i])]


class Concat:
    """Several datasets one after the other."""

    def __init__(self, parts):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, i):
        i = int(i)
        if i < 0:
            i += len(self)
        j = int(np.searchsorted(self.offsets, i, side="right")) - 1
        if not 0 <= j < len(self.parts):
            raise IndexError(i)
        return self.parts[j][i - int(self.offsets[j])]


class FileDataset:
    """Image files with labels: ``dataset[i] -> (RGB PIL image, label)``, decoded on access
    (:func:`read_image`)."""

    def __init__(self, files, labels):
        self.files = [str(f) for f in files]
        self.labels = [int(x) for x in labels]

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return read_image(self.files[i]), self.labels[i]


def read_image(path):
    """The image file ``path`` as an RGB PIL image (16-bit grey scaled to 8 bits:
    :func:`~taskrel_utils.inputs.preprocessing.eight_bit`). A file Pillow cannot decode (truncated,
    corrupt, not an image, unreadable) or refuses (more than twice ``PIL.Image.MAX_IMAGE_PIXELS``)
    raises a :class:`TaskrelError` that names it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return eight_bit(im).convert("RGB")
    except Image.DecompressionBombError as e:
        raise TaskrelError(f"image {path} is too large to decode safely ({e}); shrink it or remove it from the "
                           "folder") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated, corrupt, not an image, unreadable
        raise TaskrelError(f"image {path} cannot be read ({type(e).__name__}: {e}); replace it or remove it from "
                           "the folder") from None


def check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= lo and (hi is None or value <= hi)
    except (TypeError, ValueError):  # None, a string, ...
        ok = False
    if not ok:
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise TaskrelError(f"{name} must be an integer in {rng}, got {value!r}")
    return int(value)
