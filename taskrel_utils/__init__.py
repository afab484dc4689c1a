"""taskrel_utils: the logic behind the taskrel kit's notebooks.

Transferability of representations via task-relatedness (Mehra, Zhang, Hamm, NeurIPS 2024).

The package in layers; each imports only the layers above it in this list::

    core/     plumbing: errors, io, paths, the cache, numerics, input checks, jobs (local or Dask)
    method/   the paper's method: relatedness (task_relatedness, the public entry), the reference
              classifier h_R, the fit's options, steps and engine, transport, the bound, pseudo-labels
    inputs/   tasks and the shipped bundle, preprocessing, encoders, the in-kit CNN zoo, features
    study/    profiles, the zoo's tables, cached fits, the tau0 study, fine-tuning and the ground
              truth, baseline scores, correlation, the published numbers
    present/  plots, widgets, the prose written from a run's numbers, short tables
    kit/      run folders, the papermill runner, HTML reports, student copies, the command line

``method`` and ``inputs`` sit side by side: neither imports the other. ``python -m taskrel_utils
layers`` prints the imports between the layers. To read the method, open ``method/relatedness.py``
and follow its imports.

The stable entry points import from the top, as before the layers::

    from taskrel_utils import data, encoders, features, relatedness, scores, correlation, finetune

(loaded on first use, so ``import taskrel_utils`` stays light); every other module imports from
its layer, e.g. ``from taskrel_utils.method import fit_steps``.
"""
import importlib

__version__ = "0.1.0"

#: the layers, lowest first (:mod:`taskrel_utils.kit.layers` checks that imports point down this list)
LAYERS = ("core", "method", "inputs", "study", "present", "kit")
#: the modules importable from the top (``from taskrel_utils import relatedness``): where each lives
PUBLIC_MODULES = {
    "data": "inputs.data",
    "encoders": "inputs.encoders",
    "features": "inputs.features",
    "relatedness": "method.relatedness",
    "scores": "study.scores",
    "correlation": "study.correlation",
    "finetune": "study.finetune",
}
__all__ = [*LAYERS, *PUBLIC_MODULES]


def __getattr__(name: str):
    """``taskrel_utils.<public module>``, imported on first use."""
    if name in PUBLIC_MODULES:
        module = importlib.import_module(f"{__name__}.{PUBLIC_MODULES[name]}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
