"""torchvision classifiers as kit encoders: ``torchvision:<model>[:random | :<weights>]``.

The supervised ImageNet zoo whose fine-tuning accuracies ship in ``data/published`` (the LogME /
SFDA benchmark) is torchvision's first model release; three of its models (``mnasnet1_0``,
``mobilenet_v2``, ``googlenet``) have no twin of those weights in timm, so they load here.

* ``torchvision:<model>``: the ``IMAGENET1K_V1`` weights (the ones the published zoo fine-tuned);
  ``torchvision:<model>:<weights>`` another member of the model's weights enum (``IMAGENET1K_V2``);
  ``torchvision:<model>:random``: the same architecture, random initialisation (seeded by ``seed``).
* Features: the input of the last linear layer (the pooled pre-logits), that layer removed;
  ``head`` is that 1000-way layer (pretrained weights only).
* Preprocessing: the weights' own eval transform (``weights.transforms()``: shorter side resized
  to its ``resize_size``, e.g. 256, or 342 for inception_v3, centre crop ``crop_size``, its mean
  and std; :func:`~taskrel_utils.inputs.eval_transforms.eval_transform`).

Weights come from torch's hub cache (``$TORCH_HOME/hub/checkpoints``); when they are not there and
cannot be downloaded, an ``OfflineError`` says how to provide them.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from . import cnn_zoo
from ..core.errors import TaskrelError, UnknownNameError
from .encoder_base import Encoder, check_seed, no_options, offline_error, offline_reason, seeded
from .preprocessing import Preprocess
from .eval_transforms import eval_transform

#: the weights a plain ``torchvision:<model>`` loads
DEFAULT_WEIGHTS = "IMAGENET1K_V1"
#: constructor options of a random architecture identical to the pretrained one (torchvision sets
#: them itself when it loads weights): the input re-normalisation, no auxiliary classifiers
RANDOM_OPTIONS = {"googlenet": dict(transform_input=True, aux_logits=False, init_weights=True),
                  "inception_v3": dict(transform_input=True, aux_logits=False, init_weights=True)}


def split_head(net: nn.Module) -> nn.Linear:
    """Replace ``net``'s last linear layer (``fc``, or ``classifier`` / its last module) by an
    identity, so that ``net(x)`` gives the pooled features; returns that layer."""
    for attr in ("fc", "classifier"):
        layer = getattr(net, attr, None)
        if isinstance(layer, nn.Linear):
            setattr(net, attr, nn.Identity())
            return layer
        if isinstance(layer, nn.Sequential) and isinstance(layer[-1], nn.Linear):
            head = layer[-1]
            layer[-1] = nn.Identity()
            return head
    raise TaskrelError(f"{type(net).__name__}: no last linear layer (fc or classifier) to take the features "
                       "before; use a timm:<model> encoder for this architecture")


def weights_of(model_name: str, tag: str):
    """The member ``tag`` of torchvision's weights enum of ``model_name``."""
    from torchvision import models

    enum = models.get_model_weights(model_name)
    if tag not in enum.__members__:
        raise UnknownNameError(f"torchvision weights of {model_name}", tag, list(enum.__members__) + ["random"])
    return enum[tag]


def cached_weight_file(weights) -> Path:
    """Where torch's hub keeps the file of ``weights`` (it may not be there)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def load_torchvision(name: str, image_size: int | None, seed: int = 0, **options):
    """The :class:`~taskrel_utils.inputs.encoder_base.Encoder` of ``torchvision:<model>[:random | :<weights>]``."""
    from torchvision import models

    no_options(name, options, ["seed"])
    check_seed(name, seed)
    parts = name.split(":", 2)
    model_name, what = parts[1], (parts[2] if len(parts) > 2 and parts[2] else DEFAULT_WEIGHTS)
    if model_name not in models.list_models(module=models):
        raise UnknownNameError("torchvision classification model", model_name, models.list_models(module=models))
    random = what == "random"
    weights = weights_of(model_name, DEFAULT_WEIGHTS if random else what)
    if random:
        net = seeded(seed, lambda: models.get_model(model_name, weights=None, **RANDOM_OPTIONS.get(model_name, {})))
        source, licence = "random initialisation (torchvision, weights=None)", "n/a (random weights)"
    else:
        local = cached_weight_file(weights)
        reason = None if local.is_file() else offline_reason()
        if reason:
            raise offline_error(
                f"encoder {name!r}", f"the torchvision weights {model_name}.{what} ({weights.url})", reason,
                f"copy the file to {local}",
                f"python -c \"import torchvision; torchvision.models.get_model('{model_name}', weights='{what}')\"")
        net = models.get_model(model_name, weights=weights)  # reads the cached file, else downloads it
        source, licence = f"torchvision weights {model_name}.{what} ({os.path.basename(weights.url)})", \
            "BSD-3-Clause (torchvision); see the model's weights documentation"
    net.eval()
    head = split_head(net)
    transform = weights.transforms()
    native = int(transform.crop_size[0])
    size = int(image_size or native)
    pre = eval_transform(size, native, int(transform.resize_size[0]), channels=3, mean=tuple(transform.mean),
                                    std=tuple(transform.std),
                                    interpolation="bicubic" if "BICUBIC" in str(transform.interpolation) else "bilinear")
    with torch.no_grad():
        dim = int(net(torch.zeros(1, 3, size, size)).shape[-1])
    info = {"family": "torchvision", "arch": model_name, "width": None,
            "corpus": None if random else "ImageNet-1k", "budget_epochs": None,
            "seed": seed if random else None, "source": source, "licence": licence,
            "native_size": native, "image_size": size}
    return Encoder(name, net, dim, pre, cnn_zoo.state_hash(net.state_dict()), None if random else head, info)
