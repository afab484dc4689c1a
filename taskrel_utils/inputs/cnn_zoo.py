"""The in-kit CNN zoo: small encoders pre-trained on the CPU, deterministically, and cached.

The zoo is data (``ZOO``): name -> architecture, width, pre-training corpus, budget (epochs) and
seed. Pre-training follows the paper's small-scale experiments (its LeNet-style encoders): encoder + a linear head
trained jointly with cross-entropy, Adam (lr 1e-3, beta1 0.5), Keras time-based learning-rate decay
5e-4 per step, batch 256; the head is then dropped and the encoder's penultimate activations are
the representation. Inputs are 1-channel 28x28 images scaled to [0, 1] (no normalisation).

Determinism: the weights are a function of (spec, corpus, torch build, CPU): the initialisation,
the data order and dropout all come from ``seed`` (``torch.manual_seed`` inside a forked RNG, so the
caller's global RNG is untouched, and a seeded generator for the permutations). Same seed on the same
machine -> identical weights; different seed -> different weights. Another CPU (its vector
instructions select other kernels, which sum in another order) gives weights that differ in their
last digits and drift apart a little over training: :func:`~taskrel_utils.inputs.zoo_build.build_machine` is recorded with each
shipped file; bytes are promised on that machine only, elsewhere agreement within
:data:`~taskrel_utils.inputs.zoo_build.REBUILD_TOLERANCE` (``python -m taskrel_utils zoo check``).

Shipped weights: ``data/zoo/`` holds the zoo's default specs and a few named variants (an entry
with other options, ``zoo_build.SHIPPED_VARIANTS``), listed in ``MANIFEST.json`` (spec, file and tensor
sha256, training time) and ``PROVENANCE.md``, so that a run never has to pre-train them; rebuild
with ``python -m taskrel_utils zoo build`` (:mod:`taskrel_utils.inputs.zoo_build`: build, verify,
compare a rebuild). A shipped file is served only to
a spec equal to its own. Other specs (an option changed) are pre-trained on first use into the
kit's cache (:data:`ENCODERS`, keyed by the spec and the code of the architectures and the
training). Every file is written atomically and stores a sha256 of its tensors, checked on load; a
corrupted or unreadable file is reported (warning) and the encoder is pre-trained again.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.cache import Namespace, digest
from ..core.errors import CorruptedFileError, TaskrelError, UnknownNameError
from ..core.io import sha256_bytes
from ..core.paths import ZOO_DIR
from .preprocessing import Preprocess, augment

#: the version of the architectures and the training recorded in ``data/zoo/MANIFEST.json``: the
#: shipped weights are data, loaded only while it matches, so bump it (and rebuild them with
#: ``python -m taskrel_utils zoo build``) when the architectures or the training change. The local
#: cache of other specs does not use it: :data:`ENCODERS` folds the code into its keys by itself.
CODE_VERSION = 3

#: weights pre-trained on first use (specs that are not shipped); their keys fold in the code of
#: this module and of what it imports (the corpora, the augmentation, the preprocessing)
ENCODERS = Namespace("encoders", code=("inputs.cnn_zoo",), kind="torch")

#: every in-kit CNN takes grey 28x28 pixels scaled to [0, 1]
PREPROCESS = Preprocess(size=28, channels=1, mean=(0.0,), std=(1.0,))

#: CPU threads of pre-training, fixed so that the weights do not depend on the machine's core count
#: (oneDNN's reductions differ between thread counts); several entries train in parallel processes
#: instead (``experiment.pretrain_zoo``), which keeps the cores as busy as multi-threading would
PRETRAIN_THREADS = 1

#: the pre-training procedure (the paper's small-scale setting), shared by every zoo entry unless
#: overridden; ``augment``: "none" or "shift" (random translations by up to 3 px, zero padding)
TRAINING_DEFAULTS = dict(batch_size=256, lr=1e-3, beta1=0.5, lr_decay=5e-4, n_train=None, augment="none")
AUGMENTS = ("none", "shift")

#: the zoo. ``epochs`` = passes over the corpus (``fashion-source``: 30,000 images = 118 steps of 256);
#: epochs=0 means "random initialisation, no training". The MAIN zoo shares one pre-training source,
#: the corpus the mini reference task is drawn from, and varies what the paper's zoo varies:
#: architecture, depth, width, training budget (epochs, images) and augmentation.
ZOO = {
    "lenet": dict(arch="lenet", width=1, depth=2, corpus="fashion-source", epochs=8, seed=0),
    "lenet-short": dict(arch="lenet", width=1, depth=2, corpus="fashion-source", epochs=1, seed=0),
    "lenet-1k": dict(arch="lenet", width=1, depth=2, corpus="fashion-source", epochs=8, seed=0, n_train=1000),
    "lenet-aug": dict(arch="lenet", width=1, depth=2, corpus="fashion-source", epochs=8, seed=0, augment="shift"),
    "lenet-wide": dict(arch="lenet", width=2, depth=2, corpus="fashion-source", epochs=4, seed=0),
    "convnet": dict(arch="convnet", width=1, depth=3, corpus="fashion-source", epochs=4, seed=0),
    "convnet-deep": dict(arch="convnet", width=1, depth=5, corpus="fashion-source", epochs=4, seed=0),
    "convnet-wide": dict(arch="convnet", width=2, depth=3, corpus="fashion-source", epochs=4, seed=0,
                         augment="shift"),
    "mlp": dict(arch="mlp", width=1, depth=2, corpus="fashion-source", epochs=8, seed=0),
    "mlp-short": dict(arch="mlp", width=1, depth=2, corpus="fashion-source", epochs=1, seed=0),
    # contrasts: not pre-trained on the source (reported beside the main zoo, never mixed into it)
    "lenet-random": dict(arch="lenet", width=1, depth=2, corpus=None, epochs=0, seed=0),
    "lenet-digits": dict(arch="lenet", width=1, depth=2, corpus="synth-digits", epochs=8, seed=0),
    # trained on the reference task's train pool itself, for "a better reference encoder helps
    # related targets" (notebook 03: the same network with epochs = 1, 2, 5, 10)
    "lenet-reference": dict(arch="lenet", width=1, depth=2, corpus="reference-train", epochs=10, seed=0),
}

#: the main zoo (one pre-training source) and the contrasts (another source, or none); the
#: EfficientNet-Lite encoders (ImageNet weights, :mod:`taskrel_utils.inputs.encoders`) are contrasts too
MAIN_ZOO = tuple(name for name, spec in ZOO.items() if spec["corpus"] == "fashion-source")
CONTRASTS = ("lenet-random", "lenet-digits", "effnet-lite0", "effnet-lite1", "effnet-lite2")

#: options ``load_encoder`` accepts for a zoo entry (each changes the spec, hence the cache key)
OPTIONS = ("epochs", "seed", "corpus", "width", "depth", "n_train", "batch_size", "lr", "augment")

CORPUS_LICENCES = {
    "fashion-source": "Fashion-MNIST train file, 30,000 images (Zalando Research, MIT licence)",
    "synth-digits": "digits rendered in the kit with Pillow's built-in font",
    "reference-train": "the mini reference task's train pool (Fashion-MNIST, MIT licence)",
    None: "none (random initialisation)",
}


# ---------------------------------------------------------------------------- architectures
class LeNet(nn.Module):
    """The paper's small-scale encoder: conv5x5x20 - pool - conv5x5x50 - pool - dropout - dense200 (features)."""

    def __init__(self, width: int = 1, feature_dim: int = 200):
        super().__init__()
        c1, c2 = 20 * width, 50 * width
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.5), nn.Flatten(),
            nn.Linear(c2 * 4 * 4, feature_dim), nn.ReLU(), nn.Dropout(0.5))
        self.feature_dim = feature_dim

    def forward(self, x):
        return self.body(x)


class ConvNet(nn.Module):
    """``depth`` 3x3 conv blocks (batch norm, ReLU; 2x2 max-pool after the first two), channels
    16w, 32w, then 64w, global average pooling: 64 * width features."""

    def __init__(self, width: int = 2, depth: int = 3):
        super().__init__()
        c = 16 * width
        channels = [c, 2 * c] + [4 * c] * (depth - 2)
        layers, prev = [], 1
        for i, ch in enumerate(channels):
            layers += [nn.Conv2d(prev, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
            prev = ch
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = channels[-1]

    def forward(self, x):
        return self.body(x)


class MLP(nn.Module):
    """784 - 512 - 256 (features) multilayer perceptron."""

    def __init__(self, width: int = 1):
        super().__init__()
        h1, h2 = 512 * width, 256 * width
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, h1), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(h1, h2), nn.ReLU())
        self.feature_dim = h2

    def forward(self, x):
        return self.body(x)


ARCHITECTURES = {"lenet": LeNet, "convnet": ConvNet, "mlp": MLP}
#: the depths each architecture is defined for (LeNet and the MLP have one)
DEPTHS = {"lenet": (2,), "convnet": tuple(range(3, 9)), "mlp": (2,)}


def build(arch: str, width: int = 1, depth: int | None = None) -> nn.Module:
    """An untrained encoder of the given architecture (uses the global torch RNG)."""
    if arch not in ARCHITECTURES:
        raise UnknownNameError("architecture", arch, ARCHITECTURES)
    if not isinstance(width, (int, np.integer)) or isinstance(width, bool) or width < 1:
        raise TaskrelError(f"width must be a positive int (the channel multiplier), got {width!r}")
    depth = DEPTHS[arch][0] if depth is None else depth
    if depth not in DEPTHS[arch]:
        raise TaskrelError(f"{arch} is defined for depth in {list(DEPTHS[arch])}, got {depth!r}; pass one of "
                           f"those (or None for the default)")
    if arch == "convnet":
        return ConvNet(int(width), int(depth))
    return ARCHITECTURES[arch](int(width))


# ---------------------------------------------------------------------------- specs
def resolve_spec(name: str, **options) -> dict:
    """The full pre-training spec of zoo entry ``name`` with ``options`` applied (validated)."""
    if name not in ZOO:
        raise UnknownNameError("zoo encoder", name, ZOO)
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise UnknownNameError(f"option of encoder {name!r}", sorted(unknown)[0], OPTIONS)
    spec = {**TRAINING_DEFAULTS, **ZOO[name]}
    spec.update({k: v for k, v in options.items() if v is not None or k == "n_train"})
    for key in ("epochs", "seed"):
        if not isinstance(spec[key], (int, np.integer)) or isinstance(spec[key], bool) or spec[key] < 0:
            raise TaskrelError(f"{name}: {key} must be a non-negative int, got {spec[key]!r}")
    if spec["epochs"] > 0 and spec["corpus"] is None:
        raise TaskrelError(f"{name}: epochs={spec['epochs']} needs a pre-training corpus: pass corpus=... "
                           f"(e.g. corpus='fashion-source'), or epochs=0 for random weights")
    if spec["n_train"] is not None and (not isinstance(spec["n_train"], (int, np.integer)) or spec["n_train"] < 1):
        raise TaskrelError(f"{name}: n_train must be a positive int or None (the whole corpus), "
                           f"got {spec['n_train']!r}")
    if not isinstance(spec["batch_size"], (int, np.integer)) or spec["batch_size"] < 1:
        raise TaskrelError(f"{name}: batch_size must be a positive int, got {spec['batch_size']!r}")
    if not (isinstance(spec["lr"], (int, float)) and spec["lr"] > 0):
        raise TaskrelError(f"{name}: lr must be a positive number, got {spec['lr']!r}")
    if spec["augment"] not in AUGMENTS:
        raise UnknownNameError(f"augment of encoder {name!r}", spec["augment"], AUGMENTS)
    build(spec["arch"], spec["width"], spec["depth"])  # validates arch, width and depth
    if spec["epochs"] == 0:  # random init: the training settings are irrelevant
        spec.update(corpus=None, **{k: None for k in TRAINING_DEFAULTS})
    return {k: (int(v) if isinstance(v, np.integer) else v) for k, v in spec.items()}


def spec_key(spec: dict) -> str:
    """The cache key of the weights of ``spec`` under the current code."""
    return ENCODERS.key(spec=spec)


def random_init_id(spec: dict) -> str:
    """The ``weights_id`` of a random-init encoder (``spec["epochs"] == 0``): the digest of its spec,
    seed included, not its tensors' hash (the same seeded draw differs in its last bits between
    CPUs), nor a cache key (those change with the code's layout, the weights do not)."""
    return "random-init:" + digest({"spec": spec})


def cache_path(name: str, spec: dict) -> Path:
    """The cache entry of zoo entry ``name`` pre-trained per ``spec``."""
    return ENCODERS.path(spec_key(spec), name)


def state_hash(*state_dicts) -> str:
    """sha256 of tensors' names, dtypes, shapes and bytes (independent of the file format)."""
    parts = []
    for sd in state_dicts:
        for k in sorted(sd):
            t = sd[k].detach().cpu().contiguous()
            parts += [k, str(t.dtype), str(tuple(t.shape)), t.reshape(-1).view(torch.uint8).numpy().tobytes()]
    return sha256_bytes(*parts)


# ---------------------------------------------------------------------------- pre-training
def load_corpus(name: str):
    """``(images uint8 (N,28,28), labels int64 (N,), class_names)`` of a pre-training corpus."""
    from . import data  # imported lazily: the data module is only needed to train
    return data.load_pretraining_corpus(name)


def pretrain(spec: dict, images=None, labels=None, n_classes: int | None = None, *,
             progress: bool = True, desc: str = "pre-training"):
    """Train an encoder per ``spec`` on ``images``/``labels``; deterministic given ``spec['seed']``.

    Returns ``(encoder module (eval), head module or None, stats dict)``.
    """
    n_threads = torch.get_num_threads()
    torch.set_num_threads(PRETRAIN_THREADS)
    try:
        return _pretrain(spec, images, labels, n_classes, progress, desc)
    finally:
        torch.set_num_threads(n_threads)


def _pretrain(spec, images, labels, n_classes, progress, desc):
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec["seed"])
        model = build(spec["arch"], spec["width"], spec["depth"]).to(memory_format=torch.channels_last)
        if spec["epochs"] == 0:
            return model.eval(), None, {"train_seconds": 0.0, "steps": 0}
        images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
        if len(images) != len(labels) or len(images) == 0:
            raise TaskrelError(f"pretrain: {len(images)} images but {len(labels)} labels; pass one label per image "
                               f"(and at least one image)")
        n_classes = int(n_classes or labels.max() + 1)
        if labels.min() < 0 or labels.max() >= n_classes:
            raise TaskrelError(f"pretrain: labels must lie in 0..{n_classes - 1} (got {labels.min()}..{labels.max()}); "
                               f"pass n_classes larger than the largest label")
        gen = torch.Generator().manual_seed(spec["seed"])
        if spec["n_train"] is not None and spec["n_train"] < len(images):
            keep = torch.randperm(len(images), generator=gen)[: spec["n_train"]].sort().values.numpy()
            images, labels = images[keep], labels[keep]
        x, y = PREPROCESS(images), torch.tensor(labels)
        head = nn.Linear(model.feature_dim, n_classes)
        params = list(model.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=spec["lr"], betas=(spec["beta1"], 0.999))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1.0 + spec["lr_decay"] * step))
        bs = spec["batch_size"]
        steps_per_epoch = -(-len(x) // bs)
        model.train(), head.train()
        correct = seen = 0
        bar = tqdm(total=spec["epochs"] * steps_per_epoch, desc=desc, unit="step", disable=not progress)
        for epoch in range(spec["epochs"]):
            perm = torch.randperm(len(x), generator=gen)
            correct = seen = loss_sum = 0
            for s in range(steps_per_epoch):
                idx = perm[s * bs:(s + 1) * bs]
                xb = x[idx] if spec["augment"] == "none" else augment(x[idx], spec["augment"], gen)
                logits = head(model(xb))
                loss = nn.functional.cross_entropy(logits, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                correct += int((logits.argmax(1) == y[idx]).sum())
                seen += len(idx)
                loss_sum += loss.item() * len(idx)
                bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        bar.close()
    stats = {"train_seconds": round(time.perf_counter() - t0, 2), "steps": spec["epochs"] * steps_per_epoch,
             "n_train": len(x), "n_classes": n_classes, "last_epoch_train_accuracy": round(correct / seen, 4),
             "last_epoch_train_loss": round(loss_sum / seen, 4)}
    return model.eval(), head.eval(), stats


def read_checkpoint(path: Path, spec: dict):
    """The checkpoint payload, or raise :class:`CorruptedFileError` saying what is wrong with the file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / garbage bytes: torch and pickle raise many types
        raise CorruptedFileError(f"unreadable ({type(e).__name__}: {e})") from None
    check_checkpoint(payload, spec)
    return payload


def check_checkpoint(payload, spec: dict) -> None:
    """Raise :class:`CorruptedFileError` unless ``payload`` is a checkpoint of ``spec`` whose tensors match
    their sha256 (the loaders catch it, warn and pre-train again)."""
    if not isinstance(payload, dict) or not {"state_dict", "head", "sha256", "spec"} <= set(payload):
        raise CorruptedFileError("not a taskrel encoder checkpoint")
    if payload["spec"] != spec:
        raise CorruptedFileError("its spec differs from the requested one")
    found = state_hash(payload["state_dict"], payload["head"])
    if found != payload["sha256"]:
        raise CorruptedFileError(f"sha256 mismatch (stored {payload['sha256'][:12]}, found {found[:12]})")


def is_cached(name: str, **options) -> bool:
    """Whether zoo entry ``name`` (with ``options``) needs no pre-training: shipped, cached, or random."""
    spec = resolve_spec(name, **options)
    return spec["epochs"] == 0 or _shipped_path(name, spec) is not None or cache_path(name, spec).exists()


MANIFEST_NAME = "MANIFEST.json"
#: (path, mtime, size) -> (the manifest's entries, the same grouped by zoo entry): read once per
#: version of the file
_MANIFESTS: dict = {}


def _read_manifest(folder=None) -> tuple:
    """``({key: entry}, {zoo entry: (entry, ...)})`` of the shipped weights' manifest (both empty
    when there is none or it is unreadable). A key is a zoo entry's name (its default spec) or a
    variant's ``name@option=value``; an entry without ``name`` is the default of its key."""
    path = Path(folder or ZOO_DIR) / MANIFEST_NAME
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in _MANIFESTS:
            entries = json.loads(path.read_text())["encoders"]
            by_name = {}
            for k, e in entries.items():
                by_name.setdefault(e.get("name", k), []).append(e)
            _MANIFESTS[key] = entries, {n: tuple(es) for n, es in by_name.items()}
        return _MANIFESTS[key]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, {}


def shipped_manifest(folder=None) -> dict:
    """``{key: entry}`` of the shipped weights' manifest (empty when there is none or it is unreadable)."""
    return dict(_read_manifest(folder)[0])


def _shipped_path(name: str, spec: dict, folder=None) -> Path | None:
    """The shipped weight file of ``name`` whose spec is exactly ``spec`` (its default or a
    variant), built by the current code; None when there is none."""
    for entry in _read_manifest(folder)[1].get(name, ()):
        if entry.get("spec") == spec and entry.get("code_version") == CODE_VERSION:
            return Path(folder or ZOO_DIR) / entry["file"]
    return None


def _load_checkpoint_file(model, path: Path, spec: dict, name: str):
    """Load ``path`` into ``model``; ``(weights_id, stats)`` or None (with a warning) if the file is bad."""
    if not path.exists():
        return None
    try:
        payload = read_checkpoint(path, spec)
        model.load_state_dict(payload["state_dict"], strict=True)
        return state_hash(payload["state_dict"]), {**payload["stats"], "cache": str(path)}
    except CorruptedFileError as e:
        warnings.warn(f"weights {path} are corrupted: {e}; pre-training {name!r} again", RuntimeWarning, stacklevel=4)
        return None


def load_zoo_encoder(name: str, *, progress: bool = True, **options):
    """``(module (eval, CPU), spec, weights_id, stats)`` of zoo entry ``name``: the shipped weights
    when the spec is the shipped one, else the cache, else pre-trained now (and cached)."""
    spec = resolve_spec(name, **options)
    model = build(spec["arch"], spec["width"], spec["depth"]).to(memory_format=torch.channels_last)  # oneDNN's faster CPU convolutions
    if spec["epochs"] == 0:  # drawn now; another CPU's vector kernels draw other last bits, so the spec names it
        model, _, stats = pretrain(spec)
        return model, spec, random_init_id(spec), {**stats, "cache": None}
    shipped = _shipped_path(name, spec)
    loaded = _load_checkpoint_file(model, shipped, spec, name) if shipped is not None else None
    if loaded is not None:
        return (model.eval(), spec) + loaded
    timing = {}

    def train():
        _, payload, timing["train_seconds"] = train_checkpoint(name, spec, progress=progress)
        return payload

    payload, _ = ENCODERS.get_or_compute(spec_key(spec), train, label=name,
                                         validate=lambda p: check_checkpoint(p, spec))
    model.load_state_dict(payload["state_dict"], strict=True)
    return (model.eval(), spec, state_hash(payload["state_dict"]),
            {**payload["stats"], **timing, "cache": str(cache_path(name, spec))})


def train_checkpoint(name: str, spec: dict, progress: bool = True):
    """Pre-train ``name`` per ``spec``: ``(module, checkpoint payload, seconds)``. The payload holds
    only what training determines (no timings), so equal weights give equal file bytes."""
    images, labels, class_names = load_corpus(spec["corpus"])
    model, head, stats = pretrain(spec, images, labels, len(class_names), progress=progress,
                                  desc=f"pre-training {name}")
    seconds = stats.pop("train_seconds")
    stats["corpus_sha256"] = sha256_bytes(np.ascontiguousarray(images).tobytes(),
                                          np.asarray(labels, dtype=np.int64).tobytes())
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hd = {k: v.detach().clone() for k, v in head.state_dict().items()}
    payload = {"format": 1, "name": name, "spec": spec, "state_dict": sd, "head": hd, "sha256": state_hash(sd, hd),
               "stats": stats, "class_names": list(map(str, class_names))}
    return model, payload, seconds
