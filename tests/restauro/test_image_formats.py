"""Museum formats: 16-bit PNG and TIFF (tiled too), ICC profiles and EXIF orientation survive a
restoration; scans over the pixel limit are refused from their header."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from restauro.errors import ImageTooLarge, InvalidImage
from restauro.images import (
    ImageInfo,
    decode_image,
    encode_like,
    encode_png,
    image_info,
    like_source,
    to_8bit,
    upright,
)
from restauro.masks import load_scan
from tests.tiff import tiff_bytes

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _deep(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """16-bit RGB with values no 8-bit image has (low bits set)."""
    return np.random.default_rng(seed).integers(0, 65536, (height, width, 3)).astype(np.uint16)


def _hole(height: int = 48, width: int = 64) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[10:25, 20:40] = True
    return mask


def _restored(decoded) -> np.ndarray:
    """A stand-in restoration: the 8-bit image with the hole painted flat."""
    out = decoded.rgb.copy()
    out[_hole(*decoded.size)] = (200, 40, 90)
    return out


@pytest.mark.parametrize("kind", ["png", "tiff", "tiled tiff"])
def test_16_bit_stays_16_bit_and_bit_identical_outside_the_mask(kind):
    deep = _deep()
    data = (
        encode_png(deep, ImageInfo("PNG", 16, ICC))
        if kind == "png"
        else tiff_bytes(deep, icc=ICC, tile=16 if kind == "tiled tiff" else None)
    )
    decoded = decode_image(data)
    assert decoded.info.bit_depth == 16 and decoded.info.icc_profile == ICC
    assert np.array_equal(decoded.deep, deep)
    assert np.array_equal(decoded.rgb, to_8bit(deep))  # what the models see

    mask = _hole()
    back = decode_image(encode_like(_restored(decoded), decoded, mask))
    assert back.info.bit_depth == 16 and back.info.icc_profile == ICC
    assert np.array_equal(back.deep[~mask], deep[~mask])  # every 16-bit value, unchanged
    assert np.all(back.deep[mask] == np.array([200, 40, 90], np.uint16) * 257)


def test_8_bit_with_a_profile_keeps_it_and_stays_8_bit():
    rgb = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", icc_profile=ICC)
    decoded = decode_image(buf.getvalue())
    assert decoded.deep is None and decoded.info.icc_profile == ICC
    mask = np.zeros((40, 30), bool)
    mask[5:9, 5:9] = True
    out = like_source(decoded.rgb, decoded, mask)
    assert out.dtype == np.uint8
    back = Image.open(io.BytesIO(encode_like(decoded.rgb, decoded, mask)))
    assert back.mode == "RGB" and back.info.get("icc_profile") == ICC


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_written_back(orientation):
    """Pixels come upright (as every viewer shows the file, so a mask drawn on it fits); the
    result is stored like the input (same stored pixels outside the hole, same tag)."""
    stored = np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    image.save(buf, "PNG", exif=exif.tobytes())
    decoded = decode_image(buf.getvalue())
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    assert np.array_equal(decoded.rgb, shown)
    assert decoded.info.orientation == orientation

    mask = np.zeros(decoded.size, bool)
    mask[3:7, 4:9] = True
    written = encode_like(_restored_at(decoded.rgb, mask), decoded, mask)
    reopened = Image.open(io.BytesIO(written))
    assert reopened.getexif().get(0x0112, 1) == orientation
    raw = np.asarray(reopened.convert("RGB"))  # the stored pixels, before turning
    assert raw.shape == stored.shape
    upright_back = decode_image(written)
    assert np.array_equal(upright_back.rgb[~mask], decoded.rgb[~mask])
    assert np.array_equal(upright(raw, orientation)[~mask], decoded.rgb[~mask])


def _restored_at(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = rgb.copy()
    out[mask] = 7
    return out


def test_16_bit_tiff_orientation_is_applied_once():
    deep = _deep(20, 30)
    for orientation in (3, 6, 8):
        decoded = decode_image(tiff_bytes(deep, tile=16, orientation=orientation))
        assert np.array_equal(decoded.deep, upright(deep, orientation))


def test_16_bit_alpha_marks_the_damage_where_not_fully_opaque():
    deep = _deep(20, 30)
    alpha = np.full((20, 30, 1), 65535, np.uint16)
    alpha[2:5, 3:9] = 65534  # almost opaque is still missing
    scan = load_scan(tiff_bytes(np.concatenate([deep, alpha], axis=2), tile=16))
    assert scan.mask.sum() == 3 * 6 and scan.mask[2:5, 3:9].all()
    assert scan.image.deep is not None


def test_a_16_bit_mask_with_faint_values_counts_every_nonzero_pixel():
    mask16 = np.zeros((20, 30), np.uint16)
    mask16[4:8, 4:8] = 100  # rounds to 0 at 8 bits
    scan = load_scan(tiff_bytes(_deep(20, 30)), tiff_bytes(mask16))
    assert scan.mask.sum() == 16


def test_a_large_tiled_tiff_over_the_limit_is_refused_from_its_header():
    """120 MP claimed by a few KB of file: refused before any pixel is decoded."""
    data = tiff_bytes(_deep(256, 256), tile=256, claim=(12000, 10000))
    assert len(data) < 1_000_000
    with pytest.raises(ImageTooLarge, match="120,000,000 pixels; the limit is 40,000,000"):
        decode_image(data, max_pixels=40_000_000)


def test_the_configured_limit_rules_not_pillows():
    """A deployment allowing 250 MP reads a 210 MP header (Pillow alone refuses > 179 MP)."""
    data = tiff_bytes(_deep(256, 256), tile=256, claim=(15000, 14000))
    info = image_info(data, max_pixels=250_000_000)
    assert info.bit_depth == 16 and info.format == "TIFF"
    with pytest.raises(ImageTooLarge):
        image_info(data, max_pixels=200_000_000)


def test_float_tiffs_are_refused_clearly():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.float32)).save(buf, "TIFF")
    with pytest.raises(InvalidImage, match="8- or 16-bit"):
        decode_image(buf.getvalue())


def test_a_job_keeps_its_16_bit_input_and_writes_candidates_like_it(tmp_path):
    """The worker's side: candidates (8-bit RGB from the core) go out at the upload's depth."""
    from restauro.jobs import JobStore, candidate_name, new_job_id
    from restauro.request import RestorePlan, RestoreRequest

    deep = _deep()
    scan = load_scan(tiff_bytes(deep, icc=ICC, orientation=3), encode_png(_hole() * np.uint8(255)))
    store = JobStore(tmp_path)
    job_id = new_job_id()
    plan = RestorePlan("v1", "c0", "restore.c0", RestoreRequest(target=0))
    store.create(job_id, scan.rgb, scan.mask, plan, created=0.0, source=scan.image)
    rgb, mask = store.read_inputs(job_id, max_pixels=10**6)
    assert np.array_equal(rgb, scan.rgb) and np.array_equal(mask, scan.mask)

    class Result:  # what write_result reads of a RestoreResult
        def __init__(self) -> None:
            self.candidates = [_restored(scan.image)]

        def to_dict(self) -> dict:
            return {"candidates": [{"rank": 1}]}

    assert store.write_result(job_id, Result())  # type: ignore[arg-type]
    written = decode_image(store.file(job_id, candidate_name(1)).read_bytes())
    assert written.info.bit_depth == 16 and written.info.icc_profile == ICC
    assert written.info.orientation == 3
    assert np.array_equal(written.deep[~scan.mask], scan.image.deep[~scan.mask])


def test_a_scan_within_the_configured_limit_decodes_whatever_pillows_limit(monkeypatch):
    """Pillow checks its own limit again when a TIFF's pixels load; ours is the one that counts.

    (Shrunk: Pillow's ~89 MP limit set to 1,000 pixels, so a 100 x 80 scan stands for a 200 MP
    one a deployment allows.)"""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    rgb = np.random.default_rng(4).integers(0, 256, (80, 100, 3), dtype=np.uint8)
    for data in (tiff_bytes(rgb, tile=16), tiff_bytes(_deep(80, 100), tile=16)):
        decoded = decode_image(data, max_pixels=10_000)
        assert decoded.size == (80, 100)
    assert Image.MAX_IMAGE_PIXELS == 1000  # handed back as found
    with pytest.raises(ImageTooLarge):
        decode_image(tiff_bytes(rgb, tile=16), max_pixels=7_999)
