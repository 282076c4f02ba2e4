"""``python -m service``: serve the HTTP API, optionally with an embedded worker.

    python -m service --host 0.0.0.0 --port 8000                 # API only (workers elsewhere)
    python -m service --with-worker --registry var/registry      # one machine, no Redis needed

``restauro serve`` runs this with ``--with-worker``. The worker is a child process
(``python -m worker``) stopped when the server stops. A missing bundle is one line on stderr and
exit status 2, not a server that answers 503 forever.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError

from restauro.config import Settings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--registry", type=Path, help="bundle registry (RESTAURO_REGISTRY)")
    parser.add_argument("--results-dir", type=Path, help="job files (RESTAURO_RESULTS_DIR)")
    parser.add_argument("--state-dir", type=Path, help="embedded broker files")
    parser.add_argument("--broker-url", help="e.g. redis://host:6379/0 (default: embedded SQLite)")
    parser.add_argument("--with-worker", action="store_true", help="also run a local worker")
    parser.add_argument("--worker-concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_flags(
        registry=args.registry,
        results_dir=args.results_dir,
        state_dir=args.state_dir,
        broker_url=args.broker_url,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"error: invalid setting: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    from restauro.registry import Registry

    if Registry(settings.registry).current_version() is None:
        print(
            f"error: no current bundle in registry {settings.registry}: train one first "
            "(restauro train ...) or pass --registry",
            file=sys.stderr,
        )
        return 2

    import uvicorn

    env = settings.child_env(dict(os.environ))
    os.environ.update(env)  # uvicorn's factory below reads these through get_settings()
    worker: subprocess.Popen[bytes] | None = None
    if args.with_worker:
        cmd = [sys.executable, "-m", "worker", "--concurrency", str(args.worker_concurrency)]
        worker = subprocess.Popen(cmd, env=env)
    try:
        uvicorn.run(
            "service.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(
                signal.SIGTERM
            )  # warm shutdown: the running job finishes or requeues
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
