"""Image preprocessing for the encoders: one small, explicit, batched transform.

``Preprocess(size, channels, mean, std)`` turns a batch of images into the float tensor an
encoder expects, ``(B, channels, size, size)``:

1. pixels to float in [0, 1] (uint8 is divided by 255; float input must already be in [0, 1]);
2. colour: grey -> RGB by repeating the channel (3-channel models), RGB -> grey by ITU-R 601 luma
   ``0.299 R + 0.587 G + 0.114 B`` (1-channel models, as PIL's ``convert("L")``);
3. size: when the image is not ``size x size``, resize (shorter side to ``size``, antialiased
   ``interpolation``) and centre-crop a square; a square image is simply resized;
4. normalise: ``(x - mean) / std`` per channel.

Accepted input: a uint8 (or float) ndarray / tensor batch ``(B, H, W)`` (grey) or ``(B, H, W, 3)``
(RGB), or a list of PIL images / ``(H, W)`` / ``(H, W, 3)`` arrays (sizes may differ). ndarray
batches are processed with batched tensor operations. A 16-bit grey PIL image is scaled to 8 bits
first (:func:`eight_bit`).

``description`` is a stable string of every parameter; the feature cache keys on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import TaskrelError

LUMA = (0.299, 0.587, 0.114)
INTERPOLATIONS = ("bilinear", "bicubic")
#: Pillow's modes of integer grey images wider than 8 bits: 16-bit (``I;16``, ``I;16B``, ...) and
#: ``I``, which holds 16-bit PNGs in some Pillow versions
WIDE_GREY_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def eight_bit(im):
    """A PIL image with 8-bit pixels: a 16-bit grey image (:data:`WIDE_GREY_MODES`) scaled by
    255 / 65535 to mode ``L`` (Pillow's own conversion clips it at 255: nearly all white); any
    other image unchanged."""
    if im.mode not in WIDE_GREY_MODES:
        return im
    from PIL import Image

    pixels = np.clip(np.asarray(im, dtype=np.float64), 0, 65535)
    return Image.fromarray(np.round(pixels * (255 / 65535)).astype(np.uint8), mode="L")


def _floats(name, value, channels):
    if isinstance(value, (int, float)):
        value = (float(value),) * channels
    value = tuple(float(v) for v in value)
    if len(value) == 1 and channels == 3:
        value = value * 3
    if len(value) != channels:
        raise TaskrelError(f"Preprocess: {name} has {len(value)} values, expected {channels}; pass one value per "
                           f"channel, or a single number for all")
    if not all(np.isfinite(value)):
        raise TaskrelError(f"Preprocess: {name} must be finite, got {value}; pass finite numbers")
    return value


@dataclass(frozen=True)
class Preprocess:
    """Resize + colour conversion + normalisation to ``(B, channels, size, size)`` float32."""

    size: int
    channels: int = 3
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    interpolation: str = "bilinear"

    def __post_init__(self):
        if not isinstance(self.size, (int, np.integer)) or isinstance(self.size, bool) or self.size < 1:
            raise TaskrelError(f"Preprocess: size must be a positive int (the output side in pixels), got {self.size!r}")
        if self.channels not in (1, 3):
            raise TaskrelError(f"Preprocess: channels must be 1 (grey) or 3 (RGB), got {self.channels!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise TaskrelError(f"Preprocess: interpolation must be one of {INTERPOLATIONS}, "
                               f"got {self.interpolation!r}")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "mean", _floats("mean", self.mean, self.channels))
        std = _floats("std", self.std, self.channels)
        if min(std) <= 0:
            raise TaskrelError(f"Preprocess: std must be positive (it divides the pixels), got {std}")
        object.__setattr__(self, "std", std)

    @property
    def description(self) -> str:
        """A stable string of every parameter (part of the feature-cache key)."""
        fmt = lambda v: ",".join(f"{x:.6g}" for x in v)  # noqa: E731
        return (f"size={self.size};channels={self.channels};mean={fmt(self.mean)};std={fmt(self.std)};"
                f"resize={self.interpolation}-antialias-shorter-side+center-crop;scale=1/255;"
                f"grey2rgb=repeat;rgb2grey=luma601")

    # ------------------------------------------------------------------ conversion
    def __call__(self, images) -> torch.Tensor:
        """``(B, channels, size, size)`` float32 tensor (CPU) from a batch of images."""
        if isinstance(images, (list, tuple)):
            if len(images) == 0:
                raise TaskrelError("Preprocess: empty list of images; pass at least one image")
            arrays = [_to_array(im, i) for i, im in enumerate(images)]
            if len({a.shape for a in arrays}) == 1 and len({a.dtype for a in arrays}) == 1:
                return self._batch(torch.from_numpy(np.stack(arrays)))
            return torch.cat([self._batch(torch.from_numpy(a[None])) for a in arrays])
        if isinstance(images, np.ndarray):
            images = np.ascontiguousarray(images)
            images = torch.from_numpy(images if images.flags.writeable else images.copy())
        if not isinstance(images, torch.Tensor):
            raise TaskrelError(f"Preprocess: expected an ndarray/tensor batch (B,H,W) or (B,H,W,3) or a list "
                               f"of PIL images/arrays, got {type(images).__name__}")
        return self._batch(images)

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] != 3):
            hint = " (a single image: add a batch axis, e.g. images[None])" if x.ndim == 2 else ""
            raise TaskrelError(f"Preprocess: expected a batch of shape (B, H, W) or (B, H, W, 3), "
                               f"got {tuple(x.shape)}{hint}")
        if x.shape[0] == 0:
            raise TaskrelError("Preprocess: empty batch (B = 0); pass at least one image")
        if x.dtype == torch.uint8:
            x = x.to(torch.float32).div_(255.0)
        elif x.is_floating_point():
            x = x.to(torch.float32)
            if not torch.isfinite(x).all():
                raise TaskrelError("Preprocess: images contain NaN or infinite values; pass finite pixels (uint8 0..255 "
                                   "or float in [0, 1])")
            lo, hi = float(x.min()), float(x.max())
            if lo < -1e-6 or hi > 1 + 1e-6:
                raise TaskrelError(f"Preprocess: float images must be in [0, 1] (got range [{lo:.3g}, {hi:.3g}]); "
                                   f"pass uint8 pixels (0..255) instead")
        else:
            raise TaskrelError(f"Preprocess: images must be uint8 (0..255) or float in [0, 1], got {x.dtype}; "
                               f"convert them first")
        # colour -> (B, C, H, W)
        if x.ndim == 3:
            x = x[:, None]
            if self.channels == 3:
                x = x.expand(-1, 3, -1, -1)
        else:
            x = x.permute(0, 3, 1, 2)
            if self.channels == 1:
                w = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
                x = (x * w).sum(dim=1, keepdim=True)
        # size
        h, w = x.shape[-2:]
        if (h, w) != (self.size, self.size):
            scale = self.size / min(h, w)
            new = (max(self.size, round(h * scale)), max(self.size, round(w * scale)))
            x = F.interpolate(x.contiguous(), size=new, mode=self.interpolation, antialias=True,
                              align_corners=False)
            if self.interpolation == "bicubic":
                x = x.clamp_(0.0, 1.0)
            top, left = (new[0] - self.size) // 2, (new[1] - self.size) // 2
            x = x[..., top:top + self.size, left:left + self.size]
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return ((x - mean) / std).contiguous()


def _to_array(im, i: int) -> np.ndarray:
    """One PIL image or array -> (H, W) or (H, W, 3) ndarray."""
    if isinstance(im, np.ndarray):
        a = im
    elif isinstance(im, torch.Tensor):
        a = im.numpy()
    elif hasattr(im, "mode") and hasattr(im, "convert"):  # PIL image
        im = eight_bit(im)
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        a = np.asarray(im)
    else:
        raise TaskrelError(f"Preprocess: item {i} of the list is a {type(im).__name__}; expected a PIL image or "
                           f"an (H, W) / (H, W, 3) array")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] == 4:  # RGBA array: drop alpha
        a = a[..., :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3)):
        raise TaskrelError(f"Preprocess: item {i} of the list has shape {a.shape}; expected (H, W) or (H, W, 3)")
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()  # torch.from_numpy warns on read-only arrays
