"""The Celery application, built from Settings (never at import time).

Two set-ups share this one code path:

* cluster: ``RESTAURO_BROKER_URL=redis://...`` (results in the same Redis unless
  ``RESTAURO_RESULT_BACKEND`` says otherwise);
* embedded default: no broker URL -> kombu's SQLAlchemy transport on a SQLite file and a SQLite
  result backend under ``state_dir``, so one machine runs the API and a worker with nothing else
  installed.

Reliability settings follow the Celery guide for long GPU jobs: a job is acknowledged only after it
ran (``task_acks_late``), a worker reserves one job per child or thread (prefetch 1), a worker
killed mid-job puts its job back (``task_reject_on_worker_lost``), and Redis redelivers an
unacknowledged job after ``Settings.redelivery_timeout_s`` (the hard time limit plus 5 minutes
unless set), which must exceed the longest job. A threads pool (a GPU worker) reserves as many
jobs as it has threads and acknowledges each after it ran: a worker killed with several jobs in
flight puts them all back.

Every job has a time limit (``job_time_limit_s``, then ``job_kill_grace_s`` until it is killed):
worker/timeouts.py explains who enforces it in which pool and how a job that hit it ends.
"""

from __future__ import annotations

from celery import Celery

from restauro.config import Settings
from restauro.jobs import GENERAL_QUEUE


def make_celery(settings: Settings, pool: str = "prefork") -> Celery:
    """A configured Celery app with the restoration task registered.

    ``pool``: the pool that will run jobs. Solo and threads run them in this process and do not
    enforce time limits, so the task arms them itself (worker/timeouts.py); threads also batch
    the z-searches of the jobs they run at once (worker/batching.py).
    """
    broker, backend = settings.queue_urls()
    if broker.startswith("sqla+"):
        # The default polling interval (1 s) makes every round trip ~1 s. It must be a class
        # attribute: passing it in broker_transport_options crashes create_engine().
        from kombu.transport import sqlalchemy as kombu_sqla

        kombu_sqla.Transport.polling_interval = 0.1

    app = Celery(
        "restauro",
        broker=broker,
        backend=backend,
        set_as_current=False,
        task_cls="worker.timeouts:JobTask",
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_extended=False,
        # No default queue: every job names its cluster's queue explicitly.
        task_default_queue=GENERAL_QUEUE,
        task_create_missing_queues=True,
        # Fail fast when the broker is down: the API answers 503 instead of hanging.
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        redis_socket_connect_timeout=2,
        redis_socket_timeout=5,
        redis_retry_on_timeout=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        result_expires=7 * 24 * 3600,
        # No job runs forever (prefork enforces these; solo: worker/timeouts.py). A job stopped
        # or killed at its limit is failed and acknowledged, never redelivered.
        task_soft_time_limit=settings.job_time_limit_s,
        task_time_limit=settings.job_hard_time_limit_s,
        task_acks_on_failure_or_timeout=True,
    )
    if not broker.startswith("sqla+"):
        # Redis redelivers a job unacknowledged for this long. (The SQLAlchemy transport hands
        # every transport option to create_engine(), which rejects them; it has no such timeout.)
        # unacked_restore_throttle=1: every 10 s scan (not every 100 s) for jobs to redeliver.
        app.conf.broker_transport_options = {
            "visibility_timeout": settings.redelivery_timeout_s,
            "unacked_restore_throttle": 1,
        }
        app.conf.result_backend_transport_options = {
            "visibility_timeout": settings.redelivery_timeout_s
        }
    app.conf.restauro_settings = settings
    app.conf.restauro_pool = pool
    app.conf.restauro_in_process_limits = pool != "prefork"

    from worker.tasks import register_tasks

    register_tasks(app)
    return app
