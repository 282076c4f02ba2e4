import io

import numpy as np
import pytest
from PIL import Image

from restauro.errors import (
    EmptyMask,
    FullMask,
    ImageTooLarge,
    InvalidImage,
    InvalidMask,
    MaskSizeMismatch,
)
from restauro.images import (
    center_crop_square,
    decode_image,
    encode_png,
    fit_longer_side,
    from_model_range,
    to_model_range,
)
from restauro.masks import load_image_and_mask
from tests.data import png_bomb, textured_image


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_png_round_trip_is_lossless():
    rgb = textured_image(37, 51)
    assert np.array_equal(decode_image(encode_png(rgb)).rgb, rgb)


def test_rgba_keeps_alpha():
    rgba = np.dstack([textured_image(20, 30), np.full((20, 30), 255, np.uint8)])
    rgba[5:10, 5:10, 3] = 0
    decoded = decode_image(png(rgba))
    assert decoded.alpha is not None and decoded.alpha[7, 7] == 0
    assert np.array_equal(decoded.rgb, rgba[..., :3])


def test_truncated_and_garbage_are_invalid_image():
    data = png(textured_image(64, 64))
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2])
    with pytest.raises(InvalidImage, match="not a readable image"):
        decode_image(b"this is not an image")
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"")


def test_decompression_bomb_refused_before_decoding():
    with pytest.raises(ImageTooLarge, match="too large"):
        decode_image(png_bomb(30000, 30000), max_pixels=40_000_000)
    # Under Pillow's own bomb limit, our configurable limit still applies.
    with pytest.raises(ImageTooLarge, match="8000x6000"):
        decode_image(png_bomb(8000, 6000), max_pixels=40_000_000)


def test_resizing_helpers():
    rgb = textured_image(100, 300)
    assert fit_longer_side(rgb, 150).shape == (50, 150, 3)
    assert fit_longer_side(rgb, 500) is rgb
    assert center_crop_square(rgb, 64).shape == (64, 64, 3)


def test_model_range_round_trip():
    batch = np.stack([textured_image(8, 8, s) for s in range(3)])
    tensor = to_model_range(batch)
    assert tensor.shape == (3, 3, 8, 8) and tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(from_model_range(tensor), batch)


def test_mask_from_separate_image_and_from_alpha():
    rgb = textured_image(40, 50)
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:30] = 255
    out_rgb, out_mask = load_image_and_mask(png(rgb), png(mask))
    assert np.array_equal(out_rgb, rgb) and out_mask.sum() == 200

    rgba = np.dstack([rgb, np.where(mask > 0, 0, 255).astype(np.uint8)])
    out_rgb, out_mask = load_image_and_mask(png(rgba))
    assert np.array_equal(out_rgb, rgb) and np.array_equal(out_mask, mask > 0)


@pytest.mark.parametrize(
    ("mask", "error"),
    [
        (np.zeros((40, 50), np.uint8), EmptyMask),
        (np.full((40, 50), 255, np.uint8), FullMask),
        (np.full((41, 50), 255, np.uint8), MaskSizeMismatch),
    ],
)
def test_bad_masks(mask, error):
    with pytest.raises(error):
        load_image_and_mask(png(textured_image(40, 50)), png(mask))


def test_no_mask_and_no_alpha_is_an_error():
    with pytest.raises(InvalidMask, match="no mask given"):
        load_image_and_mask(png(textured_image(40, 50)))
