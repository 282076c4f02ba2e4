"""No job hangs, no process is left behind (issue 12), with the real things: ``python -m
service --with-worker`` (what ``restauro serve`` runs) on the embedded broker, ``python -m
worker`` on Redis, uvicorn, prefork and solo pools.

* The service completes jobs with bundles of every feature kind: sift, surf, squeezenet (the
  shipped Caffe weights) and vgg16 (random weights: none can be had offline). A worker whose
  parent built a SqueezeNet bundle before forking used to hang forever in the child.
* A job over its time limit ends ``failed`` with ``time_limit_exceeded``, and the next job runs;
  a job hung inside native code is killed with its pool child, which is replaced.
* SIGTERM stops the server and its worker, the job in flight is not lost, nothing is left over.

``OMP_NUM_THREADS`` is 2 here (the harness sets 1): one thread never starts libgomp's pool, and
would hide the fork hang these tests are about.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from restauro.registry import Registry
from tests.data import squeezenet_weights, tiny_train_options
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
from tests.integration.processes import kill_session, start_serve, wait_until_gone
from tests.integration.test_service_flow import TINY, files
from worker.timeouts import EXIT_JOB_KILLED

pytestmark = pytest.mark.integration

KINDS = ("squeezenet", "sift", "surf", "vgg16")  # squeezenet first: current when the worker starts
# Generous, since a fresh pool child's first job loads the bundle (seconds on a loaded 2-core
# machine); a job killed at the hard limit gets LIMIT_S + 2 s.
LIMIT_S = 15
LIMITS = {
    "RESTAURO_JOB_TIME_LIMIT_S": str(LIMIT_S),
    "RESTAURO_JOB_KILL_GRACE_S": "2",
    **ENDLESS_ENV,
}
# Work no machine does within the limits (harness.endless), and a quick job on the same
# cluster (its nets are loaded by then: seconds even on a loaded machine).
ENDLESS = endless(cluster=0)
QUICK = {**TINY, "cluster": "0"}


def check_restored(base: str, body: dict) -> None:
    """Succeeded, with candidates to download that change the hole and nothing else (how many
    candidates a job yields is the engine's business, not this module's)."""
    import numpy as np

    from restauro.images import decode_image
    from tests.conftest import square_mask, synthetic_scan

    assert body["status"] == "succeeded", body.get("error", body)
    assert body["candidates"], body
    original, outside = synthetic_scan(), ~square_mask()
    for candidate in body["candidates"]:
        response = httpx.get(f"{base}{candidate['url']}", timeout=10)
        assert response.status_code == 200, response.text
        restored = decode_image(response.content).rgb
        assert np.array_equal(restored[outside], original[outside])


def two_threads(env: dict[str, str]) -> dict[str, str]:
    return {**env, "OMP_NUM_THREADS": "2"}


@pytest.fixture(scope="module")
def kinds_registry(
    tiny_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """One tiny bundle per feature kind in one registry (the sift one copied from the session's)."""
    import torch

    from restauro.features.cnn import VGG16Extractor
    from training.pipeline import run_training

    root = tmp_path_factory.mktemp("kinds")
    registry = root / "registry"
    source = Registry(tiny_registry)
    sift = source.current_version()
    shutil.copytree(source.path_of(sift), registry / sift)
    versions = {"sift": sift}
    torch.manual_seed(0)
    vgg16 = root / "vgg16-random.pth"
    torch.save(VGG16Extractor.build_backbone().state_dict(), vgg16)
    weights = {"squeezenet": squeezenet_weights(), "vgg16": vgg16}
    for kind in ("surf", "squeezenet", "vgg16"):
        options = tiny_train_options(
            registry, features=kind, max_images=10, weights=weights.get(kind), promote=False
        )
        versions[kind] = run_training(options).version
    Registry(registry).promote(versions["squeezenet"])
    return registry, versions


def test_worker_parent_starts_no_thread_pool_before_forking(kinds_registry, tmp_path) -> None:
    """After everything the prefork parent does (choose the queues of a SqueezeNet bundle, build
    the Celery app) it runs no more threads than importing torch starts; building the bundle,
    as it used to, starts libgomp's pool (the check can fail)."""
    registry, _ = kinds_registry
    probe = """
import os, sys
from restauro.config import Settings
from worker.__main__ import choose_queues
from worker.celery_app import make_celery
import torch
threads = lambda: len(os.listdir("/proc/self/task"))
before = threads()
settings = Settings()
choose_queues(settings, None, False)
make_celery(settings)
after = threads()
from restauro.registry import Registry
Registry(settings.registry).load()
print(before, after, threads())
"""
    env = two_threads(environment(registry, tmp_path, None))
    cmd = [sys.executable, "-c", probe]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after, loaded = map(int, done.stdout.split()[-3:])
    assert after == before
    assert loaded > before


def test_serve_restores_with_every_feature_kind_and_sigterm_loses_and_leaves_nothing(
    kinds_registry, tmp_path
) -> None:
    """Jobs of every feature kind complete. Then SIGTERM with a job in flight: the server and its
    worker stop, nothing is left running, and the job (finished within the grace, or put back in
    the queue) is completed by a server started again on the same folders."""
    registry, versions = kinds_registry
    # No grace: the worker is told to requeue its job at once (unless it has just finished it).
    env = two_threads(environment(registry, tmp_path, None, RESTAURO_SHUTDOWN_GRACE_S="0"))
    log = tmp_path / "serve.log"
    serve, base = start_serve(env, log)  # current bundle: squeezenet (the one that hung)
    again = None
    try:
        for kind in KINDS:
            Registry(registry).promote(versions[kind])  # the API routes with it from now on
            body = wait_for_job(base, submit(base, TINY), 240, serve, log)
            assert body["bundle_version"] == versions[kind], (kind, body)
            check_restored(base, body)

        job_id = submit(base, {**TINY, "steps": "100", "cluster": "0"})

        def started() -> bool:
            status = httpx.get(f"{base}/v1/restorations/{job_id}").json()["status"]
            return status in ("running", "succeeded")

        wait_until(started, 120, serve, log)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, log.read_text()[-3000:]
        wait_until_gone(serve.pid, timeout=30)

        again, base = start_serve(env, log)
        check_restored(base, wait_for_job(base, job_id, 240, again, log))
        again.send_signal(signal.SIGTERM)
        assert again.wait(timeout=60) == 0, log.read_text()[-3000:]
        wait_until_gone(again.pid, timeout=30)
    finally:
        for proc in (serve, again):
            if proc is not None:
                stop(proc)
                kill_session(proc.pid)


def start_worker(env: dict[str, str], log: Path, pool: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "worker", "--pool", pool, "--loglevel", "WARNING"]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def submit(base: str, data: dict) -> str:
    response = httpx.post(f"{base}/v1/restorations", files=files(), data=data, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def pool_children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``: a prefork worker's pool children."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def wait_running(base: str, job_id: str, worker: subprocess.Popen, log: Path) -> None:
    def running() -> bool:
        return httpx.get(f"{base}/v1/restorations/{job_id}").json()["status"] == "running"

    wait_until(running, 120, worker, log)


def time_limited(body: dict, killed: bool) -> None:
    assert body["status"] == "failed", body
    assert body["error"]["error"] == "time_limit_exceeded", body
    assert f"time limit of {LIMIT_S} s" in body["error"]["detail"], body
    assert ("killed" in body["error"]["detail"]) == killed, body


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_job_over_its_time_limit_fails_and_the_next_one_runs(
    pool: str, tiny_registry: Path, redis_url: str, tmp_path: Path
) -> None:
    """The process that ran a job past its limit is replaced before the next job (an exception
    raised anywhere can leave it half-updated, worker/timeouts.py).

    prefork: Celery stops the job at the soft limit, the child exits and the pool forks a fresh
    one; a child that cannot be stopped (here: SIGSTOPped, as a process hung in native code
    ignores the soft limit's signal) is killed at the hard limit and the job recorded failed by
    the pool's parent. solo: the worker's own SIGALRM stops the job and the worker exits (70) for
    its supervisor to start a new one, which this test plays."""
    env = two_threads(environment(tiny_registry, tmp_path, redis_url, **LIMITS))
    api, base = start_api(env, tmp_path / "api.log")
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, pool)
    try:
        if pool == "prefork":
            job_id = submit(base, ENDLESS)
            wait_running(base, job_id, worker, log)
            (child,) = pool_children(worker.pid)
            time_limited(wait_for_job(base, job_id, timeout=120), killed=False)
            wait_until(lambda: child not in pool_children(worker.pid), 60, worker, log)

            job_id = submit(base, ENDLESS)
            wait_running(base, job_id, worker, log)
            (child,) = pool_children(worker.pid)
            os.kill(child, signal.SIGSTOP)
            time_limited(wait_for_job(base, job_id, timeout=120), killed=True)
            wait_until(lambda: child not in pool_children(worker.pid), 60, worker, log)
        else:
            time_limited(wait_for_job(base, submit(base, ENDLESS), timeout=120), killed=False)
            assert worker.wait(timeout=60) == EXIT_JOB_KILLED, log.read_text()[-3000:]
            worker = start_worker(env, log, pool)
        check_restored(base, wait_for_job(base, submit(base, QUICK), timeout=120))
        assert worker.poll() is None, log.read_text()[-3000:]
    finally:
        stop(worker)
        stop(api)
        redis.Redis.from_url(redis_url).flushdb()
