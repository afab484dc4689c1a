"""Transferability measured by training on the target: end-to-end fine-tuning and the linear probe.

* ``finetune(encoder, train_task, test_task, recipe="mini")`` - the NeurIPS paper's ground truth
  (its end-to-end fine-tuning): the whole encoder plus a new linear head trained on the target's labelled images,
  evaluated on the target test split each epoch; the result is cached per (encoder weights, target
  content, recipe, seed, code of the loop), so a rerun is instant and any change of those retrains.
* ``linear_probe(train, test)`` - the authors' code's "transferability": a new linear
  softmax head on frozen, standardised features trained with the same gradient-norm penalty as
  h_R, so that its cross-entropy is comparable with the bound (notebook 03).
* ``logistic_probe(train, test, validation)`` - a plain multinomial logistic regression on frozen,
  standardised features, its L2 strength chosen on a validation split: the floor an end-to-end
  fine-tuning should reach (the ground truth flags pairs that end below it).

Recipes are data (:data:`RECIPES`); every field can be overridden. The paper's end-to-end recipe is
not published; ``paper`` follows the standard transfer recipe of Salman et al. (robust-models-transfer), ``mini``
is cut to the mini profile's time budget (a few images per class, a few epochs).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.preprocessing import StandardScaler
from torch import nn
from tqdm.auto import tqdm

from ..core.cache import Namespace
from ..core.checks import as_seed
from ..core.errors import CorruptedFileError, TaskrelError, UnknownNameError
from ..core.numerics import standard_scaler
from ..inputs.preprocessing import augment
from ..method.reference_classifier import ReferenceClassifier, train_reference_classifier

__all__ = ["Recipe", "RECIPES", "get_recipe", "finetune", "FinetuneResult", "FinetuneDiverged", "linear_probe",
           "ProbeResult",
           "logistic_probe", "LogisticProbeResult", "PROBE_CS", "AUGMENTATIONS", "SCHEDULES"]

#: the fine-tuning loop's version recorded in a shipped ground truth's provenance (``finetune_format``,
#: ``data/ground_truth/*.json``): bump it when the loop changes meaning, so that those files read as
#: stale and are rebuilt. The result cache does not use it: :data:`RESULTS` folds the code in itself.
FORMAT_VERSION = 3
#: fine-tuning results: the code of the loop and of the encoders (forward pass, preprocessing) is in every key
RESULTS = Namespace("finetune", code=("study.finetune", "inputs.encoders"), kind="json")
AUGMENTATIONS = ("none", "shift", "flip_shift", "random_resized_crop_flip")
SCHEDULES = ("constant", "cosine", "step")
HEAD_INITS = ("random", "probe")
ENCODER_MODES = ("train", "eval")
OPTIMIZERS = ("sgd", "adam")


class FinetuneDiverged(TaskrelError):
    """A fine-tuning's training loss became NaN or infinite."""


@dataclass(frozen=True)
class Recipe:
    """How to fine-tune: optimiser, schedule, augmentation, data caps.

    ``lr`` is the encoder's learning rate, ``head_lr`` the new head's. ``schedule``: "constant",
    "cosine" (to 0 over all steps) or "step" (times ``gamma`` every ``step_epochs`` epochs).
    ``augmentation`` acts on preprocessed batches: "shift" = random translation by up to 1/8 of
    the side (zero padding), "flip_shift" adds horizontal flips, "random_resized_crop_flip" = a
    random crop of 8-100 % of the area and aspect 3/4-4/3 resized back, plus flips (the ImageNet
    recipe, applied to the centre-cropped image). ``max_train_per_class`` / ``max_test_per_class``
    take a stratified, seeded subset (``None``: all). ``eval_every``: test evaluation every k epochs
    (the last epoch is always evaluated); the reported accuracy is the last epoch's, never the best.
    ``stop_epoch``: stop after this many epochs of the ``epochs``-long schedule (early stopping at an
    epoch chosen on a validation split; ``None``: all of them). ``head_init``: "random" (PyTorch's
    default initialisation) or "probe" (LP-FT, Kumar et al., ICLR 2022: the head starts as a
    logistic-regression probe with inverse L2 strength ``probe_C`` fitted on the frozen features of
    the training images). ``encoder_mode``: the encoder's mode while its weights train: "train"
    (dropout on, BatchNorm normalises with each batch's statistics and updates its running ones) or
    "eval" (dropout off, BatchNorm keeps the pre-trained statistics: the features the probe saw, so an
    LP-FT head starts where its probe ended). Weight decay acts on weight matrices and convolution
    kernels only, never on biases or normalisation parameters.
    """

    name: str = "custom"
    epochs: int = 4
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    head_lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    step_epochs: int = 50
    gamma: float = 0.1
    augmentation: str = "shift"
    max_train_per_class: int | None = None
    max_test_per_class: int | None = None
    eval_every: int = 1
    stop_epoch: int | None = None
    head_init: str = "random"
    probe_C: float = 1.0
    encoder_mode: str = "train"

    def __post_init__(self):
        def positive_int(key, allow_none=False):
            v = getattr(self, key)
            if allow_none and v is None:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise TaskrelError(f"recipe {self.name!r}: {key} must be a positive integer"
                                   f"{' or None' if allow_none else ''}, got {v!r}")

        for key in ("epochs", "batch_size", "step_epochs", "eval_every"):
            positive_int(key)
        for key in ("max_train_per_class", "max_test_per_class", "stop_epoch"):
            positive_int(key, allow_none=True)
        if self.stop_epoch is not None and self.stop_epoch > self.epochs:
            raise TaskrelError(f"recipe {self.name!r}: stop_epoch ({self.stop_epoch}) exceeds epochs ({self.epochs}); "
                               f"stop within the schedule")
        if isinstance(self.probe_C, bool) or not isinstance(self.probe_C, (int, float)) or not (
                math.isfinite(self.probe_C) and self.probe_C > 0):
            raise TaskrelError(f"recipe {self.name!r}: probe_C must be a positive finite number, got {self.probe_C!r}")
        for key in ("lr", "head_lr", "momentum", "weight_decay", "gamma"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise TaskrelError(f"recipe {self.name!r}: {key} must be a finite number >= 0, got {v!r}")
        for key, valid in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("augmentation", AUGMENTATIONS),
                           ("head_init", HEAD_INITS), ("encoder_mode", ENCODER_MODES)):
            if getattr(self, key) not in valid:
                raise UnknownNameError(f"recipe {key}", getattr(self, key), valid)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: the named recipes. ``mini``: 40 training images per class, 50 test images per class, tested
#: after the last epoch only (evaluation never changes the training: a test), translations only
#: (digits must not be flipped); the base of the mini ground truth, which chooses the learning
#: rate, the augmentation, the head's start and the stopping epoch per (encoder, target) pair on a
#: validation split (``ground_truth``).
#: ``paper``: the standard transfer recipe of Salman et al. (robust-models-transfer): SGD momentum 0.9,
#: lr 0.01, weight decay 5e-4, batch 64, 150 epochs, lr x 0.1 every 50 epochs, random-resized
#: crop + flip. ``smoke``: one epoch on a handful of images (tests).
RECIPES = {
    "smoke": Recipe(name="smoke", epochs=1, batch_size=16, max_train_per_class=4, max_test_per_class=4),
    "mini": Recipe(name="mini", epochs=3, batch_size=20, lr=0.01, head_lr=0.1, schedule="cosine",
                   augmentation="shift", max_train_per_class=40, max_test_per_class=50, eval_every=3),
    "paper": Recipe(name="paper", epochs=150, batch_size=64, lr=0.01, head_lr=0.01, schedule="step",
                    step_epochs=50, gamma=0.1, augmentation="random_resized_crop_flip"),
}


def get_recipe(recipe: "str | Recipe | dict" = "mini", **overrides) -> Recipe:
    """A :class:`Recipe` from a name of :data:`RECIPES`, a Recipe or a dict (``{"recipe": name, **fields}``
    as in a profile), with ``overrides`` applied."""
    if isinstance(recipe, dict):
        recipe = dict(recipe)
        overrides = {**recipe, **overrides}
        recipe = overrides.pop("recipe", "mini")
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise UnknownNameError("fine-tuning recipe", recipe, list(RECIPES))
        recipe = RECIPES[recipe]
    if not isinstance(recipe, Recipe):
        raise TaskrelError(f"recipe must be a name ({', '.join(RECIPES)}), a Recipe or a dict, got {recipe!r}")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    for key in overrides:
        if key not in fields:
            raise UnknownNameError("recipe field", key, sorted(fields))
    return dataclasses.replace(recipe, **overrides) if overrides else recipe


@dataclass
class FinetuneResult:
    """Target-test accuracy and cross-entropy after fine-tuning (last epoch), with the per-epoch
    ``history`` (train loss/accuracy, test accuracy/cross-entropy where evaluated)."""

    encoder: str
    target: str
    accuracy: float
    cross_entropy: float
    history: list
    recipe: dict
    seed: int
    n_train: int
    n_test: int
    seconds: float
    key: str
    cache_hit: bool = False

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "cache_hit"}


def finetune_key(encoder, train_task, test_task, recipe: Recipe, seed: int, threads: int | None = None) -> str:
    """Content key of one fine-tuning: encoder weights + preprocessing, both splits' content, recipe,
    seed (and the thread count when it is fixed)."""
    description = {"encoder": encoder.name, "weights": encoder.weights_id,
                   "preprocess": encoder.preprocess.description,
                   "train": [train_task.name, train_task.split, train_task.content_id],
                   "test": [test_task.name, test_task.split, test_task.content_id],
                   "recipe": {k: v for k, v in recipe.to_dict().items() if k != "name"}, "seed": seed}
    if threads is not None:
        description["threads"] = int(threads)
    return RESULTS.key(**description)


def finetune(encoder, train_task, test_task, recipe="mini", *, seed: int = 0, cache: bool = True,
             cache_root=None, progress: bool = True, threads: int | None = None, **overrides) -> FinetuneResult:
    """Fine-tune ``encoder`` end to end with a new linear head on ``train_task``; evaluate on ``test_task``.

    ``encoder``: an :class:`~taskrel_utils.encoders.Encoder` (it is copied, never modified).
    ``recipe``: a name of :data:`RECIPES`, a :class:`Recipe` or a dict; ``overrides`` change fields.
    Deterministic given ``seed`` (head initialisation, subsets, batch order, augmentation) and the
    number of CPU threads: ``threads`` fixes it for the training (restored afterwards) and enters
    the cache key, so that the numbers do not depend on the machine's core count (oneDNN's
    reductions differ between thread counts); ``None`` uses torch's current setting.
    """
    recipe = get_recipe(recipe, **overrides)
    seed = as_seed(seed)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise TaskrelError(f"threads must be a positive integer or None, got {threads!r}")
    _check_tasks(train_task, test_task)
    train_task = _capped(train_task, recipe.max_train_per_class, seed)
    test_task = _capped(test_task, recipe.max_test_per_class, seed)
    key = finetune_key(encoder, train_task, test_task, recipe, int(seed), threads)
    label = f"{encoder.name.replace('/', '_').replace(':', '_')}__{train_task.name}__{recipe.name}"

    def train() -> dict:
        previous = torch.get_num_threads()
        try:
            if threads is not None:
                torch.set_num_threads(int(threads))
            return _train(encoder, train_task, test_task, recipe, int(seed), key, progress).to_dict()
        finally:
            torch.set_num_threads(previous)

    def validate(d):
        if d.get("key") != key:
            raise CorruptedFileError(f"it holds the result of key {d.get('key')}")

    d, hit = RESULTS.get_or_compute(key, train, label=label, root=cache_root, enabled=cache, validate=validate)
    return FinetuneResult(**d, cache_hit=hit)


def _check_tasks(train_task, test_task):
    if train_task.n_classes != test_task.n_classes:
        raise TaskrelError(f"train and test tasks have {train_task.n_classes} and {test_task.n_classes} classes; "
                           f"pass two splits of the same task")
    missing = np.flatnonzero(np.bincount(train_task.labels, minlength=train_task.n_classes) == 0)
    if missing.size:
        raise TaskrelError(f"{train_task.name}/{train_task.split}: classes {missing.tolist()} have no training "
                           f"images; fine-tuning needs at least one per class")


def _capped(task, per_class, seed):
    if per_class is None or np.bincount(task.labels).max() <= per_class:
        return task
    return task.stratified_subset(per_class, seed=seed)


def _preprocessed(encoder, task, batch_size=256) -> torch.Tensor:
    """All images of ``task`` preprocessed for ``encoder``: (N, C, size, size) float32."""
    if getattr(task, "images", None) is not None:
        return torch.cat([encoder.preprocess(task.images[i:i + batch_size]) for i in range(0, len(task), batch_size)])
    return torch.cat([encoder.preprocess([task.image(j) for j in range(i, min(i + batch_size, len(task)))])
                      for i in range(0, len(task), batch_size)])


def _lr_factor(recipe: Recipe, epoch_progress: float) -> float:
    """Multiplier of the learning rates at ``epoch_progress`` (epochs done, fractional)."""
    if recipe.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch_progress / recipe.epochs))
    if recipe.schedule == "step":
        return recipe.gamma ** int(epoch_progress // recipe.step_epochs)
    return 1.0


def _train(encoder, train_task, test_task, recipe: Recipe, seed: int, key: str, progress: bool) -> FinetuneResult:
    t0 = time.perf_counter()
    n_classes = train_task.n_classes
    x_train, y_train = _preprocessed(encoder, train_task), torch.as_tensor(train_task.labels, dtype=torch.long)
    x_test, y_test = _preprocessed(encoder, test_task), torch.as_tensor(test_task.labels, dtype=torch.long)
    device = encoder.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = copy.deepcopy(encoder.model).to(device)
        for p in model.parameters():
            p.requires_grad_(True)
        head = nn.Linear(encoder.feature_dim, n_classes).to(device)
        if recipe.head_init == "probe":
            _probe_head(head, model, x_train, y_train, n_classes, recipe.probe_C, device)
        groups = [{"params": params, "lr": lr, "weight_decay": recipe.weight_decay if decay else 0.0}
                  for module, lr in ((model, recipe.lr), (head, recipe.head_lr))
                  for decay, params in _decay_split(module) if params]
        if recipe.optimizer == "sgd":
            opt = torch.optim.SGD(groups, momentum=recipe.momentum)
        else:
            opt = torch.optim.AdamW(groups)
        base_lrs = [g["lr"] for g in opt.param_groups]
        steps_per_epoch = -(-len(x_train) // recipe.batch_size)
        history = []
        last_epoch = recipe.stop_epoch or recipe.epochs
        bar = tqdm(total=last_epoch * steps_per_epoch, disable=not progress, leave=False, unit="step",
                   desc=f"fine-tuning {encoder.name} on {train_task.name}")
        for epoch in range(last_epoch):
            model.train(recipe.encoder_mode == "train"), head.train()
            perm = torch.randperm(len(x_train), generator=gen)
            loss_sum = correct = 0.0
            for s in range(steps_per_epoch):
                factor = _lr_factor(recipe, epoch + s / steps_per_epoch)
                for g, lr in zip(opt.param_groups, base_lrs):
                    g["lr"] = lr * factor
                idx = perm[s * recipe.batch_size:(s + 1) * recipe.batch_size]
                xb = augment(x_train[idx], recipe.augmentation, gen).to(device)
                yb = y_train[idx].to(device)
                logits = head(model(xb))
                loss = nn.functional.cross_entropy(logits, yb)
                if not torch.isfinite(loss):
                    raise FinetuneDiverged(f"fine-tuning {encoder.name} on {train_task.name} diverged at epoch "
                                       f"{epoch + 1} (loss {loss.item()}); lower lr/head_lr in the recipe")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(idx)
                correct += (logits.argmax(1) == yb).sum().item()
                bar.update(1)
            row = {"epoch": epoch + 1, "train_loss": loss_sum / len(x_train), "train_accuracy": correct / len(x_train)}
            if (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == last_epoch:
                row["test_accuracy"], row["test_cross_entropy"] = _evaluate(model, head, x_test, y_test, device)
            history.append(row)
            bar.set_postfix(epoch=epoch + 1, loss=f"{row['train_loss']:.3f}", test_acc=row.get("test_accuracy"))
        bar.close()
    last = history[-1]
    return FinetuneResult(encoder=encoder.name, target=train_task.name, accuracy=last["test_accuracy"],
                          cross_entropy=last["test_cross_entropy"], history=history, recipe=recipe.to_dict(),
                          seed=seed, n_train=len(x_train), n_test=len(x_test),
                          seconds=round(time.perf_counter() - t0, 2), key=key)


def _decay_split(module: nn.Module) -> list:
    """``[(True, weights with >= 2 dimensions), (False, biases and normalisation parameters)]``."""
    params = list(module.parameters())
    return [(True, [p for p in params if p.ndim >= 2]), (False, [p for p in params if p.ndim < 2])]


@torch.no_grad()
def _probe_head(head: nn.Linear, model, x, y, n_classes: int, C: float, device, batch_size=256) -> None:
    """LP-FT's first stage: set ``head`` to a logistic regression (inverse L2 strength ``C``) on the
    frozen encoder's features of ``x``, as they are (Kumar et al. fit it on the raw features: the L2
    penalty then keeps the head's weights on the features' own scale, which standardising would blow
    up on near-constant features, and training-mode dropout with them)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    model.eval()
    Z = torch.cat([model(x[i:i + batch_size].to(device).contiguous(memory_format=torch.channels_last)).cpu()
                   for i in range(0, len(x), batch_size)]).double().numpy()
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = LogisticRegression(C=C, max_iter=2000).fit(Z, y.numpy())
    W, c = np.zeros((n_classes, Z.shape[1])), np.zeros(n_classes)
    if n_classes == 2 and clf.coef_.shape[0] == 1:  # scikit-learn's binary form: one row for class 1
        W[1], c[1] = clf.coef_[0], clf.intercept_[0]
    else:
        W[clf.classes_], c[clf.classes_] = clf.coef_, clf.intercept_
    head.weight.copy_(torch.as_tensor(W, dtype=head.weight.dtype))
    head.bias.copy_(torch.as_tensor(c, dtype=head.bias.dtype))


@torch.no_grad()
def _evaluate(model, head, x, y, device, batch_size=256) -> tuple[float, float]:
    """Accuracy and mean cross-entropy (natural log) of ``head(model(x))`` on ``(x, y)``."""
    model.eval(), head.eval()
    correct = loss = 0.0
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device).contiguous(memory_format=torch.channels_last)
        yb = y[i:i + batch_size].to(device)
        logits = head(model(xb))
        loss += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    return correct / len(x), loss / len(x)


# ---------------------------------------------------------------------------- linear probe
@dataclass
class ProbeResult:
    """Target-test cross-entropy (mean, natural log) and accuracy of a linear probe."""

    cross_entropy: float
    accuracy: float
    classifier: ReferenceClassifier
    scaler: StandardScaler


def linear_probe(train, test, n_classes: int | None = None, *, scale: str = "small", seed: int = 0,
                 **options) -> ProbeResult:
    """Fit ``softmax(W s_T(z) + c)`` on ``train = (Z, y)`` and score it on ``test = (Z, y)``.

    ``s_T`` standardises with the train statistics, as the fit standardises the target. ``options`` are those of
    :func:`~taskrel_utils.reference_classifier.train_reference_classifier` (tau0, iterations, ...).
    """
    (Z, y), (Z_te, y_te) = train, test
    scaler = standard_scaler(Z)
    X, X_te = scaler.transform(Z), scaler.transform(Z_te)
    clf = train_reference_classifier(X, y, n_classes, scale=scale, seed=seed, **options)
    y_te = np.asarray(y_te)
    return ProbeResult(cross_entropy=float(clf.cross_entropy(X_te, y_te).mean()),
                       accuracy=clf.accuracy(X_te, y_te), classifier=clf, scaler=scaler)


#: inverse L2 strengths that :func:`logistic_probe` chooses from on the validation split
PROBE_CS = (0.01, 0.1, 1.0, 10.0)


@dataclass
class LogisticProbeResult:
    """Test accuracy of a logistic-regression probe, its chosen ``C`` and the validation accuracy of every C."""

    accuracy: float
    C: float
    validation_accuracy: dict


def logistic_probe(train, test, validation=None, *, Cs=PROBE_CS, max_iter: int = 2000,
                   standardise: bool = True) -> LogisticProbeResult:
    """Multinomial logistic regression (scikit-learn, lbfgs, L2 penalty ``1 / C``) on frozen features.

    ``train``, ``test``, ``validation``: ``(Z, y)`` pairs; features are standardised with the train
    statistics (``standardise=False``: used as they are, as LP-FT's head sees them). ``C`` is the one
    of ``Cs`` with the best ``validation`` accuracy (the first on ties);
    with a single C, ``validation`` may be None. Deterministic (one BLAS thread).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    Cs = tuple(float(c) for c in Cs)
    if not Cs or not all(math.isfinite(c) and c > 0 for c in Cs):
        raise TaskrelError(f"Cs must be positive finite numbers, got {Cs!r}")
    if validation is None and len(Cs) > 1:
        raise TaskrelError("logistic_probe chooses C on a validation split: pass validation=(Z, y), or one C")
    parts = {"train": train, "test": test, **({"validation": validation} if validation is not None else {})}
    arrays = {}
    for name, (Z, y) in parts.items():
        Z, y = np.asarray(Z, dtype=np.float64), np.asarray(y)
        if Z.ndim != 2 or y.shape != (len(Z),):
            raise TaskrelError(f"logistic_probe: {name} must be (Z (N, d), y (N,)), got {Z.shape} and {y.shape}")
        if not np.isfinite(Z).all():
            raise TaskrelError(f"logistic_probe: {name} features contain NaN or infinity")
        arrays[name] = (Z, y)
    if len({Z.shape[1] for Z, _ in arrays.values()}) != 1:
        raise TaskrelError("logistic_probe: train, test and validation features have different dimensions")
    if np.unique(arrays["train"][1]).size < 2:
        raise TaskrelError("logistic_probe: the training labels have a single class")
    scaler = standard_scaler(arrays["train"][0]) if standardise else None
    X = {name: Z if scaler is None else scaler.transform(Z) for name, (Z, _) in arrays.items()}

    def fit(C):
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(C=C, max_iter=max_iter).fit(X["train"], arrays["train"][1])

    scores = {}
    if validation is not None:
        for C in Cs:
            scores[C] = float((fit(C).predict(X["validation"]) == arrays["validation"][1]).mean())
        best = max(Cs, key=lambda c: (scores[c], -Cs.index(c)))
    else:
        best = Cs[0]
    accuracy = float((fit(best).predict(X["test"]) == arrays["test"][1]).mean())
    return LogisticProbeResult(accuracy=accuracy, C=best, validation_accuracy=scores)
