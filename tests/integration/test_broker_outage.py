"""Redis goes away and comes back: jobs accepted before the outage are not lost.

The shared Redis on 6379 must not be restarted by a test, so this one runs its own redis-server
(with an append-only file, as a production Redis for Restauro should be configured) on a free
port, takes it down while jobs wait in their queue, and brings it back before a worker starts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import IN_CI, free_port
from tests.integration.harness import environment, start_api, start_worker, stop, wait_for_job
from tests.integration.test_service_flow import TINY, check_restored, files

pytestmark = pytest.mark.integration


def start_redis(folder: Path, port: int) -> subprocess.Popen:
    cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--protected-mode",
        "no",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            if proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"], check=True)
    proc.kill()
    pytest.fail("private redis-server did not start")


def test_jobs_accepted_before_an_outage_complete_after_it(tiny_registry: Path, tmp_path: Path):
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is required for the outage test in CI")
        pytest.skip("redis-server not installed")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    server = start_redis(data, port)
    env = environment(tiny_registry, tmp_path, f"redis://127.0.0.1:{port}/0")
    api, base = start_api(env, tmp_path / "api.log")
    worker = None
    try:
        accepted = []
        for seed in range(3):
            response = httpx.post(
                f"{base}/v1/restorations", files=files(seed), data=TINY, timeout=30
            )
            assert response.status_code == 202, response.text
            accepted.append((seed, response.json()["id"]))

        stop(server)  # the outage: SIGTERM, as an orchestrator would
        down = httpx.post(f"{base}/v1/restorations", files=files(), data=TINY, timeout=30)
        assert down.status_code == 503
        assert httpx.get(f"{base}/readyz", timeout=30).status_code == 503

        server = start_redis(data, port)  # back, from its append-only file
        assert httpx.get(f"{base}/readyz", timeout=30).status_code == 200
        worker = start_worker(env, tmp_path / "worker.log")
        for seed, job_id in accepted:
            check_restored(base, wait_for_job(base, job_id), seed=seed)
    finally:
        if worker is not None:
            stop(worker)
        stop(api)
        stop(server)
