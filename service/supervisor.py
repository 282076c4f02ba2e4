"""``restauro serve``'s worker: a ``python -m worker`` child that never outlives the server.

The worker is a separate program (the adapters do not import each other), started with
``--parent-pid`` so that the kernel sends it SIGTERM if the server dies without cleaning up (a
SIGKILL, a crash). It runs in its own process group, so the server decides how it stops:

1. SIGTERM: Celery's warm shutdown; the job in flight may finish (``shutdown_grace_s``);
2. SIGQUIT: cold shutdown; the unfinished job goes back to the queue (late acknowledgement);
3. SIGKILL to the whole group: whatever is still there (a job hung inside native code).

A worker that exits while the server runs (its watchdog ended it at a job's hard time limit, or
someone killed it) is started again; one that keeps failing at start stops the server, which
otherwise would accept jobs nobody runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

COLD_SHUTDOWN_S = 5.0  # after SIGQUIT, before SIGKILL
QUICK_EXIT_S = 10.0  # a worker that dies this soon after starting is failing, not working
MAX_QUICK_EXITS = 3
EXIT_USAGE = 2  # the worker refused its settings: starting it again would fail the same way


def _say(message: str) -> None:
    print(f"restauro serve: {message}", file=sys.stderr, flush=True)


class WorkerSupervisor:
    """Start, watch, restart and stop one worker process (and its pool children)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        grace_s: float,
        on_give_up: Callable[[], None],
    ) -> None:
        self.cmd = [sys.executable, "-m", "worker", *args, "--parent-pid", str(os.getpid())]
        self.env = env
        self.grace_s = grace_s
        self.on_give_up = on_give_up
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._term_sent_at: float | None = None
        self.gave_up = False
        self._lock = threading.Lock()
        # The thread that starts the worker must live as long as it: the kernel's parent-death
        # signal follows the thread that forked, not the process.
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait(timeout=30)

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.cmd, env=self.env, process_group=0)

    def _run(self) -> None:
        quick_exits = 0
        while not self._stopping.is_set():
            with self._lock:
                if self._stopping.is_set():
                    break
                self.proc = proc = self._spawn()
            self._started.set()
            began = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                break
            quick_exits = quick_exits + 1 if time.monotonic() - began < QUICK_EXIT_S else 0
            if code == EXIT_USAGE or quick_exits >= MAX_QUICK_EXITS:
                _say(f"the worker keeps failing (exit status {code}); stopping the server")
                self.gave_up = True
                self.on_give_up()
                break
            _say(f"the worker exited (status {code}); starting a new one")
            time.sleep(1.0)
        self._started.set()

    def begin_stop(self) -> None:
        """Start the warm shutdown now (does not wait): called as soon as the server is told to
        stop, so the worker and the HTTP server wind down together."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
            if proc is not None and proc.poll() is None and self._term_sent_at is None:
                self._term_sent_at = time.monotonic()
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)

    def stop(self) -> int | None:
        """Stop the worker: warm, then cold, then killed; returns its exit status."""
        self.begin_stop()
        proc = self.proc
        if proc is None:
            return None
        started = self._term_sent_at or time.monotonic()
        remaining = max(0.0, self.grace_s - (time.monotonic() - started))
        for sig, wait_s in ((signal.SIGQUIT, remaining), (signal.SIGKILL, COLD_SHUTDOWN_S)):
            try:
                proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                what = (
                    "returning any job in flight to the queue"
                    if sig == signal.SIGQUIT
                    else "killing it"
                )
                _say(f"the worker has not stopped yet; {what}")
                with contextlib.suppress(ProcessLookupError):
                    if sig == signal.SIGKILL:
                        os.killpg(proc.pid, signal.SIGKILL)
                    else:
                        proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=COLD_SHUTDOWN_S)
        # Pool children die with their parent (Celery sets their parent-death signal); anything
        # else left in the group goes now, so that nothing outlives the server.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._thread.join(timeout=5)
        return proc.returncode
