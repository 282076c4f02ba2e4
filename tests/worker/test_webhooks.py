"""Webhook deliveries from the real task (in-process, tiny bundle) to a real HTTP receiver on
127.0.0.1: signed, once per job end, retried with backoff, redirects kept on one host, and never
in the way of the task itself. The full path (uvicorn API + worker process) is in
tests/integration/test_webhooks.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from restauro.config import Settings
from restauro.jobs import RESULT, TASK_NAME, JobStore, new_job_id
from restauro.registry import Registry
from restauro.request import RestorePlan, RestoreRequest
from restauro.webhooks import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    JOB_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from tests.conftest import free_port, square_mask, synthetic_scan
from tests.receiver import Receiver
from worker.celery_app import make_celery
from worker.webhooks import process_deliverer

SECRET = "test-secret"


def settings_for(tmp_path: Path, registry: Path, **extra) -> Settings:
    fields = dict(
        registry=registry,
        results_dir=tmp_path / "results",
        state_dir=tmp_path / "state",
        webhook_secret=SECRET,
        webhook_hosts=["127.0.0.1"],
        webhook_timeout_s=5,
        webhook_backoff_s=0.05,
        webhook_backoff_max_s=0.2,
        webhook_retry_window_s=30,
    )
    return Settings(**(fields | extra))


def job_with_callback(store: JobStore, registry: Path, url: str, cluster: int = 0) -> str:
    job_id = new_job_id()
    plan = RestorePlan(
        bundle_version=Registry(registry).current_version(),
        target=f"c{cluster}",
        queue=f"restore.c{cluster}",
        request=RestoreRequest(target=cluster, candidates=1, steps=1, seed=3, callback_url=url),
    )
    store.create(job_id, synthetic_scan(), square_mask(), plan, created=0.0)
    return job_id


def run(settings: Settings, job_id: str) -> dict:
    app = make_celery(settings)
    return (
        app.tasks[TASK_NAME].apply(args=[job_id], task_id=job_id).get(disable_sync_subtasks=False)
    )


def settle(settings: Settings) -> None:
    assert process_deliverer(settings).wait_idle(30)


def test_delivered_once_signed_with_the_job_view(tmp_path: Path, tiny_registry: Path) -> None:
    settings = settings_for(tmp_path, tiny_registry)
    store = JobStore(settings.results_dir)
    with Receiver() as receiver:
        job_id = job_with_callback(store, tiny_registry, receiver.url("/hooks/restauro?x=1"))
        assert run(settings, job_id)["status"] == "succeeded"
        settle(settings)
        (got,) = receiver.wait_for(1)
        assert got.path == "/hooks/restauro?x=1"
        assert verify(
            SECRET, got.body, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER]
        )
        assert got.headers[EVENT_HEADER] == "restoration.succeeded"
        assert got.headers[JOB_HEADER] == job_id and got.headers[ATTEMPT_HEADER] == "1"
        body = json.loads(got.body)
        view = store.view(job_id)
        assert body == {k: v for k, v in view.items() if k != "webhook"}  # the job's own JSON
        assert body["status"] == "succeeded" and len(body["candidates"]) >= 1
        hook = view["webhook"]
        assert hook["delivered"] and hook["status"] == "delivered" and hook["attempts"] == 1
        assert hook["last_error"] is None and hook["last_status_code"] == 200

        # A redelivered job (its result lost) runs again but its end is not delivered twice.
        (store.path(job_id) / RESULT).unlink()
        run(settings, job_id)
        settle(settings)
        assert len(receiver.received) == 1


def test_failed_job_is_delivered_as_failed(tmp_path: Path, tiny_registry: Path) -> None:
    settings = settings_for(tmp_path, tiny_registry)
    store = JobStore(settings.results_dir)
    with Receiver() as receiver:
        job_id = job_with_callback(store, tiny_registry, receiver.url(), cluster=99)
        assert run(settings, job_id)["status"] == "failed"
        settle(settings)
        (got,) = receiver.wait_for(1)
        assert got.headers[EVENT_HEADER] == "restoration.failed"
        body = json.loads(got.body)
        assert body["status"] == "failed" and body["error"]["error"] == "unknown_cluster"


def test_receiver_errors_are_retried_until_delivered(tmp_path: Path, tiny_registry: Path) -> None:
    settings = settings_for(tmp_path, tiny_registry)
    store = JobStore(settings.results_dir)
    with Receiver(script=[503, 500]) as receiver:
        job_id = job_with_callback(store, tiny_registry, receiver.url())
        run(settings, job_id)
        settle(settings)
        got = receiver.wait_for(3)
        assert [r.headers[ATTEMPT_HEADER] for r in got] == ["1", "2", "3"]
        assert len({r.body for r in got}) == 1  # the same body every time, freshly signed
        for r in got:
            assert verify(SECRET, r.body, r.headers[TIMESTAMP_HEADER], r.headers[SIGNATURE_HEADER])
        hook = store.view(job_id)["webhook"]
        assert hook["delivered"] and hook["attempts"] == 3


def test_receiver_down_gives_up_after_the_window_and_the_job_is_unaffected(
    tmp_path: Path, tiny_registry: Path
) -> None:
    settings = settings_for(tmp_path, tiny_registry, webhook_retry_window_s=0.5)
    store = JobStore(settings.results_dir)
    job_id = job_with_callback(store, tiny_registry, f"http://127.0.0.1:{free_port()}/hook")
    assert run(settings, job_id)["status"] == "succeeded"
    settle(settings)
    view = store.view(job_id)
    assert view["status"] == "succeeded"
    hook = view["webhook"]
    assert hook["status"] == "failed" and not hook["delivered"]
    assert hook["attempts"] >= 2  # 0.05 s, 0.1 s, 0.2 s ... within 0.5 s
    assert "ConnectError" in hook["last_error"]


def test_redirects_only_within_the_host(tmp_path: Path, tiny_registry: Path) -> None:
    settings = settings_for(tmp_path, tiny_registry, webhook_retry_window_s=0)
    store = JobStore(settings.results_dir)
    with Receiver(script=[("redirect", "/moved")]) as receiver:
        job_id = job_with_callback(store, tiny_registry, receiver.url("/old"))
        run(settings, job_id)
        settle(settings)
        assert [r.path for r in receiver.wait_for(2)] == ["/old", "/moved"]
        assert store.view(job_id)["webhook"]["delivered"]

    with Receiver() as other, Receiver(script=[("redirect", other.url())]) as receiver:
        # Same machine, another port: another origin, so not followed (and no retries: window 0).
        job_id = job_with_callback(store, tiny_registry, receiver.url())
        run(settings, job_id)
        settle(settings)
        hook = store.view(job_id)["webhook"]
        assert hook["status"] == "failed" and "not followed" in hook["last_error"]
        assert hook["last_status_code"] == 307
        assert other.received == []


def test_the_task_returns_while_the_receiver_still_holds_the_delivery(
    tmp_path: Path, tiny_registry: Path
) -> None:
    settings = settings_for(tmp_path, tiny_registry)
    store = JobStore(settings.results_dir)
    release = threading.Event()
    with Receiver() as receiver:
        original = receiver.server.RequestHandlerClass.do_POST

        def slow(handler) -> None:
            release.wait(30)
            original(handler)

        receiver.server.RequestHandlerClass.do_POST = slow
        job_id = job_with_callback(store, tiny_registry, receiver.url())
        try:
            assert run(settings, job_id)["status"] == "succeeded"  # returned: not blocked
            assert store.view(job_id)["webhook"]["status"] in ("pending", "retrying")
        finally:
            release.set()
        settle(settings)
        assert store.view(job_id)["webhook"]["delivered"]


def test_worker_without_secret_says_so(tmp_path: Path, tiny_registry: Path) -> None:
    settings = settings_for(tmp_path, tiny_registry, webhook_secret=None)
    store = JobStore(settings.results_dir)
    job_id = job_with_callback(store, tiny_registry, "http://127.0.0.1:9/hook")
    run(settings, job_id)
    hook = store.view(job_id)["webhook"]
    assert hook["status"] == "failed" and "RESTAURO_WEBHOOK_SECRET" in hook["last_error"]
