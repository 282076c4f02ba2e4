"""``python -m worker``: a Celery worker consuming some clusters' queues.

    python -m worker                       # every queue of the current bundle (+ general)
    python -m worker --clusters 0,1        # only restore.c0 and restore.c1
    python -m worker --clusters 2 --general
    python -m worker --device cuda:1       # one worker per GPU (threads pool, jobs batched)
    python -m worker --device cuda:1 --batch-jobs 1   # one job at a time (solo pool)

``restauro worker`` runs this. Mistakes (no bundle, a bad cluster list) end with one line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys

from restauro.cli_flags import FlagParser, add_settings_flags, settings_from_args
from restauro.config import Settings
from restauro.errors import RestauroError

# The job layout, the registry and Celery are imported where they are used: ``--help`` and a
# mistyped flag answer at once instead of after importing torch.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = FlagParser(prog="python -m worker", description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", help="comma-separated cluster ids (default: all)")
    parser.add_argument("--general", action="store_true", help="also consume restore.general")
    add_settings_flags(parser)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="prefork: child processes (default 1)"
    )
    parser.add_argument(
        "--pool",
        choices=["prefork", "solo", "threads"],
        help="default: on a GPU threads (--batch-jobs at once, batched; solo when it is 1), "
        "prefork on the CPU",
    )
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--hostname", help="Celery node name (default restauro-<pid>@<host>)")
    # restauro serve's worker: stop when that process ends, however it ends (Linux).
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def choose_queues(settings: Settings, clusters: str | None, general: bool) -> list[str]:
    """The queues to consume; the bundle must exist (a worker without models is useless).

    Reads the manifest only: this process forks the pool's children, and building the bundle
    here (a SqueezeNet's ``load_state_dict``) would start torch's thread pool, which a forked
    child then waits on forever (docs/architecture.md, "Processes").
    """
    from restauro.jobs import GENERAL_QUEUE, cluster_queue
    from restauro.registry import Registry

    registry = Registry(settings.registry)
    version = registry.current_version()
    if version is None:
        raise RestauroError(
            f"no current bundle in registry {settings.registry}: train and promote one first "
            "(restauro train ...), or pass --registry"
        )
    try:
        known = [int(c["id"]) for c in registry.manifest(version)["clusters"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RestauroError(f"bundle {version}: unreadable manifest ({exc})") from None
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


def probe_device(name: str) -> str:
    """``auto`` resolved in a throwaway process: asking torch here would initialise CUDA in the
    process that forks the pool's children."""
    if name != "auto":
        return name
    code = "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RestauroError(f"cannot tell whether a GPU is present ({exc}); pass --device") from exc
    return done.stdout.strip().splitlines()[-1]


def choose_pool(pool: str | None, device: str, batch_jobs: int = 1) -> str:
    """One process per GPU, nothing forked: threads (``batch_jobs`` jobs at once, their
    z-searches batched, worker/batching.py) or solo when one job at a time is asked for.
    Prefork on the CPU: the parent holds no torch state (see :func:`choose_queues`), a child
    stuck past its hard time limit is killed and replaced, and a CPU gains little from batching
    jobs that already use every core."""
    if pool is not None:
        return pool
    if device.startswith("cuda"):
        return "threads" if batch_jobs > 1 else "solo"
    return "prefork"


def pool_concurrency(pool: str, settings: Settings, concurrency: int) -> int:
    """Jobs at once: threads run ``batch_jobs``, prefork ``--concurrency`` children, solo one."""
    return {"solo": 1, "threads": settings.batch_jobs}.get(pool, concurrency)


def exit_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM (a warm shutdown) when the parent dies, even by SIGKILL."""
    from billiard.util import set_pdeathsig

    with contextlib.suppress(OSError):  # not Linux: the parent's own shutdown is all there is
        set_pdeathsig(signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before we asked
        raise RestauroError(f"parent process {parent_pid} is gone")


def say_reclaimed(settings: Settings) -> None:
    """Embedded broker: register as a consumer, putting back the jobs of a worker that died
    (worker/embedded_broker.py). Before Celery starts consuming, and before any fork."""
    from restauro.jobs import JobStore
    from worker.embedded_broker import describe, start_consuming

    found = start_consuming(settings.embedded_broker_file, JobStore(settings.results_dir))
    line = describe(found)
    if line:
        print(f"restauro worker: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.parent_pid is not None:
            exit_with_parent(args.parent_pid)
        if args.concurrency < 1:
            raise RestauroError("--concurrency must be >= 1")
        settings = settings_from_args(args)
        names = choose_queues(settings, args.clusters, args.general)
        device = probe_device(settings.device)
    except RestauroError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    settings = settings.model_copy(update={"device": device})
    pool = choose_pool(args.pool, device, settings.batch_jobs)
    jobs = pool_concurrency(pool, settings, args.concurrency)
    if settings.broker_url and settings.redelivery_timeout_s <= settings.job_hard_time_limit_s:
        print(
            f"restauro worker: warning: visibility_timeout_s ({settings.redelivery_timeout_s}) "
            f"is not above the job time limit ({settings.job_hard_time_limit_s:g} s): Redis may "
            "hand a running job to a second worker",
            file=sys.stderr,
        )
    if settings.embedded:
        say_reclaimed(settings)
    from worker.celery_app import make_celery

    app = make_celery(settings, pool=pool)
    hostname = args.hostname or f"restauro-{os.getpid()}@%h"
    batching = f" (z-searches batched, window {settings.batch_gather_s:g} s)"
    print(
        f"restauro worker: queues {', '.join(names)}; pool {pool} x {jobs}"
        f"{batching if pool == 'threads' else ''}, device {device}, "
        f"job time limit {settings.job_time_limit_s:g} s",
        file=sys.stderr,
        flush=True,
    )
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(names),
            "--concurrency",
            str(jobs),
            "--pool",
            pool,
            "--loglevel",
            args.loglevel,
            "--hostname",
            hostname,
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


def exit_now(code: int | str | None) -> None:
    """End the process once Celery has shut down cleanly, skipping the interpreter's teardown of
    torch, scikit-learn and OpenCV (seconds on a loaded 2-core machine, and nothing to save)."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


if __name__ == "__main__":
    try:
        status: int | str | None = main()
    except SystemExit as done:  # Celery's worker_main ends by sys.exit()
        status = done.code
    exit_now(status)
