"""The API's side of issue 11, in-process: callback_url is checked before anything is uploaded
(422 in the usual shape), stored with the job and shown in its view; result.json is served once
the job succeeded; the restoration page and its files are served without a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from tests.service.conftest import make_settings
from tests.service.test_api import assert_error

HOOKS = {"webhook_secret": "s", "webhook_hosts": ["127.0.0.1", "*.museum.org"]}


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://127.0.0.1/hook", "http or https"),
        ("not a url", "spaces"),
        ("http://10.1.2.3/hook", "not allowed"),
        ("http://user:pw@127.0.0.1/hook", "credentials"),
    ],
)
def test_bad_callback_url_is_422_before_routing(tmp_path: Path, scan_files, url, words) -> None:
    # No bundle at all: a 422 (not the 503 routing would give) shows it is refused first.
    client = TestClient(create_app(make_settings(tmp_path, **HOOKS)))
    response = client.post("/v1/restorations", files=scan_files, data={"callback_url": url})
    assert_error(response, 422, "invalid_parameter")
    assert words in response.json()["detail"]


def test_callback_url_refused_while_webhooks_are_off(tmp_path: Path, scan_files) -> None:
    client = TestClient(create_app(make_settings(tmp_path)))
    data = {"callback_url": "http://127.0.0.1:9/hook"}
    response = client.post("/v1/restorations", files=scan_files, data=data)
    assert_error(response, 422, "invalid_parameter")
    assert "RESTAURO_WEBHOOK_SECRET" in response.json()["detail"]


def test_callback_url_is_stored_and_shown(tmp_path: Path, tiny_registry: Path, scan_files) -> None:
    client = TestClient(create_app(make_settings(tmp_path, tiny_registry, **HOOKS)))
    url = "https://hooks.museum.org/restauro?token=abc"
    response = client.post("/v1/restorations", files=scan_files, data={"callback_url": url})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.json()["callback_url"] == url
    view = client.get(f"/v1/restorations/{job_id}").json()
    assert view["webhook"] == {
        "url": url,
        "status": "waiting",
        "delivered": False,
        "attempts": 0,
        "last_error": None,
        "last_status_code": None,
        "delivered_at": None,
        "next_attempt_at": None,
    }
    # Queued (no worker here): no result.json yet, in the API's usual words.
    assert_error(client.get(f"/v1/restorations/{job_id}/result.json"), 409, "not_ready")
    assert_error(client.get(f"/v1/restorations/{'0' * 32}/result.json"), 404, "job_not_found")
    assert "webhook" not in client.post("/v1/restorations", files=scan_files).json()


def test_page_is_served_without_a_key(tmp_path: Path) -> None:
    client = TestClient(create_app(make_settings(tmp_path, api_keys=["k"])))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.js", "/static/app.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    assert_error(client.get("/static/nope.js"), 404)
    assert_error(client.get("/v1/models"), 401, "unauthorized")  # the API itself stays keyed
    assert "/v1/restorations/{job_id}/result.json" in client.get("/openapi.json").json()["paths"]
