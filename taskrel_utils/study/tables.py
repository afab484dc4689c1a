"""Tables over a profile's zoo: one row per (encoder, target) pair, in the profile's order.

- :func:`relatedness_table`: the task-relatedness fit of every pair (with or without the target's
  labels, on a fraction of the target data);
- :func:`probe_table`: the linear probe of every pair, on the same features as the fits;
- :func:`score_table`: every baseline transferability score of every pair;
- :func:`study_table`: a ground truth joined with those scores, for the correlation study.

The pairs run as independent jobs (:func:`jobs.run_jobs`), each cached where it is expensive.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import scores
from .config import Profile
from .controls import shuffled_test_labels, target_fraction
from ..core.errors import TaskrelError
from .experiment import zoo_pairs
from ..method.fit_options import encoder_fit_options
from .finetune import linear_probe
from .cached_fits import cached_relatedness, reference_model
from ..core.jobs import run_jobs

SOURCES = ("reference_classifier", "imagenet_head")  # where score_table's source probabilities come from


def relatedness_table(profile: Profile, feats: dict, *, encoders=None, targets=None, seed: int | None = None,
                      cache: bool = True, progress: bool = True, target_labels: bool = True,
                      fraction: float | None = None, fraction_seed: int = 0, n_jobs: int | None = None,
                      shuffle_test_labels: int | None = None, **options) -> pd.DataFrame:
    """Task-relatedness of every (encoder, target) of the profile: one :func:`cached_fits.result_row` per pair.

    ``options`` override the profile's ``relatedness`` options (the OT batch then set per encoder,
    :func:`fit_options.encoder_fit_options`); each encoder's h_R is trained once
    (and cached, :func:`cached_fits.reference_model`); results come from the cache when nothing changed.
    ``target_labels=False``: the pseudo-label variant (see :func:`cached_fits.cached_relatedness`);
    ``fraction``: only a stratified fraction of the target data (see :func:`controls.target_fraction`);
    ``shuffle_test_labels`` (a seed): each pair's fit evaluated with the target's test labels shuffled
    (see :func:`controls.shuffled_test_labels`; a labelled fit found in the cache is not fitted again).
    Pairs run in parallel processes (``n_jobs``, see :func:`jobs.run_jobs`), with the numbers of
    a serial run: every fit is deterministic on its own.
    """
    opts = {**profile.relatedness, **options}
    seed = profile.seed if seed is None else seed
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    jobs = [(e, t, kwargs, seed, cache, target_labels, fraction, fraction_seed,
             encoder_fit_options(opts, e, feats[e, profile.reference, "train"][0].shape[1]), shuffle_test_labels)
            for e, t, kwargs in zoo_pairs(profile, feats, names, targets)]
    return _zoo_table(run_jobs(_relatedness_row, jobs, n_jobs=n_jobs, desc="task-relatedness", progress=progress), names, targets)


def _relatedness_row(enc_name, target, kwargs, seed, cache, target_labels, fraction, fraction_seed, opts,
                     shuffle_test_labels=None) -> dict:
    """The row of one pair; runs in a worker process."""
    if fraction is not None:
        kwargs = target_fraction(kwargs, fraction, seed=fraction_seed)
    if shuffle_test_labels is not None:
        kwargs = shuffled_test_labels(kwargs, seed=shuffle_test_labels)
    row = cached_relatedness(kwargs, seed=seed, cache=cache, target_labels=target_labels, **opts)
    return {"encoder": enc_name, "target": target, **row}


def _zoo_table(rows: list, encoders: list, targets: list) -> pd.DataFrame:
    """Rows of per-pair jobs as a table in the profile's order (encoder-major)."""
    order = {(e, t): i for i, (e, t) in enumerate((e, t) for e in encoders for t in targets)}
    return pd.DataFrame(sorted(rows, key=lambda r: order[r["encoder"], r["target"]])).reset_index(drop=True)


def probe_table(profile: Profile, feats: dict, *, encoders=None, targets=None, seed: int | None = None,
                progress: bool = True, n_jobs: int | None = None) -> pd.DataFrame:
    """The linear probe (``finetune.linear_probe``: a new last layer on the frozen, standardised
    features, trained with h_R's penalty as the original code's transferability) of every
    (encoder, target) on the same (projected) target features as the fits, with h_R's options:
    cross-entropy and accuracy."""
    seed = profile.seed if seed is None else seed
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    options = dict(profile.relatedness.get("reference_classifier_options") or {},
                   scale=profile.relatedness.get("scale", "small"))
    jobs = [(e, t, kwargs, seed, options) for e, t, kwargs in zoo_pairs(profile, feats, names, targets)]
    return _zoo_table(run_jobs(_probe_row, jobs, n_jobs=n_jobs, desc="linear probes", progress=progress), names, targets)


def _probe_row(enc_name, target, kwargs, seed, options) -> dict:
    """The probe of one pair; runs in a worker process."""
    probe = linear_probe(kwargs["target_train"], kwargs["target_test"], seed=seed, **options)
    return {"encoder": enc_name, "target": target, "probe_cross_entropy": probe.cross_entropy,
            "probe_accuracy": probe.accuracy}


def score_table(profile: Profile, feats: dict, *, encoders=None, targets=None, seed: int | None = None,
                progress: bool = True, source: str | None = None, encs: dict | None = None,
                n_jobs: int | None = None) -> pd.DataFrame:
    """Every baseline score of :data:`scores.SCORES` for every (encoder, target), plus the OTCE
    components ``otce_wasserstein`` and ``otce_conditional_entropy``.

    Feature-based scores see the encoder's target-train features as the fits do (raw, as in the
    original code, unless the profile projects wide features, ``max_feature_dim``);
    probability-based ones (LEEP, NCE, PACTran-Dirichlet/Gamma) see the source probabilities of
    ``source``: "reference_classifier" (default; the encoder's h_R on the reference task, the same
    source task for the whole zoo) or "imagenet_head" (the encoder's own ImageNet head,
    ``encs[name].head``; only the probability-based scores, only for encoders that have a head).
    OT-NCE / OTCE pair the reference-train and target-train features. Pairs run in parallel
    processes (``n_jobs``, as :func:`relatedness_table`).

    ``source=None`` (default): the profile's ``source_classifier``. With "reference_classifier"
    as above; with "imagenet_head" (the paper profiles) the table of the paper's layout: every
    score, LEEP, NCE and PACTran-Dirichlet/Gamma from each encoder's own 1000-way ImageNet head
    (NaN for an encoder without one), h_R's versions beside them in ``<score>_reference_classifier``
    columns (:func:`paper_layout_scores`; the heads are loaded when ``encs`` is not given).
    """
    if source is None:
        if profile.source_classifier == "imagenet_head":
            return paper_layout_scores(profile, feats, encoders=encoders, targets=targets, seed=seed,
                                       progress=progress, encs=encs, n_jobs=n_jobs)
        source = "reference_classifier"
    if source not in SOURCES:
        raise TaskrelError(f"source must be one of {', '.join(map(repr, SOURCES))}, got {source!r}")
    head_only = source == "imagenet_head"
    if head_only and encs is None:
        raise TaskrelError("source='imagenet_head' needs encs={name: Encoder} (the heads live on the encoders)")
    opts = profile.relatedness
    seed = profile.seed if seed is None else seed
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    if head_only:
        names = [e for e in names if encs[e].head is not None]
        if not names:
            return pd.DataFrame()
    reference = dict(seed=seed, scale=opts.get("scale", "small"),
                     reference_classifier_options=opts.get("reference_classifier_options"))
    heads = {e: copy.deepcopy(encs[e].head).cpu() for e in names} if head_only else {}  # CPU copies for the workers
    jobs = [(e, t, kwargs, source, heads.get(e), feats[e, t, "train"][0] if head_only else None, reference)
            for e, t, kwargs in zoo_pairs(profile, feats, names, targets)]
    return _zoo_table(run_jobs(_score_row, jobs, n_jobs=n_jobs, desc="baseline scores", progress=progress), names, targets)


#: the scores computed from source-classifier probabilities (the others read features)
SOURCE_PROBABILITY_SCORES = tuple(name for name, spec in scores.SCORES.items() if spec.kind == "source_probs")


def paper_layout_scores(profile: Profile, feats: dict, *, encoders=None, targets=None, seed: int | None = None,
                        progress: bool = True, encs: dict | None = None, n_jobs: int | None = None) -> pd.DataFrame:
    """:func:`score_table` with LEEP, NCE and PACTran-Dirichlet/Gamma computed from each encoder's
    own 1000-way ImageNet head (as LEEP and NCE are defined, and as the LogME / SFDA benchmarks
    compute them), h_R's versions kept beside them as ``<score>_reference_classifier``; ``source``
    says ``imagenet_head``. An encoder without a head (CLIP, random weights) gets NaN in those
    columns. ``encs``: the profile's encoders (default: loaded here, for their heads only)."""
    names, targets = list(encoders or profile.encoders), list(targets or profile.targets)
    if encs is None:
        from .encoders import load_encoder
        options = {"image_size": profile.image_size} if profile.image_size else {}
        encs = {e: load_encoder(e, progress=False, **options) for e in names}
    base = score_table(profile, feats, encoders=names, targets=targets, seed=seed, progress=progress,
                       source="reference_classifier", n_jobs=n_jobs)
    heads = score_table(profile, feats, encoders=names, targets=targets, seed=seed, progress=progress,
                        source="imagenet_head", encs=encs, n_jobs=n_jobs)
    cols = list(SOURCE_PROBABILITY_SCORES)
    out = base.rename(columns={c: f"{c}_reference_classifier" for c in cols}).drop(columns="source")
    head_part = (heads[["encoder", "target", *cols]] if len(heads)
                 else pd.DataFrame(columns=["encoder", "target", *cols]))
    out = out.merge(head_part, on=["encoder", "target"], how="left")
    out.insert(2, "source", "imagenet_head")
    return out[["encoder", "target", "source", *[c for c in base.columns if c not in ("encoder", "target", "source")],
                *[f"{c}_reference_classifier" for c in cols]]]


def _score_row(enc_name, target, kwargs, source, head, Z_raw, reference) -> dict:
    """The baseline scores of one pair; runs in a worker process. ``head``, ``Z_raw``: the
    encoder's ImageNet head and raw target-train features (``source="imagenet_head"`` only)."""
    (Zr, yr), (Zt, yt) = kwargs["ref_train"], kwargs["target_train"]
    row = {"encoder": enc_name, "target": target, "source": source}
    if head is not None:
        probs = _head_probabilities(head, Z_raw)
    else:
        s_R, h_R = reference_model(kwargs, **reference)
        probs = h_R.predict_proba(s_R.transform(Zt))
    for name, spec in scores.SCORES.items():
        if spec.kind == "source_probs":
            row[name] = spec.function(probs, yt)
        elif spec.kind == "features" and head is None:
            row[name] = spec.function(Zt, yt)
    if head is None:
        w, ce = scores.otce_components(Zr, yr, Zt, yt, seed=reference["seed"])
        row.update(ot_nce=-ce, otce_wasserstein=w, otce_conditional_entropy=ce)
    return row


def _head_probabilities(head, Z) -> np.ndarray:
    """softmax of an encoder's own classifier ``head`` (a torch module) on its (raw, pooled)
    features ``Z`` (N, d) -> (N, n_head_classes), float64."""
    with torch.no_grad():
        weight = next(head.parameters())
        logits = head(torch.tensor(np.asarray(Z), dtype=weight.dtype, device=weight.device))  # a copy: Z may be read-only
        return torch.softmax(logits.double(), dim=1).cpu().numpy()


def with_theorem_wasserstein(fits: pd.DataFrame) -> pd.DataFrame:
    """``fits`` (:func:`relatedness_table` rows) with the value taken with the theorem's W, unrounded:
    ``distribution_mismatch = tau * wasserstein_theorem`` and ``value = L_C + H + tau W`` again,
    ``value_wasserstein = "theorem"``, ``value_failed`` where that W is undefined.

    The label-free fits' value already is this one (the code's W fails without labels); a labelled
    fit's value uses the code's W, rounded to 3 decimals as the original does. Comparing the two
    would mix "no labels" with "another W": pass both through this function to compare like with
    like (a label-free row comes back unchanged). Needs the fits' ``wasserstein_theorem``
    (the fit's default ``theorem_wasserstein=True``).
    """
    if "wasserstein_theorem" not in fits:
        raise TaskrelError("with_theorem_wasserstein: the fits have no wasserstein_theorem column "
                           "(fitted with theorem_wasserstein=False?)")
    out = fits.copy()
    w = pd.to_numeric(out["wasserstein_theorem"], errors="coerce").astype(float)
    out["distribution_mismatch"] = out["tau"] * w
    out["value"] = out["reweighted_reference_loss"] + out["label_mismatch"] + out["distribution_mismatch"]
    out["value_wasserstein"] = "theorem"
    out["value_failed"] = ~np.isfinite(out["value"].to_numpy(dtype=float))
    return out


def study_table(accuracy: pd.DataFrame, relatedness: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """The correlation study's table: one row per (encoder, target) found in all three inputs, in
    the order of ``accuracy``, with the accuracy to predict and every score before fine-tuning.

    ``accuracy``: the ground truth (columns encoder, target, group, accuracy, accuracy_std: the
    kit's fine-tuning, ``ground_truth.load(profile).table``, or the published accuracies,
    ``published.ground_truth_table(profile)``); ``relatedness``: :func:`relatedness_table` (its
    ``value`` becomes ``task_relatedness``, its ``target_accuracy`` ``transferred_accuracy``);
    ``baselines``: :func:`score_table`. ``otce`` = lambda_1 W + lambda_2 CE + b0, fitted on the
    other targets' rows (``scores.otce_leave_one_target_out``).
    """
    keys = ["encoder", "target"]
    table = (accuracy[keys + ["group", "accuracy", "accuracy_std"]]
             .merge(relatedness[keys + ["value", "target_accuracy"]]
                    .rename(columns={"value": "task_relatedness", "target_accuracy": "transferred_accuracy"}), on=keys)
             .merge(baselines, on=keys))
    table["otce"] = scores.otce_leave_one_target_out(table)
    return table


def fraction_tables(profile: Profile, feats: dict, accuracy: pd.DataFrame, fractions, seeds, *,
                    encoders=None, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Task-relatedness with a stratified ``fraction`` of the target data (:func:`controls.target_fraction`)
    for every fraction and subsample seed, on ``encoders`` (default: the main zoo).

    ``accuracy``: the fine-tuned accuracies (columns encoder, target, accuracy). ``fraction = 1`` is
    the same subsample for every seed, so it runs with the first seed only. Returns ``(values,
    pearson)``: one :func:`relatedness_table` row per (fraction, seed, encoder, target), and the
    Pearson r of the value with the accuracy per (fraction, seed, target), pairs whose W failed left out.
    """
    from .correlation import correlation_table

    names = list(encoders or profile.main_encoders)
    runs = [(f, s) for f in fractions for s in (seeds if f < 1 else list(seeds)[:1])]
    values, rows = [], []
    for f, s in tqdm(runs, desc="fractions", disable=not progress):
        t = relatedness_table(profile, feats, encoders=names, fraction=f, fraction_seed=s, progress=False)
        t = t.merge(accuracy, on=["encoder", "target"]).assign(fraction=f, seed=s)
        values.append(t)
        r = correlation_table(t[~t.value_failed], ["value"])["value"].drop("Average")
        rows += [{"fraction": f, "seed": s, "target": target, "pearson_r": v} for target, v in r.items()]
    return pd.concat(values, ignore_index=True), pd.DataFrame(rows)


def reference_training_table(profile: Profile, tasks: dict, encoder: str, epochs, *,
                             progress: bool = True) -> pd.DataFrame:
    """Task-relatedness of ``encoder`` (an in-kit CNN) pre-trained for each of ``epochs`` on every
    target of the profile: does a better-trained encoder of the reference task make the targets
    more related? One :func:`relatedness_table` row per (epochs, target), with an ``epochs`` column.
    The encoders are pre-trained in parallel and cached; features are extracted (and cached) here.
    """
    from ..inputs import encoders as registry
    from .experiment import pretrain_zoo
    from ..inputs.features import extract_features

    pretrain_zoo([(encoder, {"epochs": e}) for e in epochs], progress=progress)
    rows = []
    for e in tqdm(list(epochs), desc="reference epochs", disable=not progress):
        enc = registry.load_encoder(encoder, epochs=e, device=profile.torch_device, progress=False)
        feats = {(enc.name, name, split): extract_features(enc, task, batch_size=profile.batch_size, progress=False)
                 for name, splits in tasks.items() for split, task in splits.items()}
        t = relatedness_table(profile, feats, encoders=[enc.name], progress=False)
        rows.append(t.assign(epochs=e))
    return pd.concat(rows, ignore_index=True)
