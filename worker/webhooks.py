"""Webhook delivery: POST a job's JSON to its ``callback_url`` when the job ends.

Design (why a delivery thread and not a Celery task): a GPU worker is one solo-pool process that
runs one job at a time. A delivery task on the same pool would hold it for a whole HTTP timeout
whenever a receiver is slow or down, delaying the next restoration; a consumer process of its own
would be one more thing every deployment must run (and forget). So each worker process keeps a
small :class:`Deliverer`: a scheduler thread and ``webhook_senders`` sender threads. The task
only *claims* the delivery (``webhook.json``, created exclusively: once per job end, whatever
redelivers or reports it twice) and hands it over; the next job starts at once. HTTP waits
release the GIL, so deliveries cost the restoration nothing measurable.

Retries: any answer but 2xx, a timeout or a refused connection is retried after 1 s, 2 s, 4 s ...
(``webhook_backoff_s`` doubled, capped at ``webhook_backoff_max_s``) until
``webhook_retry_window_s`` has passed since the first attempt; then the delivery is ``failed``.
Each attempt is recorded in ``webhook.json`` (attempts, last error, next attempt), which the job
view shows. What is not covered: a worker process that dies while a delivery waits for its next
retry takes that delivery with it (the record stays ``retrying`` with what was tried).

Redirects are followed only on the same host (and port), and the target must pass the same URL
rules; a redirect elsewhere fails the attempt without being followed.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from restauro.config import Settings
from restauro.errors import InvalidParameter, RestauroError
from restauro.jobs import TERMINAL, JobStore
from restauro.webhooks import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    JOB_HEADER,
    check_callback_url,
    retry_delay,
    same_origin_host,
    signed_headers,
)

log = logging.getLogger("restauro.webhooks")

MAX_REDIRECTS = 3
USER_AGENT = "Restauro-Webhook/0.1"


def _now() -> float:
    return round(time.time(), 3)


@dataclass(order=True)
class _Due:
    when: float
    seq: int
    delivery: Delivery = field(compare=False)


@dataclass
class Delivery:
    """One job end to deliver: the body is fixed when the job ends (every retry sends it)."""

    job_id: str
    url: str
    event: str
    body: bytes
    record: dict[str, Any]
    first_attempt: float = 0.0  # monotonic


class AttemptFailed(Exception):
    """One attempt did not get a 2xx; ``status`` is the HTTP status if there was an answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def post_once(client: httpx.Client, settings: Settings, delivery: Delivery, attempt: int) -> int:
    """POST the body once (following same-host redirects); the 2xx status, or AttemptFailed."""
    assert settings.webhook_secret
    url = delivery.url
    for _ in range(MAX_REDIRECTS + 1):
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: delivery.event,
            JOB_HEADER: delivery.job_id,
            ATTEMPT_HEADER: str(attempt),
            **signed_headers(settings.webhook_secret, delivery.body),
        }
        try:
            response = client.post(url, content=delivery.body, headers=headers)
        except httpx.TimeoutException:
            raise AttemptFailed(f"timed out after {settings.webhook_timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise AttemptFailed(f"{type(exc).__name__}: {exc}") from None
        if response.is_redirect:
            target = urljoin(url, response.headers.get("location", ""))
            if not same_origin_host(url, target):
                host = urlsplit(target).hostname
                raise AttemptFailed(
                    f"redirected ({response.status_code}) to another host ({host}): not followed",
                    response.status_code,
                )
            try:
                url = check_callback_url(target, settings.webhook_hosts, settings.webhook_secret)
            except InvalidParameter as exc:
                message = f"redirect refused: {exc.detail}"
                raise AttemptFailed(message, response.status_code) from None
            continue
        if response.is_success:
            return response.status_code
        raise AttemptFailed(f"HTTP {response.status_code}", response.status_code)
    raise AttemptFailed(f"more than {MAX_REDIRECTS} redirects", None)


class Deliverer:
    """The delivery threads of one process: a scheduler and a few senders (see module doc)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = JobStore(settings.results_dir)
        self.pid = os.getpid()
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._inflight = 0
        self._senders = ThreadPoolExecutor(
            settings.webhook_senders, thread_name_prefix="restauro-webhook"
        )
        self._local = threading.local()  # one HTTP client per sender thread
        self._scheduler = threading.Thread(
            target=self._run, name="restauro-webhook-scheduler", daemon=True
        )
        self._scheduler.start()

    # --- the task's side ------------------------------------------------------------------------
    def job_ended(self, job_id: str) -> bool:
        """Claim and schedule the delivery of this job's end; False if there is nothing to send
        (no callback URL, not ended, deleted, or already claimed)."""
        try:
            job = self.store.read_job(job_id)
        except RestauroError:
            return False
        url = job.get("callback_url")
        if not url:
            return False
        view = self.store.view(job_id)
        if view["status"] not in TERMINAL:
            return False
        view.pop("webhook", None)  # the delivery's own record is not part of what is delivered
        body = json.dumps(view, sort_keys=True).encode()
        record = {"url": url, "status": "pending", "attempts": 0, "event": _event(view)}
        if not self.store.claim_webhook(job_id, record):
            return False
        delivery = Delivery(job_id, url, _event(view), body, record, time.monotonic())
        self._schedule(delivery, time.monotonic())
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is scheduled or in flight (shutdown, tests); True if idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    # --- the threads ----------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        """This sender thread's client: connections kept alive per thread, redirects ours to
        judge (see :func:`post_once`)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=self.settings.webhook_timeout_s, follow_redirects=False)
            self._local.client = client
        return client

    def _schedule(self, delivery: Delivery, when: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Due(when, next(self._seq), delivery))
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0].when > time.monotonic():
                    timeout = self._heap[0].when - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                due = heapq.heappop(self._heap)
                self._inflight += 1
            self._senders.submit(self._attempt, due.delivery)

    def _attempt(self, delivery: Delivery) -> None:
        try:
            self._try(delivery)
        except Exception:  # a bug here must not kill the sender thread
            log.exception("webhook delivery of job %s failed unexpectedly", delivery.job_id)
        finally:
            with self._cond:
                self._inflight -= 1
                self._cond.notify_all()

    def _try(self, delivery: Delivery) -> None:
        settings, record = self.settings, delivery.record
        attempt = int(record.get("attempts", 0)) + 1
        record.update(attempts=attempt, last_attempt_at=_now())
        try:
            status = post_once(self._client(), settings, delivery, attempt)
        except AttemptFailed as exc:
            record.update(last_error=str(exc), last_status_code=exc.status)
            elapsed = time.monotonic() - delivery.first_attempt
            delay = retry_delay(attempt, settings.webhook_backoff_s, settings.webhook_backoff_max_s)
            if elapsed + delay > settings.webhook_retry_window_s:
                record.update(status="failed", next_attempt_at=None)
                log.warning(
                    "webhook for job %s to %s failed after %d attempts: %s",
                    delivery.job_id,
                    delivery.url,
                    attempt,
                    exc,
                )
                self.store.write_webhook(delivery.job_id, record)
                return
            record.update(status="retrying", next_attempt_at=round(time.time() + delay, 3))
            if self.store.write_webhook(delivery.job_id, record):  # deleted: stop retrying
                self._schedule(delivery, time.monotonic() + delay)
            return
        record.update(
            status="delivered",
            delivered_at=_now(),
            last_status_code=status,
            last_error=None,
            next_attempt_at=None,
        )
        self.store.write_webhook(delivery.job_id, record)


def _event(view: dict[str, Any]) -> str:
    return f"restoration.{view['status']}"


_deliverer: Deliverer | None = None
_lock = threading.Lock()


def process_deliverer(settings: Settings) -> Deliverer:
    """This process's deliverer, started on first use (after any fork: threads do not survive
    one, so a forked child starts its own)."""
    global _deliverer
    with _lock:
        if (
            _deliverer is None
            or _deliverer.pid != os.getpid()
            or _deliverer.settings is not settings
        ):
            _deliverer = Deliverer(settings)
        return _deliverer


def notify_job_end(settings: Settings, job_id: object) -> bool:
    """Called when a restoration task finished, whichever way: deliver its webhook if it has one.

    Cheap when there is none (one small file read); never raises into the worker.
    """
    if not isinstance(job_id, str):
        return False
    try:
        store = JobStore(settings.results_dir)
        if not store.exists(job_id) or not store.read_job(job_id).get("callback_url"):
            return False
        if not settings.webhook_secret:
            # The API accepted the URL, so its settings differ from this worker's: say so in
            # the job's view instead of failing silently.
            record = {
                "url": store.read_job(job_id)["callback_url"],
                "status": "failed",
                "attempts": 0,
                "last_error": "the worker has no RESTAURO_WEBHOOK_SECRET: not sent",
            }
            if store.status(job_id) in TERMINAL:
                store.claim_webhook(job_id, record)
            return False
        return process_deliverer(settings).job_ended(job_id)
    except Exception:
        log.exception("could not schedule the webhook of job %s", job_id)
        return False
