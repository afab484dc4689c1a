"""The one cache layer: content keys, code versions, checksums, corruption, two processes at once."""
import errno
import multiprocessing
import os
import random
import shutil
import warnings

import numpy as np
import pytest
import torch

from taskrel_utils.core import cache, io
from taskrel_utils.inputs import cnn_zoo, features
from taskrel_utils.study import cached_fits, finetune
from taskrel_utils.core.errors import CorruptedFileError, TaskrelError


@pytest.fixture
def ns(tmp_path):
    return cache.Namespace("test", code=("core.cache",), kind="arrays", root=tmp_path)


def counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


# ---------------------------------------------------------------------------- keys
def test_hit_after_miss_and_the_value_round_trips(ns, tmp_path):
    Z = np.arange(12, dtype=np.float32).reshape(3, 4)
    key = ns.key(Z=Z, options={"a": 1}, seed=0)
    compute, calls = counting({"Z": Z, "tau0": 0.5, "history": [1, 2]})
    first, hit1 = ns.get_or_compute(key, compute, label="pair")
    second, hit2 = ns.get_or_compute(key, compute, label="pair")
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    np.testing.assert_array_equal(second["Z"], Z)
    assert second["Z"].dtype == np.float32 and second["tau0"] == 0.5 and second["history"] == [1, 2]
    (path,) = tmp_path.glob("pair__*.npz")
    assert key in path.name and not io.temporaries(tmp_path) and not list(tmp_path.glob(".*.lock"))


def test_a_full_cache_disk_names_the_entry_and_leaves_nothing_half_written(ns, tmp_path, monkeypatch):
    class FullDisk:  # open() of an entry on a full disk: the header lands, the payload does not
        def __init__(self, path, mode):
            self.file = open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            if self.file.tell():
                raise OSError(errno.ENOSPC, "No space left on device")
            self.file.write(data)

    monkeypatch.setattr(cache, "open", FullDisk, raising=False)
    key = ns.key(x=1)
    with pytest.raises(TaskrelError, match=f"cannot write {ns.path(key, 'full')}: No space left on device; free "
                                           "space on that disk, or write elsewhere: TASKREL_CACHE=DIR"):
        ns.get_or_compute(key, lambda: {"Z": np.zeros(3)}, label="full")
    assert not list(tmp_path.iterdir()), "no entry, no temporary, no lock file"


def test_a_read_only_cache_names_the_folder(ns, tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(TaskrelError, match=f"cannot write .*{tmp_path}.*Read-only file system.*make that folder "
                                           "writable, or write elsewhere: TASKREL_CACHE=DIR"):
        ns.get_or_compute(ns.key(x=2), lambda: {"Z": np.zeros(3)})


def test_the_key_follows_content_options_and_seed(ns):
    Z = np.arange(12, dtype=np.float64).reshape(3, 4)
    base = ns.key(Z=Z, options={"a": 1, "b": [1, 2]}, seed=0)
    assert ns.key(Z=Z.copy(), options={"b": [1, 2], "a": 1}, seed=0) == base  # same content, other object/order
    changed = Z.copy()
    changed[2, 3] += 1e-12
    others = [ns.key(Z=changed, options={"a": 1, "b": [1, 2]}, seed=0),
              ns.key(Z=Z.astype(np.float32), options={"a": 1, "b": [1, 2]}, seed=0),    # dtype
              ns.key(Z=Z.reshape(4, 3), options={"a": 1, "b": [1, 2]}, seed=0),         # shape
              ns.key(Z=Z, options={"a": 2, "b": [1, 2]}, seed=0),
              ns.key(Z=Z, options={"a": 1, "b": [2, 1]}, seed=0),
              ns.key(Z=Z, options={"a": 1.0, "b": [1, 2]}, seed=0),                     # 1.0 is not 1
              ns.key(Z=Z, options={"a": 1, "b": [1, 2]}, seed=1),
              cache.Namespace("other", code=("core.cache",)).key(Z=Z, options={"a": 1, "b": [1, 2]}, seed=0)]
    assert len({base, *others}) == len(others) + 1
    assert ns.key(seed=np.int64(3)) == ns.key(seed=3)
    assert cache.digest(torch.arange(3)) == cache.digest(np.arange(3))


def test_unkeyable_inputs_and_unknown_modules_are_refused(tmp_path):
    with pytest.raises(TaskrelError, match="cannot key"):
        cache.digest({"x": object()})
    with pytest.raises(TaskrelError, match="no Python source"):
        cache.Namespace("x", code=("no_such_module_here",), root=tmp_path).key(seed=0)


def test_disabled_neither_reads_nor_writes(ns, tmp_path):
    compute, calls = counting({"Z": np.zeros(2)})
    key = ns.key(seed=0)
    for _ in range(2):
        assert ns.get_or_compute(key, compute, enabled=False)[1] is False
    assert len(calls) == 2 and not list(tmp_path.iterdir())


@pytest.mark.parametrize("kind, value", [("json", {"row": [1.5, None, "x"]}),
                                         ("torch", {"w": torch.arange(6.0).reshape(2, 3), "spec": {"seed": 0}})])
def test_json_and_torch_payloads(tmp_path, kind, value):
    ns = cache.Namespace("t", code=("core.cache",), kind=kind, root=tmp_path)
    key = ns.key(seed=0)
    ns.get_or_compute(key, lambda: value)
    got, hit = ns.get_or_compute(key, lambda: pytest.fail("recomputed"))
    assert hit and str(got) == str(value)


# ---------------------------------------------------------------------------- code versions
MODULE = '''
"""A computation the cache depends on."""


def f(x):
    return x + 1  # the method
'''


def test_editing_the_code_invalidates_editing_its_docs_does_not(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    module = src / "taskrel_cache_probe_module.py"
    module.write_text(MODULE)
    monkeypatch.syspath_prepend(str(src))
    ns = cache.Namespace("probe", code=("taskrel_cache_probe_module",), kind="json", root=tmp_path / "c")
    key = ns.key(seed=0)
    ns.get_or_compute(key, lambda: 1)

    module.write_text(MODULE.replace("A computation", "Some computation").replace("# the method", "# edited"))
    assert ns.key(seed=0) == key  # docstrings and comments are not code

    module.write_text(MODULE.replace("x + 1", "x + 2"))
    new = ns.key(seed=0)
    assert new != key
    value, hit = ns.get_or_compute(new, lambda: 2)
    assert (value, hit) == (2, False)


def test_a_namespace_depends_on_the_modules_its_code_imports():
    fit = cache.modules_of("method.relatedness")
    assert {"method.relatedness", "method.reference_classifier", "method.transport", "core.numerics"} <= set(fit)
    assert "core.errors" not in fit
    assert {"inputs.features", "inputs.encoders", "inputs.cnn_zoo", "inputs.preprocessing"} <= set(
        features.FEATURES.modules())
    assert {"study.finetune", "inputs.cnn_zoo", "inputs.preprocessing"} <= set(finetune.RESULTS.modules())
    assert {"inputs.cnn_zoo", "inputs.preprocessing", "inputs.data"} <= set(cnn_zoo.ENCODERS.modules())  # augmentation, corpus
    assert {"study.cached_fits", "method.relatedness", "method.transport", "core.numerics"} <= set(
        cached_fits.FITS.modules())
    for ns in (features.FEATURES, finetune.RESULTS, cnn_zoo.ENCODERS, cached_fits.FITS):
        assert len(ns.code_version()) == 64


def test_editing_transport_changes_the_key_of_a_fit(tmp_path, monkeypatch):
    """The study's cached fit (study/) depends on the transport of the method (method/), two
    packages away: a copy of the package with transport edited gives the fit another key."""
    copy = tmp_path / "taskrel_utils"
    shutil.copytree(cache.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "PACKAGE_DIR", copy)
    ns = cache.Namespace("relatedness", code=cached_fits.FITS.code, kind="json", root=tmp_path / "c")
    key = ns.key(seed=0)
    transport = copy / "method" / "transport.py"
    transport.write_text(transport.read_text() + "\n\nEDITED = 1\n")
    assert ns.key(seed=0) != key


LAYERED = {  # a package in subpackages: study.fits -> method.relatedness -> method.transport -> core.numerics
    "__init__.py": "",
    "core/__init__.py": "",
    "core/numerics.py": "def softmax(x):\n    return x\n",
    "method/__init__.py": "",
    "method/transport.py": "from ..core import numerics\n\n\ndef plan(x):\n    return numerics.softmax(x)\n",
    "method/relatedness.py": "def fit(x):\n    from .transport import plan  # inside a function\n    return plan(x)\n",
    "study/__init__.py": "",
    "study/fits.py": "import taskrel_utils.method.relatedness\nfrom taskrel_utils.method import relatedness\n",
    "study/tables.py": "from .. import study\nfrom ..study.fits import relatedness\n",
}


@pytest.fixture
def layered(tmp_path, monkeypatch):
    root = tmp_path / "taskrel_utils"
    for rel, text in LAYERED.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    monkeypatch.setattr(cache, "PACKAGE_DIR", root)
    return root


def test_imports_are_followed_across_subpackages_relative_and_absolute(layered):
    assert cache.modules_of("study.fits") == ("core.numerics", "method.relatedness", "method.transport", "study.fits")
    assert cache.modules_of("study.tables") == ("core.numerics", "method.relatedness", "method.transport",
                                                "study", "study.fits", "study.tables")


def test_editing_a_module_two_packages_away_changes_the_key(layered, tmp_path):
    ns = cache.Namespace("fits", code=("study.fits",), kind="json", root=tmp_path / "c")
    key = ns.key(seed=0)
    numerics = layered / "core" / "numerics.py"
    numerics.write_text(numerics.read_text().replace("return x", "return 2 * x"))
    assert ns.key(seed=0) != key


# ---------------------------------------------------------------------------- corruption
def _damage(path, how):
    raw = bytearray(path.read_bytes())
    if how == "truncate":
        raw = raw[: len(raw) // 2]
    elif how == "flip payload":
        raw[-40] ^= 0x01
    elif how == "flip header":
        i = raw.index(b'"sha256": "') + len(b'"sha256": "')
        raw[i] = ord("0") if raw[i] != ord("0") else ord("1")
    else:
        raw = bytearray(b"PK\x03\x04 not an entry")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["truncate", "flip payload", "flip header", "garbage"])
def test_a_corrupted_entry_is_reported_once_deleted_and_recomputed(ns, tmp_path, how):
    Z = np.random.default_rng(0).normal(size=(20, 5))
    key = ns.key(Z=Z)
    ns.get_or_compute(key, lambda: {"Z": Z})
    path = ns.path(key)
    _damage(path, how)
    compute, calls = counting({"Z": Z})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value, hit = ns.get_or_compute(key, compute)
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert str(path) in message and "corrupted" in message and "\n" not in message
    assert not hit and len(calls) == 1
    np.testing.assert_array_equal(value["Z"], Z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry is whole again
        again, hit = ns.get_or_compute(key, compute)
    assert hit and len(calls) == 1


def test_check_entry_names_what_is_wrong(ns, tmp_path):
    path = ns.save(ns.path(ns.key(seed=0)), {"Z": np.zeros((2, 2))})
    assert cache.check_entry(path)["kind"] == "arrays"
    raw = path.read_bytes()
    for bad, why in ((b"garbage", "not a taskrel cache entry"), (raw[:-5], "truncated"),
                     (raw[:-1] + bytes([raw[-1] ^ 1]), "sha256")):
        path.write_bytes(bad)
        with pytest.raises(CorruptedFileError, match=why):
            cache.check_entry(path)


def test_validate_rejects_a_whole_entry_with_wrong_content(ns):
    key = ns.key(seed=0)
    ns.save(ns.path(key), {"Z": np.zeros((2, 2))})

    def validate(value):
        if value["Z"].shape != (3, 2):
            raise CorruptedFileError("wrong shape")

    with pytest.warns(RuntimeWarning, match="wrong shape"):
        value, hit = ns.get_or_compute(key, lambda: {"Z": np.ones((3, 2))}, validate=validate)
    assert not hit and value["Z"].shape == (3, 2)


# ---------------------------------------------------------------------------- two processes at once
N_KEYS = 6


def _expected(i):
    return np.full((400, 500), float(i))  # 1.6 MB: writes take long enough to overlap


def _worker(root, seed, errors):
    """Read and compute every key in a random order; any corruption warning becomes an error."""
    warnings.simplefilter("error")
    try:
        ns = cache.Namespace("shared", code=("core.cache",), kind="arrays", root=root)
        rng = random.Random(seed)
        computed = 0
        for _ in range(3):
            for i in rng.sample(range(N_KEYS), N_KEYS):
                def compute(i=i):
                    nonlocal computed
                    computed += 1
                    return {"Z": _expected(i)}
                value, _ = ns.get_or_compute(ns.key(i=i), compute)
                assert np.array_equal(value["Z"], _expected(i)), f"key {i} read wrong"
                if seed % 2:  # odd workers also overwrite entries without the lock: rename keeps them whole
                    ns.save(ns.path(ns.key(i=i)), {"Z": _expected(i)})
        errors.put(("computed", computed))
    except BaseException as exc:  # reported to the parent, which fails the test
        errors.put(("error", f"{type(exc).__name__}: {exc}"))


def test_processes_sharing_one_cache_read_only_whole_entries(tmp_path):
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), seed, results)) for seed in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [o for o in outcomes if o[0] == "error"] == []
    assert sum(n for _, n in outcomes) == N_KEYS  # the lock: each entry computed once in all
    assert not io.temporaries(tmp_path) and not list(tmp_path.glob(".*.lock"))
    assert len(list(tmp_path.glob("*.npz"))) == N_KEYS
