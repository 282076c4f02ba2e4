"""Submit -> route -> queue -> real worker -> download, over real Redis and over the embedded
SQLite default, with the API served by uvicorn in its own process."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis

from restauro.images import decode_image
from tests.conftest import closed_port_url, png, square_mask, synthetic_scan
from tests.integration.harness import (
    environment,
    start_api,
    start_worker,
    stop,
    wait_for_job,
    wait_until,
)

pytestmark = pytest.mark.integration

TINY = {"candidates": "2", "steps": "3", "seed": "7"}


def files(seed: int = 0) -> dict:
    return {
        "image": ("scan.png", png(synthetic_scan(seed=seed)), "image/png"),
        "mask": ("mask.png", png(square_mask()), "image/png"),
    }


def check_restored(base: str, body: dict, seed: int = 0) -> None:
    assert body["status"] == "succeeded", body
    assert len(body["candidates"]) == 2 + 2  # 2 GAN completions, then Telea and Navier-Stokes
    original = synthetic_scan(seed=seed)
    outside = ~square_mask()
    for cand in body["candidates"]:
        response = httpx.get(f"{base}{cand['url']}", timeout=10)
        assert response.headers["content-type"] == "image/png"
        restored = decode_image(response.content).rgb
        assert restored.shape == original.shape
        assert np.array_equal(restored[outside], original[outside])
        assert not np.array_equal(restored[~outside], original[~outside])


@pytest.fixture
def redis_stack(tiny_registry: Path, redis_url: str, tmp_path: Path):
    env = environment(tiny_registry, tmp_path, redis_url)
    api, base = start_api(env, tmp_path / "api.log")
    yield env, base, tmp_path
    stop(api)
    redis.Redis.from_url(redis_url).flushdb()


def test_redis_flow_and_two_clusters_on_two_queues(redis_stack) -> None:
    env, base, tmp = redis_stack
    # Only cluster 0's worker runs first: a job forced to cluster 1 must wait in restore.c1.
    w0 = start_worker(env, tmp / "worker.log", "--clusters", "0")
    w1 = None
    try:
        job0 = httpx.post(f"{base}/v1/restorations", files=files(), data={**TINY, "cluster": "0"})
        job1 = httpx.post(f"{base}/v1/restorations", files=files(), data={**TINY, "cluster": "1"})
        assert job0.status_code == job1.status_code == 202
        body0 = wait_for_job(base, job0.json()["id"])
        check_restored(base, body0)
        assert body0["target"] == "c0" and body0["bundle_version"]
        assert httpx.get(f"{base}/v1/restorations/{job1.json()['id']}").json()["status"] == "queued"
        assert 'restauro_queue_depth{queue="restore.c1"} 1.0' in httpx.get(f"{base}/metrics").text

        w1 = start_worker(env, tmp / "worker.log", "--clusters", "1")
        body1 = wait_for_job(base, job1.json()["id"])
        check_restored(base, body1)
        assert body1["target"] == "c1"

        # Routed (no override) with ?wait: answered 200 with the result when it is quick enough.
        routed = httpx.post(f"{base}/v1/restorations?wait=60", files=files(), data=TINY, timeout=70)
        assert routed.status_code == 200, routed.text
        assert routed.json()["route"]["cluster"] in (0, 1)
        assert httpx.get(f"{base}/readyz").status_code == 200
    finally:
        stop(w0)
        if w1 is not None:
            stop(w1)


@pytest.mark.parametrize("broker", ["redis", "embedded"])
def test_worker_killed_mid_job_is_redelivered(
    tiny_registry: Path, redis_url: str, tmp_path: Path, broker: str
) -> None:
    """SIGKILL to the worker mid-job: the job comes back and runs again. Redis redelivers it
    after the visibility timeout. The embedded broker has none: the next worker puts it back
    (worker/embedded_broker.py; without it the job stayed ``running`` for ever). That one runs
    prefork, whose pool child dies with its parent and must not keep the consumer lock."""
    if broker == "redis":
        env = environment(tiny_registry, tmp_path, redis_url, RESTAURO_VISIBILITY_TIMEOUT_S="3")
        pool: tuple[str, ...] = ()
    else:
        env, pool = environment(tiny_registry, tmp_path, None), ("--pool", "prefork")
    api, base = start_api(env, tmp_path / "api.log")
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, *pool)
    try:
        data = {**TINY, "steps": "400", "cluster": "0"}
        job_id = httpx.post(f"{base}/v1/restorations", files=files(), data=data).json()["id"]

        def running() -> bool:
            return httpx.get(f"{base}/v1/restorations/{job_id}").json()["status"] == "running"

        wait_until(running, 60, worker, log)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker = start_worker(env, log, *pool)
        body = wait_for_job(base, job_id, 150, worker, log)
        check_restored(base, body)
        assert body["attempt"] >= 2
        if broker == "embedded":
            assert f"put back in the queue ({job_id})" in log.read_text()
    finally:
        stop(worker)
        stop(api)
        if broker == "redis":
            redis.Redis.from_url(redis_url).flushdb()


def test_concurrent_submissions_all_complete_once(redis_stack) -> None:
    env, base, tmp = redis_stack
    worker = start_worker(env, tmp / "worker.log")
    try:
        import concurrent.futures as cf

        def submit(i: int) -> str:
            data = {"candidates": "1", "steps": "1", "seed": str(i), "cluster": str(i % 2)}
            response = httpx.post(f"{base}/v1/restorations", files=files(), data=data, timeout=60)
            assert response.status_code == 202, response.text
            return response.json()["id"]

        with cf.ThreadPoolExecutor(50) as pool:  # 50 submissions in flight at once
            ids = list(pool.map(submit, range(50)))
        assert len(set(ids)) == 50
        for job_id in ids:
            body = wait_for_job(base, job_id, timeout=240)
            assert body["status"] == "succeeded"
            assert body["attempt"] == 1  # ran exactly once
        client = redis.Redis.from_url(env["RESTAURO_BROKER_URL"])
        assert client.llen("restore.c0") == 0 and client.llen("restore.c1") == 0
    finally:
        stop(worker)


def test_broker_down_answers_503_and_stores_nothing(tiny_registry: Path, tmp_path: Path) -> None:
    env = environment(tiny_registry, tmp_path, closed_port_url())
    api, base = start_api(env, tmp_path / "api.log")
    try:
        response = httpx.post(f"{base}/v1/restorations", files=files(), data=TINY, timeout=30)
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "service_unavailable"
        results = tmp_path / "results"
        assert not results.exists() or not any(results.iterdir())
        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 503 and "broker" in ready.json()["detail"]
    finally:
        stop(api)


def test_embedded_default_serves_with_worker(tiny_registry: Path, tmp_path: Path) -> None:
    """``python -m service --with-worker``: no Redis, same code path over SQLite."""
    import subprocess
    import sys

    from tests.conftest import free_port
    from tests.integration.harness import REPO

    env = environment(tiny_registry, tmp_path, None)
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "service", "--with-worker", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _status(f"{base}/readyz") == 200, 90, proc, log)
        job = httpx.post(f"{base}/v1/restorations", files=files(), data=TINY)
        assert job.status_code == 202, job.text
        check_restored(base, wait_for_job(base, job.json()["id"]))
    finally:
        stop(proc, signal.SIGINT)
    assert proc.returncode == 0


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0
