"""The embedded broker's lost deliveries: jobs handed to a worker that died before giving them back.

Kombu's SQLAlchemy transport (the embedded default, a SQLite file under ``state_dir``) delivers a
message by marking its row invisible; the acknowledgement lives only in the worker's memory. A
worker that stops cleanly puts its unacknowledged job back in the queue, but one that is killed
(SIGKILL after a cold shutdown that took too long on a loaded machine, a crash, a power cut) leaves
the row invisible for ever: unlike Redis, this transport has no visibility timeout, so the job
would stay ``queued`` or ``running`` with nobody to run it.

A worker on the embedded broker therefore holds a shared lock on ``consumers.lock`` for its whole
life. One that starts and finds no other worker alive (it gets the lock exclusively) knows every
invisible row was delivered to a worker that is gone: it makes the rows of unfinished jobs visible
again (once per task id, and not when a copy is already waiting) and deletes the rows of jobs that
ended or were deleted (the transport never deletes a delivered row). With another worker alive it
leaves the rows alone: the invisible ones may be that worker's jobs in flight.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from restauro.jobs import TERMINAL, JobStore

LOCK_NAME = "consumers.lock"
MESSAGES = "kombu_message"  # kombu's default table name (we never configure another)

# Held for the process's life by the process that consumes (a prefork parent, not its children).
_held: IO[bytes] | None = None


@dataclass(frozen=True)
class Reclaimed:
    """What a start found: deliveries put back in the queue, dead rows removed."""

    requeued: tuple[str, ...] = ()
    removed: int = 0


def _delivery(payload: str) -> tuple[str | None, str | None]:
    """(task id, job id) of one kombu message row; (None, None) when it is not one of ours."""
    try:
        message = json.loads(payload)
        task_id = message["headers"]["id"]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(task_id), str(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None, None


def _settled(store: JobStore, job_id: str) -> bool:
    """True when the job needs no delivery any more: it was deleted, or it ended (a status that
    already counts a written result as succeeded)."""
    return not store.exists(job_id) or store.status(job_id) in TERMINAL


def reclaim(broker_file: Path, store: JobStore) -> Reclaimed:
    """Put back the invisible rows of unfinished jobs; delete those of settled jobs.

    Call only while no other consumer of ``broker_file`` is alive (see :func:`start_consuming`).
    """
    if not broker_file.exists():
        return Reclaimed()
    db = sqlite3.connect(broker_file, timeout=30, isolation_level=None)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if MESSAGES not in tables:
            return Reclaimed()
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute(f"SELECT id, visible, payload FROM {MESSAGES}").fetchall()
        waiting = {_delivery(payload)[0] for _, visible, payload in rows if visible}
        requeued: list[str] = []
        removed = 0
        for row_id, visible, payload in rows:
            if visible:
                continue
            task_id, job_id = _delivery(payload)
            if job_id is None or task_id in waiting or _settled(store, job_id):
                db.execute(f"DELETE FROM {MESSAGES} WHERE id = ?", (row_id,))
                removed += 1
                continue
            db.execute(f"UPDATE {MESSAGES} SET visible = 1 WHERE id = ?", (row_id,))
            waiting.add(task_id)
            requeued.append(job_id)
        db.execute("COMMIT")
        return Reclaimed(tuple(requeued), removed)
    finally:
        db.close()


def start_consuming(broker_file: Path, store: JobStore) -> Reclaimed | None:
    """Register this process as a consumer of the embedded broker (the lock lives beside its
    file), first reclaiming lost deliveries when it is the only one. Returns what was reclaimed,
    or None when another consumer is alive (nothing was touched)."""
    global _held
    broker_file.parent.mkdir(parents=True, exist_ok=True)
    handle = broker_file.with_name(LOCK_NAME).open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        found = None
    else:
        try:
            found = reclaim(broker_file, store)
        except BaseException:
            handle.close()
            raise
    # Downgrade (or wait, briefly, for a starting peer's reclaim to finish): from now on a
    # starting worker sees this one alive.
    fcntl.flock(handle, fcntl.LOCK_SH)
    _held = handle
    return found


def stop_consuming() -> None:
    """Drop this process's descriptor of the consumer lock (tests; exit does it anyway).

    Also run in every forked child: close(2), unlike LOCK_UN, leaves the parent's lock in place,
    and a pool child outliving its parent for a moment after a SIGKILL must not make the next
    worker believe a consumer is still alive (the parent is the consumer, not its children)."""
    global _held
    if _held is not None:
        with contextlib.suppress(OSError):
            _held.close()
        _held = None


os.register_at_fork(after_in_child=stop_consuming)


def describe(found: Reclaimed | None) -> str | None:
    """One line for the worker's log, or None when there is nothing to say."""
    if found is None or not (found.requeued or found.removed):
        return None
    parts: list[str] = []
    if found.requeued:
        parts.append(
            f"{len(found.requeued)} job(s) a stopped worker never finished put back in "
            f"the queue ({', '.join(found.requeued)})"
        )
    if found.removed:
        parts.append(f"{found.removed} spent delivery row(s) removed")
    return "; ".join(parts)
