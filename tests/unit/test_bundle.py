"""The shipped mini bundle: checksums, byte-deterministic rebuild, refusal of wrong inputs."""
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from taskrel_utils.inputs import bundle
from taskrel_utils.core.errors import CorruptedFileError, MissingDataError, TaskrelError, UnknownNameError
from taskrel_utils.core.io import sha256_file
from taskrel_utils.core.paths import MINI_DIR

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "opencv-digits" / "digits.png").is_file(),
                                  reason="raw source files (shared/data) not present")


@pytest.fixture
def mini_copy(tmp_path):
    dst = tmp_path / "mini"
    shutil.copytree(MINI_DIR, dst)
    bundle.clear_cache()
    yield dst
    bundle.clear_cache()


def test_shipped_bundle_verifies_and_is_small():
    digests = bundle.verify_mini()
    assert set(digests) == set(bundle.BUNDLE_FILES)
    manifest = json.loads((MINI_DIR / "MANIFEST.json").read_text())
    total = sum((MINI_DIR / f).stat().st_size for f in bundle.BUNDLE_FILES)
    assert total == manifest["total_bytes"] <= 30 * 1024 * 1024  # the design's cap
    for fname, entry in manifest["files"].items():
        assert sha256_file(MINI_DIR / fname) == entry["sha256"]
        with np.load(MINI_DIR / fname) as z:
            assert {k: list(z[k].shape) for k in z.files} == {k: a["shape"] for k, a in entry["arrays"].items()}
    # the known input digests are recorded, and the provenance names the sources and the command
    for rel, sha in bundle.KNOWN_INPUTS.items():
        assert manifest["inputs"][rel]["sha256"] == sha
    prov = (MINI_DIR / "PROVENANCE.md").read_text()
    for needle in ("python -m taskrel_utils data build-mini --source DIR", "Apache-2.0 AND BSD-3-Clause",
                   "MIT", "Zalando", "LeCun", "scikit-learn", *(e["sha256"] for e in manifest["files"].values()),
                   *bundle.KNOWN_INPUTS.values()):
        assert needle in prov


def test_bundle_contents_and_splits():
    m = bundle.load_bundle_file("mnist5k")
    assert m["images"].shape == (5000, 28, 28) and m["images"].dtype == np.uint8
    assert np.array_equal(m["labels"], np.repeat(np.arange(10), 500))
    assert m["images"][:, :4].max() == 0 and m["images"][:, :, -4:].max() == 0  # 4 px padding
    for name in ("mnist5k", "uci-digits"):
        a = bundle.load_bundle_file(name)
        tr, te = a["train_idx"], a["test_idx"]
        assert len(np.intersect1d(tr, te)) == 0
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(len(a["labels"])))
    assert np.array_equal(np.bincount(m["labels"][m["train_idx"]]), [400] * 10)
    assert np.array_equal(np.bincount(m["labels"][m["test_idx"]]), [100] * 10)
    # t10k: the fashion targets' train / test and the reference test split, disjoint, covering the file
    f = bundle.load_bundle_file("fashion-eval")
    parts = [f["train_idx"], f["test_idx"], f["ref_test_idx"]]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(f["labels"])))
    for idx, per_class in zip(parts, (200, 100, 100)):
        assert np.array_equal(np.bincount(f["labels"][idx]), [per_class] * 10)
    # train file: the source corpus and the reference train pool inside it
    s = bundle.load_bundle_file("fashion-source")
    assert s["images"].shape == (30000, 28, 28)
    assert np.array_equal(np.bincount(s["labels"]), [3000] * 10)
    assert len(np.unique(s["ref_train_idx"])) == 5000
    assert np.array_equal(np.bincount(s["labels"][s["ref_train_idx"]]), [500] * 10)
    u = bundle.load_bundle_file("uci-digits")
    counts = np.bincount(u["labels"])
    assert np.array_equal(np.bincount(u["labels"][u["test_idx"]]), np.rint(counts / 3).astype(int))


def test_loaded_arrays_are_read_only_and_cached():
    a = bundle.load_bundle_file("mnist5k")
    assert bundle.load_bundle_file("mnist5k.npz") is a
    with pytest.raises(ValueError):
        a["images"][0, 0, 0] = 1


def test_unknown_bundle_file():
    with pytest.raises(UnknownNameError, match="mnist5k"):
        bundle.load_bundle_file("mnist")


def test_corrupted_bundle_file_is_refused(mini_copy):
    path = mini_copy / "mnist5k.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptedFileError) as exc:
        bundle.load_bundle_file("mnist5k", mini_copy)
    assert "mnist5k.npz" in str(exc.value) and "build-mini" in str(exc.value)
    with pytest.raises(CorruptedFileError, match="mnist5k.npz"):
        bundle.verify_mini(mini_copy)
    # the other files still load
    assert bundle.load_bundle_file("uci-digits", mini_copy)["images"].shape == (1797, 28, 28)


def test_missing_bundle_file_and_manifest(mini_copy):
    (mini_copy / "fashion-eval.npz").unlink()
    with pytest.raises(MissingDataError) as exc:
        bundle.load_bundle_file("fashion-eval", mini_copy)
    assert "fashion-eval.npz" in str(exc.value) and "build-mini" in str(exc.value)
    (mini_copy / "MANIFEST.json").unlink()
    with pytest.raises(MissingDataError, match="MANIFEST.json.*build-mini"):
        bundle.load_bundle_file("mnist5k", mini_copy)


def test_corrupted_manifest(mini_copy):
    (mini_copy / "MANIFEST.json").write_text("{not json")
    with pytest.raises(CorruptedFileError, match="MANIFEST.json"):
        bundle.verify_mini(mini_copy)


def test_deterministic_npz_roundtrip(tmp_path):
    arrays = {"images": np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28),
              "labels": np.array([3, 1], dtype=np.int64)}
    bundle.write_npz_deterministic(tmp_path / "a.npz", arrays)
    bundle.write_npz_deterministic(tmp_path / "b.npz", {k: v.copy() for k, v in arrays.items()})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as z:
        assert z.files == ["images", "labels"]
        for k, v in arrays.items():
            assert z[k].dtype == v.dtype and np.array_equal(z[k], v)
    with pytest.raises(TaskrelError, match="names"):
        bundle.write_npz_deterministic(tmp_path / "c.npz", {"names": np.array(["a", "b"], dtype=object)})


def test_missing_source_and_debian_lookup(tmp_path):
    with pytest.raises(MissingDataError, match="--source"):
        bundle.build_mini(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "src" / "opencv-digits").mkdir(parents=True)
    with pytest.raises(MissingDataError, match="fashion-mnist/t10k-images-idx3-ubyte.gz"):
        bundle.build_mini(tmp_path / "src", tmp_path / "out")
    assert bundle.DEBIAN_PATHS["opencv-digits/digits.png"] == "/usr/share/doc/opencv-doc/examples/data/digits.png"
    if not all(Path(p).is_file() for p in bundle.DEBIAN_PATHS.values()):
        with pytest.raises(MissingDataError, match="dataset-fashion-mnist"):
            bundle.build_mini(None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_input_is_refused(tmp_path):
    src = tmp_path / "src"
    for rel in bundle.KNOWN_INPUTS:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"not the real file")
    with pytest.raises(CorruptedFileError) as exc:
        bundle.build_mini(src, tmp_path / "out")
    assert "sha256" in str(exc.value) and "expected file" in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_cli_reports_errors(tmp_path, capsys):
    assert bundle.main(["build-mini", "--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 1
    assert "error:" in capsys.readouterr().err
    assert bundle.main(["verify-mini"]) == 0
    assert "OK" in capsys.readouterr().out


@needs_shared
def test_rebuild_reproduces_identical_bundle(tmp_path):
    out = tmp_path / "mini"
    manifest = bundle.build_mini(SHARED, out)
    shipped = json.loads((MINI_DIR / "MANIFEST.json").read_text())
    for fname in bundle.BUNDLE_FILES:
        assert sha256_file(out / fname) == shipped["files"][fname]["sha256"] == manifest["files"][fname]["sha256"]
    # the manifest also records library versions, which may legitimately differ: compare the data
    assert manifest["files"] == shipped["files"] and manifest["inputs"] == shipped["inputs"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp build folder removed
    # evaluation images come from the t10k file, pre-training images from the train file
    fe, ft = bundle.load_bundle_file("fashion-eval", out), bundle.load_bundle_file("fashion-source", out)
    t10k = bundle._read_idx(SHARED / "fashion-mnist" / "t10k-images-idx3-ubyte.gz")
    assert np.array_equal(fe["images"], t10k[fe["source_idx"]])
    with gzip.open(SHARED / "fashion-mnist" / "train-labels-idx1-ubyte.gz") as f:
        train_labels = np.frombuffer(f.read(), np.uint8, offset=8)
    assert np.array_equal(ft["labels"], train_labels[ft["source_idx"]])
    sheet_hash = hashlib.sha256((SHARED / "opencv-digits" / "digits.png").read_bytes()).hexdigest()
    assert manifest["inputs"]["opencv-digits/digits.png"]["sha256"] == sheet_hash
