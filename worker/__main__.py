"""``python -m worker``: a Celery worker consuming some clusters' queues.

    python -m worker                       # every queue of the current bundle (+ general)
    python -m worker --clusters 0,1        # only restore.c0 and restore.c1
    python -m worker --clusters 2 --general

``restauro worker`` runs this. Mistakes (no bundle, a bad cluster list) end with one line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from restauro.config import Settings
from restauro.errors import RestauroError
from restauro.jobs import GENERAL_QUEUE, cluster_queue
from worker.celery_app import make_celery


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", help="comma-separated cluster ids (default: all)")
    parser.add_argument("--general", action="store_true", help="also consume restore.general")
    parser.add_argument("--registry", type=Path, help="bundle registry (RESTAURO_REGISTRY)")
    parser.add_argument("--results-dir", type=Path, help="job files (RESTAURO_RESULTS_DIR)")
    parser.add_argument("--state-dir", type=Path, help="embedded broker files")
    parser.add_argument("--broker-url", help="e.g. redis://host:6379/0 (default: embedded SQLite)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--concurrency", type=int, default=1, help="child processes (default 1)")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--hostname", help="Celery node name (default restauro-<pid>@<host>)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_flags(
        registry=args.registry,
        results_dir=args.results_dir,
        state_dir=args.state_dir,
        broker_url=args.broker_url,
        device=args.device,
    )


def choose_queues(settings: Settings, clusters: str | None, general: bool) -> list[str]:
    """The queues to consume; the bundle must exist (a worker without models is useless)."""
    from restauro.registry import Registry

    registry = Registry(settings.registry)
    version = registry.current_version()
    if version is None:
        raise RestauroError(
            f"no current bundle in registry {settings.registry}: train and promote one first "
            "(restauro train ...), or pass --registry"
        )
    known = list(registry.load(version).cluster_ids)
    if clusters is None:
        return [cluster_queue(k) for k in known] + [GENERAL_QUEUE]
    try:
        wanted = [int(part) for part in clusters.split(",") if part.strip()]
    except ValueError:
        raise RestauroError(
            f"--clusters must be comma-separated integers, got {clusters!r}"
        ) from None
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise RestauroError(f"bundle {version} has clusters {known}; unknown: {unknown}")
    names = [cluster_queue(k) for k in wanted]
    if general or not names:
        names.append(GENERAL_QUEUE)
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from(args)
        names = choose_queues(settings, args.clusters, args.general)
    except RestauroError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"error: invalid setting: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    if args.concurrency < 1:
        print("error: --concurrency must be >= 1", file=sys.stderr)
        return 2
    app = make_celery(settings)
    hostname = args.hostname or f"restauro-{os.getpid()}@%h"
    print(f"restauro worker: queues {', '.join(names)}", file=sys.stderr, flush=True)
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(names),
            "--concurrency",
            str(args.concurrency),
            "--pool",
            args.pool,
            "--loglevel",
            args.loglevel,
            "--hostname",
            hostname,
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
