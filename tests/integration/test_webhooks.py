"""Webhooks end to end: uvicorn API, a real worker process, Redis, and a receiver on 127.0.0.1.

A job that succeeds and one that fails each reach the receiver once, signed, with the JSON the
API shows for the job; a receiver that answers 503 first gets a retry; a receiver that is down
gets retries until the window closes, and its job succeeds all the same. A worker killed while
its receiver is down leaves the delivery to the next worker, which delivers it once the receiver
is back.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest
import redis

from restauro.webhooks import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    JOB_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from tests.conftest import free_port, png, square_mask, synthetic_scan
from tests.integration.harness import (
    environment,
    start_api,
    start_worker,
    stop,
    wait_for_job,
    wait_until,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

SECRET = "integration-secret"
TINY = {"candidates": "1", "steps": "2", "seed": "1", "cluster": "0"}


def files(height: int = 96, width: int = 128) -> dict:
    return {
        "image": ("scan.png", png(synthetic_scan(height, width)), "image/png"),
        "mask": ("mask.png", png(square_mask(height, width)), "image/png"),
    }


def test_deliveries_through_the_real_worker(
    tiny_registry: Path, redis_url: str, tmp_path: Path
) -> None:
    env = environment(
        tiny_registry,
        tmp_path,
        redis_url,
        RESTAURO_WEBHOOK_SECRET=SECRET,
        RESTAURO_WEBHOOK_HOSTS=json.dumps(["127.0.0.1"]),
        RESTAURO_WEBHOOK_BACKOFF_S="0.2",
        RESTAURO_WEBHOOK_RETRY_WINDOW_S="2",
    )
    api, base = start_api(env, tmp_path / "api.log")
    # The worker refuses scans over 15,000 px (the API allows them): a way to fail a job for real.
    worker = start_worker({**env, "RESTAURO_MAX_PIXELS": "15000"}, tmp_path / "worker.log")
    try:
        # Two receivers: which job ends first is up to the worker, the 503 is for /ok's first.
        with Receiver(script=[503]) as receiver, Receiver() as other:
            ok = httpx.post(
                f"{base}/v1/restorations",
                files=files(),
                data={**TINY, "callback_url": receiver.url("/ok")},
            ).json()
            bad = httpx.post(
                f"{base}/v1/restorations",
                files=files(120, 160),  # 19,200 px: over the worker's limit
                data={**TINY, "callback_url": other.url("/bad")},
            ).json()
            down = httpx.post(
                f"{base}/v1/restorations",
                files=files(),
                data={**TINY, "callback_url": f"http://127.0.0.1:{free_port()}/down"},
            ).json()
            assert wait_for_job(base, ok["id"])["status"] == "succeeded"
            assert wait_for_job(base, bad["id"])["status"] == "failed"

            def delivered(job_id: str) -> dict | None:
                hook = httpx.get(f"{base}/v1/restorations/{job_id}").json()["webhook"]
                return hook if hook["status"] in ("delivered", "failed") else None

            hook_ok = wait_until(lambda: delivered(ok["id"]), 60)
            hook_bad = wait_until(lambda: delivered(bad["id"]), 60)
            got = receiver.received + other.received
            paths = sorted(r.path for r in got)
            assert paths == ["/bad", "/ok", "/ok"], (paths, hook_ok, hook_bad)  # /ok: 503, 200

        assert hook_ok["delivered"] and hook_ok["attempts"] == 2, hook_ok
        assert hook_ok["last_status_code"] == 200 and hook_ok["last_error"] is None
        assert hook_bad["delivered"] and hook_bad["attempts"] == 1, hook_bad
        for r in got:
            assert verify(SECRET, r.body, r.headers[TIMESTAMP_HEADER], r.headers[SIGNATURE_HEADER])
            body = json.loads(r.body)
            assert body["id"] == r.headers[JOB_HEADER]
            assert r.headers[EVENT_HEADER] == f"restoration.{body['status']}"
            assert "webhook" not in body
        by_path = {r.path: json.loads(r.body) for r in got}
        view_ok = httpx.get(f"{base}/v1/restorations/{ok['id']}").json()
        assert by_path["/ok"] == {k: v for k, v in view_ok.items() if k != "webhook"}
        assert by_path["/bad"]["status"] == "failed"
        assert by_path["/bad"]["error"]["error"] == "image_too_large"

        # Down: the job is unaffected, the delivery is retried, then given up and said so.
        assert wait_for_job(base, down["id"])["status"] == "succeeded"
        hook_down = wait_until(lambda: delivered(down["id"]), 60)
        assert hook_down["status"] == "failed" and not hook_down["delivered"]
        assert hook_down["attempts"] >= 2 and "ConnectError" in hook_down["last_error"], hook_down
    finally:
        stop(worker)
        stop(api)
        redis.Redis.from_url(redis_url).flushdb()


def test_a_killed_workers_delivery_is_resumed_by_the_next_worker(
    tiny_registry: Path, redis_url: str, tmp_path: Path
) -> None:
    env = environment(
        tiny_registry,
        tmp_path,
        redis_url,
        RESTAURO_WEBHOOK_SECRET=SECRET,
        RESTAURO_WEBHOOK_HOSTS=json.dumps(["127.0.0.1"]),
        RESTAURO_WEBHOOK_TIMEOUT_S="0.5",  # the longest attempt: 6 s
        RESTAURO_WEBHOOK_BACKOFF_S="0.2",
        RESTAURO_WEBHOOK_BACKOFF_MAX_S="0.5",
        RESTAURO_WEBHOOK_RETRY_WINDOW_S="300",
        RESTAURO_WEBHOOK_TAKEOVER_EVERY_S="0.5",  # taken over after 2 x 0.5 + 6 = 7 s
    )
    api, base = start_api(env, tmp_path / "api.log")
    first = start_worker(env, tmp_path / "worker1.log")
    second = None
    port = free_port()
    try:
        job = httpx.post(
            f"{base}/v1/restorations",
            files=files(),
            data={**TINY, "callback_url": f"http://127.0.0.1:{port}/back"},
        ).json()
        assert wait_for_job(base, job["id"])["status"] == "succeeded"

        def hook() -> dict:
            return httpx.get(f"{base}/v1/restorations/{job['id']}").json()["webhook"]

        wait_until(lambda: hook()["status"] == "retrying" and hook()["attempts"] >= 2, 60)
        stop(first, signal.SIGKILL)  # mid-retry: nobody holds the delivery now
        left = hook()
        assert left["status"] == "retrying", left

        second = start_worker(env, tmp_path / "worker2.log")
        with Receiver(port=port) as receiver:
            done = wait_until(lambda: hook() if hook()["status"] != "retrying" else None, 90)
            assert done["delivered"], (done, (tmp_path / "worker2.log").read_text()[-3000:])
            (got,) = receiver.received  # once
        assert got.path == "/back" and got.headers[JOB_HEADER] == job["id"]
        assert verify(
            SECRET, got.body, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER]
        )
        assert int(got.headers[ATTEMPT_HEADER]) == left["attempts"] + 1  # the count goes on
        view = httpx.get(f"{base}/v1/restorations/{job['id']}").json()
        assert json.loads(got.body) == {k: v for k, v in view.items() if k != "webhook"}
        assert done["attempts"] == left["attempts"] + 1 and done["last_status_code"] == 200
    finally:
        if second is not None:
            stop(second)
        stop(first)
        stop(api)
        redis.Redis.from_url(redis_url).flushdb()
