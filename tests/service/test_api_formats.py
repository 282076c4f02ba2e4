"""Museum formats over HTTP: a large tiled TIFF over the pixel limit is a 413 before decoding; a
16-bit scan with a profile is stored as it came (the worker writes candidates like it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import ImageCms

from restauro.images import decode_image
from service.main import create_app
from tests.conftest import png, square_mask
from tests.service.conftest import make_settings
from tests.service.test_api import assert_error
from tests.tiff import tiff_bytes

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_a_tiled_tiff_over_the_pixel_limit_is_413(tmp_path: Path) -> None:
    client = TestClient(create_app(make_settings(tmp_path)))  # the default 40 MP limit
    deep = np.zeros((256, 256, 3), np.uint16)
    big = tiff_bytes(deep, tile=256, claim=(12000, 10000))  # 120 MP claimed, a few KB sent
    mask = png(np.zeros((12, 10), bool))
    files = {"image": ("scan.tif", big, "image/tiff"), "mask": ("mask.png", mask, "image/png")}
    response = client.post("/v1/restorations", files=files)
    assert_error(response, 413, "image_too_large")
    assert "120,000,000 pixels" in response.json()["detail"]


def test_a_16_bit_scan_is_stored_at_16_bits_with_its_profile(
    tmp_path: Path, tiny_registry: Path
) -> None:
    client = TestClient(create_app(make_settings(tmp_path, tiny_registry)))
    rng = np.random.default_rng(0)
    deep = rng.integers(0, 65536, (96, 128, 3)).astype(np.uint16)
    files = {
        "image": ("scan.tif", tiff_bytes(deep, tile=32, icc=ICC), "image/tiff"),
        "mask": ("mask.png", png(square_mask()), "image/png"),
    }
    response = client.post("/v1/restorations", files=files, data={"steps": "2"})
    assert response.status_code == 202, response.text
    original = client.get(f"/v1/restorations/{response.json()['id']}/original")
    stored = decode_image(original.content)
    assert stored.info.bit_depth == 16 and stored.info.icc_profile == ICC
    assert np.array_equal(stored.deep, deep)
