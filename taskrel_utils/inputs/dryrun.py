"""Synthetic stand-ins of the paper's datasets in their real on-disk formats, for the
``paper-dryrun`` profile: the paper's code path (ImageNet folders, torchvision's Pets, DTD and
Aircraft readers, open_clip and timm encoders) run offline in seconds.

>>> make_dryrun("/tmp/dryrun")            # then IMAGENET_ROOT=/tmp/dryrun/imagenet TASKREL_DATA_ROOT=/tmp/dryrun

writes, under ``out``:

* ``imagenet/train/<wnid>/<wnid>_<i>.JPEG``, ``imagenet/val/<wnid>/ILSVRC2012_val_<n>.JPEG`` (the
  validation images sorted into class folders, as ImageFolder reads them) and
  ``imagenet/LOC_synset_mapping.txt`` (wnid and names, ImageNet's first classes);
* ``oxford-iiit-pet/images/<Breed>_<i>.jpg`` with ``annotations/trainval.txt`` and ``test.txt``
  (``<image id> <class id> <species> <breed id>``);
* ``dtd/dtd/images/<class>/<class>_<i>.jpg`` with ``labels/train1.txt``, ``val1.txt``, ``test1.txt``;
* ``fgvc-aircraft-2013b/data/images/<id>.jpg`` with ``variants.txt`` and
  ``images_variant_trainval.txt`` / ``images_variant_test.txt``.

Every image is a small JPEG whose colour and stripe pattern depend on its class (plus per-image
noise and jitter), so the encoders' features carry class signal. The same ``seed`` writes the
same files. :data:`SIZES` has two sizes: ``smoke`` (a few classes and images: the test suite) and
``full`` (the paper's class counts: 100 ImageNet classes, 37 / 47 / 100 target classes, the
``paper-dryrun-full`` profile, a rehearsal of the paper profile's scale).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import TaskrelError, UnknownNameError

__all__ = ["DryrunSize", "SIZES", "make_dryrun", "IMAGENET_CLASSES"]

#: ImageNet's first classes (wnid, name), the stand-in reference's classes
IMAGENET_CLASSES = (
    ("n01440764", "tench"), ("n01443537", "goldfish"), ("n01484850", "great white shark"),
    ("n01491361", "tiger shark"), ("n01494475", "hammerhead"), ("n01496331", "electric ray"),
    ("n01498041", "stingray"), ("n01514668", "cock"), ("n01514859", "hen"), ("n01518878", "ostrich"),
    ("n01530575", "brambling"), ("n01531178", "goldfinch"),
)
_PETS = ("Abyssinian", "american_bulldog", "Bengal", "beagle", "Birman", "boxer", "Bombay", "chihuahua")
_DTD = ("banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked")
_AIRCRAFT = ("707-320", "727-200", "A300B4", "Cessna 172", "DC-3", "Falcon 2000", "MD-80", "Tu-134")


@dataclass(frozen=True)
class DryrunSize:
    """How many classes and images per class each stand-in gets."""

    imagenet_classes: int
    imagenet_train: int     # train images per class
    imagenet_val: int       # validation images per class
    pets_classes: int
    pets_trainval: int
    pets_test: int
    dtd_classes: int
    dtd_per_split: int      # images per class in each of train1, val1, test1
    aircraft_classes: int
    aircraft_trainval: int
    aircraft_test: int
    image_size: int


SIZES = {
    "smoke": DryrunSize(imagenet_classes=8, imagenet_train=8, imagenet_val=4, pets_classes=6, pets_trainval=6,
                        pets_test=4, dtd_classes=5, dtd_per_split=3, aircraft_classes=4, aircraft_trainval=6,
                        aircraft_test=4, image_size=32),
    "full": DryrunSize(imagenet_classes=100, imagenet_train=300, imagenet_val=50, pets_classes=37, pets_trainval=100,
                       pets_test=100, dtd_classes=47, dtd_per_split=40, aircraft_classes=100, aircraft_trainval=67,
                       aircraft_test=33, image_size=96),
}


def _names(base, k: int, prefix: str) -> list[str]:
    """``k`` class names: ``base`` first, then numbered ones."""
    return [*base[:k], *(f"{prefix}{i}" for i in range(len(base), k))]


def _image(rng: np.random.Generator, k: int, n_classes: int, size: int, style: int) -> np.ndarray:
    """An RGB uint8 (size, size, 3) image of class ``k``: a class colour (hue k / n_classes), stripes
    whose angle and frequency depend on the class and the dataset (``style``), noise and a random phase."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    hue = (k / n_classes + 0.13 * style) % 1.0
    colour = 0.5 + 0.4 * np.cos(2 * np.pi * (hue + np.array([0.0, 1 / 3, 2 / 3])))
    angle = np.pi * ((k * 0.37 + style * 0.21) % 1.0)
    freq = 2 + (k + style) % 5
    phase = rng.uniform(0, 2 * np.pi)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    img = colour * (0.55 + 0.45 * stripes[..., None]) + rng.normal(0, 0.08, (size, size, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


class _Writer:
    """Writes the JPEGs of one dataset (``style`` varies the pattern between datasets)."""

    def __init__(self, seed: int, style: int, n_classes: int, size: int):
        self.rng = np.random.default_rng([seed, style])
        self.style, self.n_classes, self.size = style, n_classes, size

    def __call__(self, path: Path, k: int) -> None:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_image(self.rng, k, self.n_classes, self.size, self.style)).save(path, quality=90)


def _imagenet(out: Path, s: DryrunSize, seed: int) -> None:
    classes = list(IMAGENET_CLASSES[:s.imagenet_classes])
    classes += [(f"n9{i:07d}", f"synthetic class {i}") for i in range(len(classes), s.imagenet_classes)]
    write = _Writer(seed, 0, len(classes), s.image_size)
    val_id = 0
    for k, (wnid, _) in enumerate(classes):
        for i in range(s.imagenet_train):
            write(out / "train" / wnid / f"{wnid}_{i}.JPEG", k)
        for _ in range(s.imagenet_val):
            val_id += 1
            write(out / "val" / wnid / f"ILSVRC2012_val_{val_id:08d}.JPEG", k)
    (out / "LOC_synset_mapping.txt").write_text("".join(f"{w} {name}\n" for w, name in classes))


def _pets(out: Path, s: DryrunSize, seed: int) -> None:
    breeds = _names(_PETS, s.pets_classes, "breed_")
    write = _Writer(seed, 1, len(breeds), s.image_size)
    rows = {"trainval": [], "test": []}
    for k, breed in enumerate(breeds):
        species = 1 if breed[0].isupper() else 2  # the dataset's convention: cat breeds capitalised
        for i in range(s.pets_trainval + s.pets_test):
            image_id = f"{breed}_{i + 1}"
            write(out / "images" / f"{image_id}.jpg", k)
            rows["trainval" if i < s.pets_trainval else "test"].append(f"{image_id} {k + 1} {species} {k + 1}\n")
    _write_split_lists(out / "annotations", rows)


def _write_split_lists(folder: Path, lines_by_split: dict, name: str = "{}.txt") -> None:
    """One list file per split in ``folder`` (created), named ``name.format(split)``: the lines joined."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in lines_by_split.items():
        (folder / name.format(split)).write_text("".join(lines))


def _dtd(out: Path, s: DryrunSize, seed: int) -> None:
    classes = _names(_DTD, s.dtd_classes, "texture_")
    write = _Writer(seed, 2, len(classes), s.image_size)
    lists = {"train1": [], "val1": [], "test1": []}
    for k, c in enumerate(classes):
        for j, split in enumerate(lists):
            for i in range(s.dtd_per_split):
                name = f"{c}_{j * s.dtd_per_split + i + 1:04d}.jpg"
                write(out / "images" / c / name, k)
                lists[split].append(f"{c}/{name}\n")
    _write_split_lists(out / "labels", lists)


def _aircraft(out: Path, s: DryrunSize, seed: int) -> None:
    variants = _names(_AIRCRAFT, s.aircraft_classes, "variant-")
    write = _Writer(seed, 3, len(variants), s.image_size)
    data = out / "data"
    rows = {"trainval": [], "test": []}
    image_id = 1000000
    for k, v in enumerate(variants):
        for i in range(s.aircraft_trainval + s.aircraft_test):
            image_id += 1
            write(data / "images" / f"{image_id}.jpg", k)
            rows["trainval" if i < s.aircraft_trainval else "test"].append(f"{image_id} {v}\n")
    (data / "variants.txt").write_text("".join(f"{v}\n" for v in variants))
    _write_split_lists(data, rows, "images_variant_{}.txt")


def make_dryrun(out, size: str = "smoke", seed: int = 0) -> Path:
    """Write the stand-ins of ImageNet, Pets, DTD and Aircraft under ``out`` (see the module doc)
    at ``size`` (a key of :data:`SIZES`) with ``seed``. Returns ``out``; point ``IMAGENET_ROOT``
    at ``out/imagenet`` and ``TASKREL_DATA_ROOT`` at ``out``. Refuses a folder that already holds
    one of the four datasets."""
    if size not in SIZES:
        raise UnknownNameError("dry-run size", size, SIZES)
    out = Path(out)
    folders = {"imagenet": _imagenet, "oxford-iiit-pet": _pets, "dtd/dtd": _dtd, "fgvc-aircraft-2013b": _aircraft}
    existing = [f for f in folders if (out / f).exists()]
    if existing:
        raise TaskrelError(f"{out} already holds {', '.join(existing)}; pass an empty or new folder to --out")
    for folder, write in folders.items():
        write(out / folder, SIZES[size], int(seed))
    return out
