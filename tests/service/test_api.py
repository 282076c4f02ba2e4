"""The HTTP API in-process (TestClient) over the embedded SQLite broker: no worker runs here, so
submissions stay queued; the worker side is covered by tests/worker and tests/integration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from restauro.images import decode_image
from service.main import create_app
from tests.conftest import png, square_mask, synthetic_scan
from tests.data import png_bomb
from tests.service.conftest import make_settings


def assert_error(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "detail"}
    if code is not None:
        assert body["error"] == code


# --- bad inputs: the right 4xx, never a 500 -------------------------------------------------------
def test_corrupt_image_is_400(client: TestClient, scan_files) -> None:
    scan_files["image"] = ("scan.png", b"\x89PNG\r\n\x1a\nnot really", "image/png")
    assert_error(client.post("/v1/restorations", files=scan_files), 400, "invalid_image")


def test_truncated_image_is_400(client: TestClient, scan_files) -> None:
    data = scan_files["image"][1]
    scan_files["image"] = ("scan.png", data[: len(data) // 2], "image/png")
    assert_error(client.post("/v1/restorations", files=scan_files), 400, "invalid_image")


def test_decompression_bomb_is_413(client: TestClient, scan_files) -> None:
    scan_files["image"] = ("bomb.png", png_bomb(30000, 30000), "image/png")
    assert_error(client.post("/v1/restorations", files=scan_files), 413, "image_too_large")


def test_mask_size_mismatch_is_422(client: TestClient, scan_files) -> None:
    scan_files["mask"] = ("mask.png", png(square_mask(50, 50)), "image/png")
    assert_error(client.post("/v1/restorations", files=scan_files), 422, "mask_size_mismatch")


def test_empty_and_full_masks_are_422(client: TestClient, scan_files) -> None:
    empty = np.zeros((96, 128), dtype=bool)
    scan_files["mask"] = ("mask.png", png(empty), "image/png")
    assert_error(client.post("/v1/restorations", files=scan_files), 422, "empty_mask")
    scan_files["mask"] = ("mask.png", png(~empty), "image/png")
    assert_error(client.post("/v1/restorations", files=scan_files), 422, "full_mask")


def test_missing_mask_without_alpha_is_422(client: TestClient, scan_files) -> None:
    del scan_files["mask"]
    assert_error(client.post("/v1/restorations", files=scan_files), 422, "invalid_mask")


def test_missing_image_field_is_422_in_the_same_shape(client: TestClient, scan_files) -> None:
    del scan_files["image"]
    assert_error(client.post("/v1/restorations", files=scan_files), 422, "invalid_request")


def test_over_limit_upload_is_413(tmp_path: Path, scan_files) -> None:
    client = TestClient(create_app(make_settings(tmp_path, max_upload_bytes=2000)))
    # Over the per-file limit but within the streamed body limit (2 x limit + slack)...
    big = ("scan.png", b"\x89PNG" + b"\0" * 5000, "image/png")
    response = client.post("/v1/restorations", files={**scan_files, "image": big})
    assert_error(response, 413, "upload_too_large")
    # ...and far over the body limit: cut off while streaming.
    huge = ("scan.png", b"\0" * 2_000_000, "image/png")
    response = client.post("/v1/restorations", files={**scan_files, "image": huge})
    assert_error(response, 413, "upload_too_large")


def test_pixel_limit_is_413(tmp_path: Path, scan_files) -> None:
    client = TestClient(create_app(make_settings(tmp_path, max_pixels=1000)))
    assert_error(client.post("/v1/restorations", files=scan_files), 413, "image_too_large")


def test_wrong_content_types_are_415(client: TestClient, scan_files) -> None:
    assert_error(client.post("/v1/restorations", json={"image": "x"}), 415)
    scan_files["image"] = ("scan.txt", scan_files["image"][1], "text/plain")
    assert_error(client.post("/v1/restorations", files=scan_files), 415)


def test_parameters_out_of_bounds_are_422(client: TestClient, scan_files) -> None:
    # The same values and words as the CLI's (tests/training/test_cli.py): one RestoreRequest.
    for data, message in [
        ({"candidates": "0"}, "candidates must be between 1 and 64, got 0"),
        ({"candidates": "100000"}, "candidates must be between 1 and 64, got 100000"),
        ({"steps": "-1"}, "steps must be between 1 and 5000, got -1"),
        ({"seed": "-1"}, "seed must be between 0 and 2147483647, got -1"),
        ({"cluster": "-1"}, "cluster must be >= 0, got -1"),
        ({"cluster": "0", "general": "true"}, "choose a cluster or the general DCGAN, not both"),
    ]:
        response = client.post("/v1/restorations", files=scan_files, data=data)
        assert_error(response, 422, "invalid_parameter")
        assert response.json()["detail"] == message
    response = client.post("/v1/restorations", files=scan_files, data={"steps": "many"})
    assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    "job_id",
    ["0" * 32, "abc", "..", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "A" * 32, "0" * 31 + "/"],
)
def test_unknown_and_path_like_ids_are_404(client: TestClient, job_id: str) -> None:
    for suffix in ("", "/original", "/mask", "/candidates/1"):
        response = client.get(f"/v1/restorations/{job_id}{suffix}")
        assert response.status_code == 404, (job_id, suffix, response.text)
        assert response.json()["error"] in ("job_not_found", "not_found")
    assert client.delete(f"/v1/restorations/{job_id}").status_code == 404


def test_no_bundle_answers_503_and_readyz_fails(client: TestClient, scan_files) -> None:
    assert_error(client.post("/v1/restorations", files=scan_files), 503, "no_active_bundle")
    assert_error(client.get("/v1/models"), 503)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "bundle" in response.json()["detail"]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_api_keys_are_required_when_configured(tmp_path: Path, scan_files) -> None:
    client = TestClient(create_app(make_settings(tmp_path, api_keys=["museum-key"])))
    assert_error(client.get(f"/v1/restorations/{'0' * 32}"), 401, "unauthorized")
    wrong = {"X-API-Key": "nope"}
    assert_error(client.get(f"/v1/restorations/{'0' * 32}", headers=wrong), 401)
    right = {"X-API-Key": "museum-key"}
    assert_error(client.get(f"/v1/restorations/{'0' * 32}", headers=right), 404, "job_not_found")
    assert client.get("/healthz").status_code == 200  # probes stay open


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/restorations",
        "/v1/restorations/{job_id}",
        "/v1/restorations/{job_id}/candidates/{n}",
        "/v1/route",
        "/v1/models",
        "/readyz",
    ):
        assert path in paths
    assert client.get("/docs").status_code == 200


# --- with a bundle: routing, submission, files ---------------------------------------------
def test_submit_routes_stores_and_queues(ready_client: TestClient, scan_files) -> None:
    response = ready_client.post("/v1/restorations", files=scan_files, data={"candidates": "2"})
    assert response.status_code == 202, response.text
    body = response.json()
    job_id = body["id"]
    assert response.headers["location"] == f"/v1/restorations/{job_id}"
    assert body["status"] == "queued"
    assert body["queue"] == f"restore.c{body['cluster']}"
    assert set(body["route"]["distances"]) == {"0", "1"}

    status = ready_client.get(f"/v1/restorations/{job_id}").json()
    assert status["status"] == "queued"
    assert status["params"]["candidates"] == 2
    original = ready_client.get(f"/v1/restorations/{job_id}/original")
    assert original.headers["content-type"] == "image/png"
    assert np.array_equal(decode_image(original.content).rgb, synthetic_scan())
    mask = decode_image(ready_client.get(f"/v1/restorations/{job_id}/mask").content).rgb
    assert np.array_equal(mask[..., 0] > 0, square_mask())
    assert_error(ready_client.get(f"/v1/restorations/{job_id}/candidates/1"), 409, "not_ready")

    metrics = ready_client.get("/metrics").text
    assert f'restauro_jobs_submitted_total{{queue="{body["queue"]}"}} 1.0' in metrics
    assert 'restauro_jobs{state="queued"} 1.0' in metrics
    assert f'restauro_queue_depth{{queue="{body["queue"]}"}} 1.0' in metrics

    assert ready_client.delete(f"/v1/restorations/{job_id}").status_code == 204
    assert_error(ready_client.get(f"/v1/restorations/{job_id}"), 404)


def test_cluster_override_and_general(ready_client: TestClient, scan_files) -> None:
    body = ready_client.post("/v1/restorations", files=scan_files, data={"cluster": "1"}).json()
    assert (body["cluster"], body["queue"], body["route"]) == (1, "restore.c1", None)
    body = ready_client.post("/v1/restorations", files=scan_files, data={"general": "true"}).json()
    assert (body["target"], body["queue"]) == ("general", "restore.general")
    response = ready_client.post("/v1/restorations", files=scan_files, data={"cluster": "7"})
    assert_error(response, 422, "unknown_cluster")


def test_route_and_models(ready_client: TestClient, scan_files) -> None:
    route = ready_client.post("/v1/route", files=scan_files).json()
    assert route["cluster"] in (0, 1)
    assert route["queue"] == f"restore.c{route['cluster']}"
    models = ready_client.get("/v1/models").json()
    assert [c["id"] for c in models["clusters"]] == [0, 1]
    assert models["features"]["kind"] == "sift"
    thumb = ready_client.get(models["clusters"][0]["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert ready_client.get("/readyz").json()["status"] == "ready"
    bad_version = ready_client.get("/v1/models/..%2F..%2Fetc/clusters/0/sample.png")
    assert bad_version.status_code in (404, 422)


def test_rgba_upload_without_mask_uses_alpha(ready_client: TestClient) -> None:
    rgba = np.dstack([synthetic_scan(), np.where(square_mask(), 0, 255).astype(np.uint8)])
    import cv2

    _, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    files = {"image": ("scan.png", buf.tobytes(), "image/png")}
    response = ready_client.post("/v1/restorations", files=files)
    assert response.status_code == 202, response.text
