"""Published numbers shipped with the kit (``data/published/``; sources in its README.md).

``finetune_accuracy`` gives the end-to-end fine-tuning accuracies of the SFDA benchmark's model zoos
(Shao et al., ECCV 2022; group 1: 11 supervised ImageNet models, group 2: 12 self-supervised
ResNet-50s, Ericsson et al.'s numbers) on Aircraft, DTD and Pets; ``paper_pearson`` and ``paper_pseudo_label_ablation`` the Pearson correlations
reported on the NeurIPS 2024 poster (with true labels, and with pseudo-labels on the target).
"""
from __future__ import annotations

import pandas as pd

from ..core.errors import MissingDataError, TaskrelError, UnknownNameError
from ..core.paths import PUBLISHED_DIR

GROUPS = {1: "supervised ImageNet models", 2: "self-supervised ResNet-50s"}
TARGETS = ("aircraft", "dtd", "pets")
PAPER_TARGETS = ("pets", "dtd", "aircraft", "average")          # the poster's row order
PAPER_METHODS = ("LogME", "LEEP", "NCE", "PACTran", "SFDA", "H-Score", "OT-NCE", "OTCE", "TR")

#: the kit's score columns -> the paper's column names, in the order of the paper's table
PAPER_COLUMNS = {"logme": "LogME", "leep": "LEEP", "nce": "NCE", "pactran_gaussian": "PACTran", "sfda": "SFDA",
                 "h_score": "H-Score", "ot_nce": "OT-NCE", "otce": "OTCE", "task_relatedness": "Ours (TR)"}
#: further score columns the kit reports beside the paper's
EXTRA_COLUMNS = {"pactran_dirichlet": "PACTran-Dir", "pactran_gamma": "PACTran-Gamma",
                 "transferred_accuracy": "TR's transferred accuracy"}
#: what the paper-layout table's columns are, where the paper's name leaves it open (for captions)
COLUMN_NOTES = {
    "PACTran": "PACTran is the Gaussian variant (Ding et al., ECCV 2022: features, lda_factor 1, s2 factor 10); "
               "the Dirichlet and Gamma variants (source probabilities) are PACTran-Dir and PACTran-Gamma",
    "OTCE": "OTCE's coefficients are fitted by least squares on the other targets' accuracies (leave one target "
            "out), not on auxiliary tasks as in its paper: likely optimistic",
}


def paper_table_caption(source_classifier: str = "reference_classifier") -> str:
    """The caption of the Pearson table in the paper's layout: what its PACTran, OTCE and
    probability-based columns are (``source_classifier``: the profile's)."""
    source = ("each encoder's own 1000-way ImageNet head (h_R's versions in the *_reference_classifier columns)"
              if source_classifier == "imagenet_head" else "each encoder's reference classifier h_R")
    return (f"{COLUMN_NOTES['PACTran']}. {COLUMN_NOTES['OTCE']}. LEEP, NCE and PACTran-Dir/Gamma take their "
            f"source probabilities from {source}.")


_LOWER_IS_BETTER_COLUMNS = ("task_relatedness", "value", "pactran_gaussian", "pactran_dirichlet", "pactran_gamma")
#: scores (kit column and display names) for which lower values mean better transfer: task-relatedness
#: is an upper bound on the target loss and PACTran a PAC-Bayes bound, so a good Pearson r with
#: accuracy is negative for them (positive for every other score)
LOWER_IS_BETTER = _LOWER_IS_BETTER_COLUMNS + tuple(
    names[c] for names in [{**PAPER_COLUMNS, **EXTRA_COLUMNS}] for c in _LOWER_IS_BETTER_COLUMNS if c in names)


def _read(name: str) -> pd.DataFrame:
    path = PUBLISHED_DIR / name
    if not path.is_file():
        raise MissingDataError(f"{path} is missing: it ships with the kit in data/published/; "
                               "restore it from the kit's repository (git checkout -- data/published)")
    return pd.read_csv(path)


def finetune_accuracy(group: int | None = None, target: str | None = None) -> pd.DataFrame:
    """Published fine-tuning accuracies (%), long format, one row per (group, model, target).

    Columns ``group`` (1 or 2), ``model``, ``target`` (``aircraft``, ``dtd``, ``pets``), ``accuracy``
    (in (0, 100)), ``metric`` (``mean_per_class_accuracy`` for Aircraft and Pets,
    ``top1_accuracy`` for DTD) and ``source``; 23 models x 3 targets = 69 rows without filters.
    ``group`` / ``target`` select rows; ``df.pivot(index="model", columns="target",
    values="accuracy")`` gives the model x target table.
    """
    if group is not None and group not in GROUPS:
        raise UnknownNameError("group", group, GROUPS)
    if target is not None and target not in TARGETS:
        raise UnknownNameError("target", target, TARGETS)
    df = _read("finetune_accuracy.csv")
    if group is not None:
        df = df[df["group"] == group]
    if target is not None:
        df = df[df["target"] == target]
    return df.reset_index(drop=True)


def paper_pearson() -> pd.DataFrame:
    """Pearson r with fine-tuning accuracy reported on the poster: (4 targets x 9 methods) table.

    Rows ``pets``, ``dtd``, ``aircraft``, ``average`` (the arithmetic mean of the three, as printed),
    columns ``PAPER_METHODS``; ``TR`` is the poster's "Ours (TR)". Raw signs: TR and PACTran are
    lower-is-better scores, so a good result is a negative r for them and a positive r otherwise.
    """
    df = _read("paper_pearson.csv")
    df = df[df["target_labels"] == "true"]
    table = df.pivot(index="target", columns="method", values="pearson")
    return table.loc[list(PAPER_TARGETS), list(PAPER_METHODS)].rename_axis(columns=None)


def paper_pseudo_label_ablation() -> pd.DataFrame:
    """Pearson r of TR with fine-tuning accuracy, target labels true vs pseudo: (3 targets x 2) table.

    Rows ``pets``, ``dtd``, ``aircraft``; columns ``true`` (same as ``paper_pearson()["TR"]``)
    and ``pseudo`` (TR computed with pseudo-labels on the target). No average printed.
    """
    df = _read("paper_pearson.csv")
    df = df[df["method"] == "TR"]
    table = df.pivot(index="target", columns="target_labels", values="pearson")
    return table.loc[list(PAPER_TARGETS[:3]), ["true", "pseudo"]].rename_axis(columns=None)


#: the supervised ImageNet zoo (group 1) as kit encoder names: every model with published
#: accuracies, with the torchvision weights the benchmark fine-tuned (timm's ``.tv_in1k`` tags are
#: those weights; mnasnet1_0, mobilenet_v2 and googlenet have no timm twin and load through
#: torchvision). Each name with ``:random`` appended builds the same architecture with random
#: weights, offline. The self-supervised group 2 is in neither library: load its checkpoints with
#: ``timm:resnet50:<path>`` and extend this mapping to use it.
KIT_ENCODERS = {**{m: f"timm:{m}.tv_in1k" for m in ("resnet34", "resnet50", "resnet101", "resnet152", "densenet121",
                                                     "densenet169", "densenet201", "inception_v3")},
                **{m: f"torchvision:{m}" for m in ("mnasnet1_0", "mobilenet_v2", "googlenet")}}


def kit_finetune_accuracy(encoders) -> pd.DataFrame:
    """The published accuracies of the kit ``encoders`` that :data:`KIT_ENCODERS` maps to a
    published model: columns ``encoder``, ``target``, ``accuracy`` (%), ``model``.

    Raises ``UnknownNameError`` when none of ``encoders`` has published accuracies.
    """
    to_model = {v: k for k, v in KIT_ENCODERS.items()}
    known = [e for e in encoders if e in to_model]
    if not known:
        raise UnknownNameError("encoder with published fine-tuning accuracies", ", ".join(encoders),
                               list(KIT_ENCODERS.values()))
    df = finetune_accuracy(group=1)
    df = df[df["model"].isin([to_model[e] for e in known])].copy()
    df.insert(0, "encoder", df["model"].map(KIT_ENCODERS))
    return df[["encoder", "target", "accuracy", "model"]].reset_index(drop=True)


def ground_truth_table(profile) -> pd.DataFrame:
    """The published accuracies in the layout of the kit's own fine-tuned ground truth
    (``ground_truth.load(profile).table``), for the correlation study without fine-tuning.

    One row per (encoder, target) of ``profile`` (a :class:`~taskrel_utils.study.config.Profile`) that
    has a published accuracy, in the profile's order (encoder-major): columns ``encoder``,
    ``target``, ``group`` (the profile's), ``accuracy`` (a fraction, published % / 100, as the
    kit's fine-tuning reports it), ``accuracy_std`` (NaN: one published number) and ``model``.
    Raises ``UnknownNameError`` when no encoder, ``TaskrelError`` when no target of the profile has one.
    """
    targets = [t for t in profile.targets if t in TARGETS]
    if not targets:
        raise TaskrelError(f"profile {profile.name!r}: none of its targets {list(profile.targets)} has published "
                           f"fine-tuning accuracies (those are {', '.join(TARGETS)}); use_published needs them")
    df = kit_finetune_accuracy(profile.encoders)
    order = {(e, t): i for i, (e, t) in enumerate((e, t) for e in profile.encoders for t in targets)}
    df = df[df["target"].isin(targets)].copy()
    df["order"] = [order[e, t] for e, t in zip(df["encoder"], df["target"])]
    df = df.sort_values("order").reset_index(drop=True)
    return pd.DataFrame({"encoder": df["encoder"], "target": df["target"],
                         "group": [profile.group(e) for e in df["encoder"]], "accuracy": df["accuracy"] / 100.0,
                         "accuracy_std": float("nan"), "model": df["model"]})
