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

Every loader returns a :class:`~taskrel_utils.inputs.task.Task` (:mod:`taskrel_utils.inputs.task`:
the record, its content id, subsets, images read from files).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from . import bundle
from ..core.checks import as_seed
from ..core.errors import CorruptedFileError, MissingDataError, OfflineError, TaskrelError, UnknownNameError
from ..core.io import atomic_path, sha256_bytes, sha256_file
from ..core.numerics import stratified_groups
from ..core.paths import MINI_DIR, cache_dir
from .task import Concat, FileDataset, Task, check_int, files_content_id

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
        ds = Concat(parts) if len(parts) > 1 else parts[0]
    cid = files_content_id(name, root, files, labels, classes)
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


def stratified_pool(labels, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a pool of at most ``size`` samples spread evenly over the classes of
    ``labels`` (N,): ``size // K`` per class, one more for ``size % K`` classes drawn with ``seed``;
    a class with fewer samples gives all of them. The samples of each class are drawn by
    :func:`~taskrel_utils.core.numerics.stratified_groups` (seeded per-class permutations)."""
    labels = np.asarray(labels)
    size = check_int("size", size, 1)
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
        n_classes = check_int("n_classes", n_classes, 1, len(wnids))
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
        max_images = check_int("max_images", max_images, 1)
        if max_images < len(files):
            keep = stratified_pool(labels, max_images, seed)
            files, labels = [files[i] for i in keep], [labels[i] for i in keep]
    classes = tuple(_imagenet_names(root, wnids))
    cid = files_content_id("imagenet", root, files, labels, classes)
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
    cid = files_content_id("folder", root, files, labels, classes, stat=True)
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

    per_class = check_int("per_class", per_class, 1)
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
