"""The ground truth of a profile: end-to-end fine-tuned accuracy of every (encoder, target), computed
once by a documented command and shipped as a CSV with its provenance.

For each target:

1. its *train* split is split (stratified, seeded with ``profile.seed``) into a **fine-tuning set**
   (the recipe's ``max_train_per_class`` images per class: few, so that pre-training matters) and a
   **validation set** (up to ``validation_per_class`` other train images per class);
2. the **protocol** of each (encoder, target) pair is chosen on the validation set alone: every
   protocol of a small grid runs an ``epochs``-long cosine schedule with the validation accuracy
   after every epoch (``selection_seeds`` seeds); the (protocol, epoch) with the best mean
   validation accuracy wins, the earliest on ties (early stopping on validation); a protocol whose
   loss diverges scores 0. The grid is a list of families (``protocols``), each crossing encoder
   learning rates with augmentations for one head start and encoder mode: a random head at ten
   times the encoder's rate, or LP-FT (Kumar et al., ICLR 2022: the head first fitted as a logistic
   probe on the frozen features, its L2 strength chosen on the validation set from ``lp_cs``, then
   trained with the encoder at the encoder's rate), with the encoder's dropout and BatchNorm in
   training mode or frozen in evaluation mode. The target's test split is never read for this;
3. every encoder is fine-tuned with its pair's protocol, stopped at the chosen epoch, under ``seeds``
   seeds on the fine-tuning set and evaluated on the test split: mean +- std per pair;
4. the zoo's **reliability** per target: ``correlation.split_half_kendall`` of the main zoo's
   (encoders x seeds) accuracies;
5. a **logistic-regression probe** on frozen features of the same fine-tuning images
   (``finetune.logistic_probe``, C chosen on the validation set) flags pairs whose fine-tuned mean
   ends below it.

Every fine-tuning runs on ``THREADS`` CPU thread(s) (parallel jobs are processes, ``jobs.run_jobs``), so
a recomputation gives the same numbers. ``build`` writes ``data/ground_truth/<profile>.csv`` and
``<profile>.json`` (provenance: command, date, commit, versions, duration, the grid, the
reliability, the content keys of the weights and splits) atomically; ``load`` reads and validates
them against the profile; ``recompute_runs`` re-runs single (encoder, target, seed) fine-tunings.

Command line: ``python -m taskrel_utils ground-truth build --profile mini [--seeds 6] [--out PATH]``.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import platform
import subprocess
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from . import correlation, finetune
from .config import Profile
from ..core.errors import TaskrelError, UnknownNameError
from ..core.io import atomic_path, sha256_bytes, write_json
from ..core.jobs import run_jobs
from ..core.numerics import stratified_groups
from ..core.paths import KIT_ROOT, cache_dir
from ..core.workers import worker_count

__all__ = ["DEFAULTS", "THREADS", "GroundTruth", "settings", "encoder_groups", "split_train", "protocol_grid",
           "select_protocols", "build", "load", "recompute_runs", "default_path"]

#: bump when the procedure changes meaning (a CSV of another format is stale)
FORMAT_VERSION = 3
#: CPU threads of every fine-tuning and probe (the numbers depend on it; parallelism is by processes)
THREADS = 1
#: the build's settings; a profile may override them in a ``ground_truth`` mapping, the caller by keyword.
#: ``seeds``: fine-tuning seeds per main-zoo pair (>= 3); ``contrast_seeds``: per contrast pair
#: (None: as ``seeds``); ``selection_seeds``: seeds per protocol on the validation set;
#: ``validation_per_class``: at most this many validation images per class; ``protocols``: the grid,
#: a list of families ``{head_init, encoder_mode, augmentations, lrs}`` (:func:`protocol_grid`);
#: ``lp_cs``: the inverse L2 strengths LP-FT's probe chooses from on the validation set (raw features);
#: ``epochs``: the length of every protocol's schedule, within which the epoch is chosen;
#: ``probe_cs``: the probe's C values (chosen on the validation set); ``if_missing``: what :func:`load`
#: does when the profile has no shipped file: ``"error"`` (say how to build it) or ``"build"`` (build
#: it into the cache folder, as ``recompute=True``, and reuse it while it is fresh: for profiles whose
#: data are generated on the user's machine, such as ``paper-dryrun``).
DEFAULTS = dict(seeds=6, contrast_seeds=None, selection_seeds=1, validation_per_class=50,
                protocols=({"head_init": "random", "encoder_mode": "train", "augmentations": ("none", "shift"),
                            "lrs": (0.0003, 0.003)},
                           {"head_init": "probe", "encoder_mode": "train", "augmentations": ("none",),
                            "lrs": (0.0003, 0.003)},
                           {"head_init": "probe", "encoder_mode": "eval", "augmentations": ("none",),
                            "lrs": (0.0003, 0.003)}),
                lp_cs=(0.01, 0.1, 1.0, 10.0, 100.0), epochs=16, probe_cs=finetune.PROBE_CS, if_missing="error")
#: the keys of a family of ``protocols`` and their defaults (None: required)
FAMILY_KEYS = {"head_init": None, "encoder_mode": "train", "augmentations": ("none",), "lrs": None}
IF_MISSING = ("error", "build")
GROUPS = ("main", "contrast")


def default_path(profile_name: str) -> Path:
    """Where the shipped ground truth of a profile lives: ``data/ground_truth/<profile>.csv``."""
    return KIT_ROOT / "data" / "ground_truth" / f"{profile_name}.csv"


def provenance_path(csv_path) -> Path:
    """The provenance file beside a ground-truth CSV (same stem, ``.json``)."""
    return Path(csv_path).with_suffix(".json")


def build_command(profile_name: str) -> str:
    return f"python -m taskrel_utils ground-truth build --profile {profile_name}"


# ---------------------------------------------------------------------------- settings and groups
def settings(profile: Profile, **overrides) -> dict:
    """The build's settings: :data:`DEFAULTS`, updated by the profile's ``ground_truth`` mapping (if it
    has one), then by ``overrides`` (``None`` keeps the value); validated."""
    out = dict(DEFAULTS)
    for source in (dict(getattr(profile, "ground_truth", None) or {}),
                   {k: v for k, v in overrides.items() if v is not None}):
        unknown = sorted(set(source) - set(DEFAULTS))
        if unknown:
            raise UnknownNameError("ground-truth setting", unknown[0], list(DEFAULTS))
        out.update(source)
    if out["contrast_seeds"] is None:
        out["contrast_seeds"] = out["seeds"]
    for key, low in (("seeds", 2), ("contrast_seeds", 2), ("selection_seeds", 1), ("validation_per_class", 1),
                     ("epochs", 1)):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise TaskrelError(f"ground truth: {key} must be an integer >= {low}, got {v!r}")
        out[key] = int(v)
    if out["if_missing"] not in IF_MISSING:
        raise TaskrelError(f"ground truth: if_missing must be 'error' (no shipped file: fail, saying how to build "
                           f"it) or 'build' (build it into the cache), got {out['if_missing']!r}")
    if out["selection_seeds"] > out["seeds"]:
        raise TaskrelError(f"ground truth: selection_seeds ({out['selection_seeds']}) exceeds seeds ({out['seeds']})")
    for key in ("probe_cs", "lp_cs"):
        out[key] = _positive_numbers(key, out[key])
    out["protocols"] = _families(out["protocols"])
    return out


def _positive_numbers(key: str, values) -> tuple:
    """``values`` as a tuple of distinct positive floats, or an error naming ``key``."""
    given = values
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    ok = values and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                        and math.isfinite(v) and v > 0 for v in values) and len(set(values)) == len(values)
    if not ok:
        raise TaskrelError(f"ground truth: {key} must be a list of distinct positive numbers, got {given!r}")
    return tuple(float(v) for v in values)


def _families(protocols) -> tuple:
    """The ``protocols`` setting validated: a tuple of families with every key of :data:`FAMILY_KEYS`."""
    if isinstance(protocols, dict) or not isinstance(protocols, (list, tuple)) or not protocols:
        raise TaskrelError(f"ground truth: protocols must be a list of families {{head_init, encoder_mode, "
                           f"augmentations, lrs}}, got {protocols!r}")
    out = []
    for i, family in enumerate(protocols):
        where = f"ground truth: protocols[{i}]"
        if not isinstance(family, dict):
            raise TaskrelError(f"{where} must be a mapping {{head_init, encoder_mode, augmentations, lrs}}, got {family!r}")
        unknown = sorted(set(family) - set(FAMILY_KEYS))
        if unknown:
            raise UnknownNameError(f"key of {where}", unknown[0], list(FAMILY_KEYS))
        f = {k: family.get(k, default) for k, default in FAMILY_KEYS.items()}
        for key in ("head_init", "encoder_mode"):
            valid = finetune.HEAD_INITS if key == "head_init" else finetune.ENCODER_MODES
            if f[key] not in valid:
                raise TaskrelError(f"{where}: {key} must be one of {list(valid)}, got {f[key]!r}")
        augs = tuple(f["augmentations"]) if isinstance(f["augmentations"], (list, tuple)) else (f["augmentations"],)
        if not augs or any(a not in finetune.AUGMENTATIONS for a in augs) or len(set(augs)) != len(augs):
            raise TaskrelError(f"{where}: augmentations must be a list of distinct names of "
                               f"{list(finetune.AUGMENTATIONS)}, got {f['augmentations']!r}")
        out.append({**f, "augmentations": augs, "lrs": _positive_numbers(f"{where}.lrs", f["lrs"])})
    keys = [(f["head_init"], f["encoder_mode"], a, lr) for f in out for a in f["augmentations"] for lr in f["lrs"]]
    if len(set(keys)) != len(keys):
        raise TaskrelError("ground truth: protocols repeat a (head_init, encoder_mode, augmentation, lr) protocol")
    return tuple(out)


def encoder_groups(profile: Profile, contrasts=None) -> dict[str, str]:
    """``{encoder: "main" | "contrast"}`` for the profile's encoders, in profile order.

    Contrasts are ``contrasts`` if given, else the profile's ``contrasts`` field, else
    ``cnn_zoo.CONTRASTS``, else none (every encoder is in the main zoo).
    """
    if contrasts is None:
        contrasts = getattr(profile, "contrasts", None)
    if contrasts is None:
        from ..inputs import cnn_zoo
        contrasts = getattr(cnn_zoo, "CONTRASTS", ())
    contrasts = set(contrasts)
    return {e: "contrast" if e in contrasts else "main" for e in profile.encoders}


# ---------------------------------------------------------------------------- splits and protocols
def split_train(task, finetune_per_class: int, validation_per_class: int, seed: int = 0):
    """``(finetune_task, validation_task)``: a stratified, seeded split of a *train* split.

    Per class, a permutation drawn with ``seed`` gives the first ``finetune_per_class`` images to the
    fine-tuning set and the next (up to ``validation_per_class``) to the validation set; every class
    needs at least ``finetune_per_class + 1`` images.
    """
    for key, v in (("finetune_per_class", finetune_per_class), ("validation_per_class", validation_per_class)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise TaskrelError(f"{key} must be a positive integer, got {v!r}")
    counts = np.bincount(task.labels, minlength=task.n_classes)
    short = [f"{task.class_names[c]!r} ({counts[c]})" for c in range(task.n_classes) if counts[c] <= finetune_per_class]
    if short:
        raise TaskrelError(f"{task.name}/{task.split}: classes {', '.join(short)} have too few images for "
                           f"{finetune_per_class} fine-tuning + at least 1 validation image per class; lower the "
                           "recipe's max_train_per_class or raise the profile's max_train_per_class")
    ft, val = stratified_groups(task.labels, lambda n: [finetune_per_class, validation_per_class],
                                np.random.default_rng(seed))
    ft_task, val_task = task.subset(ft), task.subset(val)
    return (dataclasses.replace(ft_task, split="finetune"), dataclasses.replace(val_task, split="validation"))


def protocol_grid(base_recipe, protocols, epochs: int) -> list:
    """The candidate protocols: ``base_recipe`` with, for each family of ``protocols`` (dicts with
    ``head_init``, ``encoder_mode``, ``augmentations``, ``lrs``; see :data:`DEFAULTS`), every
    augmentation x encoder learning rate, each an ``epochs``-long schedule evaluated after every
    epoch on every image of the evaluation split. A random head learns at ``lr`` times the base's
    head_lr / lr, a probe-started head (LP-FT) at ``lr``. Ordered by family, augmentation, then lr
    (the first wins ties)."""
    base = finetune.get_recipe(base_recipe)
    if base.max_train_per_class is None:
        raise TaskrelError(f"recipe {base.name!r} has max_train_per_class None; the ground truth fine-tunes on a "
                           "few images per class (e.g. 40): set it in the profile's finetune mapping")
    ratio = base.head_lr / base.lr if base.lr > 0 else 1.0
    return [dataclasses.replace(base, name=f"{base.name}-{f['head_init']}-{f['encoder_mode']}-{aug}-lr{lr:g}",
                                lr=float(lr), head_lr=float(lr * ratio if f["head_init"] == "random" else lr),
                                epochs=int(epochs), eval_every=1, max_test_per_class=None, augmentation=aug,
                                head_init=f["head_init"], encoder_mode=f["encoder_mode"], stop_epoch=None)
            for f in _families(protocols) for aug in f["augmentations"] for lr in sorted(f["lrs"])]


#: the recipe fields that tell protocols apart
RECIPE_FIELDS = ("lr", "head_lr", "augmentation", "head_init", "encoder_mode", "epochs", "stop_epoch")
#: the recorded fields of a protocol: :data:`RECIPE_FIELDS` and LP-FT's probe strength (the recipe's
#: ``probe_C``) as ``lp_C`` (a table's ``probe_C`` is the floor probe's)
PROTOCOL_FIELDS = RECIPE_FIELDS + ("lp_C",)


def _protocol_fields(recipe) -> dict:
    """The fields that tell protocols apart (``lp_C`` None for a random head, which has no probe)."""
    return {**{k: getattr(recipe, k) for k in RECIPE_FIELDS},
            "lp_C": recipe.probe_C if recipe.head_init == "probe" else None}


def recipe_of(base_recipe, fields: dict):
    """The recipe of a protocol recorded by :func:`_protocol_fields` (a table row or provenance entry)."""
    base = finetune.get_recipe(base_recipe)
    values = {k: fields[k] for k in RECIPE_FIELDS}
    values["epochs"], values["stop_epoch"] = int(values["epochs"]), int(values["stop_epoch"])
    values["lr"], values["head_lr"] = float(values["lr"]), float(values["head_lr"])
    C = fields["lp_C"]
    probe_C = base.probe_C if C is None or (isinstance(C, float) and math.isnan(C)) else float(C)
    return dataclasses.replace(base, name="chosen", eval_every=values["stop_epoch"], max_test_per_class=None,
                               probe_C=probe_C, **values)


# ---------------------------------------------------------------------------- jobs (worker processes)
def _finetune_runs(enc, train_task, eval_task, runs, cache, diverged_scores_zero: bool = False) -> list[dict]:
    """Fine-tune ``enc`` on ``train_task`` for each ``(recipe, seed)`` of ``runs``; accuracies on ``eval_task``.
    ``diverged_scores_zero``: a run whose loss diverges scores 0 after every epoch (``diverged`` True)
    instead of raising ``finetune.FinetuneDiverged``."""
    out = []
    for recipe, seed in runs:
        try:
            r = finetune.finetune(enc, train_task, eval_task, recipe, seed=seed, cache=cache, progress=False,
                                  threads=THREADS)
        except finetune.FinetuneDiverged:
            if not diverged_scores_zero:
                raise
            out.append({"seed": seed, "accuracy": 0.0, "cross_entropy": float("nan"),
                        "curve": [0.0] * (recipe.stop_epoch or recipe.epochs), "seconds": 0.0, "cache_hit": False,
                        "diverged": True, **_protocol_fields(recipe)})
            continue
        out.append({"seed": seed, "accuracy": r.accuracy, "cross_entropy": r.cross_entropy,
                    "curve": [h.get("test_accuracy") for h in r.history],
                    "seconds": r.seconds, "cache_hit": r.cache_hit, "diverged": False, **_protocol_fields(recipe)})
    return out


def _frozen_features(enc, tasks, cache) -> list:
    """``[(Z, y)]`` of ``enc`` on each of ``tasks``, extracted on :data:`THREADS` thread(s)."""
    import torch

    from ..inputs import features

    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return [features.extract_features(enc, t, cache=cache, progress=False) for t in tasks]
    finally:
        torch.set_num_threads(previous)


def _selection_job(enc, ft_task, val_task, grid, seeds, cache, lp_cs) -> tuple:
    """One pair's protocol selection: ``(C, runs)``. ``C``: LP-FT's probe strength, chosen from
    ``lp_cs`` on the validation set on the raw frozen features (None without LP-FT protocols);
    ``runs``: every protocol of ``grid`` (LP-FT ones with that C) under every seed, validation curves."""
    C = None
    if any(r.head_init == "probe" for r in grid):
        ft, val = _frozen_features(enc, (ft_task, val_task), cache)
        C = finetune.logistic_probe(ft, val, val, Cs=lp_cs, standardise=False).C
    runs = [(dataclasses.replace(r, probe_C=C) if r.head_init == "probe" else r, s) for r in grid for s in seeds]
    return C, _finetune_runs(enc, ft_task, val_task, runs, cache, diverged_scores_zero=True)


def _test_job(enc, ft_task, val_task, test_task, recipe, seeds, cache, probe_cs) -> dict:
    """The chosen protocol under every seed (test accuracy) and the logistic probe of one pair."""
    runs = _finetune_runs(enc, ft_task, test_task, [(recipe, s) for s in seeds], cache)
    t0 = time.perf_counter()
    ft, test, val = _frozen_features(enc, (ft_task, test_task, val_task), cache)
    probe = finetune.logistic_probe(ft, test, val, Cs=probe_cs)
    return {"runs": runs, "probe_accuracy": probe.accuracy, "probe_C": probe.C,
            "probe_seconds": time.perf_counter() - t0}


def _order_by_size(encs: dict, names) -> list:
    """Encoder names, largest model first (the slowest jobs start early)."""
    size = {e: sum(p.numel() for p in encs[e].model.parameters()) for e in names}
    return sorted(names, key=lambda e: -size[e])


def select_protocols(encs: dict, splits: dict, grid: list, *, seeds=(0,), lp_cs=DEFAULTS["lp_cs"],
                     cache: bool = True, n_jobs: int | None = None, progress: bool = True):
    """Choose each (encoder, target) pair's protocol on its validation set: ``(chosen, table)``.

    ``splits``: ``{target: (finetune_task, validation_task)}`` (no test split is involved);
    ``grid``: the candidate recipes (:func:`protocol_grid`), each evaluated after every epoch;
    ``lp_cs``: the probe strengths LP-FT chooses from per pair (on the validation set).
    ``chosen``: ``{(encoder, target): recipe}``, the (protocol, stop epoch) with the best validation
    accuracy averaged over ``seeds`` (the first protocol of ``grid``, then the earliest epoch, on
    ties; a diverged run counts 0); ``table``: one row per (target, encoder, protocol, seed) with its
    validation ``curve``.
    """
    if not grid:
        raise TaskrelError("select_protocols needs at least one protocol in grid")
    jobs, labels = [], []
    for e in _order_by_size(encs, list(encs)):          # the slowest encoders first, over all targets
        for target, (ft_task, val_task) in splits.items():
            jobs.append((encs[e], ft_task, val_task, grid, list(seeds), cache, lp_cs))
            labels.append((target, e))
    results = run_jobs(_selection_job, jobs, n_jobs=n_jobs, desc="protocol selection", progress=progress)
    chosen, rows = {}, []
    for (target, e), (C, runs) in zip(labels, results):
        curves = np.array([r["curve"] for r in runs], dtype=float).reshape(len(grid), len(seeds), -1).mean(1)
        k, epoch = np.unravel_index(int(np.argmax(curves)), curves.shape)  # argmax: the first maximum
        recipe = dataclasses.replace(grid[k], probe_C=C) if grid[k].head_init == "probe" else grid[k]
        chosen[e, target] = dataclasses.replace(recipe, stop_epoch=int(epoch) + 1, eval_every=int(epoch) + 1)
        for r in runs:
            curve = r.pop("curve")
            rows.append({"target": target, "encoder": e, "validation_accuracy": r.pop("accuracy"),
                         "validation_cross_entropy": r.pop("cross_entropy"), **r,
                         "best_epoch": int(np.argmax(curve)) + 1, "best_validation_accuracy": float(max(curve)),
                         "curve": " ".join(f"{a:.4f}" for a in curve)})
    return chosen, pd.DataFrame(rows)


# ---------------------------------------------------------------------------- build
@dataclass
class GroundTruth:
    """A ground truth: ``table`` (one row per (encoder, target)), ``grid`` (the protocol selection,
    one row per (target, encoder, protocol, seed)), ``reliability`` (one row per target) and
    ``provenance`` (the JSON); ``path``: the CSV it was read from or written to (None: not written)."""

    table: pd.DataFrame
    grid: pd.DataFrame
    reliability: pd.DataFrame
    provenance: dict
    path: Path | None = None

    def seeds(self, encoder: str | None = None) -> list[int]:
        """The seeds of the table (of one encoder's rows), from its ``accuracy_seed<k>`` columns."""
        rows = self.table if encoder is None else self.table[self.table.encoder == encoder]
        return [int(c.removeprefix("accuracy_seed")) for c in self.table.columns
                if c.startswith("accuracy_seed") and rows[c].notna().any()]


def _tasks_and_encoders(profile, encs, tasks, progress):
    from . import experiment

    if tasks is None:
        tasks = experiment.profile_tasks(profile)
    if encs is None:
        encs = experiment.profile_encoders(profile, progress=progress)
    missing = [e for e in profile.encoders if e not in encs]
    if missing:
        raise TaskrelError(f"ground truth: no encoder object for {missing}; pass encs from experiment.profile_encoders")
    missing = [t for t in profile.targets if t not in tasks or not {"train", "test"} <= set(tasks[t])]
    if missing:
        raise TaskrelError(f"ground truth: no train/test tasks for targets {missing}; pass tasks from "
                           "experiment.profile_tasks")
    return encs, tasks


def _kit_commit() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(KIT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(KIT_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (commit or "unknown") + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"


def build(profile: Profile, *, out=None, encs: dict | None = None, tasks: dict | None = None,
          contrasts=None, cache: bool = True, n_jobs: int | None = None, progress: bool = True,
          command: str | None = None, **overrides) -> GroundTruth:
    """Compute the ground truth of ``profile`` (see the module docstring) and write it to ``out``
    (default :func:`default_path`; ``out=False``: do not write).

    ``overrides``: settings of :data:`DEFAULTS`; ``encs`` / ``tasks``: as ``experiment.profile_encoders`` /
    ``experiment.profile_tasks`` return them (loaded when None); ``contrasts``: see :func:`encoder_groups`;
    ``cache``: reuse / store single fine-tunings in the fine-tuning cache (an interrupted build
    resumes); ``n_jobs``: worker processes (``jobs.n_jobs_default``).
    """
    t_start = time.perf_counter()
    opts = settings(profile, **overrides)
    base = finetune.get_recipe(profile.finetune)
    grid = protocol_grid(base, opts["protocols"], opts["epochs"])
    groups = encoder_groups(profile, contrasts)
    encs, tasks = _tasks_and_encoders(profile, encs, tasks, progress)
    main = [e for e, g in groups.items() if g == "main"] or list(groups)
    seeds = {g: list(range(profile.seed, profile.seed + opts[k])) for g, k in (("main", "seeds"),
                                                                                 ("contrast", "contrast_seeds"))}
    splits = {t: split_train(tasks[t]["train"], base.max_train_per_class, opts["validation_per_class"],
                             seed=profile.seed) for t in profile.targets}

    t0 = time.perf_counter()
    chosen, grid_table = select_protocols({e: encs[e] for e in profile.encoders}, splits, grid,
                                          seeds=seeds["main"][:opts["selection_seeds"]], lp_cs=opts["lp_cs"],
                                          cache=cache, n_jobs=n_jobs, progress=progress)
    selection_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels, jobs = [], []
    for e in _order_by_size(encs, profile.encoders):
        for target in profile.targets:
            jobs.append((encs[e], *splits[target], tasks[target]["test"], chosen[e, target], seeds[groups[e]],
                         cache, opts["probe_cs"]))
            labels.append((e, target))
    results = dict(zip(labels, run_jobs(_test_job, jobs, n_jobs=n_jobs, desc="ground truth (seeds x pairs)", progress=progress)))
    test_seconds = time.perf_counter() - t0

    all_seeds = sorted(set(seeds["main"]) | set(seeds["contrast"]))
    table = pd.DataFrame([_pair_row(e, target, groups[e], results[e, target], chosen[e, target], splits[target],
                                    len(tasks[target]["test"]), all_seeds)
                          for e in profile.encoders for target in profile.targets])
    reliability = _reliability(table, profile.targets, seeds["main"], main)
    seconds = {"selection": round(selection_seconds, 1), "seeds_and_probes": round(test_seconds, 1),
               "total": round(time.perf_counter() - t_start, 1),
               "finetuning_cpu": round(float(sum(r["seconds"] for res in results.values() for r in res["runs"])
                                             + grid_table.seconds.sum()), 1),
               "cache_hits": int(sum(r["cache_hit"] for res in results.values() for r in res["runs"])
                                 + grid_table.cache_hit.sum())}
    provenance = _provenance(profile, opts, base, command, overrides, seconds, worker_count(len(jobs), n_jobs),
                             groups, seeds, encs, tasks, splits, chosen, grid_table, reliability)
    gt = GroundTruth(table=table, grid=grid_table.drop(columns=["seconds", "cache_hit"]), reliability=reliability,
                     provenance=provenance)
    if out is not False:
        gt.path = _write(gt, Path(out) if out is not None else default_path(profile.name))
    return gt


def _pair_row(encoder, target, group, res, recipe, split, n_test, all_seeds) -> dict:
    """The ground-truth row of one (encoder, target): mean and std over its seeds, the probe, the
    protocol, the split sizes and one column per seed. ``res``: the pair's :func:`_test_job` result."""
    acc = np.array([r["accuracy"] for r in res["runs"]])
    per_seed = {r["seed"]: r["accuracy"] for r in res["runs"]}
    return {"encoder": encoder, "target": target, "group": group, "accuracy": float(acc.mean()),
            "accuracy_std": float(acc.std(ddof=1)), "n_seeds": len(acc),
            "cross_entropy": float(np.mean([r["cross_entropy"] for r in res["runs"]])),
            "probe_accuracy": res["probe_accuracy"], "probe_C": res["probe_C"],
            "below_probe": bool(acc.mean() < res["probe_accuracy"]),
            "below_probe_by_1pt": bool(acc.mean() < res["probe_accuracy"] - 0.01),
            **_protocol_fields(recipe), "n_finetune": len(split[0]), "n_validation": len(split[1]),
            "n_test": n_test, **{f"accuracy_seed{s}": per_seed.get(s, np.nan) for s in all_seeds}}


def _provenance(profile, opts, base, command, overrides, seconds, n_jobs, groups, seeds, encs, tasks, splits,
                chosen, grid_table, reliability) -> dict:
    """What a shipped ground truth records: how it was built (command, versions, settings, seconds)
    and the content ids of everything it depends on (weights, splits), for :func:`load`'s staleness check."""
    return {
        "format": FORMAT_VERSION, "finetune_format": finetune.FORMAT_VERSION, "profile": profile.name,
        "command": command or f"ground_truth.build(profile={profile.name!r}, **{json.dumps(overrides, default=str)})",
        "rebuild": build_command(profile.name),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "kit_commit": _kit_commit(),
        "versions": _versions(), "threads_per_job": THREADS, "n_jobs": n_jobs,
        "cpu_count": os.cpu_count(), "seconds": seconds,
        "settings": _jsonable_settings(opts), "base_recipe": base.to_dict(), "split_seed": profile.seed,
        "seeds": seeds, "encoders": {e: {"group": groups[e], "weights_id": encs[e].weights_id, "spec": _spec(encs[e]),
                                         "preprocess": encs[e].preprocess.description} for e in profile.encoders},
        "targets": {t: {"train": tasks[t]["train"].content_id, "test": tasks[t]["test"].content_id,
                        "finetune": splits[t][0].content_id, "validation": splits[t][1].content_id,
                        "n_classes": tasks[t]["train"].n_classes} for t in profile.targets},
        "chosen_protocols": {t: {e: _protocol_fields(chosen[e, t]) for e in profile.encoders} for t in profile.targets},
        "grid_summary": _grid_summary(grid_table, chosen).to_dict("records"),
        "grid": grid_table.drop(columns=["seconds", "cache_hit"]).to_dict("records"),
        "reliability": reliability.to_dict("records"),
    }


def _spec(enc):
    """The spec of an in-kit CNN (its name and options stand for its weights), else None."""
    return enc.info.get("spec") if isinstance(getattr(enc, "info", None), dict) else None


def _versions() -> dict:
    import sklearn
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform()}


def _jsonable_settings(opts: dict) -> dict:
    """``opts`` as JSON gives it back (tuples as lists, at any depth): comparable with a provenance."""
    return json.loads(json.dumps(opts))


def _reliability(table: pd.DataFrame, targets, seeds, main) -> pd.DataFrame:
    """Per target: the main zoo's split-half Kendall tau over the seeds and the mean Kendall tau of
    single seed pairs (NaN where undefined: fewer than 3 encoders, or a constant ranking)."""
    from itertools import combinations

    rows = []
    for target in targets:
        g = table[(table.target == target) & table.encoder.isin(main)]
        acc = g[[f"accuracy_seed{s}" for s in seeds]].to_numpy()
        try:
            split_half = correlation.split_half_kendall(acc)
        except TaskrelError:
            split_half = float("nan")
        pairs = []
        for i, j in combinations(range(acc.shape[1]), 2):
            try:
                pairs.append(correlation.kendall(acc[:, i], acc[:, j]))
            except TaskrelError:
                pass
        rows.append({"target": target, "split_half_kendall": split_half,
                     "seed_pair_kendall": float(np.mean(pairs)) if pairs else float("nan"),
                     "n_encoders": int(acc.shape[0]), "n_seeds": len(seeds),
                     "mean_seed_std": float(g.accuracy_std.mean()) if len(g) else float("nan")})
    return pd.DataFrame(rows)


def _grid_summary(grid_table: pd.DataFrame, chosen: dict) -> pd.DataFrame:
    """Per (target, protocol): the mean best validation accuracy over encoders and seeds, and how
    many pairs chose it."""
    keys = ["target", "head_init", "encoder_mode", "augmentation", "lr", "head_lr"]
    s = (grid_table.groupby(keys, sort=False).best_validation_accuracy.agg(["mean", "std", "count"]).reset_index()
         .rename(columns={"mean": "mean_best_validation_accuracy", "std": "std_over_encoders_and_seeds",
                          "count": "n_runs"}))
    s["n_diverged"] = grid_table.groupby(keys, sort=False).diverged.sum().to_numpy()
    picks = [(t, r.head_init, r.encoder_mode, r.augmentation, r.lr) for (e, t), r in chosen.items()]
    s["n_pairs_chose_it"] = [picks.count(k) for k in zip(s.target, s.head_init, s.encoder_mode, s.augmentation, s.lr)]
    return s


def _write(gt: GroundTruth, path: Path) -> Path:
    """The CSV, then the provenance (with the CSV's sha256), each atomically."""
    buf = io.StringIO()
    gt.table.to_csv(buf, index=False, float_format=None, lineterminator="\n")
    text = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    gt.provenance["csv_sha256"] = sha256_bytes(text)
    write_json(provenance_path(path), gt.provenance)
    return path


# ---------------------------------------------------------------------------- load and validate
def load(profile: Profile, path=None, *, recompute: bool = False, encs: dict | None = None,
         tasks: dict | None = None, progress: bool = True, **build_options) -> GroundTruth:
    """The ground truth of ``profile``: the shipped CSV (``path``, default :func:`default_path`),
    validated against the profile, restricted to its encoders and targets.

    Raises ``TaskrelError`` (saying how to rebuild) when the file is missing or stale: another
    procedure format, a CSV that does not match its provenance, encoders or targets that it lacks,
    changed weights, preprocessing, target splits, recipe or settings.
    ``recompute=True``: build it again (fine-tunings come from the cache where they exist) into the
    cache folder (``cache_dir("ground_truth")``) instead, leaving the shipped file as it is. A profile
    with ``ground_truth: {if_missing: build}`` and no shipped file gets the one in the cache folder,
    built there when it is missing or stale.
    """
    if recompute:
        out = cache_dir("ground_truth") / f"{profile.name}.csv"
        return build(profile, out=out, encs=encs, tasks=tasks, progress=progress, **build_options)
    path = Path(path) if path is not None else default_path(profile.name)
    if not path.exists() and settings(profile)["if_missing"] == "build":
        return _cached_or_built(profile, encs, tasks, progress, build_options)
    how = f"rebuild it with `{build_command(profile.name)}`, or pass recompute=True"
    prov_path = provenance_path(path)
    if not path.exists() or not prov_path.exists():
        raise TaskrelError(f"no ground truth for profile {profile.name!r} at {path} (and {prov_path.name}); {how}")
    text = path.read_text()
    try:
        provenance = json.loads(prov_path.read_text())
    except ValueError as e:
        raise TaskrelError(f"{prov_path} is not valid JSON ({e}); {how}") from None
    if provenance.get("format") != FORMAT_VERSION or provenance.get("finetune_format") != finetune.FORMAT_VERSION:
        raise TaskrelError(f"{path} was built by another version of the procedure (format "
                           f"{provenance.get('format')}/{provenance.get('finetune_format')}, this kit "
                           f"{FORMAT_VERSION}/{finetune.FORMAT_VERSION}); {how}")
    if provenance.get("csv_sha256") != sha256_bytes(text):
        raise TaskrelError(f"{path} does not match its provenance {prov_path.name} (edited, or an interrupted "
                           f"build); {how}")
    problems = _stale(profile, provenance, encs, tasks, progress)
    if problems:
        raise TaskrelError(f"the ground truth {path} is stale for profile {profile.name!r}: "
                           + "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                           + f". {how}")
    table = pd.read_csv(io.StringIO(text))
    table = table[table.encoder.isin(profile.encoders) & table.target.isin(profile.targets)]
    order = {(e, t): i for i, (e, t) in enumerate((e, t) for e in profile.encoders for t in profile.targets)}
    table = table.iloc[np.argsort([order[k] for k in zip(table.encoder, table.target)], kind="stable")]
    table = table.reset_index(drop=True)
    grid = pd.DataFrame(provenance["grid"])
    reliability = pd.DataFrame(provenance["reliability"])
    return GroundTruth(table=table, grid=grid[grid.target.isin(profile.targets)].reset_index(drop=True),
                       reliability=reliability[reliability.target.isin(profile.targets)].reset_index(drop=True),
                       provenance=provenance, path=path)


def _cached_or_built(profile: Profile, encs, tasks, progress, build_options) -> GroundTruth:
    """The ground truth built into the cache folder earlier, if it is still fresh; else built now."""
    cached = cache_dir("ground_truth") / f"{profile.name}.csv"
    if cached.exists() and provenance_path(cached).exists():
        try:
            return load(profile, cached, encs=encs, tasks=tasks, progress=progress)
        except TaskrelError:
            pass  # stale or damaged: built again below
    return build(profile, out=cached, encs=encs, tasks=tasks, progress=progress, **build_options)


def _stale(profile, provenance, encs, tasks, progress) -> list[str]:
    """What differs between ``provenance`` and the profile (empty: up to date)."""
    problems = []
    built_enc, built_tgt = provenance.get("encoders", {}), provenance.get("targets", {})
    missing_e = [e for e in profile.encoders if e not in built_enc]
    missing_t = [t for t in profile.targets if t not in built_tgt]
    if missing_e:
        problems.append(f"encoders {missing_e} are not in it (it has {list(built_enc)})")
    if missing_t:
        problems.append(f"targets {missing_t} are not in it (it has {list(built_tgt)})")
    if problems:
        return problems
    base = finetune.get_recipe(profile.finetune).to_dict()
    if provenance.get("base_recipe") != base:
        problems.append(f"the profile's fine-tuning recipe changed ({provenance.get('base_recipe')} -> {base})")
    # settings the profile fixes must match (others may have been chosen on the command line)
    opts = _jsonable_settings(settings(profile))
    fixed = set(getattr(profile, "ground_truth", None) or {})
    changed = {k: (provenance.get("settings", {}).get(k), opts[k]) for k in sorted(fixed)
               if provenance.get("settings", {}).get(k) != opts[k]}
    if changed:
        problems.append("the profile's ground_truth settings changed: " + ", ".join(
            f"{k} {old} -> {new}" for k, (old, new) in changed.items()))
    if provenance.get("split_seed") != profile.seed:
        problems.append(f"the split seed changed ({provenance.get('split_seed')} -> {profile.seed})")
    groups = encoder_groups(profile)
    encs, tasks = _tasks_and_encoders(profile, encs, tasks, progress)
    for e in profile.encoders:
        rec = built_enc[e]
        if rec.get("weights_id") != encs[e].weights_id:
            problems.append(f"encoder {e!r} has other weights ({rec.get('weights_id', '')[:12]} -> "
                            f"{encs[e].weights_id[:12]})")
        if rec.get("preprocess") != encs[e].preprocess.description:
            problems.append(f"encoder {e!r} preprocesses differently ({rec.get('preprocess')} -> "
                            f"{encs[e].preprocess.description})")
        if rec.get("group") != groups[e]:
            problems.append(f"encoder {e!r} is now in group {groups[e]!r} (was {rec.get('group')!r})")
    for t in profile.targets:
        rec = built_tgt[t]
        for split in ("train", "test"):
            if rec.get(split) != tasks[t][split].content_id:
                problems.append(f"target {t!r}: the {split} split changed ({rec.get(split)} -> "
                                f"{tasks[t][split].content_id})")
    return problems


# ---------------------------------------------------------------------------- recompute single runs
def recompute_runs(profile: Profile, gt: GroundTruth, runs, *, encs: dict | None = None, tasks: dict | None = None,
                   progress: bool = False) -> pd.DataFrame:
    """Fine-tune again (no cache) the ``runs = [(encoder, target, seed)]`` of ``gt`` with the protocol
    it recorded: one row per run with the ``stored`` and ``recomputed`` accuracy and ``match``
    (bit-identical). The fine-tuning and validation split are drawn again from the profile's tasks."""
    encs, tasks = _tasks_and_encoders(profile, encs, tasks, progress)
    base = finetune.get_recipe(gt.provenance["base_recipe"])
    per_class = gt.provenance["settings"]["validation_per_class"]
    rows = []
    for encoder, target, seed in runs:
        match = gt.table[(gt.table.encoder == encoder) & (gt.table.target == target)]
        if match.empty:
            raise TaskrelError(f"no ({encoder!r}, {target!r}) row in the ground truth; it has encoders "
                               f"{sorted(gt.table.encoder.unique())} and targets {sorted(gt.table.target.unique())}")
        row = match.iloc[0]
        column = f"accuracy_seed{seed}"
        if column not in gt.table.columns or pd.isna(row[column]):
            raise TaskrelError(f"seed {seed!r} was not run for ({encoder!r}, {target!r}); its seeds are "
                               f"{gt.seeds(encoder)}")
        recipe = recipe_of(base, row)
        ft_task, _ = split_train(tasks[target]["train"], base.max_train_per_class, per_class,
                                 seed=gt.provenance["split_seed"])
        r, = _finetune_runs(encs[encoder], ft_task, tasks[target]["test"], [(recipe, int(seed))], cache=False)
        rows.append({"encoder": encoder, "target": target, "seed": int(seed), "stored": float(row[column]),
                     "recomputed": r["accuracy"], "match": float(row[column]) == r["accuracy"],
                     "seconds": r["seconds"]})
    return pd.DataFrame(rows)


def main_cli(args, command: str | None = None) -> int:
    """``python -m taskrel_utils ground-truth build|check`` (see ``__main__``); ``command``: its words."""
    from .config import load_profile

    profile = load_profile(args.profile, encoders=args.encoders or None, targets=args.targets or None)
    if args.gt_command == "build":
        t0 = time.perf_counter()
        gt = build(profile, out=args.out, n_jobs=args.jobs, seeds=args.seeds, contrast_seeds=args.contrast_seeds,
                   selection_seeds=args.selection_seeds, command=command)
        print(f"ground truth written: {gt.path} and {provenance_path(gt.path).name} "
              f"({time.perf_counter() - t0:.0f} s)")
        print(gt.reliability.to_string(index=False))
        return 0
    gt = load(profile, args.out)
    print(f"{gt.path}: up to date for profile {profile.name!r} ({len(gt.table)} pairs, built "
          f"{gt.provenance['date']} in {gt.provenance['seconds']['total']:.0f} s)")
    if args.verify:
        rng = np.random.default_rng(0)
        picks = gt.table.iloc[rng.permutation(len(gt.table))[:args.verify]]
        check = recompute_runs(profile, gt, [(r.encoder, r.target, gt.seeds(r.encoder)[0]) for r in picks.itertuples()])
        print(check.to_string(index=False))
        if not check.match.all():
            warnings.warn("some recomputed accuracies differ from the stored ones", RuntimeWarning)
            return 1
    return 0
