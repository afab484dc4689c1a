"""The shipped weights of the in-kit CNN zoo (``data/zoo/``): build them, verify them, and compare
a rebuild with them.

``python -m taskrel_utils zoo build`` (:func:`build_shipped`) pre-trains the zoo's default specs
and its named variants (:data:`SHIPPED_VARIANTS`) into ``data/zoo/``, with ``MANIFEST.json`` (spec,
file and tensor sha256, training time, :func:`build_machine`) and ``PROVENANCE.md``
(:func:`provenance_text`); ``zoo verify`` (:func:`verify_shipped`) checks the folder against its
manifest; ``zoo check`` retrains entries and compares them (:func:`rebuild_agreement`): the same
bytes on the machine that built them, elsewhere agreement within :data:`REBUILD_TOLERANCE`.
Loading the weights is :mod:`taskrel_utils.inputs.cnn_zoo`'s.
"""
from __future__ import annotations

import io
import json
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.errors import CorruptedFileError, TaskrelError, UnknownNameError
from ..core.io import atomic_path, sha256_bytes
from ..core.paths import ZOO_DIR
from .cnn_zoo import (CODE_VERSION, CORPUS_LICENCES, MANIFEST_NAME, PREPROCESS, PRETRAIN_THREADS, ZOO, build,
                      read_checkpoint, resolve_spec, shipped_manifest, train_checkpoint)

def build_machine() -> dict:
    """What a checkpoint's bytes depend on beyond its spec: the torch build, the CPU kernels torch
    dispatches to (``AVX512``, ``AVX2``, ...) and the CPU's vector-instruction flags (oneDNN and MKL
    choose their kernels from them), e.g. ``{"torch": "2.14.1+cu130", "machine": "x86_64",
    "cpu_capability": "AVX512", "cpu_flags": "avx,avx2,avx512f,..."}``."""
    try:
        flags = next(line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith(("flags", "Features")))
    except (OSError, StopIteration):
        flags = platform.processor().split()
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "sse", "fma", "f16c", "asimd", "sve", "neon")))
    return {"torch": torch.__version__, "machine": platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_flags": ",".join(simd)}


#: how far a rebuild on another CPU may land from a shipped file (:func:`rebuild_agreement`): the
#: largest relative difference of a tensor, the relative difference of the encoder's features on the
#: reference test images, and the absolute difference of the pre-training head's accuracy on them.
#: Training amplifies the last-digit differences of another CPU's kernels. Measured by ``zoo check``
#: on an AVX-512 Xeon against all 15 files (built on another machine): tensors 3e-5 to 0.35
#: (lenet-wide), features 3e-6 to 0.22 (lenet-digits), accuracies within 0.006. Another seed, for
#: comparison: tensors 1.7 to 1.9, features 0.97 to 1.14, accuracies up to 0.07 apart. The bounds
#: sit about 1.7 times above the first and 2.5 to 3 times below the second.
REBUILD_TOLERANCE = {"weights": 0.6, "features": 0.4, "accuracy": 0.01}
#: what MANIFEST.json says a rebuild promises
BYTE_PROMISE = ("a rebuild reproduces a file's bytes only on its build_machine (null: not recorded); elsewhere it "
                "agrees within cnn_zoo.REBUILD_TOLERANCE (python -m taskrel_utils zoo check)")


def rebuild_agreement(key: str, payload: dict) -> dict:
    """How a rebuilt checkpoint ``payload`` of shipped key ``key`` compares with the shipped file.

    Returns ``weights``: the max over tensors of ||w - w_shipped|| / ||w_shipped||; ``features``:
    ||Z - Z_shipped||_F / ||Z_shipped||_F on the reference task's 1,000 test images; the head's
    accuracy on them (``accuracy_rebuilt``, ``accuracy_shipped``); ``same_bytes``;
    ``on_build_machine`` (this machine is the file's recorded ``build_machine``: bytes are promised);
    and ``within_tolerance`` (all three within :data:`REBUILD_TOLERANCE`)."""
    from . import data  # the test images; imported lazily like the corpora

    entry = shipped_manifest().get(key)
    if entry is None:
        raise UnknownNameError("shipped zoo key", key, SHIPPED_KEYS)
    shipped = read_checkpoint(ZOO_DIR / entry["file"], entry["spec"])
    if payload.get("spec") != shipped["spec"]:
        raise TaskrelError(f"rebuild_agreement: the payload was trained with another spec than {key!r}'s; pass "
                           f"the checkpoint of train_checkpoint(name, spec) with the spec of {key!r}")
    task = data.load_task("fashion-ref", split="test")
    x, y = PREPROCESS(np.asarray(task.images)), torch.as_tensor(np.asarray(task.labels))

    def features_and_accuracy(p):
        model = build(p["spec"]["arch"], p["spec"]["width"], p["spec"]["depth"])
        model.load_state_dict(p["state_dict"])
        head = nn.Linear(model.feature_dim, p["head"]["weight"].shape[0])
        head.load_state_dict(p["head"])
        with torch.no_grad():
            z = model.eval()(x)
            return z, float((head(z).argmax(1) == y).float().mean())

    def relative(a, b):
        return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))

    z, acc = features_and_accuracy(payload)
    z0, acc0 = features_and_accuracy(shipped)
    out = {"weights": max(relative(payload[part][k], v) for part in ("state_dict", "head")
                          for k, v in shipped[part].items() if v.dtype.is_floating_point),
           "features": relative(z, z0), "accuracy_rebuilt": acc, "accuracy_shipped": acc0,
           "same_bytes": payload["sha256"] == entry["state_sha256"],
           "on_build_machine": entry.get("build_machine") == build_machine()}
    tol = REBUILD_TOLERANCE
    out["within_tolerance"] = (out["weights"] <= tol["weights"] and out["features"] <= tol["features"]
                               and abs(acc - acc0) <= tol["accuracy"])
    return out


def checkpoint_bytes(payload: dict) -> bytes:
    """The file bytes of a checkpoint (saved through memory: the archive name does not depend on
    the file name, so equal payloads give equal bytes)."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


# ---------------------------------------------------------------------------- shipped weights
BUILD_COMMAND = "python -m taskrel_utils zoo build"
#: the entries whose default weights ship in data/zoo (every trained entry of the zoo)
SHIPPED = tuple(name for name, spec in ZOO.items() if spec["epochs"] > 0)

#: named variants whose weights ship too: zoo entry -> the options of each variant. Notebook 03
#: compares ``lenet-reference`` pre-trained for each of its default ``reference_epochs`` (1, 2, 5
#: and the entry's default 10), which every run would otherwise pre-train on first use.
SHIPPED_VARIANTS = {"lenet-reference": ({"epochs": 1}, {"epochs": 2}, {"epochs": 5})}


def variant_key(name: str, options: dict | None = None) -> str:
    """The manifest key of zoo entry ``name`` with ``options``: the name for its default spec, else
    ``name@option=value[,option=value...]`` (options sorted), e.g. ``lenet-reference@epochs=1``."""
    if not options:
        return name
    return name + "@" + ",".join(f"{k}={options[k]}" for k in sorted(options))


#: every shipped weight file: manifest key -> (zoo entry, options); the defaults, then the variants
SHIPPED_KEYS = {**{name: (name, {}) for name in SHIPPED},
                **{variant_key(name, opts): (name, dict(opts))
                   for name, variants in SHIPPED_VARIANTS.items() for opts in variants}}


def shipped_file_name(key: str) -> str:
    """The file name of shipped key ``key`` in data/zoo (``lenet-reference@epochs=1`` ->
    ``lenet-reference_epochs-1.pt``: letters, digits, ``.``, ``_`` and ``-`` only)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", key.replace("=", "-")) + ".pt"


def build_keys(names=None) -> list:
    """The shipped keys :func:`build_shipped` builds for ``names`` (default: all of
    :data:`SHIPPED_KEYS`): a zoo entry's name stands for its default spec and all its shipped
    variants, a variant key (``lenet-reference@epochs=1``) for that variant alone."""
    if names is None:
        return list(SHIPPED_KEYS)
    keys = []
    for name in names:
        if name in SHIPPED:
            keys += [k for k, (entry, _) in SHIPPED_KEYS.items() if entry == name]
        elif name in SHIPPED_KEYS:
            keys.append(name)
        else:
            raise UnknownNameError("shipped zoo key", name, SHIPPED_KEYS)
    return list(dict.fromkeys(keys))


def _build_one(key: str, folder: str) -> dict:
    """Pre-train shipped key ``key`` (a zoo entry's default or a variant) into ``folder``; its manifest entry."""
    n_threads = torch.get_num_threads()
    name, options = SHIPPED_KEYS[key]
    spec = resolve_spec(name, **options)
    _, payload, seconds = train_checkpoint(name, spec, progress=False)
    data = checkpoint_bytes(payload)
    path = Path(folder) / shipped_file_name(key)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return {"name": name, "options": options, "file": path.name, "spec": spec, "code_version": CODE_VERSION,
            "bytes": len(data), "file_sha256": sha256_bytes(data), "state_sha256": payload["sha256"],
            "train_seconds": seconds, "stats": payload["stats"], "threads": PRETRAIN_THREADS,
            "machine_threads": n_threads, "build_machine": build_machine()}


def build_shipped(names=None, folder=None, n_jobs: int = 2) -> dict:
    """Pre-train the shipped weights of ``names`` (see :func:`build_keys`; default: every entry
    of :data:`SHIPPED` and every variant of :data:`SHIPPED_VARIANTS`) into ``folder`` (default
    ``data/zoo``), ``n_jobs`` at a time in separate processes, and write ``MANIFEST.json`` and
    ``PROVENANCE.md``; keys not rebuilt keep their manifest lines. Returns the manifest."""
    from joblib import Parallel, delayed

    keys = build_keys(names)  # unknown names fail before any training
    folder = Path(folder or ZOO_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    entries = Parallel(n_jobs=max(1, min(n_jobs, len(keys))))(delayed(_build_one)(k, str(folder)) for k in keys)
    # entries written before variants shipped lack name and options: they are the defaults of their keys
    kept = {k: {"name": k, "options": {}, **e} for k, e in shipped_manifest(folder).items()}
    manifest = {"encoders": {**kept, **dict(zip(keys, entries))}}
    manifest.update(build_command=BUILD_COMMAND, torch=torch.__version__, code_version=CODE_VERSION,
                    byte_promise=BYTE_PROMISE,
                    last_build_seconds=round(time.perf_counter() - t0, 1), last_build_jobs=n_jobs)
    manifest["total_bytes"] = sum(e["bytes"] for e in manifest["encoders"].values())
    with atomic_path(folder / MANIFEST_NAME) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with atomic_path(folder / "PROVENANCE.md") as tmp:
        tmp.write_text(provenance_text(manifest))
    return manifest


def verify_shipped(folder=None) -> dict:
    """Check the shipped files against the manifest: every key of :data:`SHIPPED_KEYS` (defaults
    and variants) listed, with the spec the zoo gives it now, and every listed file present with
    its sha256. Returns ``{key: file sha256}``, or raises naming the rebuild command."""
    from ..core.errors import MissingDataError

    folder = Path(folder or ZOO_DIR)
    entries = shipped_manifest(folder)
    if not entries:
        raise MissingDataError(f"no zoo manifest in {folder}; rebuild with `{BUILD_COMMAND}`")
    missing = [k for k in SHIPPED_KEYS if k not in entries]
    if missing:
        raise MissingDataError(f"{folder / MANIFEST_NAME} lists no weights for {', '.join(missing)}; build them "
                               f"with `{BUILD_COMMAND} --names {' '.join(missing)}`")
    out = {}
    for key, e in entries.items():
        path = folder / e["file"]
        if not path.is_file():
            raise MissingDataError(f"shipped weights {path} are missing; rebuild with `{BUILD_COMMAND} --names {key}`")
        got = sha256_bytes(path.read_bytes())
        if got != e["file_sha256"]:
            raise CorruptedFileError(f"shipped weights {path} have sha256 {got}, the manifest says "
                                     f"{e['file_sha256']}; rebuild with `{BUILD_COMMAND} --names {key}`")
        name, options = SHIPPED_KEYS.get(key, (None, None))
        stale = name is not None and (e.get("code_version") != CODE_VERSION
                                      or e.get("spec") != resolve_spec(name, **options))
        if stale:
            raise TaskrelError(f"shipped weights {path} were built for another spec or code version than {key!r} "
                               f"has now (runs would pre-train it again); rebuild with "
                               f"`{BUILD_COMMAND} --names {key}`")
        out[key] = got
    return out


def _build_machine_lines(manifest: dict) -> list:
    """PROVENANCE.md's lines on the machines that built the shipped files (entries built before
    the machine was recorded are named as such)."""
    by_machine: dict = {}
    for key, e in sorted(manifest["encoders"].items()):
        by_machine.setdefault(json.dumps(e.get("build_machine"), sort_keys=True), []).append(f"`{key}`")
    lines = []
    for machine, keys in by_machine.items():
        m = json.loads(machine)
        where = ("a machine that was not recorded (built before the kit recorded it; torch "
                 f"{manifest['torch']}): no CPU is known to reproduce their bytes, `zoo check` compares within "
                 "the tolerance" if m is None else
                 f"torch {m['torch']}, {m['machine']}, CPU kernels {m['cpu_capability']}, flags {m['cpu_flags']}")
        lines.append(f"- Built on {where}: {', '.join(keys)}.")
    return lines


def provenance_text(manifest: dict) -> str:
    """PROVENANCE.md of the shipped weights: what, how trained, how to rebuild, digests."""
    tol = REBUILD_TOLERANCE
    lines = [
        "# data/zoo: provenance of the shipped in-kit CNN weights",
        "",
        "Weights of the in-kit CNNs, pre-trained by `taskrel_utils/cnn_zoo.py` on the CPU, so that a run "
        "never has to pre-train them. Each file is a `torch.save` checkpoint (encoder and pre-training "
        "head state dicts, the spec, a sha256 of the tensors); loading checks the file sha256 below and "
        "the tensor sha256 stored in the file.",
        "",
        "## Rebuild",
        "",
        "```",
        f"{BUILD_COMMAND}            # every entry, 2 processes",
        f"{BUILD_COMMAND} --names lenet-short",
        f"{BUILD_COMMAND} --names lenet-reference            # its default and its variants",
        f"{BUILD_COMMAND} --names lenet-reference@epochs=1   # one variant",
        "```",
        "",
        "Variants (`name@option=value`) are a zoo entry pre-trained with other options, shipped because "
        "notebook 03 uses them by default (`reference_epochs`); a file is loaded only for exactly its "
        "spec, any other option is pre-trained into the cache on first use.",
        "",
        "Training is deterministic: one CPU thread per entry (`PRETRAIN_THREADS`), every random draw "
        "from the entry's seed. On the machine that built a file (the torch build, the CPU kernels torch "
        "dispatches to and the CPU's vector-instruction flags: `build_machine` in MANIFEST.json) a rebuild "
        "reproduces its bytes. Another CPU sums in another order: the rebuilt weights differ in their last "
        "digits and drift a little over training, so there the promise is agreement within "
        f"`REBUILD_TOLERANCE` (largest relative tensor difference {tol['weights']}, relative feature "
        f"difference on the reference test images {tol['features']}, the pre-training head's accuracy "
        f"within {tol['accuracy']}). `python -m taskrel_utils zoo check --names lenet-1k` retrains entries "
        "and says which promise your machine keeps.",
        "",
        *_build_machine_lines(manifest),
        "",
        "## Entries",
        "",
        "| encoder (key) | architecture | corpus | epochs | images | augmentation | train s | bytes | file sha256 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, e in sorted(manifest["encoders"].items()):
        s = e["spec"]
        arch = f"{s['arch']} width {s['width']} depth {s['depth']}"
        lines.append(f"| `{key}` | {arch} | {CORPUS_LICENCES.get(s['corpus'], s['corpus'])} | {s['epochs']} | "
                     f"{e['stats'].get('n_train', '')} | {s['augment']} | {e['train_seconds']} | {e['bytes']} | "
                     f"`{e['file_sha256']}` |")
    lines += ["", f"Total: {manifest['total_bytes']} bytes.", ""]
    return "\n".join(lines)
