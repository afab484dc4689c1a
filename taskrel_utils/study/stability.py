"""How stable is the headline? The same correlation over seeded variations of the setup.

The headline is one pre-registered setup: the profile's options, the main zoo, the related targets,
the fine-tuned ground truth. As Agostinelli et al. (ECCV 2022) do for transferability metrics, this
module recomputes the average Pearson r (over the related targets, across the main zoo) of every
score under variations of that setup, one family at a time:

* ``tau0``: h_R's gradient-norm threshold over a grid (task-relatedness fitted again);
* ``reference draw``: the profile's seed 1, 2, ... (the reference classes drawn for a target with
  fewer classes than the source, h_R and the fit's batches; task-relatedness fitted again);
* ``projection``: the features without the PCA projection (fitted again);
* ``leave one encoder out``: the zoo without each encoder in turn;
* ``ground truth``: the frozen probe's accuracy instead of the fine-tuned one.

The baseline scores do not depend on task-relatedness's options, so in the first three families they
keep their default values. Nothing is chosen from this table: the default stays the headline.
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from . import correlation, tables
from .published import LOWER_IS_BETTER, PAPER_COLUMNS

__all__ = ["FAMILIES", "stability_table", "stability_summary"]

FAMILIES = ("default", "tau0", "reference draw", "projection", "leave one encoder out", "ground truth")


def _average_r(table: pd.DataFrame, truth: str = "accuracy") -> pd.Series:
    """The average over targets of each score's Pearson r with ``truth`` (display names as index)."""
    avg = correlation.correlation_table(table, list(PAPER_COLUMNS), truth=truth).loc["Average"]
    return avg.rename(PAPER_COLUMNS)


def _refit(profile, feats, study: pd.DataFrame, encoders, targets, progress, **options) -> pd.DataFrame:
    """``study`` with its task_relatedness replaced by a fit of ``profile`` with ``options``."""
    tr = tables.relatedness_table(profile, feats, encoders=encoders, targets=targets, progress=progress, **options)
    return (study.drop(columns="task_relatedness")
            .merge(tr[["encoder", "target", "value"]].rename(columns={"value": "task_relatedness"}),
                   on=["encoder", "target"]))


def stability_table(profile, feats, study: pd.DataFrame, targets, *, tau0_grid=(), draws: int = 5,
                    projection: bool = True, progress: bool = True) -> pd.DataFrame:
    """One row per (family, setup, score): the score's average Pearson r over ``targets``.

    ``study``: the correlation study's table of the main zoo (``tables.study_table``; it needs a
    ``probe_accuracy`` column for the ``ground truth`` family); ``tau0_grid``: the thresholds tried
    (the profile's own is the default setup); ``draws``: reference draws in all, the profile's seed
    and ``draws - 1`` more; ``projection``: also fit without the PCA projection, when the profile has one.
    """
    study = study[study.target.isin(targets)].reset_index(drop=True)
    encoders = list(dict.fromkeys(study.encoder))
    rows = []

    def add(family, setup, table, truth="accuracy"):
        for score, r in _average_r(table, truth).items():
            rows.append({"family": family, "setup": setup, "score": score, "r": r})

    add("default", "the headline", study)
    default_tau0 = dict(profile.relatedness.get("reference_classifier_options") or {}).get("tau0")
    for tau0 in tau0_grid:
        if tau0 != default_tau0:
            opts = {**dict(profile.relatedness.get("reference_classifier_options") or {}), "tau0": tau0}
            add("tau0", f"tau0 = {tau0:g}", _refit(profile, feats, study, encoders, targets, progress,
                                                   reference_classifier_options=opts))
    for k in range(1, draws):
        seeded = dataclasses.replace(profile, seed=profile.seed + k)
        add("reference draw", f"seed {profile.seed + k}", _refit(seeded, feats, study, encoders, targets, progress))
    if projection and profile.max_feature_dim is not None:
        whole = dataclasses.replace(profile, max_feature_dim=None)
        add("projection", "no PCA projection", _refit(whole, feats, study, encoders, targets, progress))
    for e in encoders:
        add("leave one encoder out", f"without {e}", study[study.encoder != e])
    if "probe_accuracy" in study:
        add("ground truth", "frozen-probe accuracy", study, truth="probe_accuracy")
    return pd.DataFrame(rows)


def stability_summary(stability: pd.DataFrame, score: str = "Ours (TR)") -> pd.DataFrame:
    """Per score: the median, min and max of its average r over the setups, the number of setups,
    the share of setups where its r points the right way, and the share where ``score`` beats it
    (signs corrected: a lower-is-better score's r is negated before comparing)."""
    wide = stability.pivot_table(index=["family", "setup"], columns="score", values="r", sort=False)
    corrected = wide.apply(lambda col: -col if col.name in LOWER_IS_BETTER else col)
    out = pd.DataFrame({"median_r": wide.median(), "min_r": wide.min(), "max_r": wide.max(),
                        "n_setups": wide.notna().sum(), "right_sign": (corrected > 0).mean()})
    out[f"{score} beats it"] = [(corrected[score] > corrected[s]).mean() if s != score else float("nan")
                                for s in out.index]
    return out
