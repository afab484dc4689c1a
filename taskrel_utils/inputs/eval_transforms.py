"""A model's own eval transform: resize the shorter side to ``resize``, centre-crop ``size``.

ImageNet classifiers are evaluated on a centre crop of a slightly larger resize (timm's
``resolve_data_config`` + ``create_transform``: resize ``floor(size / crop_pct)``; torchvision's
``weights.transforms()``: e.g. resize 256, crop 224; Inception-v3 342 / 299), not on the image
resized to the crop size. :class:`EvalPreprocess` is :class:`~taskrel_utils.preprocessing.Preprocess`
with that resize in front: the shorter side to ``resize`` (the longer one ``int(resize * long /
short)``, as torchvision's ``Resize(int)``), antialiased ``interpolation``, then the centre
``size x size`` crop with torchvision's offsets ``int(round((side - size) / 2))``; colour and
normalisation as ``Preprocess``. The timm and torchvision encoders use it
(:func:`eval_transform`); its ``description`` (the feature cache's key) names the resize.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import TaskrelError
from .preprocessing import Preprocess

__all__ = ["EvalPreprocess", "eval_transform"]


@dataclass(frozen=True)
class EvalPreprocess(Preprocess):
    """:class:`Preprocess` after a resize of the shorter side to ``resize`` (>= ``size``) and a
    centre crop (module doc)."""

    resize: int = 0

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.resize, (int, np.integer)) or isinstance(self.resize, bool) or self.resize < self.size:
            raise TaskrelError(f"EvalPreprocess: resize must be an int >= size ({self.size}, the crop), "
                               f"got {self.resize!r}")
        object.__setattr__(self, "resize", int(self.resize))

    @property
    def description(self) -> str:
        return super().description.replace("shorter-side+center-crop",
                                           f"shorter-side-to-{self.resize}+center-crop-torchvision")

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        """Resize and crop the pixels in [0, 1], then :meth:`Preprocess._batch` (which finds them
        at the crop size and only converts colour and normalises)."""
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3) or x.shape[0] == 0:
            return super()._batch(x)  # its clear error
        if x.dtype == torch.uint8:
            x = x.to(torch.float32).div_(255.0)
        elif x.is_floating_point():
            x = x.to(torch.float32)
            if not torch.isfinite(x).all() or float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6:
                return super()._batch(x)  # its clear error
        else:
            return super()._batch(x)
        grey = x.ndim == 3
        x = x[:, None] if grey else x.permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        short, long = (h, w) if h <= w else (w, h)
        new_long = int(self.resize * long / short)
        new = (self.resize, new_long) if h <= w else (new_long, self.resize)
        if new != (h, w):
            x = F.interpolate(x.contiguous(), size=new, mode=self.interpolation, antialias=True, align_corners=False)
        x = x.clamp_(0.0, 1.0)
        top, left = int(round((new[0] - self.size) / 2.0)), int(round((new[1] - self.size) / 2.0))
        x = x[..., top:top + self.size, left:left + self.size]
        x = x[:, 0] if grey else x.permute(0, 2, 3, 1)
        return super()._batch(x.contiguous())


def eval_transform(size: int, native_size: int, native_resize: int, **kwargs) -> EvalPreprocess:
    """A model's eval transform (resize ``native_resize``, centre crop ``native_size``) at crop
    ``size``: the resize keeps the crop's share of the image, ``floor(size * native_resize /
    native_size)`` (timm's ``floor(size / crop_pct)`` at the native size). ``kwargs``: channels,
    mean, std, interpolation."""
    return EvalPreprocess(size=size, resize=int(np.floor(size * native_resize / native_size + 1e-9)), **kwargs)
