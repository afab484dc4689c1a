"""The paper's method: task-relatedness between a reference and a target task, in feature space.

Read in this order: ``relatedness`` (``task_relatedness``, the public entry, and its result),
``reference_classifier`` (h_R, the softmax head with the gradient-norm penalty),
``fit_options`` (the fit's options), ``fit_steps`` (the alternating fit, step by step),
``fit_engine`` (the numerical steps behind it), ``transport`` (exact optimal transport, the
class-wise W), ``bound`` (every term of the bound), ``pseudo_labels`` (the label-free variant);
``fit_inspection`` looks inside one step of the fit.

Imports only :mod:`taskrel_utils.core`.
"""
__all__ = [
    "relatedness", "reference_classifier", "fit_options", "fit_steps", "fit_engine", "transport",
    "bound", "pseudo_labels", "fit_inspection",
]
