"""Profiles (smoke / mini / paper): one validated config object, recorded in the run directory.

A profile is data: ``taskrel_utils/profiles/<name>.yaml``. ``load_profile(name, **overrides)``
reads it, applies the notebook's overrides (``None`` keeps the profile's value) and validates
every field, so a typo fails at once with the list of valid names.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.errors import TaskrelError, UnknownNameError

PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"
#: how a profile's ``reference_pool`` is drawn from the reference classes' train images
POOL_DRAWS = ("stratified", "uniform")
#: where the source probabilities of LEEP, NCE and PACTran-Dirichlet/Gamma come from in the
#: paper-layout table (``tables.score_table``): each encoder's h_R, or its own ImageNet head
SOURCE_CLASSIFIERS = ("reference_classifier", "imagenet_head")


@dataclass(frozen=True)
class Profile:
    """Everything a run needs to know about its scale; see ``profiles/*.yaml`` for the values."""

    name: str
    description: str
    reference: str
    targets: tuple[str, ...]
    encoders: tuple[str, ...]
    contrasts: tuple[str, ...] = ()
    max_train_per_class: int | None = None
    max_test_per_class: int | None = None
    image_size: int | None = None
    batch_size: int = 256
    task_options: dict = field(default_factory=dict)
    relatedness: dict = field(default_factory=dict)
    max_feature_dim: int | None = None
    reference_pool: int | None = None
    reference_pool_draw: str = "stratified"
    source_classifier: str = "reference_classifier"
    finetune: dict = field(default_factory=lambda: {"recipe": "mini"})
    ground_truth: dict = field(default_factory=dict)
    premise: dict = field(default_factory=dict)
    use_published: bool = False
    device: str = "cpu"
    seed: int = 0

    @property
    def main_encoders(self) -> tuple[str, ...]:
        """The main zoo: the encoders that share the reference's pre-training source."""
        return tuple(e for e in self.encoders if e not in self.contrasts)

    def group(self, encoder: str) -> str:
        """``"main"`` or ``"contrast"``."""
        return "contrast" if encoder in self.contrasts else "main"

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["targets"], d["encoders"], d["contrasts"] = list(self.targets), list(self.encoders), list(self.contrasts)
        return d

    @property
    def torch_device(self) -> str:
        """Where the encoders (feature extraction) and their fine-tuning run: ``device``, with
        ``"auto"`` the GPU when torch sees one, else the CPU."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise TaskrelError(f"profile {self.name!r}: device {self.device!r}, but torch sees no GPU; "
                               "use device: auto (the GPU when there is one) or cpu")
        return self.device

    def max_per_class(self, split: str) -> int | None:
        """The per-class cap of a split (``None``: all images)."""
        return self.max_train_per_class if split == "train" else self.max_test_per_class


FIELDS = tuple(f.name for f in dataclasses.fields(Profile))


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def read_yaml(path, what: str) -> dict:
    """The mapping in the YAML file ``path`` (``what`` it is, for the message); a syntax error or
    another top-level value raises a :class:`TaskrelError` that names the file and the line."""
    try:
        value = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise TaskrelError(f"{what} {path} is not valid YAML{line} ({getattr(e, 'problem', None) or e}); fix that line "
                           "(a list is [a, b], a mapping {key: value}; quote text with : or #)") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TaskrelError(f"{what} {path} must be a mapping of names to values (name: value, one a line), "
                           f"got a {type(value).__name__}")
    return value


def load_profile(name: str = "mini", **overrides) -> Profile:
    """Read profile ``name`` and apply ``overrides`` (a value of ``None`` keeps the profile's own).

    Raises ``UnknownNameError`` for an unknown profile or field, ``TaskrelError`` for a bad value.
    """
    if name not in list_profiles():
        raise UnknownNameError("profile", name, list_profiles())
    raw = read_yaml(PROFILES_DIR / f"{name}.yaml", "profile")
    for key in list(raw) + list(overrides):
        if key not in FIELDS:
            raise UnknownNameError("profile parameter", key, [f for f in FIELDS if f != "name"])
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("encoders") is not None and overrides.get("contrasts") is None:
        # a chosen subset of encoders keeps the contrasts it contains
        chosen = [overrides["encoders"]] if isinstance(overrides["encoders"], str) else overrides["encoders"]
        raw["contrasts"] = [c for c in raw.get("contrasts") or () if c in chosen]
    raw["name"] = name
    return _validated(raw)


def _validated(raw: dict) -> Profile:
    def names(key, empty_ok=False):
        value = raw.get(key) or ([] if empty_ok else None)
        if isinstance(value, str):
            value = [value]
        if (not isinstance(value, (list, tuple)) or not (value or empty_ok)
                or not all(isinstance(v, str) and v for v in value)):
            raise TaskrelError(f"profile {raw['name']!r}: {key} must be a {'' if empty_ok else 'non-empty '}list of "
                               f"names such as [a, b], got {value!r}")
        return tuple(value)

    def positive_or_none(key):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise TaskrelError(f"profile {raw['name']!r}: {key} must be a positive integer or null, got {value!r}")
        return value

    if not isinstance(raw.get("reference"), str):
        raise TaskrelError(f"profile {raw['name']!r}: reference must be a task name, got {raw.get('reference')!r}")
    if not isinstance(raw.get("task_options", {}), dict):
        raise TaskrelError("task_options must map task names to dicts of load_task options")
    if not isinstance(raw.get("relatedness", {}), dict):
        raise TaskrelError("relatedness must be a dict of relatedness.task_relatedness options")
    if not isinstance(raw.get("ground_truth") or {}, dict):
        raise TaskrelError("ground_truth must be a dict of ground_truth.DEFAULTS settings (seeds, lrs, epochs, ...)")
    premise = dict(raw.get("premise") or {})
    if premise:
        from .premise import check_premise_settings
        premise = check_premise_settings(premise, where=f"profile {raw['name']!r}")
    if not isinstance(raw.get("finetune", {}), dict):
        raise TaskrelError("finetune must be a dict: {recipe: <name>, <recipe field>: <value>, ...}")
    contrasts = names("contrasts", empty_ok=True)
    encoders = names("encoders")
    if not set(contrasts) <= set(encoders):
        raise TaskrelError(f"profile {raw['name']!r}: contrasts {sorted(set(contrasts) - set(encoders))} are not "
                           "among its encoders; contrasts name the encoders reported beside the main zoo")
    use_published = raw.get("use_published", False)
    if not isinstance(use_published, bool):
        raise TaskrelError(f"use_published must be true or false (correlate with data/published instead of the "
                           f"kit's fine-tuning), got {use_published!r}")
    device = raw.get("device", "cpu")
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise TaskrelError(f"profile {raw['name']!r}: device must be auto (the GPU when there is one), cpu, cuda "
                           f"or cuda:N, got {device!r}")
    pool_draw = raw.get("reference_pool_draw", "stratified")
    if pool_draw not in POOL_DRAWS:
        raise TaskrelError(f"profile {raw['name']!r}: reference_pool_draw must be one of {', '.join(POOL_DRAWS)} "
                           f"(stratified: reference_pool images even over the classes; uniform: drawn uniformly "
                           f"at random from the classes' train images, as the authors' shuffled loader), got {pool_draw!r}")
    source_classifier = raw.get("source_classifier", "reference_classifier")
    if source_classifier not in SOURCE_CLASSIFIERS:
        raise TaskrelError(f"profile {raw['name']!r}: source_classifier must be one of {', '.join(SOURCE_CLASSIFIERS)} "
                           f"(the source probabilities of LEEP, NCE and PACTran-Dirichlet/Gamma in the paper-layout "
                           f"table), got {source_classifier!r}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TaskrelError(f"profile {raw['name']!r}: seed must be an integer >= 0, got {seed!r}")
    return Profile(
        name=raw["name"],
        description=str(raw.get("description", "")),
        reference=raw["reference"],
        targets=names("targets"),
        encoders=encoders,
        contrasts=contrasts,
        max_train_per_class=positive_or_none("max_train_per_class"),
        max_test_per_class=positive_or_none("max_test_per_class"),
        image_size=positive_or_none("image_size"),
        batch_size=positive_or_none("batch_size") or 256,
        task_options=dict(raw.get("task_options") or {}),
        relatedness=dict(raw.get("relatedness") or {}),
        max_feature_dim=positive_or_none("max_feature_dim"),
        reference_pool=positive_or_none("reference_pool"),
        reference_pool_draw=pool_draw,
        source_classifier=source_classifier,
        finetune=dict(raw.get("finetune") or {"recipe": "mini"}),
        ground_truth=dict(raw.get("ground_truth") or {}),
        premise=premise,
        use_published=use_published,
        device=device,
        seed=seed,
    )
