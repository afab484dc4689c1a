"""The task registry: mini tasks, pre-training corpora, paper loaders on fake folders, errors."""
import hashlib
import os
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from taskrel_utils.inputs import bundle, data
from taskrel_utils.core.errors import CorruptedFileError, MissingDataError, OfflineError, TaskrelError, UnknownNameError
from taskrel_utils.core.paths import MINI_DIR


@pytest.fixture(scope="module", autouse=True)
def _tmp_cache(tmp_path_factory):
    """Keep the synth-digits cache out of the checkout."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TASKREL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def no_env(monkeypatch):
    for v in ("TASKREL_DATA_ROOT", "IMAGENET_ROOT"):
        monkeypatch.delenv(v, raising=False)


def _hashes(images):
    return {hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images}


def _write_image(path, seed=0, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


# --------------------------------------------------------------------------- mini tasks

def test_list_tasks():
    names = data.list_tasks()
    assert {"fashion-ref", "mnist5k", "uci-digits", "digits-rotated", "fashion", "fashion-upper", "fashion-noisy",
            "fashion-coarse", "pets", "dtd",
            "aircraft", "cifar10", "cifar100", "imagenet", "folder"} == set(names)


@pytest.mark.parametrize("name,n_train,n_test,k", [
    ("mnist5k", 4000, 1000, 10), ("uci-digits", 1198, 599, 10), ("digits-rotated", 1198, 599, 10),
    ("fashion", 2000, 1000, 10), ("fashion-coarse", 2000, 1000, 4), ("fashion-ref", 5000, 1000, 10),
    ("fashion-upper", 800, 400, 4), ("fashion-noisy", 2000, 1000, 10)])
def test_mini_task_shapes(name, n_train, n_test, k):
    for split, n in (("train", n_train), ("test", n_test)):
        t = data.load_task(name, split)
        assert t.name == name and t.split == split and len(t) == n
        assert t.images.shape == (n, 28, 28) and t.images.dtype == np.uint8
        assert t.labels.shape == (n,) and t.labels.dtype == np.int64
        assert t.labels.min() == 0 and t.labels.max() == k - 1
        assert t.n_classes == k == len(t.class_names) and t.dataset is None
        assert t.prior.shape == (k,) and np.isclose(t.prior.sum(), 1.0)
        assert t.images.mean() < 128  # white object on black
        assert isinstance(t.image(0), np.ndarray) and t.image(0).shape == (28, 28)


def test_mnist5k_exact_stratified_split():
    tr, te = data.load_task("mnist5k", "train"), data.load_task("mnist5k", "test")
    assert np.array_equal(np.bincount(tr.labels), [400] * 10)
    assert np.array_equal(np.bincount(te.labels), [100] * 10)
    assert tr.class_names == tuple("0123456789")
    assert not (_hashes(tr.images) & _hashes(te.images))
    assert len(_hashes(tr.images) | _hashes(te.images)) == 5000


@pytest.mark.parametrize("name", data.MINI_TASKS)
def test_train_test_disjoint(name):
    tr, te = data.load_task(name, "train"), data.load_task(name, "test")
    assert not (_hashes(tr.images) & _hashes(te.images))


def test_fashion_coarse_and_rotated():
    f, c = data.load_task("fashion", "train"), data.load_task("fashion-coarse", "train")
    assert np.array_equal(f.images, c.images)
    assert c.class_names == ("tops", "trousers & dresses", "footwear", "bags")
    assert f.class_names[0] == "T-shirt/top" and f.class_names[9] == "Ankle boot"
    np.testing.assert_allclose(c.prior, [0.4, 0.2, 0.3, 0.1])
    fine_to_coarse = {f.class_names[a]: c.class_names[b] for a, b in zip(f.labels, c.labels)}
    assert fine_to_coarse == {"T-shirt/top": "tops", "Pullover": "tops", "Coat": "tops", "Shirt": "tops",
                              "Trouser": "trousers & dresses", "Dress": "trousers & dresses",
                              "Sandal": "footwear", "Sneaker": "footwear", "Ankle boot": "footwear",
                              "Bag": "bags"}
    assert f.content_id != c.content_id
    u, r = data.load_task("uci-digits", "test"), data.load_task("digits-rotated", "test")
    assert np.array_equal(r.images, np.rot90(u.images, 1, axes=(1, 2)))
    assert np.array_equal(r.labels, u.labels) and r.content_id != u.content_id


def test_content_id_determinism_and_subsets():
    a, b = data.load_task("mnist5k", "train"), data.load_task("mnist5k", "train")
    assert a.content_id == b.content_id and len(a.content_id) >= 16
    assert a.content_id != data.load_task("mnist5k", "test").content_id
    s1, s2 = a.subset(np.arange(10)), a.subset(np.arange(10))
    assert s1.content_id == s2.content_id != a.content_id
    assert s1.content_id != a.subset(np.arange(1, 11)).content_id
    assert np.array_equal(s1.images, a.images[:10]) and np.array_equal(s1.labels, a.labels[:10])
    mask = np.zeros(len(a), bool)
    mask[:10] = True
    assert a.subset(mask).content_id == s1.content_id
    st = a.stratified_subset(7, seed=0)
    assert len(st) == 70 and np.array_equal(np.bincount(st.labels), [7] * 10)
    assert st.content_id == a.stratified_subset(7, seed=0).content_id
    assert st.content_id != a.stratified_subset(7, seed=1).content_id
    with pytest.raises(TaskrelError, match="empty"):
        a.subset([])
    with pytest.raises(TaskrelError, match="out of range"):
        a.subset([len(a)])
    with pytest.raises(TaskrelError, match="boolean mask"):
        a.subset(np.ones(3, bool))
    with pytest.raises(TaskrelError, match="per_class"):
        a.stratified_subset(0)
    with pytest.raises(TaskrelError, match="per_class"):
        a.stratified_subset("seven")


def test_task_validation():
    images = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(TaskrelError, match=r"0\.\.1"):
        data.Task("x", "train", np.array([0, 2]), ("a", "b"), images=images)
    with pytest.raises(TaskrelError, match="2 images but 3 labels"):
        data.Task("x", "train", np.array([0, 1, 1]), ("a", "b"), images=images)
    with pytest.raises(TaskrelError, match="integers"):
        data.Task("x", "train", np.array([0.0, 1.0]), ("a", "b"), images=images)
    with pytest.raises(TaskrelError, match="1-D"):
        data.Task("x", "train", np.zeros((2, 1), int), ("a", "b"), images=images)
    with pytest.raises(TaskrelError, match="no classes"):
        data.Task("x", "train", np.array([], int), (), images=images[:0])
    with pytest.raises(TaskrelError, match="exactly one of"):
        data.Task("x", "train", np.array([0, 1]), ("a", "b"))
    with pytest.raises(TaskrelError, match="uint8"):
        data.Task("x", "train", np.array([0, 1]), ("a", "b"), images=images.astype(np.float32))
    with pytest.raises(TaskrelError, match="content_id"):
        data.Task("x", "train", np.array([0, 1]), ("a", "b"), dataset=[None, None])
    with pytest.raises(TaskrelError, match="seed must be an integer >= 0"):
        data.Task("x", "train", np.array([0, 1]), ("a", "b"), images=images).stratified_subset(1, seed=-1)


def test_mini_task_from_corrupted_bundle(tmp_path):
    dst = tmp_path / "mini"
    shutil.copytree(MINI_DIR, dst)
    bundle.clear_cache()
    raw = bytearray((dst / "uci-digits.npz").read_bytes())
    raw[100] ^= 0x01
    (dst / "uci-digits.npz").write_bytes(bytes(raw))
    with pytest.raises(CorruptedFileError) as exc:
        data.load_task("digits-rotated", "train", root=dst)
    assert "uci-digits.npz" in str(exc.value) and "build-mini" in str(exc.value)
    (dst / "mnist5k.npz").unlink()
    with pytest.raises(MissingDataError) as exc:
        data.load_task("mnist5k", "test", root=dst)
    assert "mnist5k.npz" in str(exc.value) and "build-mini" in str(exc.value)
    assert len(data.load_task("fashion", "test", root=dst)) == 1000
    bundle.clear_cache()


# --------------------------------------------------------------------------- errors of the registry

def test_unknown_names():
    with pytest.raises(UnknownNameError) as exc:
        data.load_task("mnist")
    assert "mnist5k" in str(exc.value) and "folder" in str(exc.value) and "'mnist'" in str(exc.value)
    with pytest.raises(UnknownNameError) as exc:
        data.load_task("mnist5k", split="val")
    assert "'val'" in str(exc.value) and "train" in str(exc.value) and "test" in str(exc.value)
    with pytest.raises(UnknownNameError, match="n_classes.*seed|max_images"):
        data.load_task("imagenet", root="/nonexistent", n_clases=3)
    with pytest.raises(ValueError, match="takes no options"):
        data.load_task("mnist5k", n_classes=3)
    with pytest.raises(UnknownNameError, match="synth-digits"):
        data.load_pretraining_corpus("imagenet")


@pytest.mark.parametrize("name,folder", [("pets", "oxford-iiit-pet"), ("dtd", "dtd"), ("aircraft", "fgvc-aircraft"),
                                         ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_paper_task_missing(name, folder, tmp_path, no_env, monkeypatch):
    with pytest.raises(MissingDataError) as exc:
        data.load_task(name)
    msg = str(exc.value)
    assert "root=" in msg and "TASKREL_DATA_ROOT" in msg and "download=True" in msg
    monkeypatch.setenv("TASKREL_DATA_ROOT", str(tmp_path))
    with pytest.raises(MissingDataError) as exc:
        data.load_task(name, "test")
    assert str(tmp_path) in str(exc.value) and folder in str(exc.value)
    with pytest.raises(OfflineError, match="offline"):  # tests run with HF_HUB_OFFLINE=1
        data.load_task(name, download=True)


def test_imagenet_and_folder_missing(tmp_path, no_env):
    with pytest.raises(MissingDataError, match="IMAGENET_ROOT"):
        data.load_task("imagenet")
    with pytest.raises(MissingDataError, match="IMAGENET_ROOT"):
        data.load_task("imagenet", root=tmp_path)
    with pytest.raises(MissingDataError, match="root=DIR"):
        data.load_task("folder")
    with pytest.raises(MissingDataError, match="not found"):
        data.load_task("folder", root=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingDataError, match="no images"):
        data.load_task("folder", root=tmp_path / "empty")


# --------------------------------------------------------------------------- pre-training corpora

def test_synth_digits_render_deterministic():
    a, la = data.render_synth_digits(per_class=3, seed=0)
    b, _ = data.render_synth_digits(per_class=3, seed=0)
    c, _ = data.render_synth_digits(per_class=3, seed=1)
    assert a.shape == (30, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(la, np.repeat(np.arange(10), 3))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.max() == 255 and a[:, 0, :].mean() < 20 and a.mean() < 80  # white digits on black


def test_synth_digits_cache_checksum(recwarn):
    a, _ = data.synth_digits(per_class=2, seed=5)
    files = sorted(p for p in (data.cache_dir("corpora")).glob("synth-digits-*.npz"))
    assert files and not [p for p in files[0].parent.iterdir() if ".tmp" in p.name]
    b, _ = data.synth_digits(per_class=2, seed=5)
    assert np.array_equal(a, b)
    for f in files:
        f.write_bytes(f.read_bytes()[:-10] + b"0" * 10)
    with pytest.warns(UserWarning, match="checksum"):
        c, _ = data.synth_digits(per_class=2, seed=5)
    assert np.array_equal(a, c)


def _evaluation_hashes(exclude=()):
    out = set()
    for name in data.MINI_TASKS:
        for split in data.SPLITS:
            if (name, split) not in exclude:
                out |= _hashes(data.load_task(name, split).images)
    return out


def test_pretraining_corpora_disjoint_from_every_evaluation_split():
    """The source corpus holds the reference train pool (as ImageNet-train holds the paper's
    reference pool) and nothing else of any task; the digits corpus holds nothing of any task."""
    fi, fl, fc = data.load_pretraining_corpus("fashion-source")
    assert fi.shape == (30000, 28, 28) and fi.dtype == np.uint8 and fl.dtype == np.int64
    assert np.array_equal(np.bincount(fl), [3000] * 10) and fc == data.FASHION_CLASSES
    ref_train = data.load_task("fashion-ref", "train")
    assert _hashes(ref_train.images) <= _hashes(fi)
    assert not (_hashes(fi) & _evaluation_hashes(exclude={("fashion-ref", "train")}))
    si, sl, sc = data.load_pretraining_corpus("synth-digits")
    assert si.shape == (10000, 28, 28) and np.array_equal(np.bincount(sl), [1000] * 10) and len(sc) == 10
    assert not (_hashes(si) & _evaluation_hashes())


def test_reference_test_is_held_out_and_disjoint_from_the_fashion_targets():
    ref_test = _hashes(data.load_task("fashion-ref", "test").images)
    assert len(ref_test) == 1000
    for name in ("fashion", "fashion-coarse"):
        for split in data.SPLITS:
            assert not (ref_test & _hashes(data.load_task(name, split).images))


def test_reference_train_corpus_is_the_reference_train_split_only():
    ri, rl, rc = data.load_pretraining_corpus("reference-train")
    ref = data.load_task("fashion-ref", "train")
    assert np.array_equal(ri, ref.images) and np.array_equal(rl, ref.labels) and rc == ref.class_names
    assert not (_hashes(ri) & _evaluation_hashes(exclude={("fashion-ref", "train")}))


# --------------------------------------------------------------------------- paper tasks on fake folders

@pytest.fixture
def forbid_decoding(monkeypatch):
    """Image.open raises while active: proves labels come without decoding any image."""
    import PIL.Image

    def boom(*a, **k):
        raise AssertionError("an image was decoded while loading labels")

    monkeypatch.setattr(PIL.Image, "open", boom)
    return monkeypatch


def test_pets_fake(tmp_path, no_env, forbid_decoding):
    base = tmp_path / "oxford-iiit-pet"
    rows = {"trainval": [("Abyssinian_1", 1, 1), ("Abyssinian_2", 1, 1), ("american_bulldog_1", 2, 2)],
            "test": [("american_bulldog_7", 2, 2), ("Abyssinian_9", 1, 1)]}
    (base / "annotations").mkdir(parents=True)
    for split, rs in rows.items():
        (base / "annotations" / f"{split}.txt").write_text("".join(f"{i} {c} {s} 1\n" for i, c, s in rs))
    for i, (img_id, _, _) in enumerate(rows["trainval"] + rows["test"]):
        _write_image(base / "images" / f"{img_id}.jpg", seed=i)
    forbid_decoding.setenv("TASKREL_DATA_ROOT", str(tmp_path))
    tr = data.load_task("pets", "train")
    te = data.load_task("pets", "test", root=tmp_path)
    forbid_decoding.undo()
    assert tr.class_names == ("Abyssinian", "American Bulldog")
    assert list(tr.labels) == [0, 0, 1] and list(te.labels) == [1, 0]
    img, y = tr.dataset[2]
    assert img.mode == "RGB" and y == 1 and tr.image(0).size == (12, 10)
    assert tr.content_id != te.content_id
    sub = tr.subset([2, 0])
    assert len(sub) == 2 and sub.dataset[0][1] == 1 and list(sub.labels) == [1, 0]
    assert sub.content_id != tr.content_id and sub.content_id == tr.subset([2, 0]).content_id


def test_dtd_fake(tmp_path, forbid_decoding):
    base = tmp_path / "dtd" / "dtd"
    lists = {"train1": ["banded/banded_0001.jpg", "zigzagged/zigzagged_0001.jpg"],
             "val1": ["banded/banded_0002.jpg", "cracked/cracked_0002.jpg"],
             "test1": ["cracked/cracked_0003.jpg", "zigzagged/zigzagged_0003.jpg", "banded/banded_0003.jpg"]}
    (base / "labels").mkdir(parents=True)
    for fname, entries in lists.items():
        (base / "labels" / f"{fname}.txt").write_text("\n".join(entries) + "\n")
        for i, e in enumerate(entries):
            _write_image(base / "images" / e, seed=i)
    tr = data.load_task("dtd", "train", root=tmp_path)
    te = data.load_task("dtd", "test", root=tmp_path)
    forbid_decoding.undo()
    assert len(tr) == 4 and tr.class_names == ("banded", "cracked", "zigzagged")
    assert list(tr.labels) == [0, 2, 0, 1]            # train1 then val1, on the union of classes
    assert [tr.dataset[i][1] for i in range(4)] == list(tr.labels)
    assert te.class_names == ("banded", "cracked", "zigzagged") and list(te.labels) == [1, 2, 0]
    assert tr.image(3).mode == "RGB"


def test_aircraft_fake(tmp_path, forbid_decoding):
    base = tmp_path / "fgvc-aircraft-2013b" / "data"
    (base / "images").mkdir(parents=True)
    (base / "variants.txt").write_text("707-320\nA300B4\nCessna 172\n")
    (base / "images_variant_trainval.txt").write_text("0001 A300B4\n0002 Cessna 172\n0003 707-320\n")
    (base / "images_variant_test.txt").write_text("0004 Cessna 172\n")
    for i in range(1, 5):
        _write_image(base / "images" / f"{i:04d}.jpg", seed=i)
    tr = data.load_task("aircraft", "train", root=tmp_path)
    te = data.load_task("aircraft", "test", root=tmp_path)
    forbid_decoding.undo()
    assert tr.class_names == ("707-320", "A300B4", "Cessna 172")
    assert list(tr.labels) == [1, 2, 0] and list(te.labels) == [2] and te.n_classes == 3
    assert tr.dataset[1][1] == 2 and tr.image(0).mode == "RGB"


def _cifar_batch(path, n, key, k, seed):
    rng = np.random.default_rng(seed)
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), key: [int(x) for x in rng.integers(0, k, n)]}
    path.write_bytes(pickle.dumps(batch))
    return batch


@pytest.fixture
def no_md5(monkeypatch):
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def test_cifar10_fake(tmp_path, no_md5):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    batches = [_cifar_batch(base / f"data_batch_{i}", 3, "labels", 10, i) for i in range(1, 6)]
    test = _cifar_batch(base / "test_batch", 4, "labels", 10, 9)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    tr = data.load_task("cifar10", "train", root=tmp_path)
    te = data.load_task("cifar10", "test", root=tmp_path)
    assert tr.images.shape == (15, 32, 32, 3) and tr.images.dtype == np.uint8 and te.images.shape == (4, 32, 32, 3)
    assert list(tr.labels) == [y for b in batches for y in b["labels"]] and list(te.labels) == test["labels"]
    assert tr.class_names == tuple(names) and tr.dataset is None
    expect = test["data"][1].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(te.images[1], expect)


def test_cifar100_fake(tmp_path, no_md5):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    tr_b = _cifar_batch(base / "train", 6, "fine_labels", 100, 1)
    _cifar_batch(base / "test", 2, "fine_labels", 100, 2)
    names = [f"class{i:03d}" for i in range(100)]
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": names}))
    tr = data.load_task("cifar100", "train", root=tmp_path)
    assert tr.n_classes == 100 and list(tr.labels) == tr_b["fine_labels"] and len(tr) == 6
    assert len(data.load_task("cifar100", "test", root=tmp_path)) == 2


# --------------------------------------------------------------------------- ImageNet and folders

@pytest.fixture
def fake_imagenet(tmp_path):
    root = tmp_path / "imagenet"
    wnids = [f"n{i:08d}" for i in range(6)]
    for k, w in enumerate(wnids):
        for j in range(4):
            _write_image(root / "train" / w / f"{w}_{j}.JPEG", seed=10 * k + j)
        for j in range(2):
            _write_image(root / "val" / w / f"ILSVRC2012_val_{k}{j}.JPEG", seed=100 + 10 * k + j)
    (root / "train" / wnids[0] / "notes.txt").write_text("not an image")
    return root, wnids


def test_imagenet_fake(fake_imagenet, monkeypatch, forbid_decoding):
    root, wnids = fake_imagenet
    forbid_decoding.setenv("IMAGENET_ROOT", str(root))
    full = data.load_task("imagenet", "train")
    assert len(full) == 24 and full.class_names == tuple(wnids)
    assert np.array_equal(np.bincount(full.labels), [4] * 6)
    te = data.load_task("imagenet", "test", n_classes=3, seed=0)
    tr = data.load_task("imagenet", "train", n_classes=3, seed=0)
    assert tr.n_classes == te.n_classes == 3 and tr.class_names == te.class_names
    assert list(tr.class_names) == sorted(tr.class_names) and set(tr.class_names) <= set(wnids)
    assert np.array_equal(np.bincount(tr.labels), [4] * 3) and np.array_equal(np.bincount(te.labels), [2] * 3)
    assert tr.content_id == data.load_task("imagenet", "train", n_classes=3, seed=0).content_id
    others = {data.load_task("imagenet", "train", n_classes=3, seed=s).class_names for s in range(1, 8)}
    assert len(others | {tr.class_names}) > 1  # the seed picks the classes
    sub = data.load_task("imagenet", "train", max_images=5, seed=0)
    assert len(sub) == 5 and sub.content_id != full.content_id and np.bincount(sub.labels, minlength=6).max() == 1
    assert sub.content_id == data.load_task("imagenet", "train", max_images=5, seed=0).content_id
    pool = data.load_task("imagenet", "train", n_classes=3, max_images=6, seed=0)  # a pool evenly over the drawn classes
    assert pool.class_names == tr.class_names and np.array_equal(np.bincount(pool.labels), [2, 2, 2])
    val = data.load_task("imagenet", "test", n_classes=3, max_images=1, seed=0)  # never cuts the validation split
    assert val.content_id == te.content_id and np.array_equal(np.bincount(val.labels), [2] * 3)
    forbid_decoding.undo()
    img, y = tr.dataset[5]
    assert img.mode == "RGB" and y == tr.labels[5] == 1
    with pytest.raises(ValueError, match="n_classes"):
        data.load_task("imagenet", root=root, n_classes=7)


def test_stratified_pool_spreads_the_pool_evenly_over_the_classes():
    labels = np.repeat(np.arange(4), [10, 10, 10, 2])
    pool = data.stratified_pool(labels, 11, seed=0)
    counts = np.bincount(labels[pool], minlength=4)
    # 11 // 4 = 2 each, one more for 3 classes drawn by the seed; the class of 2 gives its 2 whatever its quota
    assert counts[3] == 2 and set(counts[:3]) <= {2, 3} and (counts[:3] == 3).sum() in (2, 3)
    assert len(pool) == counts.sum() <= 11 and np.array_equal(pool, np.sort(pool))
    assert np.array_equal(pool, data.stratified_pool(labels, 11, seed=0))
    assert any(not np.array_equal(pool, data.stratified_pool(labels, 11, seed=s)) for s in range(1, 5))
    even = data.stratified_pool(np.repeat(np.arange(3), 100), 30, seed=1)
    assert np.array_equal(np.bincount(np.repeat(np.arange(3), 100)[even]), [10, 10, 10])


def test_folder_with_split_folders(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for c in ("cat", "dog"):
            for j in range(n):
                _write_image(tmp_path / split / c / f"{c}{j}.png", seed=j)
    _write_image(tmp_path / "test" / "zebra" / "z.png")  # a class without training images is dropped
    with pytest.warns(UserWarning, match="no training image in class folder.s. zebra; dropped them"):
        tr = data.load_task("folder", "train", root=tmp_path)
    with pytest.warns(UserWarning, match="zebra"):
        te = data.load_task("folder", "test", root=tmp_path)
    assert tr.class_names == te.class_names == ("cat", "dog")
    assert list(tr.labels) == [0, 0, 0, 1, 1, 1] and list(te.labels) == [0, 0, 1, 1]
    assert tr.image(0).mode == "RGB" and tr.image(0).size == (12, 10)


def test_folder_drops_an_empty_class_folder_with_a_warning_that_names_it(tmp_path):
    """3 class folders with [10, 10, 0] images: a task of 2 classes, said so (it was 3 class names
    with labels of 2, which the fit quietly took for 2 classes)."""
    for c, n in (("a", 10), ("b", 10)):
        for j in range(n):
            _write_image(tmp_path / c / f"{j}.png", seed=j)
    (tmp_path / "empty").mkdir()
    with pytest.warns(UserWarning, match=r"no training image in class folder\(s\) empty; dropped them \(the task has 2 "
                                         r"classes\)\. Add images"):
        tr = data.load_task("folder", "train", root=tmp_path)
    assert tr.class_names == ("a", "b") and np.bincount(tr.labels).tolist() == [8, 8]


def test_folder_warns_about_a_class_left_without_test_images(tmp_path):
    for c, n in (("a", 5), ("b", 5), ("single", 1)):
        for j in range(n):
            _write_image(tmp_path / c / f"{j}.png", seed=j)
    for split in ("train", "test"):
        with pytest.warns(UserWarning, match=r"class\(es\) single have no image in the test split.*Add images"):
            task = data.load_task("folder", split, root=tmp_path, test_fraction=0.6)
        assert task.class_names == ("a", "b", "single")
        assert np.bincount(task.labels, minlength=3).tolist() == ([2, 2, 1] if split == "train" else [3, 3, 0])


def test_folder_images_are_decoded_correctly_or_named_when_they_cannot_be(tmp_path, monkeypatch):
    wide = tmp_path / "grey16.png"  # a 16-bit greyscale PNG: 0..65535, not clipped at 255 (99.6 % white before)
    Image.fromarray((np.arange(64).reshape(8, 8) * 1040).astype(np.uint16)).save(wide)
    truncated = tmp_path / "truncated.jpg"
    _write_image(truncated.with_suffix(".png"), size=(64, 64))
    Image.open(truncated.with_suffix(".png")).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:400])
    dataset = data.FileDataset([wide, truncated, tmp_path / "big.png"], [0, 0, 0])
    grey = np.asarray(dataset[0][0])
    assert grey.shape == (8, 8, 3) and (grey[..., 0] == grey[..., 2]).all()
    np.testing.assert_array_equal(grey[..., 0], np.round(np.arange(64).reshape(8, 8) * 1040 * 255 / 65535))
    with pytest.raises(TaskrelError, match=f"image {truncated} cannot be read .*Truncated.*replace it or remove it"):
        dataset[1]
    _write_image(tmp_path / "big.png", size=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 pixels: over twice the limit, a decompression bomb
    with pytest.raises(TaskrelError, match=f"image {tmp_path / 'big.png'} is too large to decode safely.*shrink it"):
        dataset[2]


def test_folder_options_are_checked(tmp_path):
    for c in ("a", "b"):
        _write_image(tmp_path / c / "0.png")
    with pytest.raises(TaskrelError, match="test_fraction"):
        data.load_task("folder", "train", root=tmp_path, test_fraction=1.0)
    for bad in (-1, 0.5, None, "x"):
        with pytest.raises(TaskrelError, match="seed must be an integer"):
            data.load_task("folder", "train", root=tmp_path, seed=bad)


@pytest.mark.filterwarnings("ignore:task 'folder' under:UserWarning")  # class c: one image, no test image
def test_folder_without_split_folders(tmp_path):
    for c, n in (("a", 10), ("b", 5), ("c", 1)):
        for j in range(n):
            _write_image(tmp_path / c / f"{j}.png", seed=j)
    tr = data.load_task("folder", "train", root=tmp_path)
    te = data.load_task("folder", "test", root=tmp_path)
    assert np.array_equal(np.bincount(tr.labels, minlength=3), [8, 4, 1])
    assert np.array_equal(np.bincount(te.labels, minlength=3), [2, 1, 0])
    files_tr, files_te = set(tr.dataset.files), set(te.dataset.files)
    assert not files_tr & files_te and len(files_tr | files_te) == 16
    again = data.load_task("folder", "train", root=tmp_path)
    assert again.dataset.files == tr.dataset.files and again.content_id == tr.content_id
    other = data.load_task("folder", "train", root=tmp_path, seed=3)
    assert other.content_id != tr.content_id
    edited = tmp_path / "a" / "0.png"
    which, before = ("train", tr) if str(edited) in files_tr else ("test", te)
    _write_image(edited, seed=99, size=(13, 10))  # an edited image changes the id of its split
    assert data.load_task("folder", which, root=tmp_path).content_id != before.content_id


def test_fashion_upper_and_noisy_are_views_of_fashion():
    """fashion-upper: the 4 upper-body classes of fashion, relabelled 0..3; fashion-noisy: the same
    images and labels as fashion with deterministic pixel noise of about the stated std."""
    for split in ("train", "test"):
        f = data.load_task("fashion", split)
        up, noisy = data.load_task("fashion-upper", split), data.load_task("fashion-noisy", split)
        keep = np.isin(f.labels, data.FASHION_UPPER)
        assert np.array_equal(up.images, f.images[keep]) and up.class_names == ("T-shirt/top", "Pullover", "Coat", "Shirt")
        assert np.array_equal(np.asarray(data.FASHION_UPPER)[up.labels], f.labels[keep])
        assert np.array_equal(noisy.labels, f.labels) and noisy.images.shape == f.images.shape
        mid = (f.images > 70) & (f.images < 180)          # away from clipping at 0 and 255
        diff = noisy.images.astype(float) - f.images
        assert abs(diff[mid].mean()) < 1.0 and abs(diff[mid].std() - data.FASHION_NOISE_STD) < 3.0
    again = data.with_pixel_noise(f.images[:5], data.FASHION_NOISE_STD)
    assert np.array_equal(again, noisy.images[:5])  # a function of the image bytes alone
    assert not np.array_equal(data.with_pixel_noise(f.images[:5], 10.0), again)
