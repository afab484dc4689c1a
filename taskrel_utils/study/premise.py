"""The paper's premise, measured per target: does pre-training help there at all?

The paper studies targets where pre-training matters a great deal (ImageNet models on Pets, DTD,
Aircraft: fine-grained, few images per class). A mini target passes the premise when the main zoo's
median frozen-probe accuracy beats a random-init encoder's by at least ``threshold``, both measured
on the ground truth's fine-tuning images (``probe_accuracy`` of the ground-truth table: a logistic
probe whose L2 strength is chosen on the validation split). The threshold is written into the
profile before any task-relatedness number is looked at; the check reads neither task-relatedness
nor fine-tuned accuracy. Targets that pass form the *related* group (the headline), the others the
*unrelated* group, reported beside it and never averaged in.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..core.errors import TaskrelError

__all__ = ["DEFAULTS", "check_premise_settings", "premise_table", "groups"]

#: ``threshold``: the median probe gain over random init a target needs (accuracy, 0.05 = 5 points);
#: ``random_encoder``: the random-init encoder of the profile it is measured against
DEFAULTS = {"threshold": 0.05, "random_encoder": "lenet-random"}


def check_premise_settings(settings: dict, where: str = "premise") -> dict:
    """``settings`` completed with :data:`DEFAULTS` and validated."""
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise TaskrelError(f"{where}: unknown premise setting {unknown[0]!r}; the settings are {list(DEFAULTS)}")
    out = {**DEFAULTS, **settings}
    t = out["threshold"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not -1 < t < 1:
        raise TaskrelError(f"{where}: premise threshold must be an accuracy difference in (-1, 1), e.g. 0.05, got {t!r}")
    if not isinstance(out["random_encoder"], str):
        raise TaskrelError(f"{where}: premise random_encoder must be an encoder's name, e.g. lenet-random, got "
                           f"{out['random_encoder']!r}")
    return out


def premise_table(gt_table: pd.DataFrame, profile) -> pd.DataFrame:
    """One row per target of ``profile``: the main zoo's median (min, max) probe accuracy, the random
    encoder's, their difference ``gain`` and ``related`` (gain >= threshold).

    ``gt_table``: the ground truth's table (columns encoder, target, probe_accuracy). A profile
    without a ``premise`` mapping (the paper's, whose targets are chosen as ones where pre-training
    matters), or a run whose zoo lacks the random encoder, cannot measure it: every target counts as
    related, its numbers NaN and ``measured`` False (the reading says so)."""
    settings = profile.premise
    rows = []
    for target in profile.targets:
        if not settings or settings["random_encoder"] not in profile.encoders:
            rows.append({"target": target, **dict.fromkeys(["main_median_probe", "main_min_probe", "main_max_probe",
                                                            "random_probe", "gain", "threshold"], math.nan),
                         "related": True, "measured": False})
            continue
        g = gt_table[gt_table.target == target].set_index("encoder").probe_accuracy
        main = g.reindex(profile.main_encoders).dropna().to_numpy()
        rand = settings["random_encoder"]
        if not main.size or rand not in g.index:
            raise TaskrelError(f"premise of {target!r}: the ground truth has no probe accuracy of "
                               f"{'the main zoo' if not main.size else repr(rand)}; rebuild it with the profile's encoders")
        gain = float(np.median(main) - g[rand])
        rows.append({"target": target, "main_median_probe": float(np.median(main)), "main_min_probe": float(main.min()),
                     "main_max_probe": float(main.max()), "random_probe": float(g[rand]), "gain": gain,
                     "threshold": float(settings["threshold"]), "related": bool(gain >= settings["threshold"]),
                     "measured": True})
    return pd.DataFrame(rows)


def groups(premise: pd.DataFrame) -> dict:
    """``{"related": [targets], "unrelated": [targets]}`` of a :func:`premise_table`."""
    return {"related": list(premise.target[premise.related]), "unrelated": list(premise.target[~premise.related])}
