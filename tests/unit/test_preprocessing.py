"""Preprocess: shapes, colour conversion, resize, normalisation, input kinds, errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from taskrel_utils.core.errors import TaskrelError
from taskrel_utils.inputs.preprocessing import Preprocess


@pytest.fixture
def grey():
    return np.random.default_rng(0).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)


@pytest.fixture
def rgb():
    return np.random.default_rng(1).integers(0, 256, size=(3, 20, 20, 3), dtype=np.uint8)


def test_grey_native_size_values_and_shape(grey):
    out = Preprocess(size=28, channels=1, mean=0.25, std=0.5)(grey)
    assert out.shape == (4, 1, 28, 28) and out.dtype == torch.float32
    expected = (grey.astype(np.float32) / 255 - 0.25) / 0.5
    np.testing.assert_allclose(out[:, 0].numpy(), expected, atol=1e-6)


def test_grey_to_rgb_repeats_the_channel_and_normalises_per_channel(grey):
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    out = Preprocess(size=28, channels=3, mean=mean, std=std)(grey)
    assert out.shape == (4, 3, 28, 28)
    x = grey.astype(np.float32) / 255
    for c in range(3):
        np.testing.assert_allclose(out[:, c].numpy(), (x - mean[c]) / std[c], atol=1e-5)
    # un-normalised, the three channels are the same grey image
    back = out * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert torch.allclose(back[:, 0], back[:, 1], atol=1e-6) and torch.allclose(back[:, 0], back[:, 2], atol=1e-6)


def test_normalisation_numbers_at_black_and_white():
    imgs = np.stack([np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8)])
    out = Preprocess(size=8, channels=3, mean=0.5, std=0.5)(imgs)
    assert torch.allclose(out[0], torch.full((3, 8, 8), -1.0)) and torch.allclose(out[1], torch.full((3, 8, 8), 1.0))


def test_rgb_to_grey_uses_luma():
    pure = np.zeros((3, 6, 6, 3), np.uint8)
    for c in range(3):
        pure[c, ..., c] = 255
    out = Preprocess(size=6, channels=1)(pure)
    np.testing.assert_allclose(out[:, 0, 0, 0].numpy(), [0.299, 0.587, 0.114], atol=1e-6)


@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [96, 13])
def test_resize_of_a_constant_image_stays_constant(interp, size):
    imgs = np.full((2, 28, 28), 100, np.uint8)
    out = Preprocess(size=size, channels=3, interpolation=interp)(imgs)
    assert out.shape == (2, 3, size, size)
    assert torch.allclose(out, torch.full_like(out, 100 / 255), atol=1e-5)


def test_downscale_is_antialiased():
    checker = (np.indices((84, 84)).sum(0) % 2 * 255).astype(np.uint8)[None]
    out = Preprocess(size=28, channels=1)(checker)  # 3x down: without antialiasing this stays 0/1
    assert float(out.min()) > 0.3 and float(out.max()) < 0.7


def test_non_square_is_centre_cropped_not_squashed():
    img = np.zeros((1, 28, 84), np.uint8)
    img[:, :, 28:56] = 255  # only the centre square is white
    out = Preprocess(size=28, channels=1)(img)
    assert torch.allclose(out, torch.ones_like(out), atol=1e-5)
    tall = np.ascontiguousarray(img.transpose(0, 2, 1))
    down = Preprocess(size=14, channels=1)(tall)  # 2x down: the antialiasing kernel touches only the border rows
    assert torch.allclose(down[..., 1:-1, :], torch.ones(1, 1, 12, 14), atol=1e-5)


def test_pil_list_and_ndarray_agree(grey, rgb):
    for arr, channels in ((grey, 3), (grey, 1), (rgb, 3), (rgb, 1)):
        pre = Preprocess(size=32, channels=channels, mean=0.5, std=0.25)
        pil = [Image.fromarray(a) for a in arr]
        torch.testing.assert_close(pre(pil), pre(arr))
        torch.testing.assert_close(pre(list(arr)), pre(arr))
        torch.testing.assert_close(pre(torch.from_numpy(arr)), pre(arr))


def test_list_of_mixed_sizes_and_modes(grey, rgb):
    pre = Preprocess(size=16, channels=3)
    out = pre([Image.fromarray(grey[0]), Image.fromarray(rgb[0]), Image.fromarray(rgb[1]).convert("RGBA")])
    assert out.shape == (3, 3, 16, 16)
    torch.testing.assert_close(out[1:2], pre(rgb[:1]))
    torch.testing.assert_close(out[2:3], pre(rgb[1:2]))


def test_float_input_in_unit_range_equals_uint8(grey):
    pre = Preprocess(size=28, channels=1)
    torch.testing.assert_close(pre(grey.astype(np.float32) / 255), pre(grey))


def test_description_is_stable_and_complete():
    a = Preprocess(size=96, channels=3, mean=0.5, std=0.5)
    assert a.description == Preprocess(size=96, channels=3, mean=(0.5, 0.5, 0.5), std=[0.5] * 3).description
    assert "size=96" in a.description
    others = [Preprocess(size=64, channels=3, mean=0.5, std=0.5), Preprocess(size=96, channels=1, mean=0.5, std=0.5),
              Preprocess(size=96, channels=3, mean=0.4, std=0.5), Preprocess(size=96, channels=3, mean=0.5, std=0.6),
              Preprocess(size=96, channels=3, mean=0.5, std=0.5, interpolation="bicubic")]
    assert len({a.description} | {o.description for o in others}) == 6


@pytest.mark.parametrize("bad", [np.zeros((28, 28), np.uint8), np.zeros((2, 28, 28, 2), np.uint8),
                                 np.full((2, 8, 8), 2.0, np.float32), np.zeros((2, 8, 8), np.int32),
                                 np.zeros((0, 8, 8), np.uint8), "images", [], [np.zeros((4,), np.uint8)]])
def test_bad_input_raises_taskrel_error(bad):
    with pytest.raises(TaskrelError):
        Preprocess(size=8, channels=1)(bad)


@pytest.mark.parametrize("kwargs", [dict(size=0), dict(size=8, channels=2), dict(size=8, mean=(0.1, 0.2)),
                                    dict(size=8, std=0.0), dict(size=8, interpolation="nearest")])
def test_bad_parameters_raise_taskrel_error(kwargs):
    with pytest.raises(TaskrelError):
        Preprocess(**kwargs)


def test_a_16_bit_grey_pil_image_is_scaled_to_8_bits():
    """Pillow's convert('RGB') clips 16-bit values at 255 (nearly all white); the kit scales them."""
    wide = Image.fromarray((np.arange(16).reshape(4, 4) * 4369).astype(np.uint16))  # 0 .. 65535
    assert wide.mode.startswith("I")
    out = Preprocess(4, channels=1)([wide])
    expected = Preprocess(4, channels=1)([Image.fromarray((np.arange(16).reshape(4, 4) * 17).astype(np.uint8))])
    assert torch.equal(out, expected)
