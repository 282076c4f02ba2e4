"""The API's side of the queue: enqueue a job id, read progress, check the broker.

The API never waits on a result (no ``.get()`` in a handler): it enqueues and reads state. It is
a producer only: it sends the task by name, so it needs the broker URLs (from the settings) and the
task and queue names (``restauro.jobs``), never the worker's code.
"""

from __future__ import annotations

import contextlib
from typing import Any

from celery import Celery

from restauro.config import Settings
from restauro.jobs import TASK_NAME
from service.errors import ServiceUnavailable

PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def producer(settings: Settings) -> Celery:
    """A Celery app that only publishes jobs and reads their state, failing fast when down."""
    broker, backend = settings.queue_urls()
    app = Celery("restauro-api", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Fail fast when the broker is down: the API answers 503 instead of hanging.
        broker_connection_timeout=2,
        redis_socket_connect_timeout=2,
        redis_socket_timeout=5,
        redis_retry_on_timeout=False,
    )
    return app


class JobQueue:
    def __init__(self, settings: Settings) -> None:
        self.celery: Celery = producer(settings)

    def submit(self, job_id: str, queue: str) -> None:
        """Publish the job; any broker failure is a 503 (the caller removes the stored inputs)."""
        try:
            self.celery.send_task(
                TASK_NAME,
                args=[job_id],
                task_id=job_id,
                queue=queue,
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
        except Exception as exc:  # kombu, redis and sqlalchemy each raise their own kinds
            raise ServiceUnavailable(
                "the job queue is unreachable, nothing was stored; retry later "
                f"({type(exc).__name__})"
            ) from exc

    def progress(self, job_id: str) -> dict[str, Any] | None:
        """The worker's last PROGRESS report, or None (also when the backend is unreachable)."""
        try:
            result = self.celery.AsyncResult(job_id)
            if result.state == "PROGRESS" and isinstance(result.info, dict):
                return {k: result.info.get(k) for k in ("stage", "done", "total")}
        except Exception:  # progress is a nicety: status comes from the job files
            return None
        return None

    def forget(self, job_id: str) -> None:
        with contextlib.suppress(Exception):  # the backend may be down; files are what matter
            self.celery.AsyncResult(job_id).forget()

    def ping(self) -> None:
        """Raise ServiceUnavailable unless the broker accepts a connection now."""
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        except Exception as exc:
            raise ServiceUnavailable(f"broker unreachable: {type(exc).__name__}") from exc

    def depths(self, queues: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            channel = conn.default_channel
            for name in queues:
                try:
                    out[name] = channel.queue_declare(queue=name, passive=True).message_count
                except Exception:  # a queue nobody published to yet does not exist
                    out[name] = 0
        return out
