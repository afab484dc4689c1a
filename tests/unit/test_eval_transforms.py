"""Each timm / torchvision encoder preprocesses as its own eval transform (timm's
resolve_data_config + create_transform, torchvision's weights.transforms()): resize the shorter
side to the transform's resize size, centre-crop, normalise. Random weights, offline."""
import numpy as np
import pytest
import torch
from PIL import Image

from taskrel_utils import encoders
from taskrel_utils.core.errors import TaskrelError
from taskrel_utils.inputs.eval_transforms import EvalPreprocess, eval_transform
from taskrel_utils.inputs.preprocessing import Preprocess


def _photos(seed=0):
    """Smooth RGB images of several shapes (landscape, portrait, square), as PIL images."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in ((300, 400), (500, 333), (260, 260)):
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        base = np.stack([np.sin(6 * xx + rng.uniform(0, 3)), np.cos(5 * yy + rng.uniform(0, 3)),
                         np.sin(4 * (xx + yy))], -1)
        out.append(Image.fromarray(((base + 1) * 127.5).astype(np.uint8)))
    return out


def _compare(pre, reference, images):
    ours = torch.cat([pre([im]) for im in images])
    theirs = torch.stack([reference(im) for im in images])
    assert ours.shape == theirs.shape
    diff = (ours - theirs).abs()
    return float(diff.mean()), float(diff.max())


@pytest.mark.parametrize("model", ["resnet50.tv_in1k", "inception_v3.tv_in1k", "test_resnet"])
def test_timm_encoders_preprocess_as_timm_eval_transform(model):
    import timm
    from timm.data import create_transform, resolve_data_config

    enc = encoders.load_encoder(f"timm:{model}:random")
    net = timm.create_model(model, pretrained=False)
    cfg = resolve_data_config({}, model=net)
    reference = create_transform(**cfg, is_training=False)
    size = cfg["input_size"][-1]
    assert enc.preprocess.size == size and enc.preprocess.resize == int(np.floor(size / cfg["crop_pct"]))
    mean, worst = _compare(enc.preprocess, reference, _photos())
    assert mean < 0.01 and worst < 0.15  # PIL's resampling against torch's antialiased one: rounding only
    # the kit's former transform (shorter side to the crop size) is far from it: the test can tell
    square = Preprocess(size=size, mean=enc.preprocess.mean, std=enc.preprocess.std,
                        interpolation=enc.preprocess.interpolation)
    assert _compare(square, reference, _photos())[0] > 5 * mean


@pytest.mark.parametrize("model, resize, crop", [("resnet50", 256, 224), ("inception_v3", 342, 299)])
def test_torchvision_encoders_preprocess_as_their_weights_transforms(model, resize, crop):
    from taskrel_utils.inputs.torchvision_encoders import weights_of

    enc = encoders.load_encoder(f"torchvision:{model}:random")
    reference = weights_of(model, "IMAGENET1K_V1").transforms()
    assert (enc.preprocess.resize, enc.preprocess.size) == (resize, crop)
    mean, worst = _compare(enc.preprocess, lambda im: reference(im), _photos(1))
    assert mean < 0.01 and worst < 0.15


def test_an_image_size_keeps_the_crop_share_and_bad_resizes_are_refused():
    pre = eval_transform(32, 224, 256)
    assert (pre.size, pre.resize) == (32, 36)
    assert pre(np.zeros((2, 50, 70, 3), np.uint8)).shape == (2, 3, 32, 32)
    assert pre(np.zeros((2, 50, 70), np.uint8)).shape == (2, 3, 32, 32)  # grey batches too
    assert "to-36" in pre.description and "to-" not in Preprocess(size=32).description  # old cache keys unchanged
    with pytest.raises(TaskrelError, match="resize must be an int >= size"):
        EvalPreprocess(size=32, resize=20)
    with pytest.raises(TaskrelError, match="float images must be in"):
        pre(np.full((1, 40, 40, 3), 2.0, np.float32))
