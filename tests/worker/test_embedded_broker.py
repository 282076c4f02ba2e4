"""Lost deliveries on the embedded broker, with kombu's real SQLite transport: a consumer process
takes jobs and dies without giving them back; the next worker to start alone puts back the
unfinished ones, once each, and removes the rest."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

from restauro.jobs import JobStore
from service.queue import JobQueue
from tests.worker.test_tasks import make_job, settings_for
from worker.embedded_broker import LOCK_NAME, reclaim, start_consuming, stop_consuming

QUEUE = "restore.c0"

# Takes N messages without acknowledging them, then dies the way SIGKILL does: no clean-up.
TAKE_AND_DIE = """
import os, sys
from kombu import Connection
conn = Connection(sys.argv[1])
queue = conn.SimpleQueue(sys.argv[2], no_ack=False)
for _ in range(int(sys.argv[3])):
    queue.get(timeout=10)
os._exit(0)  # the connection is never closed, which would put the messages back
"""


def visible_rows(broker_file: Path) -> list[int]:
    import sqlite3

    with sqlite3.connect(broker_file) as db:
        return [int(v) for (v,) in db.execute("SELECT visible FROM kombu_message ORDER BY id")]


def take_and_die(broker_url: str, count: int) -> None:
    """Run a consumer that takes ``count`` jobs and is gone without a word."""
    cmd = [sys.executable, "-c", TAKE_AND_DIE, broker_url, QUEUE, str(count)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def world(tmp_path: Path, tiny_registry: Path):
    settings = settings_for(tmp_path, tiny_registry)
    yield settings, JobStore(settings.results_dir), JobQueue(settings)
    stop_consuming()


def test_unfinished_jobs_come_back_once_and_settled_ones_go(world) -> None:
    settings, store, queue = world
    unfinished, finished, deleted = (make_job(store, settings.registry) for _ in range(3))
    store.write_state(finished, {"status": "succeeded"})
    store.delete(deleted)
    for job_id in (unfinished, finished, deleted):
        queue.submit(job_id, QUEUE)
    broker_url, _ = settings.queue_urls()
    take_and_die(broker_url, 3)
    broker_file = settings.embedded_broker_file
    assert visible_rows(broker_file) == [0, 0, 0]  # lost: nothing would ever run them

    found = start_consuming(broker_file, store)
    assert found is not None
    assert found.requeued == (unfinished,) and found.removed == 2
    assert visible_rows(broker_file) == [1]
    # The job is delivered again, to a consumer that acknowledges it this time.
    from kombu import Connection

    with Connection(broker_url) as conn:
        message = conn.SimpleQueue(QUEUE, no_ack=False).get(timeout=10)
        assert message.headers["id"] == unfinished
        message.ack()


def lose_one_job(settings, store: JobStore, queue: JobQueue) -> str:
    """An unfinished job whose only delivery went to a consumer that died."""
    job_id = make_job(store, settings.registry)
    queue.submit(job_id, QUEUE)
    take_and_die(settings.queue_urls()[0], 1)
    return job_id


def test_a_job_put_back_already_is_not_doubled(world) -> None:
    settings, store, queue = world
    job_id = lose_one_job(settings, store, queue)
    queue.submit(job_id, QUEUE)  # the copy a clean shutdown would have put back
    assert visible_rows(settings.embedded_broker_file) == [0, 1]

    found = reclaim(settings.embedded_broker_file, store)
    assert found.requeued == () and found.removed == 1
    assert visible_rows(settings.embedded_broker_file) == [1]


def test_nothing_is_touched_while_another_worker_consumes(world) -> None:
    settings, store, queue = world
    lose_one_job(settings, store, queue)
    broker_file = settings.embedded_broker_file
    with broker_file.with_name(LOCK_NAME).open("ab") as other:  # a live worker's shared lock
        fcntl.flock(other, fcntl.LOCK_SH)
        assert start_consuming(broker_file, store) is None
    assert visible_rows(settings.embedded_broker_file) == [0]


def test_no_broker_file_yet_is_nothing_to_reclaim(world, tmp_path: Path) -> None:
    _, store, _ = world
    found = reclaim(tmp_path / "absent.sqlite", store)
    assert found.requeued == () and found.removed == 0
    assert not (tmp_path / "absent.sqlite").exists()  # not created by looking
