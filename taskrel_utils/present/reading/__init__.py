"""The notebooks' "reading the results" paragraphs, written from a run's own numbers: one module per
notebook, so that a notebook never quotes an earlier run.

``encoder_features`` (notebook 01), ``fit_transformations`` (02), ``bound_decomposition`` (03),
``finetune_correlation`` and ``validity`` (04: the correlations; whether the study tests the
paper's claim), ``pseudo_labels`` (05), and ``common`` (what they share: signs, directions,
counts, quoted names). A notebook imports its own, e.g.
``from taskrel_utils.present.reading import fit_transformations as reading``.
"""
__all__ = [
    "common", "encoder_features", "fit_transformations", "bound_decomposition", "finetune_correlation", "validity",
    "pseudo_labels",
]
