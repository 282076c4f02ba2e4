"""Progress reporting for long work, without printing.

The core takes a callback ``progress(stage, done, total)`` and calls it as work advances; the CLI
turns the calls into tqdm bars, the Celery worker into task state. ``None`` means nobody listens.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]


def report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)
