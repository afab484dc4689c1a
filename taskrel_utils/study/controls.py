"""Variants of a pair (the keyword arguments of ``relatedness.task_relatedness``) that test the
analysis: the unrelated control (the target's labels shuffled), the same fit evaluated with the
target's test labels shuffled, and little target data (a stratified fraction of the target's
training set).
"""
from __future__ import annotations

import numpy as np

from ..core.checks import as_seed
from ..core.errors import TaskrelError
from ..core.numerics import stratified_groups


def shuffled_target(pair_kwargs: dict, seed: int = 0) -> dict:
    """The unrelated control: the same target features with their labels shuffled (train and test)."""
    rng = np.random.default_rng(as_seed(seed))
    out = dict(pair_kwargs)
    for key in ("target_train", "target_test"):
        Z, y = pair_kwargs[key]
        out[key] = (Z, y[rng.permutation(len(y))])
    return out


def shuffled_test_labels(pair_kwargs: dict, seed: int = 0) -> dict:
    """The pair with only the target's *test* labels shuffled. The fit never reads the test split, so
    the fitted transformations stay those of the pair (a cached labelled fit is evaluated again,
    not fitted again); only the evaluation's target classes change, to classes that carry no
    information about the points: what the bound's terms would be if the labels meant nothing
    (notebook 05: how much W depends on which target point has which label)."""
    rng = np.random.default_rng(as_seed(seed))
    Z, y = pair_kwargs["target_test"]
    return dict(pair_kwargs, target_test=(Z, y[rng.permutation(len(y))]))


def target_fraction(pair_kwargs: dict, fraction: float, seed: int = 0) -> dict:
    """The pair with only a stratified ``fraction`` of the target training data (the paper's
    small-data experiment: task-relatedness from a small share of the target data).

    Per class ``max(1, round(fraction * n_c))`` samples, drawn with ``seed``. The subset is used
    for *everything* on the target side: it replaces ``target_train`` and, reused, ``target_test``
    (a user with little target data has no separate labelled test set), so ``s_T``, the target
    prior, the batches and the target side of W and tau all see only it.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise TaskrelError(f"fraction must be a number in (0, 1] (the share of the target data kept), got {fraction!r}")
    Z, y = pair_kwargs["target_train"]
    if fraction == 1:
        keep = np.arange(len(y))
    else:
        rng = np.random.default_rng(as_seed(seed))
        (keep,) = stratified_groups(y, lambda n: [max(1, int(round(fraction * n)))], rng)
    subset = (Z[keep], y[keep])
    return dict(pair_kwargs, target_train=subset, target_test=subset)
