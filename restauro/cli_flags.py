"""The settings flags that ``python -m service`` and ``python -m worker`` share.

Both entry points take the same locations, broker, device and job limits, and both turn them into
one :class:`~restauro.config.Settings` the same way (environment first, then the flags actually
given). The adapters must not import each other, so the flag set lives here in the core; it needs
only ``argparse``, no web or queue framework.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from restauro.config import Settings, check_device
from restauro.errors import InvalidParameter

# Flag destinations, each the name of the Settings field it overrides.
SETTINGS_FLAGS = (
    "registry",
    "results_dir",
    "state_dir",
    "broker_url",
    "device",
    "job_time_limit_s",
    "job_kill_grace_s",
    "shutdown_grace_s",
    "batch_jobs",
    "batch_gather_s",
)


class FlagParser(argparse.ArgumentParser):
    """argparse, with a mistake reported as one ``error:`` line (exit status 2), as everywhere
    else in Restauro, instead of the usage block followed by the message."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (--help lists the flags)\n")


def _device(text: str) -> str:
    try:
        return check_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """Add the shared flags; each defaults to None, meaning "as the environment says"."""
    group = parser.add_argument_group("settings (each overrides its RESTAURO_* variable)")
    group.add_argument("--registry", type=Path, help="bundle registry (RESTAURO_REGISTRY)")
    group.add_argument("--results-dir", type=Path, help="job files (RESTAURO_RESULTS_DIR)")
    group.add_argument("--state-dir", type=Path, help="embedded broker files (RESTAURO_STATE_DIR)")
    group.add_argument(
        "--broker-url", help="e.g. redis://host:6379/0 (default: embedded SQLite under state-dir)"
    )
    group.add_argument(
        "--device",
        type=_device,
        help="auto, cpu, cuda or cuda:N; one worker per GPU (RESTAURO_DEVICE)",
    )
    group.add_argument(
        "--job-time-limit-s",
        type=float,
        metavar="S",
        help="a job running longer fails with time_limit_exceeded (default 900)",
    )
    group.add_argument(
        "--job-kill-grace-s",
        type=float,
        metavar="S",
        help="a job that ignores its limit is killed this much later (default 30)",
    )
    group.add_argument(
        "--shutdown-grace-s",
        type=float,
        metavar="S",
        help="on SIGTERM, time for the job in flight before it is requeued (default 5)",
    )
    group.add_argument(
        "--batch-jobs",
        type=int,
        metavar="N",
        help="GPU worker: jobs restored at once, their z-searches batched (default 8; 1 = solo)",
    )
    group.add_argument(
        "--batch-gather-s",
        type=float,
        metavar="S",
        help="GPU worker: how long a z-search waits for other jobs' (default 0.05)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment overridden by the flags given; a bad value is one
    :class:`InvalidParameter` naming the setting, for the adapter's ``error:`` line."""
    flags = {name: getattr(args, name, None) for name in SETTINGS_FLAGS}
    try:
        return Settings.from_flags(**flags)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first.get("loc", ())) or "settings"
        raise InvalidParameter(f"invalid setting {name}: {first['msg']}") from None
