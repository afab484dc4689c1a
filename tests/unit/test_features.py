"""Feature extraction and its cache, on a tiny fake encoder whose output is known exactly."""
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from PIL import Image

from taskrel_utils.inputs import features
from taskrel_utils.core.errors import TaskrelError


@dataclass
class FakeTask:
    name: str = "fake"
    split: str = "train"
    images: np.ndarray | None = None
    labels: np.ndarray = None
    content_id: str = "c1"
    pil: list = field(default_factory=list)

    def __len__(self):
        return len(self.labels)

    def image(self, i):
        return self.pil[i] if self.pil else self.images[i]


class FakePreprocess:
    def __init__(self, description="grey/8"):
        self.description = description

    def __call__(self, images):
        arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 255.0
        return torch.from_numpy(arr).flatten(1)


class FakeEncoder:
    """z = x @ W with a fixed W: the expected features are computable in the test."""

    def __init__(self, name="fake-enc", weights_id="w1", description="grey/8", nan=False):
        self.name, self.weights_id, self.feature_dim = name, weights_id, 3
        self.preprocess = FakePreprocess(description)
        self.model = torch.nn.Linear(64, 3, bias=False)
        with torch.no_grad():
            self.model.weight.copy_(torch.arange(192, dtype=torch.float32).reshape(3, 64) / 100)
        self.calls, self.nan = 0, nan

    def encode(self, x):
        self.calls += 1
        z = self.model(x)
        return z * float("nan") if self.nan else z


@pytest.fixture
def task():
    rng = np.random.default_rng(0)
    return FakeTask(images=rng.integers(0, 256, (37, 8, 8), dtype=np.uint8), labels=rng.integers(0, 3, 37))


def expected(task, enc):
    x = torch.from_numpy(task.images.reshape(len(task), -1).astype(np.float32) / 255.0)
    return (x @ enc.model.weight.T).detach().numpy()


def test_values_shapes_and_batches(task, tmp_path):
    enc = FakeEncoder()
    Z, y = features.extract_features(enc, task, batch_size=10, cache_root=tmp_path, progress=False)
    assert Z.shape == (37, 3) and Z.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(Z, expected(task, enc), rtol=1e-5)
    np.testing.assert_array_equal(y, task.labels)
    assert enc.calls == 4  # ceil(37 / 10) batches


def test_second_call_is_a_cache_hit(task, tmp_path):
    enc = FakeEncoder()
    info1, info2 = {}, {}
    Z1, _ = features.extract_features(enc, task, cache_root=tmp_path, progress=False, info=info1)
    Z2, _ = features.extract_features(enc, task, cache_root=tmp_path, progress=False, info=info2)
    assert not info1["cache_hit"] and info2["cache_hit"] and enc.calls == 1
    np.testing.assert_array_equal(Z1, Z2)
    assert info1["images_per_second"] > 0
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name], "no temporary file left behind"


@pytest.mark.parametrize("change", ["weights_id", "description", "content_id", "split", "name"])
def test_key_changes_with_every_ingredient(task, change):
    enc = FakeEncoder()
    base = features.feature_key(enc, task)
    if change == "weights_id":
        enc = FakeEncoder(weights_id="w2")
    elif change == "description":
        enc = FakeEncoder(description="grey/16")
    else:
        task = FakeTask(**{**task.__dict__, change: "other"})
    assert features.feature_key(enc, task) != base


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_corrupted_cache_is_detected_and_recomputed(task, tmp_path, damage):
    enc = FakeEncoder()
    Z1, _ = features.extract_features(enc, task, cache_root=tmp_path, progress=False)
    path = features.cache_path(enc, task, tmp_path)
    raw = bytearray(path.read_bytes())
    if damage == "flip":  # one bit in the middle of the entry (its sha256 no longer matches)
        raw[len(raw) // 2] ^= 0x01
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        path.write_bytes(b"not a zip file")
    with pytest.warns(RuntimeWarning, match="corrupted"):
        Z2, _ = features.extract_features(enc, task, cache_root=tmp_path, progress=False)
    np.testing.assert_array_equal(Z1, Z2)
    assert enc.calls == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten file is clean again
        features.extract_features(enc, task, cache_root=tmp_path, progress=False)


def test_cache_false_neither_reads_nor_writes(task, tmp_path):
    enc = FakeEncoder()
    features.extract_features(enc, task, cache=False, cache_root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_on_disk_task_of_pil_images(task, tmp_path):
    enc = FakeEncoder()
    pil_task = FakeTask(images=None, labels=task.labels, pil=[Image.fromarray(im) for im in task.images],
                        content_id="pil")
    Z, _ = features.extract_features(enc, pil_task, batch_size=8, cache_root=tmp_path, progress=False)
    np.testing.assert_allclose(Z, expected(task, enc), rtol=1e-5)


def test_nan_features_raise_and_are_not_cached(task, tmp_path):
    with pytest.raises(TaskrelError, match="NaN or infinite"):
        features.extract_features(FakeEncoder(nan=True), task, cache_root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_batch_size(task, tmp_path, bad):
    with pytest.raises(TaskrelError, match="batch_size"):
        features.extract_features(FakeEncoder(), task, batch_size=bad, cache_root=tmp_path)
