"""Webhook policy in the core: which callback URLs pass, the signature a receiver checks, the
retry schedule; and callback_url travelling in RestoreRequest / RestorePlan / job.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from restauro.config import Settings
from restauro.errors import InvalidParameter
from restauro.jobs import JobStore, new_job_id
from restauro.request import RestorePlan, RestoreRequest
from restauro.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_callback_url,
    host_allowed,
    retry_delay,
    same_origin_host,
    signature,
    signed_headers,
    verify,
)
from tests.conftest import square_mask, synthetic_scan

SECRET = "s3cret"


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    import hashlib
    import hmac

    body = b'{"id": "x", "status": "succeeded"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1700000000, body) == f"sha256={expected}"
    headers = signed_headers(SECRET, body, timestamp=1700000000)
    assert headers == {TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: f"sha256={expected}"}


def test_verify_accepts_the_delivery_and_refuses_any_change() -> None:
    body = b'{"status": "failed"}'
    h = signed_headers(SECRET, body, timestamp=1000)
    ts, sig = h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER]
    assert verify(SECRET, body, ts, sig, now=1010)
    assert not verify(SECRET, body + b" ", ts, sig, now=1010)  # body changed
    assert not verify("other", body, ts, sig, now=1010)  # wrong secret
    assert not verify(SECRET, body, "1001", sig, now=1010)  # timestamp changed
    assert not verify(SECRET, body, ts, sig, now=1000 + 301)  # too old: a replay
    assert verify(SECRET, body, ts, sig, tolerance_s=0, now=10**9)  # check disabled
    assert not verify(SECRET, body, None, sig) and not verify(SECRET, body, "x", sig)


def test_host_allow_list() -> None:
    assert host_allowed("hooks.museum.org", ["hooks.museum.org"])
    assert host_allowed("HOOKS.museum.org.", ["hooks.museum.org"])
    assert host_allowed("a.museum.org", ["*.museum.org"])
    assert host_allowed("museum.org", ["*.museum.org"])
    assert not host_allowed("evilmuseum.org", ["*.museum.org"])
    assert not host_allowed("museum.org.evil.com", ["*.museum.org"])
    assert host_allowed("anything", ["*"])
    assert not host_allowed("127.0.0.1", [])  # empty: nothing is allowed


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://127.0.0.1/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("http:///path", "no host"),
        ("http://user:pw@127.0.0.1/x", "credentials"),
        ("http://127.0.0.1/x#frag", "fragment"),
        ("http://127.0.0.1:99999/x", "invalid port"),
        ("http://127.0.0.1/a b", "spaces"),
        ("", "non-empty"),
        ("http://127.0.0.1/" + "a" * 3000, "longer than"),
        ("http://evil.example/hook", "not allowed"),
    ],
)
def test_bad_callback_urls_are_refused_with_a_reason(url: str, words: str) -> None:
    with pytest.raises(InvalidParameter, match=words):
        check_callback_url(url, ["127.0.0.1"], SECRET)


def test_callback_needs_a_secret() -> None:
    with pytest.raises(InvalidParameter, match="RESTAURO_WEBHOOK_SECRET"):
        check_callback_url("http://127.0.0.1/hook", ["*"], None)
    assert (
        check_callback_url(" http://127.0.0.1:8/hook ", ["*"], SECRET) == "http://127.0.0.1:8/hook"
    )


def test_redirects_stay_on_one_host() -> None:
    assert same_origin_host("http://h:8000/a", "http://h:8000/b")
    assert same_origin_host("http://h/a", "https://h/b")
    assert not same_origin_host("http://h:8000/a", "http://h:9000/a")
    assert not same_origin_host("http://127.0.0.1/a", "http://localhost/a")
    assert not same_origin_host("https://h/a", "https://h.evil.com/a")


def test_backoff_doubles_and_is_capped() -> None:
    assert [retry_delay(n, 1.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_request_plan_and_job_carry_the_callback(tmp_path: Path) -> None:
    settings = Settings(webhook_secret=SECRET, webhook_hosts=["127.0.0.1"])
    request = RestoreRequest.from_settings(settings, callback_url="http://127.0.0.1:9/h", seed=1)
    assert request.callback_url == "http://127.0.0.1:9/h"
    assert "callback_url" not in request.params()  # not a search parameter (not in result.json)
    plan = RestorePlan(
        "v1", "c0", "restore.c0", RestoreRequest(target=0, **request_fields(request))
    )
    assert RestorePlan.from_dict(plan.to_dict()) == plan

    store = JobStore(tmp_path)
    job_id = new_job_id()
    store.create(job_id, synthetic_scan(), square_mask(), plan, created=0.0)
    assert store.read_plan(job_id).request.callback_url == "http://127.0.0.1:9/h"
    view = store.view(job_id)
    assert view["webhook"]["status"] == "waiting" and view["webhook"]["attempts"] == 0
    assert store.claim_webhook(job_id, {"status": "pending", "attempts": 0})
    assert not store.claim_webhook(job_id, {"status": "pending", "attempts": 0})  # once per job
    assert store.view(job_id)["webhook"]["status"] == "pending"

    with pytest.raises(InvalidParameter, match="not allowed"):
        RestoreRequest.from_settings(settings, callback_url="http://10.0.0.1/h")
    with pytest.raises(InvalidParameter, match="http or https"):
        RestoreRequest(callback_url="gopher://127.0.0.1/h")


def request_fields(request: RestoreRequest) -> dict:
    return {**request.params(), "callback_url": request.callback_url}
