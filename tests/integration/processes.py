"""``restauro serve`` as a real process tree, and what is left of one after it stopped.

The server is started as the leader of a new session, so every process it starts (its worker,
the worker's pool children) shares its session id even when it runs in a process group of its
own; after a stop, "nothing left behind" means "no live process with that session id".
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.integration.harness import REPO, wait_until


def start_serve(env: dict[str, str], log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m service --with-worker`` (what ``restauro serve`` execs), ready to answer."""
    port = free_port()
    cmd = [sys.executable, "-m", "service", "--with-worker", "--port", str(port), *args]
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _status(f"{base}/readyz") == 200, 120, proc, log)
    return proc, base


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def session_processes(session: int) -> list[str]:
    """Live (not zombie) processes of a session, as "pid command" lines."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended while we looked
            continue
        fields = text[text.rindex(")") + 2 :].split()
        state, sid = fields[0], int(fields[3])
        if sid == session and state != "Z":
            found.append(f"{stat.parent.name} {cmdline.strip()}")
    return found


def wait_until_gone(session: int, timeout: float) -> None:
    """Fail, naming the survivors, unless the session empties within ``timeout`` (a hang
    detector, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while (left := session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"still running after the server stopped: {left}"


def kill_session(session: int) -> None:
    """Clean-up after a failed test: nothing of it may outlive the test run."""
    for line in session_processes(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split()[0]), signal.SIGKILL)


SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# No 5xx; bodies and content types as the OpenAPI schema documents them.
SCHEMATHESIS_CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


def schemathesis_run(base: str, examples: int, workdir: Path) -> subprocess.CompletedProcess:
    """``schemathesis run`` against a live API, deterministically (the same cases every run).

    The command line rather than its pytest plugin, which does not support pytest 9."""
    cmd = [
        str(SCHEMATHESIS),
        "run",
        f"{base}/openapi.json",
        "--checks",
        SCHEMATHESIS_CHECKS,
        "--max-examples",
        str(examples),
        "--generation-deterministic",
        "--request-timeout",
        "60",
        "--no-color",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=workdir)
