"""Takeover of deliveries whose worker stopped (worker/webhooks.py, "Takeover"): a record left
pending by a dead worker is resumed by a deliverer as it starts, once, signed, within the
original retry window; a live owner keeps its deliveries; racing deliverers deliver once; a
record past its window ends failed. Real HTTP to tests/receiver.py, no mocks."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from restauro.config import Settings
from restauro.jobs import WEBHOOK, JobStore, new_job_id
from restauro.request import RestorePlan, RestoreRequest
from restauro.webhooks import (
    ATTEMPT_HEADER,
    JOB_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from tests.conftest import square_mask, synthetic_scan
from tests.receiver import Receiver
from worker.webhooks import Deliverer

SECRET = "takeover-secret"
DEAD = "gone-host:4242:deadbeef"  # the owner of the records below: never beats


def settings_for(tmp_path: Path, **extra) -> Settings:
    fields = dict(
        results_dir=tmp_path / "results",
        state_dir=tmp_path / "state",
        webhook_secret=SECRET,
        webhook_hosts=["127.0.0.1"],
        webhook_timeout_s=0.5,  # longest attempt 6 s: grace 2 x 60 + 6 = 126 s
        webhook_backoff_s=0.05,
        webhook_backoff_max_s=0.2,
        webhook_retry_window_s=3600,
    )
    return Settings(**(fields | extra))


def ended_job(store: JobStore, url: str) -> str:
    """A job that failed (its state says so: no bundle needed) with a callback URL."""
    job_id = new_job_id()
    request = RestoreRequest(target=0, candidates=1, steps=1, seed=3, callback_url=url)
    plan = RestorePlan("v1", "c0", "restore.c0", request)
    store.create(job_id, synthetic_scan(), square_mask(), plan, created=0.0)
    state = {"status": "failed", "attempt": 1, "error": "internal_error", "detail": "Killed"}
    store.write_state(job_id, state)
    return job_id


def left_pending(store: JobStore, job_id: str, url: str, age_s: float, owner: str = DEAD) -> dict:
    """The record a worker leaves when it dies waiting to retry: claimed ``age_s`` ago, one
    attempt made, the next one due ``age_s / 2`` ago, and not written since."""
    now = time.time()
    record = {
        "url": url,
        "status": "retrying",
        "attempts": 1,
        "event": "restoration.failed",
        "owner": owner,
        "claimed_at": now - age_s,
        "takeovers": 0,
        "last_attempt_at": now - age_s,
        "last_error": "HTTP 503",
        "last_status_code": 503,
        "next_attempt_at": now - age_s / 2,
    }
    store.note_webhook_pending(job_id)
    assert store.claim_webhook(job_id, record)
    os.utime(store.path(job_id) / WEBHOOK, (now - age_s, now - age_s))
    return record


def test_overdue_delivery_is_resumed_once_and_signed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    store = JobStore(settings.results_dir)
    with Receiver() as receiver:
        job_id = ended_job(store, receiver.url())
        left_pending(store, job_id, receiver.url(), age_s=1000)
        deliverer = Deliverer(settings)  # its first round, as it starts, finds the record
        assert deliverer.wait_idle(30)
        (got,) = receiver.wait_for(1)
        assert verify(
            SECRET, got.body, got.headers[TIMESTAMP_HEADER], got.headers[SIGNATURE_HEADER]
        )
        assert got.headers[JOB_HEADER] == job_id
        assert got.headers[ATTEMPT_HEADER] == "2"  # the dead worker's attempt counts
        view = store.view(job_id)
        assert json.loads(got.body) == {k: v for k, v in view.items() if k != "webhook"}
        record = store.read_webhook(job_id)
        assert record["status"] == "delivered" and record["attempts"] == 2
        assert record["owner"] == deliverer.owner and record["takeovers"] == 1
        assert store.pending_webhooks() == []

        # Another worker starting later finds nothing to do.
        assert Deliverer(settings).wait_idle(30)
        time.sleep(0.2)
        assert len(receiver.received) == 1


def test_a_live_owner_keeps_its_delivery(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    store = JobStore(settings.results_dir)
    with Receiver() as receiver:
        # Recent: written 10 s ago (its owner may be mid-attempt or about to retry).
        fresh = ended_job(store, receiver.url())
        left_pending(store, fresh, receiver.url(), age_s=10)
        # Old, but its owner still beats: a worker that is only busy (its senders all held by
        # slow receivers) is not robbed.
        busy = ended_job(store, receiver.url())
        left_pending(store, busy, receiver.url(), age_s=1000, owner="busy-host:7:cafe0001")
        store.beat("busy-host:7:cafe0001")
        deliverer = Deliverer(settings)
        assert deliverer.wait_idle(30)
        assert deliverer.resume_stopped() == []
        time.sleep(0.3)
        assert receiver.received == []
        for job_id in (fresh, busy):
            record = store.read_webhook(job_id)
            assert record["status"] == "retrying" and record["takeovers"] == 0
            assert record["owner"] != deliverer.owner
        assert store.pending_webhooks() == sorted([fresh, busy])


def test_racing_deliverers_deliver_each_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    store = JobStore(settings.results_dir)
    with Receiver() as receiver:
        jobs = [ended_job(store, receiver.url()) for _ in range(6)]
        for job_id in jobs:
            left_pending(store, job_id, receiver.url(), age_s=1000)
        start = threading.Barrier(4)
        deliverers: list[Deliverer] = []

        def worker_starts() -> None:
            start.wait()
            deliverers.append(Deliverer(settings))

        threads = [threading.Thread(target=worker_starts) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(d.wait_idle(30) for d in deliverers)
        time.sleep(0.3)  # a duplicate would have arrived by now
        assert sorted(r.headers[JOB_HEADER] for r in receiver.received) == sorted(jobs)
        for job_id in jobs:
            record = store.read_webhook(job_id)
            assert record["status"] == "delivered" and record["takeovers"] == 1
        assert {store.read_webhook(j)["owner"] for j in jobs} <= {d.owner for d in deliverers}


def test_overdue_past_its_window_ends_failed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, webhook_retry_window_s=600)
    store = JobStore(settings.results_dir)
    with Receiver() as receiver:
        job_id = ended_job(store, receiver.url())
        left_pending(store, job_id, receiver.url(), age_s=1000)  # claimed 1000 s ago
        assert Deliverer(settings).wait_idle(30)
        time.sleep(0.2)
        assert receiver.received == []
    hook = store.view(job_id)["webhook"]
    assert hook["status"] == "failed" and not hook["delivered"] and hook["attempts"] == 1
    assert DEAD in hook["last_error"] and "stopped" in hook["last_error"]
    assert "600 s" in hook["last_error"] and "HTTP 503" in hook["last_error"]
    assert hook["next_attempt_at"] is None
    assert store.pending_webhooks() == []


def test_marked_but_never_claimed_is_claimed_and_delivered(tmp_path: Path) -> None:
    """A worker that died between marking a delivery and claiming it: the next one claims it."""
    settings = settings_for(tmp_path)
    store = JobStore(settings.results_dir)
    with Receiver() as receiver:
        job_id = ended_job(store, receiver.url())
        store.note_webhook_pending(job_id)
        assert Deliverer(settings).wait_idle(30)
        (got,) = receiver.wait_for(1)
        assert got.headers[ATTEMPT_HEADER] == "1"
        assert store.read_webhook(job_id)["status"] == "delivered"
        assert store.pending_webhooks() == []


def test_a_stalled_owner_lets_go_of_a_delivery_taken_from_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, webhook_backoff_s=0.5, webhook_backoff_max_s=0.5)
    store = JobStore(settings.results_dir)
    with Receiver(script=[503]) as receiver:
        job_id = ended_job(store, receiver.url())
        deliverer = Deliverer(settings)
        assert deliverer.job_ended(job_id)
        receiver.wait_for(1)  # the first attempt got 503: the next one is 0.5 s away
        time.sleep(0.1)
        record = store.read_webhook(job_id)
        assert record["status"] == "retrying" and record["owner"] == deliverer.owner
        # Meanwhile another worker took it over (as if this one had been stalled for long).
        store.write_webhook(job_id, {**record, "owner": "other:1:0000beef", "takeovers": 1})
        assert deliverer.wait_idle(30)
        time.sleep(0.2)
        assert len(receiver.received) == 1  # this deliverer did not try again
        assert store.read_webhook(job_id)["owner"] == "other:1:0000beef"
