"""``python -m service``: serve the HTTP API, optionally with an embedded worker.

    python -m service --host 0.0.0.0 --port 8000                 # API only (workers elsewhere)
    python -m service --with-worker --registry var/registry      # one machine, no Redis needed

``restauro serve`` runs this with ``--with-worker``. The worker is a child process
(``python -m worker``, see service/supervisor.py) that stops with the server: on SIGTERM or
SIGINT (the job in flight finishes within ``shutdown_grace_s`` or goes back to the queue), when
the server fails, and (through the kernel's parent-death signal) when the server is killed. A
missing bundle is one line on stderr and exit status 2, not a server that answers 503 forever.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

import uvicorn

from restauro.cli_flags import FlagParser, add_settings_flags, settings_from_args
from restauro.errors import RestauroError
from service.supervisor import WorkerSupervisor

EXIT_NO_SERVER = 3  # the HTTP server could not start (as uvicorn.run exits)


class Shutdown(Exception):
    """SIGTERM or SIGINT arrived: unwind to ``main``'s ``finally``, which stops the worker.

    uvicorn catches these signals while it serves, shuts down gracefully, then restores the
    previous handlers and raises the signal again; without a handler of ours the default action
    would end the process right there, before the worker is stopped (the orphan of issue 12).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signum)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = FlagParser(prog="python -m service", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    add_settings_flags(parser)
    parser.add_argument("--with-worker", action="store_true", help="also run a local worker")
    parser.add_argument("--worker-concurrency", type=int, default=1)
    parser.add_argument(
        "--worker-pool",
        choices=["prefork", "solo", "threads"],
        help="default: as python -m worker chooses (threads on a GPU: --batch-jobs at once)",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def worker_args(args: argparse.Namespace) -> list[str]:
    """Flags for ``python -m worker``; every setting travels in the environment (child_env)."""
    out = ["--concurrency", str(args.worker_concurrency)]
    if args.worker_pool:
        out += ["--pool", args.worker_pool]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.worker_concurrency < 1 or args.workers < 1:
            raise RestauroError("--worker-concurrency and --workers must be >= 1")
    except RestauroError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    from restauro.registry import Registry

    if Registry(settings.registry).current_version() is None:
        print(
            f"error: no current bundle in registry {settings.registry}: train one first "
            "(restauro train ...) or pass --registry",
            file=sys.stderr,
        )
        return 2

    env = settings.child_env(dict(os.environ))
    os.environ.update(env)  # uvicorn's factory below reads these through get_settings()
    previous = {sig: signal.signal(sig, _raise_shutdown) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    worker: WorkerSupervisor | None = None
    try:
        if args.with_worker:
            worker = WorkerSupervisor(
                worker_args(args),
                env,
                grace_s=settings.shutdown_grace_s,
                on_give_up=lambda: os.kill(os.getpid(), signal.SIGTERM),
            )
            worker.start()
        options = {
            "factory": True,
            "host": args.host,
            "port": args.port,
            "workers": args.workers,
            "log_level": args.log_level,
            # Long-polling clients (?wait=) must not hold the shutdown up.
            "timeout_graceful_shutdown": max(1, round(settings.shutdown_grace_s)),
        }
        if args.workers > 1:  # uvicorn's own supervisor runs the HTTP processes
            uvicorn.run("service.main:create_app", **options)
        else:
            server = Server(uvicorn.Config("service.main:create_app", **options), worker)
            server.run()
            if not server.started:  # e.g. the port is taken; uvicorn said why
                status = EXIT_NO_SERVER
    except Shutdown:
        pass
    finally:
        for sig in previous:  # the stop below is bounded; a second Ctrl-C must not cut it short
            signal.signal(sig, signal.SIG_IGN)
        if worker is not None:
            worker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if worker is not None and worker.gave_up:
        status = 1
    return status


class Server(uvicorn.Server):
    """uvicorn's server, which also starts the worker's shutdown the moment it is told to stop,
    so that both wind down at once instead of one after the other."""

    def __init__(self, config: uvicorn.Config, worker: WorkerSupervisor | None) -> None:
        super().__init__(config)
        self.worker = worker

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.worker is not None:
            self.worker.begin_stop()
        super().handle_exit(sig, frame)


def exit_now(code: int) -> None:
    """End the process once the server and its worker have stopped, skipping the interpreter's
    teardown of torch and friends (seconds on a loaded 2-core machine, nothing to save)."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
