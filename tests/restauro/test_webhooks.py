"""Webhook policy in the core: which callback URLs pass, the signature a receiver checks, the
retry schedule; and callback_url travelling in RestoreRequest / RestorePlan / job.json."""

from __future__ import annotations

import threading
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
    owner_stopped,
    retry_delay,
    same_origin_host,
    signature,
    signed_headers,
    stopped_error,
    takeover_grace_s,
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


def test_a_delivery_is_taken_over_only_when_record_and_owner_are_stale() -> None:
    grace = takeover_grace_s(60, 120)
    assert grace == 240  # two heartbeats plus the longest attempt
    waiting = {"status": "retrying", "next_attempt_at": 1000.0}
    now = 1000 + grace + 1
    assert owner_stopped(waiting, 900, None, now, grace)  # overdue, no heartbeat
    assert not owner_stopped(waiting, 900, now - 10, now, grace)  # its owner still beats
    assert owner_stopped(waiting, 900, now - grace - 1, now, grace)  # it stopped beating
    assert not owner_stopped(waiting, now - 10, None, now, grace)  # just rewritten
    assert not owner_stopped({**waiting, "next_attempt_at": now}, 900, None, now, grace)
    assert not owner_stopped({**waiting, "status": "delivered"}, 0, None, now, grace)
    assert not owner_stopped({**waiting, "status": "failed"}, 0, None, now, grace)
    assert owner_stopped({"status": "pending"}, 0, None, now, grace)  # mid first attempt
    assert "worker-1" in stopped_error("worker-1", 600, "HTTP 503")
    assert stopped_error(None, 600, None).endswith("resume it")


def test_a_takeover_is_won_once(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job_id = new_job_id()
    plan = RestorePlan("v1", "c0", "restore.c0", RestoreRequest(target=0, seed=1))
    store.create(job_id, synthetic_scan(), square_mask(), plan, created=0.0)
    seen = {"status": "retrying", "attempts": 1, "takeovers": 0, "owner": "dead"}
    assert store.claim_webhook(job_id, seen)
    start, won = threading.Barrier(8), []

    def take(n: int) -> None:
        start.wait()
        written = store.take_over_webhook(job_id, seen, {**seen, "owner": f"w{n}"})
        if written is not None:
            won.append(written)

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and won[0]["takeovers"] == 1
    assert store.read_webhook(job_id) == won[0]
    # The next generation can be taken over (its owner may die too), the old one never again.
    assert store.take_over_webhook(job_id, seen, {**seen, "owner": "late"}) is None
    again = store.take_over_webhook(job_id, won[0], {**won[0], "owner": "next"})
    assert again is not None and again["takeovers"] == 2
    # A record its owner moved on since it was read is left alone.
    moved = {**again, "attempts": 2}
    store.write_webhook(job_id, moved)
    assert store.take_over_webhook(job_id, again, {**again, "owner": "x"}) is None
    assert store.take_over_webhook(job_id, moved, {**moved, "owner": "y"})["owner"] == "y"


def test_heartbeats_are_read_and_old_ones_forgotten(tmp_path: Path) -> None:
    import os
    import time

    store = JobStore(tmp_path)
    assert store.last_beat("host:1:aa") is None and store.last_beat(None) is None
    store.beat("host:1:aa")
    store.beat("host/2:bb")  # any name becomes a file name
    assert abs(store.last_beat("host:1:aa") - time.time()) < 5
    old = tmp_path / ".webhooks" / "owners" / "host_2_bb"
    os.utime(old, (0, 0))
    store.forget_owners(86400, time.time())
    assert store.last_beat("host/2:bb") is None and store.last_beat("host:1:aa") is not None
