"""The hostile and unusual inputs probed by hand against ``restauro serve`` in issue 12 keep their
answers: bombs, empty files and impossible parameters are a clear 4xx, odd ids a 404, and unusual
but legitimate files (16-bit grey, CMYK JPEG, TIFF, a 0/1 mask) are accepted and stored as RGB."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from restauro.images import decode_image
from tests.conftest import png, square_mask, synthetic_scan
from tests.data import png_bomb
from tests.service.test_api import assert_error


def upload(image: tuple[str, bytes, str], mask: bytes | None = None) -> dict:
    files = {"image": image}
    files["mask"] = ("mask.png", mask if mask is not None else png(square_mask()), "image/png")
    return files


def scan_png() -> tuple[str, bytes, str]:
    return ("scan.png", png(synthetic_scan()), "image/png")


def test_a_60000_px_square_png_bomb_is_413(client: TestClient) -> None:
    files = upload(("bomb.png", png_bomb(60000, 60000), "image/png"))
    assert_error(client.post("/v1/restorations", files=files), 413, "image_too_large")


def test_an_empty_file_is_400(client: TestClient) -> None:
    files = upload(("empty.png", b"", "image/png"))
    assert_error(client.post("/v1/restorations", files=files), 400)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("candidates", "10000"),
        ("steps", "1000000000"),
        ("seed", str(2**70)),
        ("seed", "-1"),
        ("cluster", "99"),
        ("cluster", "-1"),
        ("candidates", "abc"),
    ],
)
def test_impossible_parameters_are_422_naming_the_field(
    ready_client: TestClient, field: str, value: str
) -> None:
    response = ready_client.post("/v1/restorations", files=upload(scan_png()), data={field: value})
    assert_error(response, 422)
    assert field in response.json()["detail"], response.json()


@pytest.mark.parametrize("job_id", ["a" * 10_000, "%00", "0" * 31 + "%00", "%00" * 32])
def test_huge_and_nul_job_ids_are_404(client: TestClient, job_id: str) -> None:
    for suffix in ("", "/original", "/candidates/1"):
        response = client.get(f"/v1/restorations/{job_id}{suffix}")
        assert response.status_code == 404, (job_id[:40], suffix, response.text[:200])
        assert response.json()["error"] in ("job_not_found", "not_found")


def sixteen_bit_grey() -> tuple[str, bytes, str]:
    grey = cv2.cvtColor(synthetic_scan(), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    return ("grey16.png", cv2.imencode(".png", grey)[1].tobytes(), "image/png")


def cmyk_jpeg() -> tuple[str, bytes, str]:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_scan()).convert("CMYK").save(buffer, "JPEG", quality=95)
    return ("scan.jpg", buffer.getvalue(), "image/jpeg")


def tiff() -> tuple[str, bytes, str]:
    bgr = cv2.cvtColor(synthetic_scan(), cv2.COLOR_RGB2BGR)
    return ("scan.tif", cv2.imencode(".tiff", bgr)[1].tobytes(), "image/tiff")


@pytest.mark.parametrize(
    ("image", "mask"),
    [
        (sixteen_bit_grey(), None),
        (cmyk_jpeg(), None),
        (tiff(), None),
        (scan_png(), png(square_mask().astype(np.uint8))),  # 0/1 values, not 0/255
    ],
    ids=["16-bit-grey-png", "cmyk-jpeg", "tiff", "mask-0-1"],
)
def test_unusual_but_valid_files_are_accepted_as_rgb(
    ready_client: TestClient, image: tuple[str, bytes, str], mask: bytes | None
) -> None:
    response = ready_client.post(
        "/v1/restorations", files=upload(image, mask), data={"candidates": "1", "steps": "1"}
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    stored = decode_image(ready_client.get(f"/v1/restorations/{job_id}/original").content).rgb
    assert stored.shape == (*square_mask().shape, 3) and stored.dtype == np.uint8
    stored_mask = ready_client.get(f"/v1/restorations/{job_id}/mask")
    assert np.array_equal(decode_image(stored_mask.content).rgb[..., 0] > 0, square_mask())
