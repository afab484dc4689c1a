"""The shipped mini bundle (``data/mini/``): build it from raw files, verify it, load it.

The bundle holds four ``.npz`` files (uint8 28x28 grey images, white on black, like MNIST):

- ``fashion-source.npz`` 30,000 Fashion-MNIST *train*-file images (3,000 per class): the one
                       pre-training corpus of the main zoo, and ``ref_train_idx``, the reference
                       task's train pool drawn from it (500 per class), as the paper draws its
                       reference pool from the encoders' pre-training data (ImageNet train);
- ``fashion-eval.npz`` Fashion-MNIST *test*-file images: 200 train + 100 test per class for the
                       fashion targets and ``ref_test_idx``, the reference task's held-out test
                       split (100 per class, like ImageNet val), disjoint from the targets' images;
- ``mnist5k.npz``      the 5,000 OpenCV sample digits (from MNIST), a fixed stratified
                       4,000 train / 1,000 test split (400 / 100 per class): a target;
- ``uci-digits.npz``   scikit-learn's UCI optical digits (8x8 -> 20x20 bilinear -> 28x28), a
                       fixed stratified 2/3 train / 1/3 test split: a target (and, turned 90
                       degrees at load time, ``digits-rotated``).

Every split is stored as index arrays and chosen by sorting on a sha256 of the image bytes (no
random number generator), so the bundle never depends on RNG versions. The ``.npz`` files are
written byte-deterministically (fixed zip dates and attributes), so a rebuild with the same
inputs, numpy and zlib gives identical sha256s. ``MANIFEST.json`` records the sha256, size and
array shapes of every output and the sha256 of every input; :func:`load_bundle_file` checks a
file against it before use.

Rebuild: ``python -m taskrel_utils data build-mini --source DIR`` (``DIR`` laid out as
``fashion-mnist/*.gz`` + ``opencv-digits/digits.png``; without ``--source`` the Debian packages
``dataset-fashion-mnist`` and ``opencv-doc`` are looked up at their install paths).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..core.errors import CorruptedFileError, MissingDataError, TaskrelError, UnknownNameError
from ..core.io import sha256_bytes, sha256_file, write_json
from ..core.paths import MINI_DIR

BUNDLE_VERSION = 2
REBUILD_COMMAND = "python -m taskrel_utils data build-mini --source DIR"
MANIFEST_NAME = "MANIFEST.json"
PROVENANCE_NAME = "PROVENANCE.md"
BUNDLE_FILES = ("fashion-source.npz", "fashion-eval.npz", "mnist5k.npz", "uci-digits.npz")

#: The raw inputs, relative to ``--source``, with their known sha256 (never read from elsewhere).
KNOWN_INPUTS = {
    "fashion-mnist/t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    "fashion-mnist/train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "fashion-mnist/train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "opencv-digits/digits.png": "60c917758ef97cc090f35cd8e293e4de691ef942847da0ff80dedab33d57c662",
}

#: Where the Debian packages install the same files (used when no ``source`` is given).
DEBIAN_PATHS = {
    "fashion-mnist/t10k-images-idx3-ubyte.gz": "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
    "fashion-mnist/train-images-idx3-ubyte.gz": "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
    "fashion-mnist/train-labels-idx1-ubyte.gz": "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
    "opencv-digits/digits.png": "/usr/share/doc/opencv-doc/examples/data/digits.png",
}
DEBIAN_PACKAGES = {
    "fashion-mnist": "dataset-fashion-mnist 0.0~git20200523.55506a9-1",
    "opencv-digits": "opencv-doc 4.6.0+dfsg-12",
}

#: sha256 of scikit-learn's ``load_digits()`` as (images as uint8 0..16, targets as int64) bytes.
UCI_DIGITS_SHA256 = "65e5b4619795efb40c1082f4c350c049e4ad552200d369b6ae99e21eef5e72c5"

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# sizes of the selections
MNIST_TEST_PER_CLASS = 100          # of 500 per class -> 400 train / 100 test
FASHION_EVAL_TRAIN_PER_CLASS = 200   # t10k file: the fashion targets' train split
FASHION_EVAL_TEST_PER_CLASS = 100    # t10k file: the fashion targets' test split
REFERENCE_TEST_PER_CLASS = 100       # t10k file: the reference task's held-out test split
SOURCE_PER_CLASS = 3000              # train file: the pre-training corpus
REFERENCE_TRAIN_PER_CLASS = 500      # the reference train pool, drawn from the corpus

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _rebuild_hint(out) -> str:
    return (f"rebuild the bundle with `{REBUILD_COMMAND}` (DIR holding fashion-mnist/*.gz and "
            f"opencv-digits/digits.png), writing to {out}")


# --------------------------------------------------------------------------- inputs

def resolve_inputs(source=None) -> dict[str, Path]:
    """Map each known input (relative name) to its file under ``source`` or the Debian paths."""
    if source is None:
        paths = {rel: Path(p) for rel, p in DEBIAN_PATHS.items()}
        where = "the Debian install paths (packages dataset-fashion-mnist and opencv-doc)"
    else:
        source = Path(source)
        if not source.is_dir():
            raise MissingDataError(
                f"source folder {source} does not exist; pass --source DIR with DIR holding "
                f"fashion-mnist/*.gz and opencv-digits/digits.png")
        paths = {rel: source / rel for rel in KNOWN_INPUTS}
        where = str(source)
    missing = [rel for rel, p in paths.items() if not p.is_file()]
    if missing:
        raise MissingDataError(
            f"bundle inputs missing from {where}: {', '.join(missing)}; pass --source DIR "
            f"(DIR/fashion-mnist/*.gz, DIR/opencv-digits/digits.png) or install the Debian "
            f"packages dataset-fashion-mnist and opencv-doc")
    return paths


def verify_inputs(paths: dict[str, Path]) -> dict[str, str]:
    """Check every input against its known sha256; refuse a wrong file."""
    digests = {}
    for rel, p in paths.items():
        got = sha256_file(p)
        if got != KNOWN_INPUTS[rel]:
            raise CorruptedFileError(
                f"bundle input {p} has sha256 {got}, but the known digest of {rel} is "
                f"{KNOWN_INPUTS[rel]}: it is not the expected file (wrong version or damaged); "
                f"use the original file (Debian package {DEBIAN_PACKAGES[rel.split('/')[0]]})")
        digests[rel] = got
    return digests


def _read_idx(path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise CorruptedFileError(f"{path} is not a uint8 IDX file")
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims).copy()


def _hash_order(images: np.ndarray, salt: str) -> np.ndarray:
    """A fixed pseudo-random order of ``images``: sort by sha256(salt, index, bytes)."""
    keys = [hashlib.sha256(f"{salt}:{i}:".encode() + im.tobytes()).digest() for i, im in enumerate(images)]
    return np.array(sorted(range(len(images)), key=keys.__getitem__), dtype=np.int64)


def _stratified_pick(labels, images, salt, counts_fn):
    """Per class, order by hash and cut into consecutive groups of sizes ``counts_fn(n_class)``.

    Returns one sorted int64 index array per group.
    """
    order = _hash_order(images, salt)
    groups = None
    for c in np.unique(labels):
        idx = order[labels[order] == c]
        sizes = counts_fn(len(idx))
        if groups is None:
            groups = [[] for _ in sizes]
        start = 0
        for g, s in zip(groups, sizes):
            g.append(idx[start:start + s])
            start += s
    return [np.sort(np.concatenate(g)).astype(np.int64) for g in groups]


def _pad28(tiles20: np.ndarray) -> np.ndarray:
    return np.pad(tiles20, ((0, 0), (4, 4), (4, 4))).astype(np.uint8)


def _uci_digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    img16 = np.rint(d.images).astype(np.uint8)          # 0..16
    target = d.target.astype(np.int64)
    return img16, target


def _uci_to_28(img16: np.ndarray) -> np.ndarray:
    from PIL import Image

    scaled = np.rint(img16.astype(np.float64) * 255.0 / 16.0).astype(np.uint8)
    out = np.empty((len(scaled), 20, 20), np.uint8)
    for i, im in enumerate(scaled):
        out[i] = np.asarray(Image.fromarray(im, mode="L").resize((20, 20), Image.BILINEAR))
    return _pad28(out)


def _digest_set(*arrays) -> set:
    return {hashlib.sha256(im.tobytes()).hexdigest() for a in arrays for im in a}


def make_arrays(paths: dict[str, Path]) -> tuple[dict, dict]:
    """The arrays of every bundle file, and the UCI digits input digest."""
    from PIL import Image

    # reference: OpenCV digits sheet
    with Image.open(paths["opencv-digits/digits.png"]) as im:
        sheet = np.asarray(im.convert("L"))
    if sheet.shape != (1000, 2000):
        raise CorruptedFileError(f"digits.png has shape {sheet.shape}, expected (1000, 2000)")
    tiles = sheet.reshape(50, 20, 100, 20).swapaxes(1, 2).reshape(-1, 20, 20)
    m_images = _pad28(tiles)
    m_labels = np.repeat(np.arange(10, dtype=np.int64), 500)
    m_test, m_train = _stratified_pick(m_labels, m_images, "mnist5k",
                                       lambda n: (MNIST_TEST_PER_CLASS, n - MNIST_TEST_PER_CLASS))

    # UCI digits
    img16, u_labels = _uci_digits()
    uci_digest = sha256_bytes(img16.tobytes(), u_labels.astype("<i8").tobytes())
    if uci_digest != UCI_DIGITS_SHA256:
        raise CorruptedFileError(
            f"scikit-learn's load_digits() gives data with sha256 {uci_digest}, expected "
            f"{UCI_DIGITS_SHA256}: this scikit-learn ships different digits; install the pinned "
            f"requirements (pip install -r requirements.txt)")
    u_images = _uci_to_28(img16)
    u_test, u_train = _stratified_pick(u_labels, u_images, "uci-digits",
                                       lambda n: (int(round(n / 3)), n - int(round(n / 3))))

    # Fashion-MNIST test file: the fashion targets' splits and the reference test split
    fm = "fashion-mnist/"
    te_images = _read_idx(paths[fm + "t10k-images-idx3-ubyte.gz"])
    te_labels = _read_idx(paths[fm + "t10k-labels-idx1-ubyte.gz"]).astype(np.int64)
    groups_src = _stratified_pick(
        te_labels, te_images, "fashion-eval",
        lambda n: (FASHION_EVAL_TEST_PER_CLASS, FASHION_EVAL_TRAIN_PER_CLASS, REFERENCE_TEST_PER_CLASS))
    f_src = np.sort(np.concatenate(groups_src))
    f_images, f_labels = te_images[f_src], te_labels[f_src]
    f_test, f_train, f_ref_test = (np.searchsorted(f_src, g).astype(np.int64) for g in groups_src)

    # Fashion-MNIST train file: the pre-training corpus, minus any image equal to an evaluation
    # image (there are none in the known files; the check keeps it true by construction), and the
    # reference train pool inside it
    tr_images = _read_idx(paths[fm + "train-images-idx3-ubyte.gz"])
    tr_labels = _read_idx(paths[fm + "train-labels-idx1-ubyte.gz"]).astype(np.int64)
    eval_digests = _digest_set(m_images, u_images, np.rot90(u_images, 1, axes=(1, 2)), f_images)
    clash = np.array([hashlib.sha256(im.tobytes()).hexdigest() in eval_digests for im in tr_images])
    keep = np.flatnonzero(~clash)
    (p_sub,) = _stratified_pick(tr_labels[keep], tr_images[keep], "fashion-source",
                                lambda n: (SOURCE_PER_CLASS,))
    p_src = keep[p_sub]
    s_images, s_labels = tr_images[p_src], tr_labels[p_src]
    (s_ref_train,) = _stratified_pick(s_labels, s_images, "fashion-ref", lambda n: (REFERENCE_TRAIN_PER_CLASS,))

    arrays = {
        "fashion-source.npz": {"images": s_images, "labels": s_labels, "ref_train_idx": s_ref_train,
                               "source_idx": p_src.astype(np.int64)},
        "fashion-eval.npz": {"images": f_images, "labels": f_labels, "train_idx": f_train, "test_idx": f_test,
                             "ref_test_idx": f_ref_test, "source_idx": f_src.astype(np.int64)},
        "mnist5k.npz": {"images": m_images, "labels": m_labels, "train_idx": m_train, "test_idx": m_test},
        "uci-digits.npz": {"images": u_images, "labels": u_labels, "train_idx": u_train, "test_idx": u_test},
    }
    return arrays, {"uci_digits": uci_digest}


# --------------------------------------------------------------------------- deterministic npz

def write_npz_deterministic(path, arrays: dict) -> None:
    """Write ``arrays`` like ``np.savez_compressed`` but byte-for-byte reproducibly."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            if arr.dtype.byteorder == ">" or arr.dtype.kind not in "uifb":
                raise TaskrelError(f"array {name!r} has dtype {arr.dtype}; a bundle stores only little-endian "
                                   f"numeric or boolean arrays: convert it (e.g. arr.astype(np.int64))")
            arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)


def _array_info(arrays: dict) -> dict:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()}


def _versions() -> dict:
    import PIL
    import sklearn

    return {"python": "{}.{}".format(*sys.version_info[:2]), "numpy": np.__version__,
            "pillow": PIL.__version__, "scikit-learn": sklearn.__version__,
            "zlib": zlib.ZLIB_RUNTIME_VERSION}


# --------------------------------------------------------------------------- build

def build_mini(source=None, out=MINI_DIR) -> dict:
    """Build the mini bundle from raw files into ``out``; return its manifest.

    ``source``: a folder with ``fashion-mnist/*.gz`` and ``opencv-digits/digits.png``; ``None``
    looks them up where the Debian packages ``dataset-fashion-mnist`` and ``opencv-doc`` install
    them. Inputs are checked against their known sha256. Files are built in a temporary folder
    beside ``out`` and then moved in, the manifest last.
    """
    out = Path(out)
    paths = resolve_inputs(source)
    input_digests = verify_inputs(paths)
    arrays, extra = make_arrays(paths)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.build-"))
    try:
        files = {}
        for fname in BUNDLE_FILES:
            write_npz_deterministic(tmp / fname, arrays[fname])
            files[fname] = {"sha256": sha256_file(tmp / fname), "bytes": (tmp / fname).stat().st_size,
                            "arrays": _array_info(arrays[fname])}
        inputs = {rel: {"sha256": d, "bytes": paths[rel].stat().st_size} for rel, d in input_digests.items()}
        inputs["sklearn.datasets.load_digits()"] = {
            "sha256": extra["uci_digits"],
            "note": "sha256 of (images rounded to uint8 0..16, targets int64) bytes"}
        manifest = {
            "bundle_version": BUNDLE_VERSION,
            "rebuild_command": REBUILD_COMMAND,
            "files": files,
            "inputs": inputs,
            "built_with": _versions(),
            "total_bytes": sum(f["bytes"] for f in files.values()),
        }
        write_json(tmp / MANIFEST_NAME, manifest)
        (tmp / PROVENANCE_NAME).write_text(provenance_text(manifest))
        out.mkdir(parents=True, exist_ok=True)
        for fname in (*BUNDLE_FILES, PROVENANCE_NAME, MANIFEST_NAME):
            os.replace(tmp / fname, out / fname)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    clear_cache()
    return manifest


def provenance_text(manifest: dict) -> str:
    """PROVENANCE.md: sources, versions, licences, digests and the rebuild command."""
    v = manifest["built_with"]
    lines = [
        "# data/mini: provenance",
        "",
        "Small real-image bundle of the taskrel kit's `mini` profile. Built by "
        "`taskrel_utils/bundle.py`; every split is chosen by sorting on a sha256 of the image "
        "bytes (no random number generator) and stored as index arrays.",
        "",
        "## Rebuild",
        "",
        "```",
        REBUILD_COMMAND,
        "```",
        "",
        "`DIR` holds `fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` and "
        "`opencv-digits/digits.png`. Without `--source`, the files are taken from where the "
        "Debian packages install them: `/usr/share/datasets/fashion-mnist/` "
        "(`dataset-fashion-mnist`) and `/usr/share/doc/opencv-doc/examples/data/digits.png` "
        "(`opencv-doc`). Inputs are checked against the sha256 below and refused otherwise. "
        "The `.npz` files are written byte-deterministically (fixed zip metadata, deflate level 6), "
        f"so a rebuild with the same numpy and zlib reproduces the sha256s below (built with "
        f"Python {v['python']}, numpy {v['numpy']}, Pillow {v['pillow']}, scikit-learn "
        f"{v['scikit-learn']}, zlib {v['zlib']}).",
        "",
        "## Sources and licences",
        "",
        "| bundle data | source | version | licence |",
        "| --- | --- | --- | --- |",
        "| `fashion-source` (the main zoo's pre-training corpus; the reference task's train pool) "
        "| Fashion-MNIST train files (H. Xiao, K. Rasul, R. Vollgraf, Zalando Research) | Debian "
        "`dataset-fashion-mnist` 0.0~git20200523.55506a9-1 | MIT (Expat), Copyright 2017 Zalando SE |",
        "| `fashion-eval` (the reference task's test split; the `fashion`, `fashion-coarse` targets, and `fashion-upper`, `fashion-noisy`, made at load time) "
        "| Fashion-MNIST t10k (test) files | same | same |",
        "| `mnist5k` (target) | OpenCV sample `digits.png`: 5,000 handwritten digits "
        "(20x20, 500 per class), derived from MNIST (Y. LeCun, C. Cortes, C. J. C. Burges) | "
        "Debian `opencv-doc` 4.6.0+dfsg-12 (OpenCV 4.6.0) | Apache-2.0 AND BSD-3-Clause (OpenCV) |",
        "| `uci-digits` (and `digits-rotated`, made at load time) | UCI ML hand-written optical "
        "digits (E. Alpaydin, C. Kaynak), as shipped in scikit-learn `load_digits()` | "
        f"scikit-learn {v['scikit-learn']} | BSD-3-Clause (scikit-learn) |",
        "",
        "## Contents",
        "",
        "All images are uint8, 28x28, grey, white on black (MNIST framing).",
        "",
        f"- `fashion-source.npz`: {10 * SOURCE_PER_CLASS:,} images from the train file only, "
        f"{SOURCE_PER_CLASS:,} per class (`source_idx` = index in the train file): the one "
        "pre-training corpus of the main zoo. `ref_train_idx`: the reference task's train pool, "
        f"{REFERENCE_TRAIN_PER_CLASS} per class of these images (the encoders saw them in pre-training, "
        "as ImageNet models saw the paper's ImageNet-train reference pool).",
        f"- `fashion-eval.npz`: images from the t10k file only (`source_idx` = index in it): "
        f"`train_idx` / `test_idx` {FASHION_EVAL_TRAIN_PER_CLASS} / {FASHION_EVAL_TEST_PER_CLASS} "
        f"per class for the fashion targets, `ref_test_idx` {REFERENCE_TEST_PER_CLASS} per class for "
        "the reference task's test split; the three are disjoint, and no image of this file (or of "
        "the digits) is byte-identical to a pre-training image.",
        "- `mnist5k.npz`: the sheet cut into 50 x 100 tiles (`img.reshape(50, 20, 100, 20)"
        ".swapaxes(1, 2).reshape(-1, 20, 20)`, labels `np.repeat(np.arange(10), 500)`), padded "
        "4 px each side; `train_idx` / `test_idx`: fixed stratified 4,000 / 1,000 split "
        "(400 / 100 per class).",
        "- `uci-digits.npz`: 1,797 images, 8x8 values 0..16 scaled to 0..255, resized to 20x20 "
        "(Pillow bilinear) and padded to 28x28; fixed stratified split, 1/3 of each class for test.",
        "",
        "## sha256",
        "",
        "| file | role | bytes | sha256 |",
        "| --- | --- | --- | --- |",
    ]
    for rel, d in manifest["inputs"].items():
        lines.append(f"| `{rel}` | input | {d.get('bytes', '')} | `{d['sha256']}` |")
    for fname, d in manifest["files"].items():
        shapes = ", ".join(f"{k} {tuple(a['shape'])}" for k, a in d["arrays"].items())
        lines.append(f"| `{fname}` | output: {shapes} | {d['bytes']} | `{d['sha256']}` |")
    lines += ["", f"Total output: {manifest['total_bytes']} bytes.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- verify and load

_CACHE: dict = {}


def clear_cache() -> None:
    """Forget the per-process cache of verified bundle files."""
    _CACHE.clear()


def read_manifest(out=MINI_DIR) -> dict:
    out = Path(out)
    path = out / MANIFEST_NAME
    if not path.is_file():
        raise MissingDataError(f"bundle manifest {path} is missing; {_rebuild_hint(out)}")
    try:
        manifest = json.loads(path.read_text())
        manifest["files"][BUNDLE_FILES[0]]["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptedFileError(f"bundle manifest {path} is unreadable ({exc}); {_rebuild_hint(out)}") from None
    return manifest


def _check_file(out: Path, fname: str, manifest: dict) -> Path:
    path = out / fname
    if fname not in manifest["files"]:
        raise CorruptedFileError(f"bundle file {fname} is not listed in {out / MANIFEST_NAME}; {_rebuild_hint(out)}")
    if not path.is_file():
        raise MissingDataError(f"bundle file {path} is missing; {_rebuild_hint(out)}")
    want = manifest["files"][fname]["sha256"]
    got = sha256_file(path)
    if got != want:
        raise CorruptedFileError(
            f"bundle file {path} is corrupted: sha256 {got} differs from {want} in "
            f"{MANIFEST_NAME}; {_rebuild_hint(out)}")
    return path


def verify_mini(out=MINI_DIR) -> dict:
    """Check every bundle file against MANIFEST.json; return ``{file: sha256}`` or raise."""
    out = Path(out)
    manifest = read_manifest(out)
    for fname in BUNDLE_FILES:
        _check_file(out, fname, manifest)
    return {fname: manifest["files"][fname]["sha256"] for fname in BUNDLE_FILES}


def load_bundle_file(name: str, out=MINI_DIR) -> dict:
    """The arrays of one bundle file (e.g. ``"mnist5k"``), after checking its sha256.

    The verified arrays are cached per process (read-only); a change of the file on disk (size
    or modification time) makes it checked again.
    """
    fname = name if name.endswith(".npz") else f"{name}.npz"
    if fname not in BUNDLE_FILES:
        raise UnknownNameError("bundle file", name, [f[:-4] for f in BUNDLE_FILES])
    out = Path(out).resolve()
    path = out / fname
    try:
        st = path.stat()
        mst = (out / MANIFEST_NAME).stat()
        key = (str(path), st.st_size, st.st_mtime_ns, mst.st_size, mst.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    manifest = read_manifest(out)
    _check_file(out, fname, manifest)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for a in arrays.values():
        a.flags.writeable = False
    if key is not None:
        _CACHE[key] = arrays
    return arrays


# --------------------------------------------------------------------------- CLI

def main(argv=None) -> int:
    """``python -m taskrel_utils data {build-mini,verify-mini} ...``: returns an exit code."""
    parser = argparse.ArgumentParser(prog="python -m taskrel_utils data",
                                     description="Build or verify the shipped mini bundle (data/mini/).")
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build-mini", help="build data/mini/ from raw files")
    b.add_argument("--source", default=None,
                   help="folder with fashion-mnist/*.gz and opencv-digits/digits.png "
                        "(default: the Debian packages' install paths)")
    b.add_argument("--out", default=str(MINI_DIR), help=f"output folder (default {MINI_DIR})")
    v = sub.add_parser("verify-mini", help="check data/mini/ against its MANIFEST.json")
    v.add_argument("--out", default=str(MINI_DIR), help=f"bundle folder (default {MINI_DIR})")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build-mini":
            manifest = build_mini(args.source, args.out)
            for fname, d in manifest["files"].items():
                print(f"{d['sha256']}  {fname}  ({d['bytes']} bytes)")
            print(f"wrote {args.out} ({manifest['total_bytes']} bytes of data)")
        else:
            for fname, sha in verify_mini(args.out).items():
                print(f"{sha}  {fname}  OK")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
