"""Webhooks: which callback URLs are acceptable, how a delivery is signed, when to retry.

A client may name a ``callback_url`` with a restoration request. When the job ends (succeeded or
failed) Restauro POSTs the job's JSON view there (the body ``GET /v1/restorations/{id}`` would
return). This module holds the parts that are policy, not transport, so the API (which refuses a
bad URL with a 422), the worker (which sends) and a receiver written in Python (which verifies)
agree on them: the URL rules, the HMAC-SHA256 signature and the retry schedule. Sending over HTTP
lives in the worker (``worker/webhooks.py``); the core imports no HTTP client.

Signature (the scheme Stripe and GitHub receivers already know)::

    X-Restauro-Timestamp: 1763822400              # unix seconds when this attempt was sent
    X-Restauro-Signature: sha256=<hex>            # HMAC-SHA256(secret, f"{timestamp}." + body)

The timestamp is signed with the body so a captured delivery cannot be replayed later: a receiver
checks the signature with :func:`verify` and refuses timestamps older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlsplit

from restauro.errors import InvalidParameter

SIGNATURE_HEADER = "X-Restauro-Signature"
TIMESTAMP_HEADER = "X-Restauro-Timestamp"
EVENT_HEADER = "X-Restauro-Event"  # restoration.succeeded | restoration.failed
JOB_HEADER = "X-Restauro-Job"  # the job id: receivers deduplicate on it
ATTEMPT_HEADER = "X-Restauro-Attempt"  # 1, 2, ...

MAX_URL_LENGTH = 2048
SCHEMES = ("http", "https")


def host_allowed(host: str, patterns: list[str]) -> bool:
    """``host`` matches one of the allow-list's patterns.

    ``*`` allows every host; ``*.example.org`` allows example.org and its subdomains; anything
    else must equal the host (case-insensitive). An empty list allows nothing: webhooks call out
    of the deployment's network, so the operator names where they may go.
    """
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.strip().lower().rstrip(".")
        if pattern == "*":
            return True
        if pattern.startswith("*."):
            domain = pattern[2:]
            if host == domain or host.endswith("." + domain):
                return True
        elif host == pattern:
            return True
    return False


def check_url_shape(url: object) -> str:
    """An absolute http(s) URL with a host, no credentials and no fragment, or InvalidParameter.

    Holds without any settings, so a stored request (job.json) is checked again when read.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidParameter("callback_url must be a non-empty http(s) URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidParameter(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidParameter("callback_url must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidParameter(
            f"callback_url must be an http or https URL, got scheme {parts.scheme or 'none'!r}"
        )
    if not parts.hostname:
        raise InvalidParameter(f"callback_url has no host: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidParameter("callback_url must not carry credentials (user:password@)")
    if parts.fragment:
        raise InvalidParameter("callback_url must not have a #fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        raise InvalidParameter(f"callback_url has an invalid port: {url!r}") from None
    return url


def check_callback_url(url: object, allowed_hosts: list[str], secret: str | None) -> str:
    """A callback URL this deployment will call, or InvalidParameter (HTTP 422) saying why.

    Webhooks need a signing secret (an unsigned delivery could be forged by anyone who can reach
    the receiver) and a host on the allow-list (the worker calls out of the deployment's network).
    """
    url = check_url_shape(url)
    if not secret:
        raise InvalidParameter(
            "webhooks are off on this server: the operator sets RESTAURO_WEBHOOK_SECRET "
            "(and RESTAURO_WEBHOOK_HOSTS) to enable callback_url"
        )
    host = urlsplit(url).hostname or ""
    if not host_allowed(host, allowed_hosts):
        raise InvalidParameter(
            f"callback_url host {host!r} is not allowed on this server (RESTAURO_WEBHOOK_HOSTS)"
        )
    return url


def same_origin_host(a: str, b: str) -> bool:
    """Whether a redirect from ``a`` to ``b`` stays on the same host and port.

    Deliveries follow a redirect only within one host (http -> https on it included): a receiver
    moving its endpoint is fine, a redirect to somewhere else is how webhooks get abused.
    """
    pa, pb = urlsplit(a), urlsplit(b)
    default = {"http": 80, "https": 443}

    def port(p) -> int | None:
        return p.port or default.get(p.scheme.lower())

    same_port = port(pa) == port(pb) or (
        pa.port is None and pb.port is None  # http://h -> https://h: the scheme's defaults
    )
    return (pa.hostname or "").lower() == (pb.hostname or "").lower() and same_port


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``b"<timestamp>." + body``."""
    message = f"{int(timestamp)}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The timestamp and signature headers of one delivery attempt."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature_value: str | None,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent.

    Compares in constant time. ``tolerance_s`` bounds how old (or how far in the future) a
    delivery may be; 0 disables the check.
    """
    if not timestamp or not signature_value:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if tolerance_s and abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, ts, body), signature_value)


def retry_delay(attempt: int, first_s: float, max_s: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): first, 2x, 4x ... capped."""
    return min(max_s, first_s * 2 ** max(0, attempt - 1))


PENDING = ("pending", "retrying")  # a delivery still to be made; delivered / failed are final


def takeover_grace_s(every_s: float, attempt_s: float) -> float:
    """How stale a pending delivery must be before another worker takes it over.

    Two missed heartbeats (``every_s`` apart) plus the longest one attempt can take: a live
    worker beats and rewrites its record at least that often, so it is never robbed.
    """
    return 2 * every_s + attempt_s


def owner_stopped(
    record: dict[str, Any],
    written_at: float,
    owner_beat: float | None,
    now: float,
    grace_s: float,
) -> bool:
    """Whether a delivery's worker stopped: still pending, yet neither its record nor its
    owner's heartbeat has moved for ``grace_s``.

    ``written_at`` is when the record was last written (every attempt rewrites it) and the
    record's ``next_attempt_at`` when its owner meant to try again: the later of the two is when
    something should have happened. ``owner_beat`` is the owner's last heartbeat (None: none
    found, e.g. a record from before heartbeats).
    """
    if record.get("status") not in PENDING:
        return False
    if owner_beat is not None and now - owner_beat <= grace_s:
        return False
    due = max(written_at, float(record.get("next_attempt_at") or 0.0))
    return now - due > grace_s


def stopped_error(owner: str | None, window_s: float, last_error: str | None) -> str:
    """The ``last_error`` of a delivery given up because its worker stopped too long ago."""
    words = (
        f"the worker that held this delivery ({owner or 'unknown'}) stopped, and the retry "
        f"window ({window_s:g} s) was over before another worker could resume it"
    )
    return f"{words}; last attempt: {last_error}" if last_error else words
