"""A GPU worker's cross-request batching, with the real things: uvicorn serving the API, Redis,
``python -m worker --pool threads`` (what a GPU worker runs by default) on the CPU here.

* Jobs on one cluster restored at once share z-search batches, and every candidate equals what
  ``restore()`` gives the same job alone (to one grey level: a batched matrix product may sum in
  another order).
* acks-late with several jobs in flight: SIGKILL the worker, start another, and every job ends
  succeeded once, none left running or queued.
* The threads pool's soft time limit is cooperative: the job past it fails with
  ``time_limit_exceeded`` while another job in the same process succeeds, and the process goes on.

Timeouts here only detect hangs; nothing asserts how fast anything is.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from restauro.images import read_image
from restauro.jobs import JobStore, candidate_name
from tests.integration.harness import (
    ENDLESS_ENV,
    REPO,
    endless,
    environment,
    start_api,
    stop,
    wait_for_job,
    wait_until,
)
from tests.integration.test_service_flow import TINY, files

pytestmark = pytest.mark.integration

HANG = 300  # seconds: only a stuck worker gets anywhere near it


def start_threads_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "worker", "--pool", "threads", "--loglevel", "INFO"]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def submit(base: str, data: dict, seed: int = 0) -> str:
    response = httpx.post(f"{base}/v1/restorations", files=files(seed), data=data, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture
def stack(tiny_registry: Path, redis_url: str, tmp_path: Path):
    """(env for a worker, API base URL, job store, extra env) with the API running on Redis."""

    def make(**extra: str) -> tuple[dict[str, str], str, JobStore]:
        env = environment(tiny_registry, tmp_path, redis_url, **extra)
        api, base = start_api(env, tmp_path / "api.log")
        started.append(api)
        return env, base, JobStore(tmp_path / "results")

    started: list[subprocess.Popen] = []
    yield make
    for proc in started:
        stop(proc)
    redis.Redis.from_url(redis_url).flushdb()


def test_jobs_on_one_cluster_share_batches_and_get_their_unbatched_pixels(
    stack, tiny_registry: Path, tmp_path: Path
) -> None:
    """Four jobs (each its own scan and seed) wait in the queue when a worker with four threads
    starts: at least one batch holds several of them, and each job's candidates are those of a
    direct restore() of that job. The gathering window is far longer than the test: a batch
    closes because every job in flight reached its search, not because time ran out."""
    from restauro.registry import Registry
    from restauro.restore import restore

    env, base, store = stack(RESTAURO_BATCH_JOBS="4", RESTAURO_BATCH_GATHER_S=str(HANG))
    data = {"candidates": "2", "steps": "20", "cluster": "0"}
    ids = [submit(base, {**data, "seed": str(10 + i)}, seed=i) for i in range(4)]
    log = tmp_path / "worker.log"
    worker = start_threads_worker(env, log)
    try:
        bodies = [wait_for_job(base, job_id, timeout=HANG) for job_id in ids]
        assert [b["status"] for b in bodies] == ["succeeded"] * 4, bodies
        results = [store.read_result(job_id) for job_id in ids]
        met = [r["search"]["batched_requests"] for r in results]
        assert max(met) > 1, (met, log.read_text()[-3000:])
        assert "z-search batch on c0: " in log.read_text()
        assert len({r["worker"] for r in results}) == 1  # one process restored them all

        bundle = Registry(tiny_registry).load(results[0]["bundle_version"])
        for job_id, result in zip(ids, results, strict=True):
            rgb, mask = store.read_inputs(job_id, max_pixels=10**8)
            alone = restore(rgb, mask, bundle, store.read_plan(job_id), device="cpu")
            assert len(alone.candidates) == len(result["candidates"])
            for n, expected in enumerate(alone.candidates, start=1):
                got = read_image(store.file(job_id, candidate_name(n))).rgb
                diff = np.abs(got.astype(int) - expected.astype(int))
                # The batched search equals the lone one to float precision (tests/restauro/
                # inpaint/test_zopt.py); the product's generator fine-tuning then runs 100 Adam
                # steps from it, which turns that into a level or two on a few hole pixels.
                # Another job's pixels would differ by tens of levels across the hole.
                assert diff[~mask].max() == 0, (job_id, n)
                assert diff.max() <= 4 and diff[mask].mean() < 0.5, (job_id, n, diff.max())
    finally:
        stop(worker)


def test_a_threads_worker_killed_with_jobs_in_flight_loses_none(stack, tmp_path: Path) -> None:
    """acks-late: the jobs a worker had reserved or was running come back after Redis's
    visibility timeout (3 s here), and a fresh worker completes each once. The timeout is
    shorter than a job, so Redis also hands running jobs out again: the copy waits for the
    running one and finds its result (worker/tasks.py), so no job runs more than once again."""
    env, base, store = stack(RESTAURO_BATCH_JOBS="4", RESTAURO_VISIBILITY_TIMEOUT_S="3")
    log = tmp_path / "worker.log"
    data = {"candidates": "2", "steps": "300", "cluster": "0"}
    ids = [submit(base, {**data, "seed": str(i)}, seed=i) for i in range(6)]
    worker = start_threads_worker(env, log)
    try:

        def running() -> list[str]:
            states = {job_id: store.read_state(job_id) or {} for job_id in ids}
            return [j for j, s in states.items() if s.get("status") == "running"]

        wait_until(running, HANG, worker, log)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker = start_threads_worker(env, log)

        bodies = [wait_for_job(base, job_id, timeout=HANG) for job_id in ids]
        assert [b["status"] for b in bodies] == ["succeeded"] * 6, bodies
        attempts = [store.read_result(job_id)["attempt"] for job_id in ids]
        assert max(attempts) == 2, attempts  # the killed ones ran again, once
        assert all(store.read_state(job_id)["status"] == "succeeded" for job_id in ids)

        client = redis.Redis.from_url(env["RESTAURO_BROKER_URL"])
        # Copies handed out again are acknowledged once they find their job done.
        wait_until(lambda: client.llen("restore.c0") == 0 and client.hlen("unacked") == 0, HANG)
        assert [store.read_result(job_id)["attempt"] for job_id in ids] == attempts
        assert worker.poll() is None, log.read_text()[-3000:]
    finally:
        stop(worker)


def test_the_soft_limit_stops_one_job_and_the_process_goes_on(stack, tmp_path: Path) -> None:
    """Work no machine does within the limit (harness.endless), on cluster 1, beside a quick
    job on cluster 0 in the same process: the first ends failed (stopped, not killed: the hard
    limit is far off), the quick one succeeds, and the same process takes the next job."""
    limit = 15
    env, base, store = stack(
        RESTAURO_BATCH_JOBS="2",
        RESTAURO_JOB_TIME_LIMIT_S=str(limit),
        RESTAURO_JOB_KILL_GRACE_S="60",
        **ENDLESS_ENV,
    )
    log = tmp_path / "worker.log"
    worker = start_threads_worker(env, log)
    quick = {**TINY, "cluster": "0"}
    try:
        warm = wait_for_job(base, submit(base, quick), timeout=HANG)  # the bundle is loaded
        assert warm["status"] == "succeeded", warm
        endless_job = submit(base, endless(cluster=1))
        beside = submit(base, quick, seed=1)

        ended = wait_for_job(base, endless_job, timeout=HANG)
        assert ended["status"] == "failed", ended
        assert ended["error"]["error"] == "time_limit_exceeded", ended
        assert f"time limit of {limit} s and was stopped" in ended["error"]["detail"], ended
        assert wait_for_job(base, beside, timeout=HANG)["status"] == "succeeded"

        after = wait_for_job(base, submit(base, quick, seed=2), timeout=HANG)
        assert after["status"] == "succeeded", after
        assert worker.poll() is None, log.read_text()[-3000:]
        ran = {store.read_state(endless_job)["worker"]} | {
            store.read_result(job_id)["worker"] for job_id in (beside, after["id"])
        }
        assert ran == {store.read_result(beside)["worker"]}  # one process did all three
        assert ran.pop().endswith(f":{worker.pid}")
    finally:
        stop(worker)
