"""``restauro inpaint`` on museum formats: candidates written at the input's depth with its ICC
profile and orientation, bit for bit outside the mask; a scan over the pixel limit is exit 2."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from restauro.images import decode_image, encode_png
from tests.tiff import tiff_bytes

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_a_16_bit_tiff_with_profile_and_orientation_comes_back_like_it(
    cli, tiny_registry, tmp_path: Path
):
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 65536, (90, 120, 3)).astype(np.uint16)  # as stored in the file
    scan = tmp_path / "scan.tif"
    scan.write_bytes(tiff_bytes(stored, tile=32, icc=ICC, orientation=6))
    upright = decode_image(scan.read_bytes())
    assert upright.size == (120, 90)  # turned by its orientation
    mask = np.zeros(upright.size, np.uint8)
    mask[40:70, 30:60] = 255  # drawn on the painting as shown
    mask[100:103, 0:90] = 255  # and a scratch
    (tmp_path / "mask.png").write_bytes(encode_png(mask))
    out = tmp_path / "out"
    code, _, err = cli(
        "inpaint", scan, "--mask", tmp_path / "mask.png", "--registry", tiny_registry,
        "--candidates", "2", "--steps", "3", "--out", out, "-q",
    )  # fmt: skip
    assert code == 0, err
    hole = mask > 0
    for path in sorted(out.glob("restored_*.png")):
        restored = decode_image(path.read_bytes())
        assert restored.info.bit_depth == 16 and restored.info.icc_profile == ICC
        assert restored.info.orientation == 6
        assert np.array_equal(restored.deep[~hole], upright.deep[~hole])
        assert Image.open(path).size == (120, 90)  # stored turned, like the input


def test_a_scan_over_the_pixel_limit_is_exit_2(cli, tiny_registry, tmp_path: Path):
    big = tmp_path / "big.tif"
    big.write_bytes(tiff_bytes(np.zeros((256, 256, 3), np.uint16), tile=256, claim=(12000, 10000)))
    code, _, err = cli("inpaint", big, "--registry", tiny_registry, "-q")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert "too large" in lines[0] and "Traceback" not in err
