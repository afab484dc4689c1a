"""The task registry: the shipped mini tasks, the paper's torchvision tasks, ImageNet, a user's folder.

>>> task = load_task("fashion-ref", split="train")  # 5,000 images, 10 classes
>>> task.images.shape, task.labels[:5], task.class_names[:3]

Mini tasks (``data/mini/``, checked against its MANIFEST before use; ``root=`` may name another
bundle folder): ``fashion-ref`` (the reference: a train pool from the zoo's pre-training corpus,
a held-out test split), and the targets ``fashion`` and ``fashion-coarse`` (held-out Fashion-MNIST
images, 10 or 4 coarse classes), ``mnist5k``, ``uci-digits``, ``digits-rotated``. Paper tasks
(``root=`` or ``TASKREL_DATA_ROOT``; ``download=True`` needs internet): ``pets``, ``dtd``,
``aircraft``, ``cifar10``, ``cifar100``. ``imagenet`` (``root=`` or ``IMAGENET_ROOT``, ImageFolder
layout) and ``folder`` (a user's own ``root/<class>/*`` or ``root/<split>/<class>/*``).

Pre-training corpora of the in-kit CNNs (:func:`load_pretraining_corpus`): ``"fashion-source"``
(the main zoo's source), ``"synth-digits"`` (rendered with Pillow's built-in font, cached),
``"reference-train"``.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import bundle
from ..core.checks import as_seed
from ..core.errors import CorruptedFileError, MissingDataError, OfflineError, TaskrelError, UnknownNameError
from ..core.io import atomic_path, sha256_bytes, sha256_file
from ..core.numerics import stratified_groups
from ..core.paths import MINI_DIR, cache_dir
from .preprocessing import eight_bit

SPLITS = ("train", "test")
DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = bundle.FASHION_CLASSES
FASHION_COARSE_CLASSES = ("tops", "trousers & dresses", "footwear", "bags")
# fine Fashion-MNIST label -> coarse label (tops 4 classes, trousers & dresses 2, footwear 3, bags 1)
FASHION_COARSE_MAP = np.array([0, 1, 0, 1, 0, 2, 0, 2, 3, 2], dtype=np.int64)
# the four upper-body garments of Fashion-MNIST: a fine-grained label set the source never isolates
FASHION_UPPER = (0, 2, 4, 6)
FASHION_UPPER_CLASSES = tuple(FASHION_CLASSES[c] for c in FASHION_UPPER)
#: standard deviation (grey levels of 0..255) of ``fashion-noisy``'s pixel noise
FASHION_NOISE_STD = 60.0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

MINI_TASKS = ("fashion-ref", "fashion", "fashion-upper", "fashion-noisy", "fashion-coarse", "mnist5k", "uci-digits",
              "digits-rotated")
PAPER_TASKS = ("pets", "dtd", "aircraft", "cifar10", "cifar100")
OTHER_TASKS = ("imagenet", "folder")
PRETRAINING_CORPORA = ("fashion-source", "synth-digits", "reference-train")

_TASK_OPTIONS = {
    "imagenet": {"n_classes": None, "max_images": None, "seed": 0},
    "folder": {"seed": 0, "test_fraction": 0.2},
}


# --------------------------------------------------------------------------- Task

def _labels_array(labels) -> np.ndarray:
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
        labels = _labels_array(self.labels)
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
                object.__setattr__(self, "content_id", _array_content_id(self.images, labels, self.class_names))
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
        return Task(self.name, self.split, labels, self.class_names, dataset=_Subset(self.dataset, idx),
                    content_id=cid, info=self.info)

    def stratified_subset(self, per_class: int, seed: int = 0) -> "Task":
        """At most ``per_class`` samples of every class, drawn with ``seed`` (all of a smaller class)."""
        per_class = _check_int("per_class", per_class, 1)
        (picked,) = stratified_groups(self.labels, lambda n: [per_class], np.random.default_rng(as_seed(seed)))
        return self.subset(picked)


def _array_content_id(images: np.ndarray, labels: np.ndarray, class_names) -> str:
    return sha256_bytes("arrays", str(images.shape), str(images.dtype), np.ascontiguousarray(images).tobytes(),
                        labels.astype("<i8").tobytes(), json.dumps(list(class_names)))[:20]


def _files_content_id(kind: str, root, files, labels, class_names, stat: bool = False) -> str:
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


class _Subset:
    """``base`` restricted to ``indices``."""

    def __init__(self, base, indices):
        self.base, self.indices = base, np.asarray(indices, np.int64)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.base[int(self.indices[i])]


class _Concat:
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


# --------------------------------------------------------------------------- registry

def list_tasks() -> list[str]:
    """Names accepted by :func:`load_task`."""
    return [*MINI_TASKS, *PAPER_TASKS, *OTHER_TASKS]


def _check_split(name: str, split: str) -> None:
    if split not in SPLITS:
        raise UnknownNameError("split", split, SPLITS)


def _check_options(name: str, options: dict) -> dict:
    valid = _TASK_OPTIONS.get(name, {})
    for key in options:
        if key not in valid:
            if not valid:
                raise TaskrelError(f"task {name!r} takes no options; got {key}={options[key]!r}")
            raise UnknownNameError("option", key, valid)
    return {**valid, **options}


def load_task(name: str, split: str = "train", *, root=None, download: bool = False, **options) -> Task:
    """Load task ``name`` (see :func:`list_tasks`), split ``"train"`` or ``"test"``.

    ``root``: the bundle folder (mini tasks, default ``data/mini``), the dataset root (paper
    tasks, default ``$TASKREL_DATA_ROOT``), the ImageNet folder (default ``$IMAGENET_ROOT``) or
    the user's image folder (``folder``). ``download=True`` lets torchvision download a paper
    task (needs internet). Options: ``imagenet``: ``n_classes``, ``max_images``, ``seed``;
    ``folder``: ``seed``, ``test_fraction``.
    ``imagenet``'s ``max_images`` cuts only the train split, evenly per class (see
    :func:`stratified_pool`); its validation split stays whole.
    """
    if name not in list_tasks():
        raise UnknownNameError("task", name, list_tasks())
    _check_split(name, split)
    opts = _check_options(name, options)
    if name in MINI_TASKS:
        return _load_mini(name, split, root)
    if name in PAPER_TASKS:
        return _load_paper(name, split, root, download)
    if download:
        raise TaskrelError(f"task {name!r} cannot be downloaded: point root= at a local folder")
    if name == "imagenet":
        return _load_imagenet(split, root, **opts)
    return _load_folder(split, root, **opts)


# --------------------------------------------------------------------------- mini tasks

def _load_mini(name: str, split: str, root) -> Task:
    """A task of the mini bundle. ``fashion-ref``, the reference task, takes its train pool from the
    pre-training corpus (``fashion-source``) and its test split from held-out t10k images."""
    out = MINI_DIR if root is None else Path(root)
    if name == "fashion-ref":
        file, idx_key = ("fashion-source", "ref_train_idx") if split == "train" else ("fashion-eval", "ref_test_idx")
    else:
        file = "fashion-eval" if name.startswith("fashion") else {"digits-rotated": "uci-digits"}.get(name, name)
        idx_key = f"{split}_idx"
    arrays = bundle.load_bundle_file(file, out)
    idx = arrays[idx_key]
    images, labels = arrays["images"][idx], arrays["labels"][idx]
    classes = FASHION_CLASSES if file.startswith("fashion") else DIGIT_CLASSES
    if name == "digits-rotated":
        images = np.ascontiguousarray(np.rot90(images, 1, axes=(1, 2)))
    elif name == "fashion-coarse":
        labels, classes = FASHION_COARSE_MAP[labels], FASHION_COARSE_CLASSES
    elif name == "fashion-upper":
        keep = np.isin(labels, FASHION_UPPER)
        images, labels = images[keep], np.searchsorted(FASHION_UPPER, labels[keep])
        classes = FASHION_UPPER_CLASSES
    elif name == "fashion-noisy":
        images = with_pixel_noise(images, FASHION_NOISE_STD)
    return Task(name, split, labels, classes, images=images, info={"source": f"{out / file}.npz"})


def with_pixel_noise(images: np.ndarray, std: float) -> np.ndarray:
    """``images`` (uint8, (N, H, W)) plus approximately Gaussian noise of standard deviation ``std``,
    clipped to 0..255: a domain shift of the pixels that keeps every label.

    The noise of an image is a function of its bytes alone (no random-number generator, so it is the
    same with any numpy): SHAKE-256 of the image gives 4 uniform bytes per pixel, whose sum (mean
    510, variance 4 * (256^2 - 1) / 12, nearly Gaussian) is standardised.
    """
    import hashlib

    images = np.asarray(images, dtype=np.uint8)
    n_pixels = int(np.prod(images.shape[1:]))
    uniform = np.stack([np.frombuffer(hashlib.shake_256(b"fashion-noisy" + im.tobytes()).digest(4 * n_pixels),
                                      dtype=np.uint8).reshape(4, n_pixels) for im in images]).astype(np.float64)
    z = (uniform.sum(1) - 510.0) / np.sqrt(4 * (256**2 - 1) / 12)
    noisy = images.reshape(len(images), -1) + std * z
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8).reshape(images.shape)


# --------------------------------------------------------------------------- paper tasks (torchvision)

_PAPER_FOLDERS = {
    "pets": "oxford-iiit-pet",
    "dtd": "dtd/dtd",
    "aircraft": "fgvc-aircraft-2013b",
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
}


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("HF_HUB_OFFLINE", "TASKREL_OFFLINE"))


def _load_paper(name: str, split: str, root, download: bool) -> Task:
    sub = _PAPER_FOLDERS[name]
    if root is None:
        root = os.environ.get("TASKREL_DATA_ROOT")
    if root is None and download:
        root = cache_dir("datasets")
    if root is None:
        raise MissingDataError(
            f"task {name!r} needs its dataset on disk: pass root=DIR to load_task or set the "
            f"environment variable TASKREL_DATA_ROOT=DIR, where DIR holds {sub}/ (torchvision's "
            f"layout), or pass download=True (needs internet)")
    root = Path(root)
    present = (root / sub).is_dir()
    if not present and not download:
        raise MissingDataError(
            f"task {name!r}: folder {root / sub} not found; point root= (or TASKREL_DATA_ROOT) at "
            f"the folder that holds {sub}/, or pass download=True (needs internet)")
    if not present and _offline():
        raise OfflineError(
            f"task {name!r} would need a download but the kit is offline (HF_HUB_OFFLINE/TASKREL_OFFLINE "
            f"set): download it on a connected machine and point root= (or TASKREL_DATA_ROOT) at the "
            f"folder holding {sub}/")
    try:
        return _build_paper_task(name, split, root, download and not present)
    except (MissingDataError, OfflineError):
        raise
    except RuntimeError as exc:
        raise MissingDataError(
            f"task {name!r}: torchvision could not read {root / sub} ({exc}); check the folder (it "
            f"must hold the complete dataset in torchvision's layout) or pass download=True "
            f"(needs internet)") from None
    except OSError as exc:  # URLError is an OSError: no network during download
        raise OfflineError(
            f"task {name!r}: download into {root} failed ({exc}); without internet, download the "
            f"dataset elsewhere and point root= (or TASKREL_DATA_ROOT) at the folder holding {sub}/") from None


def _build_paper_task(name: str, split: str, root: Path, download: bool) -> Task:
    import torchvision.datasets as tvd

    if name in ("cifar10", "cifar100"):
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        ds = cls(str(root), train=(split == "train"), download=download)
        images = np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8))
        return Task(name, split, np.asarray(ds.targets), tuple(ds.classes), images=images,
                    info={"source": str(root / _PAPER_FOLDERS[name])})
    if name == "pets":
        ds = tvd.OxfordIIITPet(str(root), split="trainval" if split == "train" else "test",
                               target_types="category", download=download)
        files, labels, classes = list(ds._images), list(ds._labels), tuple(ds.classes)
    elif name == "aircraft":
        ds = tvd.FGVCAircraft(str(root), split="trainval" if split == "train" else "test",
                              annotation_level="variant", download=download)
        files, labels, classes = list(ds._image_files), list(ds._labels), tuple(ds.classes)
    else:  # dtd, partition 1; train = train + val
        parts = ([tvd.DTD(str(root), split=s, partition=1, download=download and i == 0)
                  for i, s in enumerate(("train", "val"))] if split == "train"
                 else [tvd.DTD(str(root), split="test", partition=1, download=download)])
        names = [p.classes[lab] for p in parts for lab in p._labels]
        classes = tuple(sorted(set(names)))
        lookup = {c: i for i, c in enumerate(classes)}
        labels = [lookup[c] for c in names]
        files = [f for p in parts for f in p._image_files]
        if len(parts) > 1:
            for p in parts:  # relabel each part onto the union of classes
                p.target_transform = _Relabel({j: lookup[c] for j, c in enumerate(p.classes)})
        ds = _Concat(parts) if len(parts) > 1 else parts[0]
    cid = _files_content_id(name, root, files, labels, classes)
    return Task(name, split, np.asarray(labels), classes, dataset=ds, content_id=cid,
                info={"source": str(root / _PAPER_FOLDERS[name])})


class _Relabel:
    def __init__(self, mapping):
        self.mapping = dict(mapping)

    def __call__(self, y):
        return self.mapping[y]


# --------------------------------------------------------------------------- ImageNet and folders

def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _check_int(name: str, value, lo: int, hi: int | None = None) -> int:
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= lo and (hi is None or value <= hi)
    except (TypeError, ValueError):  # None, a string, ...
        ok = False
    if not ok:
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise TaskrelError(f"{name} must be an integer in {rng}, got {value!r}")
    return int(value)


def stratified_pool(labels, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a pool of at most ``size`` samples spread evenly over the classes of
    ``labels`` (N,): ``size // K`` per class, one more for ``size % K`` classes drawn with ``seed``;
    a class with fewer samples gives all of them. The samples of each class are drawn by
    :func:`~taskrel_utils.core.numerics.stratified_groups` (seeded per-class permutations)."""
    labels = np.asarray(labels)
    size = _check_int("size", size, 1)
    present = np.unique(labels)
    rng = np.random.default_rng([as_seed(seed), size])
    extra = set(rng.choice(len(present), size % len(present), replace=False).tolist())
    quotas = iter([size // len(present) + (i in extra) for i in range(len(present))])
    (picked,) = stratified_groups(labels, lambda n: [next(quotas)], rng)
    return picked


def _load_imagenet(split: str, root, n_classes=None, max_images=None, seed: int = 0) -> Task:
    """ImageNet from ``root/train/<wnid>/*`` and ``root/val/<wnid>/*`` (the validation images sorted
    into class folders, as torchvision's ImageFolder reads them). ``n_classes``: that many classes
    drawn with ``seed`` (sorted wnids), the same draw for both splits; ``max_images``: the train
    split becomes a pool of that many images spread evenly over the classes
    (:func:`stratified_pool`); the validation split is never cut (50 images per class)."""
    hint = ("ImageNet needs a local folder in ImageFolder layout (DIR/train/<wnid>/*.JPEG, "
            "DIR/val/<wnid>/*.JPEG); set the environment variable IMAGENET_ROOT=DIR or pass "
            "root=DIR; it cannot be downloaded")
    if root is None:
        root = os.environ.get("IMAGENET_ROOT")
    if root is None:
        raise MissingDataError(f"task 'imagenet': no folder given. {hint}")
    root = Path(root)
    sub = "train" if split == "train" else "val"
    for s in ("train", sub):
        if not (root / s).is_dir():
            raise MissingDataError(f"task 'imagenet': folder {root / s} not found. {hint}")
    wnids = _class_dirs(root / "train")
    if not wnids:
        raise MissingDataError(f"task 'imagenet': no class folders under {root / 'train'}. {hint}")
    seed = as_seed(seed)
    if n_classes is not None:
        n_classes = _check_int("n_classes", n_classes, 1, len(wnids))
        chosen = np.sort(np.random.default_rng(seed).choice(len(wnids), n_classes, replace=False))
        wnids = [wnids[i] for i in chosen]
    files, labels = [], []
    for k, w in enumerate(wnids):
        d = root / sub / w
        if d.is_dir():
            fs = _image_files(d)
            files += fs
            labels += [k] * len(fs)
    if not files:
        raise MissingDataError(f"task 'imagenet': no images for the chosen classes under {root / sub}. {hint}")
    if max_images is not None and split == "train":
        max_images = _check_int("max_images", max_images, 1)
        if max_images < len(files):
            keep = stratified_pool(labels, max_images, seed)
            files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    classes = tuple(_imagenet_names(root, wnids))
    cid = _files_content_id("imagenet", root, files, labels, classes)
    return Task("imagenet", split, np.asarray(labels), classes, dataset=FileDataset(files, labels),
                content_id=cid, info={"source": str(root), "wnids": tuple(wnids)})


def _imagenet_names(root: Path, wnids) -> list[str]:
    """Human-readable names from ``LOC_synset_mapping.txt`` (Kaggle layout) if present, else wnids."""
    mapping = {}
    f = root / "LOC_synset_mapping.txt"
    if f.is_file():
        for line in f.read_text().splitlines():
            w, _, desc = line.partition(" ")
            mapping[w] = desc.split(",")[0].strip() or w
    return [mapping.get(w, w) for w in wnids]


def _load_folder(split: str, root, seed: int = 0, test_fraction: float = 0.2) -> Task:
    """A user's image folder (:func:`_folder_splits`). A class without training images is dropped
    and a class without test images kept, each with a warning that names them."""
    hint = ("task 'folder' needs root=DIR with your images as DIR/<class>/*.jpg (split 80/20 "
            "by the kit) or DIR/train/<class>/* and DIR/test/<class>/*")
    if root is None:
        raise MissingDataError(f"no folder given. {hint}")
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"folder {root} not found. {hint}")
    seed = as_seed(seed)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise TaskrelError(f"test_fraction must lie strictly between 0 and 1 (the share of images held out for "
                           f"testing), got {test_fraction!r}")
    parts = _folder_splits(root, seed, float(test_fraction))
    empty = [c for c, p in parts.items() if not p["train"]]
    if empty:
        warnings.warn(f"task 'folder' under {root}: no training image in class folder(s) {', '.join(empty)}; dropped "
                      f"them (the task has {len(parts) - len(empty)} classes). Add images to them or remove them",
                      stacklevel=3)
    classes = [c for c, p in parts.items() if p["train"]]
    untested = [c for c in classes if not parts[c]["test"]]
    if untested:
        warnings.warn(f"task 'folder' under {root}: class(es) {', '.join(untested)} have no image in the test split, "
                      f"so the test split says nothing about them. Add images (a class split by the kit needs 2 or "
                      f"more)", stacklevel=3)
    files = [f for c in classes for f in parts[c][split]]
    labels = [k for k, c in enumerate(classes) for _ in parts[c][split]]
    if not classes or not files:
        raise MissingDataError(f"no images found for split {split!r} under {root}. {hint}")
    cid = _files_content_id("folder", root, files, labels, classes, stat=True)
    return Task("folder", split, np.asarray(labels), tuple(classes), dataset=FileDataset(files, labels),
                content_id=cid, info={"source": str(root)})


def _folder_splits(root: Path, seed: int, test_fraction: float) -> dict:
    """``{class: {"train": files, "test": files}}`` of a folder task, classes sorted: from
    ``root/train/<class>`` and ``root/test/<class>`` (or ``val``) when both exist, else each
    ``root/<class>`` split by a seeded permutation, ``test_fraction`` of it (at least one image,
    never all) to the test split; a class of one image keeps it for training."""
    test_dir = "test" if (root / "test").is_dir() else "val"
    if (root / "train").is_dir() and (root / test_dir).is_dir():
        dirs = {"train": root / "train", "test": root / test_dir}
        names = sorted(set(_class_dirs(dirs["train"])) | set(_class_dirs(dirs["test"])))
        return {c: {s: _image_files(d / c) if (d / c).is_dir() else [] for s, d in dirs.items()} for c in names}
    rng = np.random.default_rng(seed)
    parts = {}
    for c in _class_dirs(root):
        fs = _image_files(root / c)
        n_test = min(max(int(round(test_fraction * len(fs))), 1), len(fs) - 1) if len(fs) >= 2 else 0
        perm = rng.permutation(len(fs))
        parts[c] = {"test": [fs[i] for i in np.sort(perm[:n_test])], "train": [fs[i] for i in np.sort(perm[n_test:])]}
    return parts


# --------------------------------------------------------------------------- pre-training corpora

SYNTH_VERSION = 1


def render_synth_digits(per_class: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digits 0-9 drawn with Pillow's built-in scalable font: random size, stroke width, shear,
    rotation and translation; uint8 (10 * per_class, 28, 28) white on black, labels grouped by class."""
    from PIL import Image, ImageDraw, ImageFont

    per_class = _check_int("per_class", per_class, 1)
    try:
        fonts = {s: ImageFont.load_default(size=s) for s in range(30, 51)}
    except (TypeError, ImportError, OSError) as exc:  # Pillow < 10.1 or without FreeType
        raise TaskrelError(f"rendering synth-digits needs Pillow >= 10.1 with FreeType ({exc}); "
                           f"pip install -r requirements.txt") from None
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10, dtype=np.int64), per_class)
    images = np.empty((len(labels), 28, 28), np.uint8)
    for i, d in enumerate(labels):
        size = int(rng.integers(30, 51))
        stroke = int(rng.integers(0, 3))
        angle = float(rng.uniform(-25, 25))
        dx, dy = rng.uniform(-4, 4, 2)
        shear = float(rng.uniform(-0.3, 0.3))
        im = Image.new("L", (56, 56), 0)
        ImageDraw.Draw(im).text((28 + dx, 28 + dy), str(int(d)), fill=255, font=fonts[size], anchor="mm",
                                stroke_width=stroke, stroke_fill=255)
        im = im.transform((56, 56), Image.AFFINE, (1, shear, -shear * 28, 0, 1, 0), resample=Image.BILINEAR)
        im = im.rotate(angle, resample=Image.BILINEAR)
        images[i] = np.asarray(im.resize((28, 28), Image.LANCZOS))
    return images, labels


def synth_digits(per_class: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_synth_digits`, cached under ``cache_dir("corpora")`` (checksummed, atomic)."""
    import PIL
    from PIL import features

    key = sha256_bytes(json.dumps({"corpus": "synth-digits", "version": SYNTH_VERSION, "per_class": per_class,
                                   "seed": seed, "pillow": PIL.__version__,
                                   "freetype": features.version("freetype2")}, sort_keys=True))[:16]
    path = cache_dir("corpora") / f"synth-digits-{key}.npz"
    sidecar = path.with_suffix(".sha256")
    if path.is_file() and sidecar.is_file():
        if sha256_file(path) == sidecar.read_text().strip():
            with np.load(path, allow_pickle=False) as z:
                return z["images"], z["labels"]
        warnings.warn(f"cached corpus {path} failed its checksum; recomputing it", stacklevel=2)
    images, labels = render_synth_digits(per_class, seed)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, images=images, labels=labels)
        digest = sha256_file(tmp)
    with atomic_path(sidecar) as tmp:
        tmp.write_text(digest + "\n")
    return images, labels


def load_pretraining_corpus(name: str, *, root=None) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A corpus for pre-training the in-kit CNNs: ``(images uint8 (N,28,28), labels int64, class_names)``.

    ``"fashion-source"``: the 30,000 Fashion-MNIST train-file images of the bundle (``root`` =
    bundle folder), the main zoo's one source; the reference task's train pool is part of it, its
    test split and every target are not. ``"synth-digits"``: 10,000 rendered digits (a contrast's
    corpus). ``"reference-train"``: the reference task's own train pool (5,000 images), for the
    experiment "training the encoder longer on the reference task".
    """
    if name not in PRETRAINING_CORPORA:
        raise UnknownNameError("pre-training corpus", name, PRETRAINING_CORPORA)
    if name == "reference-train":
        task = load_task("fashion-ref", "train", root=root)
        return task.images, task.labels, task.class_names
    if name == "fashion-source":
        a = bundle.load_bundle_file("fashion-source", MINI_DIR if root is None else root)
        return a["images"], a["labels"], FASHION_CLASSES
    images, labels = synth_digits()
    return images, labels.astype(np.int64), tuple(f"digit {d}" for d in DIGIT_CLASSES)


__all__ = ["Task", "load_task", "list_tasks", "stratified_pool", "load_pretraining_corpus", "render_synth_digits", "synth_digits",
           "FileDataset", "CorruptedFileError", "MissingDataError", "OfflineError", "UnknownNameError"]
