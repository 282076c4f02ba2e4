"""Job time limits: no job stays ``running`` forever.

A job gets ``Settings.job_time_limit_s``. Past it, the job is stopped (``SoftTimeLimitExceeded``
raised inside it) and ends ``failed`` with error ``time_limit_exceeded`` in its ``state.json``.
A job stuck where Python cannot interrupt it (a deadlock inside native code, a hung GPU call) is
killed ``job_kill_grace_s`` later together with the process that runs it, and the job ends
``failed`` the same way.

Either way the process that ran the job is replaced before the next job: an exception raised at
an arbitrary point can leave a process half-updated for good. Measured here: a soft limit that
landed while the job's first ``torch.optim.Adam`` was importing ``torch._dynamo`` left a
partially initialised module behind, and every later job in that process failed.

Who enforces what depends on the pool:

* prefork (the CPU default): Celery does both. The soft limit is a signal to the child, which
  records the failure and exits; at the hard limit the pool kills the child and, in the parent,
  calls :meth:`JobTask.on_failure` with ``TimeLimitExceeded`` (Celery >= 5.5). The pool forks a
  fresh child either way.
* solo (one process per GPU): Celery enforces neither, so :meth:`JobTask.__call__` arms them:
  ``SIGALRM`` raises the soft limit in the main thread, and a watchdog thread ends the process
  at the hard limit. The process exits (status :data:`EXIT_JOB_KILLED`) after recording the
  failure; its supervisor (``restauro serve``, systemd, Docker's restart policy) starts a new
  worker.
* threads (a GPU worker batching several jobs, worker/batching.py): no signal can reach a job in
  a pool thread, so the soft limit is cooperative: the :func:`time_limit_check` the job's
  progress calls (every z-search step) raises :class:`StoppedAtTimeLimit` once the job is past its
  limit. It lands at a known point, between steps, so the process is not replaced and the other
  jobs in it go on. The hard limit is the same watchdog as solo's: the process exits, the other
  jobs in flight were not acknowledged and are redelivered, the killed one is recorded failed.

A job whose process exited that way may come back from the broker (it was not acknowledged):
:meth:`JobTask.__call__` acknowledges it without running it again.

This module is the only place that knows about time limits; the task body (``worker/tasks.py``)
does not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from restauro.config import Settings
from restauro.jobs import JobStore

TIME_LIMIT_EXCEEDED = "time_limit_exceeded"  # the ``error`` of a job stopped by its time limit
EXIT_JOB_KILLED = 70  # a process that ran a job past its time limit, ended (EX_SOFTWARE)


def time_limit_detail(settings: Settings, killed: bool) -> str:
    """The sentence a client reads in the job's ``error.detail``."""
    limit = f"the job ran longer than its time limit of {settings.job_time_limit_s:g} s"
    if killed:
        return (
            f"{limit}, did not stop within {settings.job_kill_grace_s:g} s more and was killed "
            "with the process running it"
        )
    return f"{limit} and was stopped"


def record_time_limit(store: JobStore, job_id: str, settings: Settings, killed: bool) -> None:
    """Mark the job failed for its time limit, keeping what the worker recorded (attempt...)."""
    with contextlib.suppress(Exception):  # a job id that is not ours, a deleted job
        state = store.read_state(job_id) or {}
        store.write_state(
            job_id,
            {
                **state,
                "status": "failed",
                "error": TIME_LIMIT_EXCEEDED,
                "detail": time_limit_detail(settings, killed),
                "finished": round(time.time(), 3),
            },
        )


def failed_for_time_limit(store: JobStore, job_id: str) -> bool:
    try:
        state = store.read_state(job_id) or {}
    except Exception:  # an id that is not a job id: let the task itself report it
        return False
    return state.get("status") == "failed" and state.get("error") == TIME_LIMIT_EXCEEDED


def _raise_soft_limit(signum: int, frame: Any) -> None:
    raise SoftTimeLimitExceeded("job time limit")


class StoppedAtTimeLimit(SoftTimeLimitExceeded):
    """The soft limit raised cooperatively, at a progress report: nothing was cut off midway,
    so the process that ran the job may run the next one."""


_deadline = threading.local()  # when the job in this thread passes its soft limit (monotonic)


def time_limit_check() -> Callable[[], None]:
    """The soft limit of the job running in this thread, as a check to call from any thread.

    The check raises :class:`StoppedAtTimeLimit` once the job is past its limit; it does nothing
    where no cooperative limit is armed (prefork, solo). It is bound now, in the job's thread,
    because a job's progress may be reported from another one: the thread leading a batch
    reports every job's progress in it.
    """
    at = getattr(_deadline, "at", None)

    def check() -> None:
        if at is not None and time.monotonic() >= at:
            raise StoppedAtTimeLimit("job time limit")

    return check


@contextlib.contextmanager
def in_process_limits(settings: Settings, store: JobStore, job_id: str) -> Iterator[None]:
    """Limits around one job where the pool has none: a watchdog for the hard one; the soft one
    is SIGALRM in the main thread (solo; Python runs signal handlers there) and cooperative in
    any other (a threads pool, :func:`time_limit_check`)."""

    def kill() -> None:
        record_time_limit(store, job_id, settings, killed=True)
        print(
            f"restauro worker: job {job_id} exceeded its hard time limit "
            f"({settings.job_hard_time_limit_s:g} s); exiting so that a fresh worker takes over",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_JOB_KILLED)  # the thread that hangs cannot be stopped any other way

    watchdog = threading.Timer(settings.job_hard_time_limit_s, kill)
    watchdog.daemon = True
    watchdog.start()
    in_main = threading.current_thread() is threading.main_thread()
    previous = None
    if in_main:
        previous = signal.signal(signal.SIGALRM, _raise_soft_limit)
        signal.setitimer(signal.ITIMER_REAL, settings.job_time_limit_s)
    else:
        _deadline.at = time.monotonic() + settings.job_time_limit_s
    try:
        yield
    finally:
        watchdog.cancel()
        if in_main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        else:
            _deadline.at = None


class JobTask(Task):
    """Base class of the restoration task: time limits and how a job that hit one is recorded.

    The app's ``conf.restauro_settings`` holds the Settings; ``conf.restauro_in_process_limits``
    is true in a pool where Celery does not enforce time limits itself (solo, threads).
    """

    def _job(self, args: tuple, kwargs: dict) -> tuple[Settings, JobStore, str | None]:
        settings: Settings = self.app.conf.restauro_settings
        job_id = args[0] if args else kwargs.get("job_id")
        return settings, JobStore(settings.results_dir), job_id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        settings, store, job_id = self._job(args, kwargs)
        if isinstance(job_id, str) and failed_for_time_limit(store, job_id):
            # Redelivered after its worker was killed for it: it ended, do not run it again.
            return {"id": job_id, "status": "failed", "error": TIME_LIMIT_EXCEEDED}
        if not self.app.conf.get("restauro_in_process_limits") or not isinstance(job_id, str):
            return super().__call__(*args, **kwargs)
        with in_process_limits(settings, store, job_id):
            return super().__call__(*args, **kwargs)

    def on_failure(self, exc: Exception, task_id: str, args: tuple, kwargs: dict, einfo) -> None:
        """Runs where the failure is seen: in the job's process for the soft limit, in the pool's
        parent for a child killed at the hard limit."""
        if isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
            settings, store, job_id = self._job(tuple(args or ()), dict(kwargs or {}))
            if isinstance(job_id, str):
                killed = isinstance(exc, TimeLimitExceeded)
                record_time_limit(store, job_id, settings, killed=killed)
            cut_off = not isinstance(exc, StoppedAtTimeLimit)  # by a signal, anywhere
            if isinstance(exc, SoftTimeLimitExceeded) and cut_off and not self.request.is_eager:
                end_this_process(f"job {job_id} was stopped at its time limit")
        super().on_failure(exc, task_id, args, kwargs, einfo)


def end_this_process(why: str) -> None:
    """Leave now, so that a fresh process (a new pool child, a restarted worker) runs the next
    job. Runs only where the job ran: a pool child or a solo worker, never a pool's parent."""
    import logging

    print(f"restauro worker: {why}; this process exits and is replaced", file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_JOB_KILLED)
