"""Job time limits where Celery does not enforce them (the solo pool of a GPU worker), and a
redelivered job that already hit its limit (worker/timeouts.py). The prefork pool's limits run
end to end in tests/integration/test_reliability.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from restauro.config import Settings
from restauro.jobs import JOB, TASK_NAME, JobStore, new_job_id
from worker.celery_app import make_celery
from worker.timeouts import (
    EXIT_JOB_KILLED,
    TIME_LIMIT_EXCEEDED,
    StoppedAtTimeLimit,
    in_process_limits,
    time_limit_check,
)

REPO = Path(__file__).resolve().parents[2]


def new_job(store: JobStore) -> str:
    """A job folder as the time limits see it: job.json exists, the worker said "running"."""
    job_id = new_job_id()
    store.path(job_id).mkdir(parents=True)
    (store.path(job_id) / JOB).write_text("{}")
    store.write_state(job_id, {"status": "running", "attempt": 1})
    return job_id


def test_the_soft_limit_stops_a_job_running_python(tmp_path: Path) -> None:
    settings = Settings(results_dir=tmp_path, job_time_limit_s=0.2, job_kill_grace_s=60)
    store = JobStore(tmp_path)
    job_id = new_job(store)
    with pytest.raises(SoftTimeLimitExceeded), in_process_limits(settings, store, job_id):
        while True:
            sum(range(1000))
    # Only the watchdog would write the state; it was cancelled with the job.
    assert store.read_state(job_id)["status"] == "running"


def test_the_watchdog_ends_a_job_that_signals_cannot_reach(tmp_path: Path) -> None:
    """SIGALRM blocked stands for a thread stuck inside native code: the soft limit never lands,
    so at the hard limit the watchdog records the failure and ends the process."""
    store = JobStore(tmp_path)
    job_id = new_job(store)
    stuck = f"""
import signal, time
from restauro.config import Settings
from restauro.jobs import JobStore
from worker.timeouts import in_process_limits
settings = Settings(results_dir={str(tmp_path)!r}, job_time_limit_s=0.2, job_kill_grace_s=0.3)
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}})
with in_process_limits(settings, JobStore(settings.results_dir), {job_id!r}):
    time.sleep(120)
"""
    done = subprocess.run(
        [sys.executable, "-c", stuck], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_JOB_KILLED, done.stderr[-2000:]
    state = store.read_state(job_id)
    assert state["status"] == "failed" and state["error"] == TIME_LIMIT_EXCEEDED
    assert "killed" in state["detail"] and state["attempt"] == 1


def test_a_redelivered_job_that_hit_its_limit_is_acknowledged_not_run(tmp_path: Path) -> None:
    settings = Settings(results_dir=tmp_path / "results", state_dir=tmp_path / "state")
    store = JobStore(settings.results_dir)
    job_id = new_job(store)
    failed = {"status": "failed", "error": TIME_LIMIT_EXCEEDED, "detail": "...", "attempt": 1}
    store.write_state(job_id, failed)
    outcome = make_celery(settings).tasks[TASK_NAME].apply(args=[job_id], task_id=job_id).get()
    assert outcome == {"id": job_id, "status": "failed", "error": TIME_LIMIT_EXCEEDED}
    assert store.read_state(job_id) == failed  # not started again: same attempt, same reason
    assert store.read_result(job_id) is None


def test_outside_the_main_thread_the_soft_limit_is_cooperative(tmp_path: Path) -> None:
    """A threads pool's job: no signal reaches it, its progress asks. The check is bound to the
    job's thread when made, so it holds wherever the job's progress is reported from (a batch's
    leader thread); code outside a job has no limit."""
    import threading
    import time

    settings = Settings(results_dir=tmp_path, job_time_limit_s=0.2, job_kill_grace_s=60)
    store = JobStore(tmp_path)
    job_id = new_job(store)
    checks: list = []
    leave = threading.Event()

    def job() -> None:
        with in_process_limits(settings, store, job_id):
            checks.append(time_limit_check())
            checks[0]()  # within its limit
            leave.wait(60)
        time_limit_check()()  # the job is over: nothing armed in this thread any more

    thread = threading.Thread(target=job)
    thread.start()
    wait = time.monotonic() + 60
    while not checks and time.monotonic() < wait:
        time.sleep(0.01)
    time.sleep(0.3)
    with pytest.raises(StoppedAtTimeLimit) as stopped:
        checks[0]()  # called from this (another) thread, as a batch's leader does
    assert isinstance(stopped.value, SoftTimeLimitExceeded)
    time_limit_check()()  # the main thread never had a limit armed
    leave.set()
    thread.join(60)
    assert store.read_state(job_id)["status"] == "running"  # the watchdog was cancelled
