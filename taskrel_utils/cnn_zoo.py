"""The in-kit CNN zoo: small encoders pre-trained on the CPU, deterministically, and cached.

The zoo is data (``ZOO``): name -> architecture, width, pre-training corpus, budget (epochs) and
seed. Pre-training follows the paper's small-scale setting (METHOD 7.4): encoder + a linear head
trained jointly with cross-entropy, Adam (lr 1e-3, beta1 0.5), Keras time-based learning-rate decay
5e-4 per step, batch 256; the head is then dropped and the encoder's penultimate activations are
the representation. Inputs are 1-channel 28x28 images scaled to [0, 1] (no normalisation).

Determinism: the weights are a function of (spec, corpus, torch build): the initialisation, the
data order and dropout all come from ``seed`` (``torch.manual_seed`` inside a forked RNG, so the
caller's global RNG is untouched, and a seeded generator for the permutations). Same seed ->
identical weights; different seed -> different weights.

Cache: ``cache_dir("encoders")/<name>-<spec key>.pt``, written atomically; the file stores a sha256
of its tensors, checked on load. A corrupted or unreadable file is reported (warning) and
the encoder is pre-trained again.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .errors import UnknownNameError
from .io import atomic_path, content_key, sha256_bytes
from .paths import cache_dir
from .preprocessing import Preprocess

#: bump when the architectures or the training procedure change (invalidates cached weights)
CODE_VERSION = 2

#: every in-kit CNN takes grey 28x28 pixels scaled to [0, 1]
PREPROCESS = Preprocess(size=28, channels=1, mean=(0.0,), std=(1.0,))

#: CPU threads of pre-training, fixed so that the weights do not depend on the machine's core count
#: (oneDNN's reductions differ between thread counts); several entries train in parallel processes
#: instead (``study.pretrain_zoo``: 1.3x the throughput of one 2-thread process on 2 cores)
PRETRAIN_THREADS = 1

#: the pre-training procedure (METHOD 7.4), shared by every zoo entry unless overridden
TRAINING_DEFAULTS = dict(batch_size=256, lr=1e-3, beta1=0.5, lr_decay=5e-4, n_train=None)

#: the zoo. budget = epochs over the corpus (10,000 images = 40 steps of 256 per epoch; "mixed" has 20,000);
#: epochs=0 means "random initialisation, no training".
ZOO = {
    "lenet-fashion": dict(arch="lenet", width=1, corpus="fashion-train", epochs=10, seed=0),
    "lenet-fashion-short": dict(arch="lenet", width=1, corpus="fashion-train", epochs=1, seed=0),
    "lenet-synth": dict(arch="lenet", width=1, corpus="synth-digits", epochs=10, seed=0),
    "lenet-mixed": dict(arch="lenet", width=1, corpus="mixed", epochs=5, seed=0),  # 20,000 images: same 400 steps
    "convnet-wide-fashion": dict(arch="convnet", width=2, corpus="fashion-train", epochs=5, seed=0),
    "mlp-fashion": dict(arch="mlp", width=1, corpus="fashion-train", epochs=10, seed=0),
    "lenet-random": dict(arch="lenet", width=1, corpus=None, epochs=0, seed=0),
    # trained on the reference task itself, for "a better reference encoder helps related targets"
    # (notebook 03: the same network with epochs = 1, 2, 5, 10); not part of the correlation zoo
    "lenet-reference": dict(arch="lenet", width=1, corpus="reference-train", epochs=10, seed=0),
}

#: options ``load_encoder`` accepts for a zoo entry (each changes the spec, hence the cache key)
OPTIONS = ("epochs", "seed", "corpus", "width", "n_train", "batch_size", "lr")

CORPUS_LICENCES = {
    "fashion-train": "Fashion-MNIST (Zalando Research, MIT licence)",
    "synth-digits": "digits rendered in the kit from system fonts",
    "mixed": "Fashion-MNIST (MIT) + digits rendered in the kit",
    None: "none (random initialisation)",
}


# ---------------------------------------------------------------------------- architectures
class LeNet(nn.Module):
    """METHOD 7.4: conv5x5x20 - pool - conv5x5x50 - pool - dropout - dense200 (features)."""

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
    """A wider 3-conv CNN (3x3 convs, batch norm) with global average pooling: 64*width features."""

    def __init__(self, width: int = 2):
        super().__init__()
        c = 16 * width
        block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]  # noqa: E731
        self.body = nn.Sequential(
            *block(1, c), nn.MaxPool2d(2),
            *block(c, 2 * c), nn.MaxPool2d(2),
            *block(2 * c, 4 * c),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = 4 * c

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


def build(arch: str, width: int = 1) -> nn.Module:
    """An untrained encoder of the given architecture (uses the global torch RNG)."""
    if arch not in ARCHITECTURES:
        raise UnknownNameError("architecture", arch, ARCHITECTURES)
    if not isinstance(width, (int, np.integer)) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    return ARCHITECTURES[arch](int(width))


# ---------------------------------------------------------------------------- specs
def resolve_spec(name: str, **options) -> dict:
    """The full pre-training spec of zoo entry ``name`` with ``options`` applied (validated)."""
    if name not in ZOO:
        raise UnknownNameError("zoo encoder", name, ZOO)
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise UnknownNameError(f"option of encoder {name!r}", sorted(unknown)[0], OPTIONS)
    spec = {**ZOO[name], **TRAINING_DEFAULTS}
    spec.update({k: v for k, v in options.items() if v is not None or k == "n_train"})
    for key in ("epochs", "seed"):
        if not isinstance(spec[key], (int, np.integer)) or isinstance(spec[key], bool) or spec[key] < 0:
            raise ValueError(f"{name}: {key} must be a non-negative int, got {spec[key]!r}")
    if spec["epochs"] > 0 and spec["corpus"] is None:
        raise ValueError(f"{name}: epochs={spec['epochs']} needs a pre-training corpus (option corpus=...)")
    if spec["n_train"] is not None and (not isinstance(spec["n_train"], (int, np.integer)) or spec["n_train"] < 1):
        raise ValueError(f"{name}: n_train must be a positive int or None, got {spec['n_train']!r}")
    if not isinstance(spec["batch_size"], (int, np.integer)) or spec["batch_size"] < 1:
        raise ValueError(f"{name}: batch_size must be a positive int, got {spec['batch_size']!r}")
    if not (isinstance(spec["lr"], (int, float)) and spec["lr"] > 0):
        raise ValueError(f"{name}: lr must be a positive number, got {spec['lr']!r}")
    build(spec["arch"], spec["width"])  # validates arch and width
    if spec["epochs"] == 0:  # random init: the training settings are irrelevant
        spec.update(corpus=None, **{k: None for k in TRAINING_DEFAULTS})
    return {k: (int(v) if isinstance(v, np.integer) else v) for k, v in spec.items()}


def spec_key(spec: dict) -> str:
    return content_key({"spec": spec, "code": CODE_VERSION})


def cache_path(name: str, spec: dict) -> Path:
    return cache_dir("encoders") / f"{name}-{spec_key(spec)}.pt"


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
        model = build(spec["arch"], spec["width"]).to(memory_format=torch.channels_last)
        if spec["epochs"] == 0:
            return model.eval(), None, {"train_seconds": 0.0, "steps": 0}
        images, labels = np.asarray(images), np.asarray(labels, dtype=np.int64)
        if len(images) != len(labels) or len(images) == 0:
            raise ValueError(f"pretrain: {len(images)} images but {len(labels)} labels")
        n_classes = int(n_classes or labels.max() + 1)
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(f"pretrain: labels must lie in 0..{n_classes - 1}")
        gen = torch.Generator().manual_seed(spec["seed"])
        if spec["n_train"] is not None and spec["n_train"] < len(images):
            keep = torch.randperm(len(images), generator=gen)[: spec["n_train"]].sort().values.numpy()
            images, labels = images[keep], labels[keep]
        x, y = PREPROCESS(images), torch.from_numpy(labels)
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
                logits = head(model(x[idx]))
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


def _read_checkpoint(path: Path, spec: dict):
    """The checkpoint payload, or raise ValueError saying what is wrong with the file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / garbage bytes: torch and pickle raise many types
        raise ValueError(f"unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or not {"state_dict", "head", "sha256", "spec"} <= set(payload):
        raise ValueError("not a taskrel encoder checkpoint")
    if payload["spec"] != spec:
        raise ValueError("its spec differs from the requested one")
    found = state_hash(payload["state_dict"], payload["head"])
    if found != payload["sha256"]:
        raise ValueError(f"sha256 mismatch (stored {payload['sha256'][:12]}, found {found[:12]})")
    return payload


def is_cached(name: str, **options) -> bool:
    """Whether zoo entry ``name`` (with ``options``) needs no pre-training: cached, or random."""
    spec = resolve_spec(name, **options)
    return spec["epochs"] == 0 or cache_path(name, spec).exists()


def load_zoo_encoder(name: str, *, progress: bool = True, **options):
    """``(module (eval, CPU), spec, weights_id, stats)`` of zoo entry ``name``; trains and caches on first use."""
    spec = resolve_spec(name, **options)
    model = build(spec["arch"], spec["width"]).to(memory_format=torch.channels_last)  # ~2x faster convs
    if spec["epochs"] == 0:
        model, _, stats = pretrain(spec)
        return model, spec, state_hash(model.state_dict()), {**stats, "cache": None}
    path = cache_path(name, spec)
    if path.exists():
        try:
            payload = _read_checkpoint(path, spec)
            model.load_state_dict(payload["state_dict"], strict=True)
            return model.eval(), spec, state_hash(payload["state_dict"]), {**payload["stats"], "cache": str(path)}
        except ValueError as e:
            warnings.warn(f"cached weights {path} are corrupted: {e}; pre-training {name!r} again",
                          RuntimeWarning, stacklevel=3)
    images, labels, class_names = load_corpus(spec["corpus"])
    model, head, stats = pretrain(spec, images, labels, len(class_names), progress=progress,
                                  desc=f"pre-training {name}")
    stats["corpus_sha256"] = sha256_bytes(np.ascontiguousarray(images).tobytes(),
                                          np.asarray(labels, dtype=np.int64).tobytes())
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    hd = {k: v.detach().clone() for k, v in head.state_dict().items()}
    digest = state_hash(sd, hd)
    payload = {"format": 1, "name": name, "spec": spec, "state_dict": sd, "head": hd, "sha256": digest,
               "stats": stats, "class_names": list(map(str, class_names))}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return model.eval(), spec, state_hash(sd), {**stats, "cache": str(path)}
