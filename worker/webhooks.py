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
view shows.

Takeover (a worker that dies with deliveries pending): the record names its ``owner`` (one
deliverer: host, pid and a random token), each deliverer beats a heartbeat file every
``webhook_takeover_every_s`` and, on the same beat and when it starts, looks through the marks of
pending deliveries (restauro/jobs.py). One whose record is overdue (neither rewritten nor due for
:func:`restauro.webhooks.takeover_grace_s`: two beats plus the longest attempt) and whose owner
has not beaten for as long is taken over with a compare-and-swap (an exclusive lock file per
generation of the record), so of several workers one resumes it. It goes on with the attempt
count and the retry window counted from the first attempt; past the window it is ``failed``,
saying that its worker stopped. The owner checks the record's generation before each attempt
and each write, so a worker that was only stalled lets go of what was taken from it. A delivery
cut off mid-attempt may reach the receiver twice (at least once, not exactly once): receivers
deduplicate on ``X-Restauro-Job``.

Redirects are followed only on the same host (and port), and the target must pass the same URL
rules; a redirect elsewhere fails the attempt without being followed.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import secrets
import socket
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
    PENDING,
    check_callback_url,
    owner_stopped,
    retry_delay,
    same_origin_host,
    signed_headers,
    stopped_error,
    takeover_grace_s,
)

log = logging.getLogger("restauro.webhooks")

MAX_REDIRECTS = 3
USER_AGENT = "Restauro-Webhook/0.1"


def _now() -> float:
    return round(time.time(), 3)


def attempt_limit_s(settings: Settings) -> float:
    """The longest one attempt can take: connect, send and answer timeouts, for the request and
    each redirect it follows."""
    return 3 * settings.webhook_timeout_s * (MAX_REDIRECTS + 1)


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
        # A fresh token per deliverer: a restarted worker (pid 1 again in a container) is another.
        self.owner = f"{socket.gethostname()}:{self.pid}:{secrets.token_hex(4)}"
        self.grace_s = takeover_grace_s(
            settings.webhook_takeover_every_s, attempt_limit_s(settings)
        )
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._inflight = 1  # the first takeover round, run as the scheduler starts
        self._next_round = 0.0
        self._beat()
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
        record = {
            "url": url,
            "status": "pending",
            "attempts": 0,
            "event": _event(view),
            "owner": self.owner,
            "claimed_at": _now(),  # the retry window counts from here (the first attempt)
            "takeovers": 0,
        }
        self.store.note_webhook_pending(job_id)
        if not self.store.claim_webhook(job_id, record):
            return False
        delivery = Delivery(job_id, url, _event(view), _body(view), record, time.monotonic())
        self._schedule(delivery, time.monotonic())
        return True

    # --- takeover of deliveries whose worker stopped (see module doc) ---------------------------
    def resume_stopped(self) -> list[str]:
        """Take over the pending deliveries of workers that stopped; the job ids taken."""
        return [job_id for job_id in self.store.pending_webhooks() if self._take_over(job_id)]

    def _take_over(self, job_id: str) -> bool:
        """Resume (or, past its window, fail) one marked delivery if its worker stopped."""
        if not self.store.exists(job_id):
            self.store.webhook_settled(job_id)
            return False
        record = self.store.read_webhook(job_id)
        written_at = self.store.webhook_written_at(job_id)
        if record is None or written_at is None:
            # Marked, never claimed: its worker died between the two. Claimed once, as ever.
            return self.job_ended(job_id)
        if record.get("status") not in PENDING:
            self.store.webhook_settled(job_id)
            return False
        if record.get("owner") == self.owner:
            return False
        beat = self.store.last_beat(record.get("owner"))
        if not owner_stopped(record, written_at, beat, time.time(), self.grace_s):
            return False
        return self._resume(job_id, record, written_at)

    def _resume(self, job_id: str, seen: dict[str, Any], written_at: float) -> bool:
        """Swap in this deliverer as the owner, then go on within the original window."""
        window = self.settings.webhook_retry_window_s
        started = float(seen.get("claimed_at") or seen.get("last_attempt_at") or written_at)
        elapsed = max(0.0, time.time() - started)
        taken = {**seen, "owner": self.owner, "resumed_at": _now()}
        over = elapsed >= window
        if over:
            last_error = stopped_error(seen.get("owner"), window, seen.get("last_error"))
            taken.update(status="failed", next_attempt_at=None, last_error=last_error)
        written = self.store.take_over_webhook(job_id, seen, taken)
        if written is None:
            return False  # another worker won, or the owner went on after all
        log.warning(
            "webhook for job %s: its worker %s stopped; %s",
            job_id,
            seen.get("owner"),
            "retry window over, failed" if over else f"resumed by {self.owner}",
        )
        if over:
            self.store.webhook_settled(job_id)
            return True
        view = self.store.view(job_id)
        url, event = written["url"], written.get("event") or _event(view)
        delivery = Delivery(job_id, url, event, _body(view), written, time.monotonic() - elapsed)
        self._schedule(delivery, time.monotonic())
        return True

    def _still_mine(self, delivery: Delivery) -> bool:
        """Whether no other worker took this delivery over (this one was stalled, not dead):
        if one did, the delivery is its to finish. False too when the job was deleted."""
        current = self.store.read_webhook(delivery.job_id)
        if current is None:
            return False
        if current.get("takeovers") == delivery.record.get("takeovers"):
            return True
        log.warning(
            "webhook for job %s was taken over by %s: %s lets go of it",
            delivery.job_id,
            current.get("owner"),
            self.owner,
        )
        return False

    def _beat(self) -> None:
        try:
            self.store.beat(self.owner)
        except OSError:
            log.exception("could not write the webhook heartbeat of %s", self.owner)

    def _round(self) -> None:
        """One beat and one takeover round (when the deliverer starts, then every
        ``webhook_takeover_every_s``); never raises into the scheduler."""
        try:
            self._beat()
            # A day at least: far past any delivery's window, yet no live worker's beat is lost.
            self.store.forget_owners(max(86400.0, 10 * self.grace_s), time.time())
            taken = self.resume_stopped()
            if taken:
                log.info("webhooks resumed by %s: %s", self.owner, ", ".join(taken))
        except Exception:
            log.exception("webhook takeover round of %s failed", self.owner)
        finally:
            with self._cond:
                self._next_round = time.monotonic() + self.settings.webhook_takeover_every_s
                self._inflight -= 1
                self._cond.notify_all()

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
        self._round()  # counted in flight from __init__, so wait_idle() waits for it
        while True:
            due = self._next_due()
            if due is None:
                self._round()
            else:
                self._senders.submit(self._attempt, due.delivery)

    def _next_due(self) -> _Due | None:
        """Wait for the next delivery due (popped and counted in flight), or None when the next
        takeover round comes first (counted in flight too)."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._heap and self._heap[0].when <= now:
                    self._inflight += 1
                    return heapq.heappop(self._heap)
                if now >= self._next_round:
                    self._inflight += 1
                    return None
                wake = min(self._heap[0].when, self._next_round) if self._heap else self._next_round
                self._cond.wait(wake - now)

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
        if not self._still_mine(delivery):
            return
        attempt = int(record.get("attempts", 0)) + 1
        record.update(attempts=attempt, last_attempt_at=_now())
        try:
            status = post_once(self._client(), settings, delivery, attempt)
        except AttemptFailed as exc:
            if not self._still_mine(delivery):
                return
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
                self._settle(delivery, record)
                return
            record.update(status="retrying", next_attempt_at=round(time.time() + delay, 3))
            if self.store.write_webhook(delivery.job_id, record):  # deleted: stop retrying
                self._schedule(delivery, time.monotonic() + delay)
            else:
                self.store.webhook_settled(delivery.job_id)
            return
        if not self._still_mine(delivery):
            return
        record.update(
            status="delivered",
            delivered_at=_now(),
            last_status_code=status,
            last_error=None,
            next_attempt_at=None,
        )
        self._settle(delivery, record)

    def _settle(self, delivery: Delivery, record: dict[str, Any]) -> None:
        """Write the final record and drop the delivery's pending mark."""
        self.store.write_webhook(delivery.job_id, record)
        self.store.webhook_settled(delivery.job_id)


def _event(view: dict[str, Any]) -> str:
    return f"restoration.{view['status']}"


def _body(view: dict[str, Any]) -> bytes:
    """What is delivered: the job's view without the delivery's own record. The job's files do
    not change once it ended, so a worker resuming a delivery rebuilds the same body."""
    view = {k: v for k, v in view.items() if k != "webhook"}
    return json.dumps(view, sort_keys=True).encode()


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


def start_deliverer(settings: Settings) -> Deliverer | None:
    """Start this process's deliverer when the worker starts (not at its first job end), so an
    idle worker resumes deliveries that a stopped one left too. None when webhooks are off."""
    if not settings.webhook_secret:
        return None
    try:
        return process_deliverer(settings)
    except Exception:
        log.exception("could not start the webhook deliverer")
        return None


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
