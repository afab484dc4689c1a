"""Kept for old notebooks only, and to be removed: ``study.X`` names what now lives in the modules
named after what they hold. Import from those instead:

- :mod:`experiment`: a profile turned into tasks, encoders, features and (encoder, target) pairs;
- :mod:`controls`: the shuffled-label control and little target data;
- :mod:`fits`: one pair's h_R and fit (cached), its table row and example transport plan;
- :mod:`tables`: the relatedness, probe and score tables over the zoo;
- :mod:`reference_penalty`: h_R against a plain probe, and the choice of tau0;
- :mod:`jobs`: independent jobs in worker processes, and the progress bar;
- :mod:`scores`: ``otce_leave_one_target_out``.
"""
from .controls import shuffled_target, target_fraction
from .experiment import (SPLITS, pair, pretrain_zoo, profile_encoders, profile_features, profile_tasks,
                         reference_class_table, reference_classes, zoo_pairs)
from .fits import (cached_relatedness, example_plan,
                   reference_model, result_row)
from .jobs import n_jobs_default, progress, run_jobs
from .reference_penalty import choose_tau0, reference_fit_table, tau0_sweep
from .scores import otce_leave_one_target_out
from .tables import probe_table, relatedness_table, score_table

__all__ = [
    "SPLITS",
    "cached_relatedness", "choose_tau0", "example_plan", "n_jobs_default", "otce_leave_one_target_out",
    "pair", "pretrain_zoo", "probe_table", "profile_encoders", "profile_features", "profile_tasks",
    "progress", "reference_class_table", "reference_classes", "reference_fit_table", "reference_model",
    "relatedness_table", "result_row", "score_table", "shuffled_target", "target_fraction", "tau0_sweep",
    "zoo_pairs",
]


def _map(fn, jobs, n_jobs, desc, progress):
    """The old job runner's call, still made by ``ground_truth``: :func:`jobs.run_jobs`."""
    return run_jobs(fn, jobs, n_jobs=n_jobs, desc=desc, progress=progress)
