"""Options of the task-relatedness fit: the method's hyper-parameters and the run's settings.

Both kinds are passed flat as keyword arguments to :func:`~taskrel_utils.method.relatedness.task_relatedness`
(and to :func:`~taskrel_utils.method.fit_steps.prepare`). :func:`default_options` gives every one with its
default; :data:`METHOD_OPTIONS` names those that define the method (what is minimised, from where,
until when), :data:`RUN_OPTIONS` those that say how a run is carried out (hardware, numeric
shortcuts, logging). :func:`resolve_options` merges and validates them.

The OT batch (``batch_size``) also depends on the encoder: :data:`OT_BATCH_BY_FAMILY` holds the
authors' values per encoder family at the ImageNet scale, :func:`encoder_fit_options` applies
them (and a profile's ``ot_batch`` override) to one encoder's options.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import TaskrelError, UnknownNameError

__all__ = ["MODES", "SCHEDULES", "SCALE_PRESETS", "ORIGINAL_FIT", "KIT_FIT", "METHOD_OPTIONS", "RUN_OPTIONS",
           "OT_BATCH_BY_FAMILY", "default_options", "resolve_options", "encoder_family", "encoder_fit_options"]

MODES = ("learned_all", "learned_a", "fixed_all")
SCHEDULES = ("fast", "reference")

#: hyper-parameters of the transformation learning per scale, the original code's values
#: (``steps`` is the cap of the stopping rule; ``lr_delta`` is the original's, which
#: :data:`KIT_FIT` raises for the fast schedule). Default: ``small`` (with h_R's tau0 = 0.2): on
#: planted standardised features it separates related from unrelated targets clearly, while
#: tau0 = 0.02 leaves h_R near uniform. ``large`` = the ImageNet-scale values (Lambda 1e6, batch
#: 1000, 2001 steps, tau0 = 0.02); the batch 1000 is the authors' ResNet-18 value, and
#: :func:`encoder_fit_options` sets it per encoder family (:data:`OT_BATCH_BY_FAMILY`). No preset turns on the fast schedule's approximations
#: (``precision="float32"``, ``ot_every``).
SCALE_PRESETS = {
    "large": dict(batch_size=1000, steps=2001, Lambda=1e6, lambda_wd=2.0, lambda_pm=1.0, lambda_ic=1.0,
                  lr=1e-2, lr_delta=1e-3, reweighted_loss="pool"),
    "small": dict(batch_size=500, steps=1001, Lambda=1e8, lambda_wd=2.0, lambda_pm=1.0, lambda_ic=1.0,
                  lr=1e-2, lr_delta=1e-4, reweighted_loss="batch"),
}
#: the OT batch per encoder family at ``scale="large"``: 1,500 for CLIP encoders (``open_clip:*``,
#: the authors' CLIP ViT-B/32 value), 2,500 for features as wide as ResNet-50's (2048-d), any other
#: encoder the preset's ``batch_size`` (1,000, their ResNet-18 value). The authors set 2,500 only
#: for their self-supervised ResNet-50s (``large_scale/Other_Models/transfer.py``) and ran no
#: supervised zoo: applying it to every 2048-d encoder is the KIT'S EXTRAPOLATION, not theirs. A
#: zoo fitted with mixed batches mixes two OT estimates; the supervised-zoo profiles set one batch
#: (``ot_batch: 1000``). See :func:`encoder_fit_options` for the precedence of a profile's
#: ``ot_batch`` and ``batch_size``.
OT_BATCH_BY_FAMILY = {"clip": 1500, "resnet50-width": 2500}
#: the feature width of the ``"resnet50-width"`` family
RESNET50_WIDTH = 2048
#: the keys an ``ot_batch`` mapping may hold besides the families
OT_BATCH_DEFAULT_KEY = "default"

#: the original algorithm's start, updates and stop: ``schedule="reference"``'s defaults.
ORIGINAL_FIT = dict(b_init="random", a_init="identity", update="adam", stop="fixed")
#: the kit's defaults for ``schedule="fast"``: start from the class means, B from the plans in
#: closed form, stop when J stops improving (the original's small Adam steps on D leave it, and
#: with it the label term, far from converged after thousands of steps).
KIT_FIT = dict(b_init="class_means", a_init="class_means", update="closed_form", stop="converged")

_METHOD_DEFAULTS = dict(
    stop="converged",           # "converged": stop when J's moving average stops changing (tol, window,
                                #   min_steps), at most `steps`; "fixed": exactly `steps` (the original)
    tol=1e-3,                   # converged: relative change of J's moving average between two windows
    window=50,                  # converged: steps per moving-average window
    min_steps=100,              # converged: never stop before this many steps
    b_init="class_means",       # "class_means" (kit default): class-level OT start; "random": beta ~ U[0,1)
                                #   (the original)
    b_init_eps=1e-2,            # class_means: beta = log(B0 + eps)
    a_init="class_means",       # "class_means" (kit default, needs b_init="class_means"): A, b start as the
                                #   smallest change of (I, 0) that maps the reference class means onto the
                                #   target class means they are matched to; "identity": A = I, b = 0 (original)
    ot="class",                 # fast schedule: "class" (class-structured plan) or "full"
    update="closed_form",       # fast schedule: "closed_form" (kit default: B, D from the recent plans'
                                #   class matching, A, A_inv, b by Adam) or "adam" (Adam on all, the original)
    closed_form_rate=0.1,       # closed_form: plans' block masses averaged with weight max(1/t, rate)
    adam_betas=(0.9, 0.999),
    adam_eps=1e-7,              # Keras default, as the official TF optimiser
    theorem_wasserstein=True,   # also compute the theorem's class-mixture W
    reference_classifier=None,  # a fitted ReferenceClassifier to reuse (skips training h_R)
    reference_classifier_options=None,  # dict passed to train_reference_classifier
    pseudo_warmup_steps=None,   # no target labels: steps of the label-free start (None: steps // 2)
    pseudo_refresh=25,          # no target labels: re-label the target every k steps of the fit
    pseudo_assign="balanced",   # no target labels: "balanced" keeps the label-free start's class shares
                                #   when re-labelling; "argmax" re-labels freely (and can merge classes)
    pseudo_wasserstein="theorem",  # no target labels: W of the value, "theorem" (class mixture) or "code"
                                #   (fails, 1e10, when B gives a pseudo-class no reference class)
)
_RUN_DEFAULTS = dict(
    device=None,                # fast schedule: torch device (None: the GPU when there is one)
    num_threads=None,           # CPU threads in the loop (None: see fit_steps.thread_count)
    precision="float64",        # fast schedule: "float32" for the d x d algebra and gradients
    ot_every=1,                 # fast schedule: new batches and plan every k steps (1: every step, exact)
    log_every=100,              # history rows every k steps (0: none)
    eval_steps=(),              # extra full evaluations of the bound at these steps, in history_eval
    track_target_accuracy=True,  # target-test accuracy of h_T in the history rows
)
#: names of the options that define the method (hyper-parameters, start, updates, stopping rule)
METHOD_OPTIONS = frozenset(SCALE_PRESETS["small"]) | frozenset(_METHOD_DEFAULTS)
#: names of the options that only say how a run is carried out (device, threads, precision, logging)
RUN_OPTIONS = frozenset(_RUN_DEFAULTS)


def default_options(scale: str = "small", schedule: str = "fast") -> dict:
    """Every option of the fit (method and run) with its default at ``scale`` for ``schedule``
    (the fast schedule: :data:`KIT_FIT`; the reference schedule: :data:`ORIGINAL_FIT`)."""
    if scale not in SCALE_PRESETS:
        raise UnknownNameError("scale", scale, SCALE_PRESETS)
    if schedule not in SCHEDULES:
        raise UnknownNameError("schedule", schedule, SCHEDULES)
    return (dict(SCALE_PRESETS[scale], **_METHOD_DEFAULTS, **_RUN_DEFAULTS)
            | (KIT_FIT if schedule == "fast" else ORIGINAL_FIT))


#: options with a fixed set of values
_CHOICES = dict(
    b_init=("random", "class_means"), a_init=("identity", "class_means"), ot=("class", "full"),
    precision=("float64", "float32"), pseudo_assign=("balanced", "argmax"), pseudo_wasserstein=("theorem", "code"),
    stop=("converged", "fixed"), update=("closed_form", "adam"), reweighted_loss=("pool", "batch"),
)
_CHOICE_HINTS = dict(stop=" ('converged': stopping rule, `steps` is the cap; 'fixed': exactly `steps`)")
#: integer options and their smallest value (an int: not a bool, a float or a string)
_INTEGERS = dict(steps=1, window=1, min_steps=0, ot_every=1, batch_size=1)
#: integer options that may also be None (what None means: the option's comment above)
_OPTIONAL_INTEGERS = dict(num_threads=1, pseudo_warmup_steps=0, pseudo_refresh=0, log_every=0)
#: number options and the interval they must lie in, ``(low, low_included, high)``; every one finite
_NUMBERS = dict(tol=(0.0, True, np.inf), closed_form_rate=(0.0, False, 1.0), lr=(0.0, False, np.inf),
                lr_delta=(0.0, False, np.inf), Lambda=(0.0, True, np.inf), lambda_wd=(0.0, True, np.inf),
                lambda_pm=(0.0, True, np.inf), lambda_ic=(0.0, True, np.inf), b_init_eps=(0.0, False, np.inf),
                adam_eps=(0.0, False, np.inf))
_BOOLEANS = ("theorem_wasserstein", "track_target_accuracy")


def _is_integer(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))


def _check_values(opts: dict) -> None:
    """Every option of fixed kind has a value of that kind: a clear error naming the option."""
    for key, valid in _CHOICES.items():
        if opts[key] not in valid:
            raise TaskrelError(f"{key} must be {' or '.join(map(repr, valid))}{_CHOICE_HINTS.get(key, '')}, "
                               f"got {opts[key]!r}")
    for key, low in {**_INTEGERS, **_OPTIONAL_INTEGERS}.items():
        v = opts[key]
        if not (v is None and key in _OPTIONAL_INTEGERS) and not (_is_integer(v) and v >= low):
            none = " or None" if key in _OPTIONAL_INTEGERS else ""
            raise TaskrelError(f"{key} must be an integer >= {low}{none}, got {v!r} ({type(v).__name__}); "
                               "pass a whole number as an int")
    for key, (low, closed, high) in _NUMBERS.items():
        v = opts[key]
        if not _is_number(v) or not np.isfinite(v) or not (v >= low if closed else v > low) or not v <= high:
            raise TaskrelError(f"{key} must be a finite number in {'[' if closed else '('}{low:g}, {high:g}"
                               f"{']' if np.isfinite(high) else ')'}, got {v!r}; pass a number in that range")
    betas = opts["adam_betas"]
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2
            or not all(_is_number(b) and 0 <= b < 1 for b in betas)):
        raise TaskrelError(f"adam_betas must be two numbers in [0, 1), e.g. (0.9, 0.999), got {betas!r}")
    for key in _BOOLEANS:
        if not isinstance(opts[key], (bool, np.bool_)):
            raise TaskrelError(f"{key} must be True or False, got {opts[key]!r}")
    steps = opts["eval_steps"]
    if isinstance(steps, (str, bytes)) or not hasattr(steps, "__iter__") or not all(
            _is_integer(s) and s >= 0 for s in steps):
        raise TaskrelError(f"eval_steps must be a list of step numbers (integers >= 0), got {steps!r}")
    if opts["reference_classifier_options"] is not None and not isinstance(opts["reference_classifier_options"], dict):
        raise TaskrelError(f"reference_classifier_options must be a dict (e.g. dict(tau0=0.5)) or None, "
                           f"got {opts['reference_classifier_options']!r}")


def resolve_options(scale: str, schedule: str, options: dict) -> dict:
    """:func:`default_options` (``scale``, ``schedule``) updated with ``options``, validated."""
    opts = default_options(scale, schedule)
    unknown = set(options) - set(opts)
    if unknown:
        raise UnknownNameError("option", sorted(unknown)[0], opts)
    opts.update(options)
    _check_values(opts)
    if schedule == "reference" and opts["update"] != "adam":
        raise TaskrelError("the reference schedule is the original step (update='adam'); "
                           "update='closed_form' needs schedule='fast'")
    return opts


def encoder_family(encoder: str, feature_dim: int) -> str | None:
    """The family of :data:`OT_BATCH_BY_FAMILY` an encoder belongs to: ``"clip"`` for an
    ``open_clip:`` name, ``"resnet50-width"`` for 2048-d features, else ``None``."""
    if str(encoder).startswith("open_clip:"):
        return "clip"
    if int(feature_dim) == RESNET50_WIDTH:
        return "resnet50-width"
    return None


def encoder_fit_options(options: dict, encoder: str, feature_dim: int) -> dict:
    """``options`` (a profile's ``relatedness`` mapping) for one encoder: ``ot_batch`` removed and
    the OT batch ``batch_size`` set by the first rule that applies:

    1. ``ot_batch: <int>``: that batch for every encoder;
    2. ``ot_batch: {<family>: <int>, default: <int>}``: the encoder's family
       (:func:`encoder_family`) in this mapping laid over :data:`OT_BATCH_BY_FAMILY`, else its
       ``default`` entry, else as 3.;
    3. an explicit ``batch_size``: kept;
    4. ``scale: large``: the family's :data:`OT_BATCH_BY_FAMILY` value;
    5. otherwise the scale preset's ``batch_size``.
    """
    opts = dict(options)
    rule = opts.pop("ot_batch", None)
    family = encoder_family(encoder, feature_dim)
    batch = None
    if isinstance(rule, dict):
        unknown = set(rule) - set(OT_BATCH_BY_FAMILY) - {OT_BATCH_DEFAULT_KEY}
        if unknown:
            raise UnknownNameError("ot_batch family", sorted(unknown)[0], [*OT_BATCH_BY_FAMILY, OT_BATCH_DEFAULT_KEY])
        batch = {**OT_BATCH_BY_FAMILY, **rule}.get(family, rule.get(OT_BATCH_DEFAULT_KEY))
    elif rule is not None:
        batch = rule
    elif "batch_size" not in opts and opts.get("scale", "small") == "large":
        batch = OT_BATCH_BY_FAMILY.get(family)
    if batch is not None:
        if not _is_integer(batch) or batch < 1:
            raise TaskrelError(f"the OT batch (ot_batch) must be a positive integer or a mapping of encoder families "
                               f"{sorted(OT_BATCH_BY_FAMILY)} (and 'default') to positive integers, got {batch!r}")
        opts["batch_size"] = int(batch)
    return opts
