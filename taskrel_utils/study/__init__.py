"""The study over a zoo of encoders: profiles, tables of task-relatedness and baselines, the
fine-tuned ground truth, and their correlation.

``config`` (profiles), ``experiment`` (a profile turned into tasks, encoders, features, pairs),
``controls`` (variants of a pair), ``cached_fits`` (one pair's h_R and fit, cached; the table
row), ``tables`` (the tables over the zoo), ``tau0_study`` (h_R against a plain probe, the choice
of tau0), ``finetune`` and ``ground_truth`` (fine-tuning; the shipped ground truth), ``premise``
(does pre-training help on a target?), ``scores`` (the eight baselines), ``correlation``
(Pearson, Kendall, intervals), ``published`` (the paper's numbers), ``drivers`` and
``stability`` (what drives task-relatedness; how stable the headline is), ``reference_run``
(a run's numbers against the recorded reference run).

Imports :mod:`taskrel_utils.core`, :mod:`taskrel_utils.method` and :mod:`taskrel_utils.inputs`.
"""
__all__ = [
    "config", "experiment", "controls", "cached_fits", "tables", "tau0_study", "finetune", "ground_truth",
    "premise", "scores", "correlation", "published", "drivers", "stability", "reference_run",
]
