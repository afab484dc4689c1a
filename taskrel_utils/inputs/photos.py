"""Real-photo check of ImageNet encoders: CC0 photos from ``skimage.data`` and the ImageNet-1k
classes a genuinely pre-trained classifier should rank in its top 5 for them."""
from __future__ import annotations

import numpy as np
import torch

from ..core.errors import TaskrelError

# photo -> ImageNet-1k class ids counted as a correct recognition
PHOTOS = {
    "chelsea": (281, 282, 283, 284, 285),       # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": (967, 968, 504, 505),              # espresso, cup, coffee mug, coffeepot
    "rocket": (657, 744, 812),                   # missile, projectile, space shuttle
}


def load_photos() -> dict[str, np.ndarray]:
    """The CC0 photos as HxWx3 uint8 arrays (shipped inside scikit-image, no download)."""
    import skimage.data

    return {name: getattr(skimage.data, name)() for name in PHOTOS}


@torch.no_grad()
def imagenet_top_k(encoder, images: list, k: int = 5) -> list[list[tuple[int, float]]]:
    """Top-``k`` (class id, probability) of the encoder's own ImageNet head for each image."""
    if encoder.head is None:
        raise TaskrelError(f"encoder {encoder.name!r} has no ImageNet head, so it cannot classify the photos; "
                           "use an encoder with one, e.g. load_encoder('effnet-lite0')")
    logits = encoder.head(encoder.encode(encoder.preprocess(images)))
    probs = logits.softmax(dim=1)
    top = probs.topk(k, dim=1)
    return [[(int(i), float(p)) for i, p in zip(ids, ps)] for ids, ps in zip(top.indices, top.values)]


def photo_check(encoder, k: int = 5) -> dict:
    """``{photo: {"top": [(class name, prob), ...], "recognised": bool}}`` for every photo."""
    from .encoders import imagenet_class_names

    names = imagenet_class_names()
    photos = load_photos()
    tops = imagenet_top_k(encoder, list(photos.values()), k)
    return {photo: {"top": [(names[i], p) for i, p in top],
                    "recognised": any(i in PHOTOS[photo] for i, _ in top)}
            for photo, top in zip(photos, tops)}
