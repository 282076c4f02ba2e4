"""The restoration task: a job id in, files out.

The message carries only the job id; the inputs and parameters are in the job's folder (see
``restauro/jobs.py``). The task is idempotent: the seed is fixed in ``job.json``, so a job
redelivered after a worker died rewrites the same candidates, and a job whose ``result.json``
exists is already done. Progress goes to the result backend as task state ``PROGRESS``.

In a threads pool (a GPU worker) several jobs run at once in one process: their z-searches share
batches (worker/batching.py), and a job delivered twice (Redis hands back a job unacknowledged
for ``Settings.redelivery_timeout_s``) runs once: the second copy waits for the first and finds
its result.

When a task ends, whichever way (result, typed failure, crash, time limit), the job's webhook is
handed to this process's delivery threads (worker/webhooks.py) and the worker takes its next job.
Those threads start with the worker, to resume deliveries that a worker which stopped left.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from celery import Celery, Task, signals
from celery._state import get_current_app
from celery.exceptions import SoftTimeLimitExceeded

from restauro.config import Settings, resolve_device
from restauro.errors import RestauroError
from restauro.jobs import TASK_NAME, JobStore
from worker.batching import shared_search
from worker.model_cache import process_cache
from worker.timeouts import time_limit_check
from worker.webhooks import notify_job_end, start_deliverer

PROGRESS_EVERY_S = 0.5  # progress updates are writes to the backend: throttle them


def _now() -> float:
    return round(time.time(), 3)


_running_lock = threading.Lock()
# job id -> (its lock, deliveries of it in this process holding or waiting for the lock)
_running: dict[str, tuple[threading.Lock, int]] = {}


@contextlib.contextmanager
def once_at_a_time(job_id: str) -> Iterator[None]:
    """Hold ``job_id`` in this process: a second delivery waits here instead of restoring the
    same job beside the first (it then finds the result). It waits without acknowledging, so
    if the process dies both deliveries come back."""
    with _running_lock:
        lock, count = _running.get(job_id, (threading.Lock(), 0))
        _running[job_id] = (lock, count + 1)
    try:
        with lock:
            yield
    finally:
        with _running_lock:
            lock, count = _running[job_id]
            if count > 1:
                _running[job_id] = (lock, count - 1)
            else:
                del _running[job_id]


def run_job(task: Task, settings: Settings, job_id: str) -> dict[str, Any]:
    """Restore one job: read its plan and inputs, restore, write the candidates and result.

    Returns the small JSON kept in the result backend.
    """
    with once_at_a_time(job_id):
        return _run_job(task, settings, job_id)


def _run_job(task: Task, settings: Settings, job_id: str) -> dict[str, Any]:
    from restauro.restore import restore

    store = JobStore(settings.results_dir)
    if not store.exists(job_id):
        return {"id": job_id, "status": "deleted"}
    done = store.read_result(job_id)
    if done is not None:
        return {"id": job_id, "status": "succeeded", "candidates": len(done["candidates"])}

    chosen = store.read_plan(job_id)
    previous = store.read_state(job_id) or {}
    attempt = int(previous.get("attempt", 0)) + 1
    started = _now()
    state = {"status": "running", "attempt": attempt, "started": started, "worker": _worker()}
    store.write_state(job_id, state)

    last = [0.0]
    # Bound here, in the job's thread: a batch's leader reports this job's progress from its own.
    over_time = time_limit_check()  # a threads pool's soft limit (worker/timeouts.py); else no-op
    task_id = task.request.id

    def progress(stage: str, done_: int, total: int) -> None:
        over_time()
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and done_ < total:
            return
        last[0] = now
        meta = {"stage": stage, "done": done_, "total": total}
        task.update_state(task_id=task_id, state="PROGRESS", meta=meta)

    batching = task.app.conf.get("restauro_pool") == "threads"
    try:
        # In flight from here: another job's search waits (briefly) for this one's to join it.
        with shared_search(settings, batching) as (search, joined):
            rgb, mask = store.read_inputs(job_id, max_pixels=settings.max_pixels)
            bundle = process_cache(settings.registry).get(chosen.bundle_version)
            device = resolve_device(settings.device)
            outcome = restore(
                rgb, mask, bundle, chosen, device=device, progress=progress, search=search
            )
    except RestauroError as exc:
        # A typed error is final (a bad bundle, an unknown cluster): retrying would fail the same.
        store.write_state(
            job_id, {**state, "status": "failed", "error": exc.code, "detail": exc.detail}
        )
        return {"id": job_id, "status": "failed", "error": exc.code, "detail": exc.detail}
    except SoftTimeLimitExceeded:
        raise  # recorded as time_limit_exceeded by worker/timeouts.py (JobTask.on_failure)
    except Exception as exc:
        store.write_state(
            job_id,
            {**state, "status": "failed", "error": "internal_error", "detail": type(exc).__name__},
        )
        raise

    finished = _now()
    extra = {"started": started, "finished": finished, "attempt": attempt, "worker": _worker()}
    if joined is not None:  # how many jobs its z-searches were batched with (itself included)
        extra["search"] = joined.to_dict()
    if not store.write_result(job_id, outcome, **extra):
        return {"id": job_id, "status": "deleted"}
    store.write_state(job_id, {**state, "status": "succeeded", "finished": finished})
    return {"id": job_id, "status": "succeeded", "candidates": len(outcome.candidates)}


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def register_tasks(app: Celery) -> None:
    """Attach the task to one app (no module-level app exists to decorate at import time)."""

    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True, shared=False)
    def restore_job(self: Task, job_id: str) -> dict[str, Any]:
        return run_job(self, self.app.conf.restauro_settings, job_id)

    def job_ended(sender: Task | None = None, args: Any = None, **_: Any) -> None:
        """task_postrun (in the process that ran the job, after its failure was recorded) and
        task_failure (also in a prefork parent whose child was killed at the hard time limit).
        Both may fire for one job: the delivery is claimed once (restauro/jobs.py)."""
        if sender is None or sender.name != TASK_NAME or sender.app is not app:
            return
        job_id = args[0] if args else None
        notify_job_end(app.conf.restauro_settings, job_id)

    def worker_ready(sender: Any = None, **_: Any) -> None:
        """worker_ready, solo pool: the process that runs jobs starts its deliverer now, which
        resumes deliveries left pending by a worker that stopped. (A prefork parent starts no
        threads: it forks more children later.)"""
        if getattr(sender, "app", None) is app and app.conf.restauro_in_process_limits:
            start_deliverer(app.conf.restauro_settings)

    def pool_child_ready(**_: Any) -> None:
        """worker_process_init in a prefork child (which made this app current): the same."""
        if not app.conf.restauro_in_process_limits and get_current_app() is app:
            start_deliverer(app.conf.restauro_settings)

    # Weak references (the default) to functions the app keeps: a discarded app's receivers go
    # away with it.
    app.conf.restauro_job_ended = job_ended
    app.conf.restauro_worker_ready = (worker_ready, pool_child_ready)
    signals.task_postrun.connect(job_ended)
    signals.task_failure.connect(job_ended)
    signals.worker_ready.connect(worker_ready)
    signals.worker_process_init.connect(pool_child_ready)
