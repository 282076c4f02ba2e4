"""Real processes for integration tests: uvicorn serving the API, ``python -m worker``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]

# Work that no machine finishes within a test's time limit, whatever its speed: ten million
# z-search steps, with the deployment's cap on steps raised to allow them (ENDLESS_ENV, for the
# API that checks the request and the worker alike). The tests once asked for 64 candidates x
# 5000 steps, "far more than any CPU does in 15 s"; a faster CI machine did it, pruning having
# cut the 64 to a few, and a time-limit test saw its job succeed.
ENDLESS_STEPS = 10_000_000
ENDLESS_ENV = {"RESTAURO_MAX_STEPS": str(ENDLESS_STEPS)}


def endless(cluster: int) -> dict[str, str]:
    """Form fields of a restoration that runs until its time limit stops it."""
    return {"candidates": "64", "steps": str(ENDLESS_STEPS), "seed": "1", "cluster": str(cluster)}


def environment(registry: Path, root: Path, broker_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTAURO_")}
    env.update(
        RESTAURO_REGISTRY=str(registry),
        RESTAURO_RESULTS_DIR=str(root / "results"),
        RESTAURO_STATE_DIR=str(root / "state"),
        RESTAURO_DEVICE="cpu",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(REPO),
        **extra,
    )
    if broker_url:
        env["RESTAURO_BROKER_URL"] = broker_url
    return env


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "service.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _alive(base), 60, proc, log)
    return proc, base


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "worker", "--pool", "solo", "--loglevel", "WARNING", *args]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _alive(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(
    check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited: {log.read_text()[-3000:] if log else ''}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s: {log.read_text()[-3000:] if log else ''}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_job(
    base: str,
    job_id: str,
    timeout: float = 120,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> dict:
    """The job's body once it has finished; on a timeout the error shows its last status and,
    given ``log``, the tail of the server's log (a job that never finishes must be diagnosable)."""
    last: dict = {}

    def done() -> dict | None:
        body = httpx.get(f"{base}/v1/restorations/{job_id}", timeout=5).json()
        last.update(body)
        return body if body["status"] in ("succeeded", "failed") else None

    try:
        return wait_until(done, timeout, proc, log)
    except AssertionError as exc:
        raise AssertionError(f"job {job_id} last seen {last.get('status')!r}: {exc}") from None
