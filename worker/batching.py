"""Cross-request batching in a GPU worker: one batcher per process, shared by its job threads.

A threads-pool worker (``--pool threads``, the GPU default) runs up to ``batch_jobs`` jobs at
once. Each job restores inside :meth:`CrossRequestBatcher.participant` and hands the batcher to
``restore()`` as its z-search, so the jobs on the same cluster and bundle version (the model cache
gives them the same networks) optimize their candidates in one batch, each getting the result it
would get alone. Solo and prefork run one job per process: nothing to batch, they search
directly. The batcher is made by the first job (it imports torch), never in a parent that forks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from restauro.config import Settings

if TYPE_CHECKING:
    from restauro.inpaint.batching import CrossRequestBatcher, Participation
    from restauro.inpaint.models import GANModels

log = logging.getLogger("restauro.batching")

_lock = threading.Lock()
_batcher: tuple[int, CrossRequestBatcher] | None = None  # (pid, batcher) of this process


def log_batch(models: GANModels, requests: int, rows: int) -> None:
    """One line per batch, so an operator sees whether jobs meet (requests > 1) and how big."""
    log.info("z-search batch on %s: %d requests, %d rows", models.name, requests, rows)


def process_batcher(settings: Settings) -> CrossRequestBatcher:
    """This process's batcher (a new one after a fork: threads and locks do not survive one)."""
    global _batcher
    from restauro.inpaint.batching import CrossRequestBatcher

    with _lock:
        if _batcher is None or _batcher[0] != os.getpid():
            batcher = CrossRequestBatcher(settings.batch_gather_s, on_batch=log_batch)
            _batcher = (os.getpid(), batcher)
        return _batcher[1]


@contextlib.contextmanager
def shared_search(
    settings: Settings, enabled: bool
) -> Iterator[tuple[CrossRequestBatcher | None, Participation | None]]:
    """Around one job: ``(search, participation)`` for ``restore(search=...)`` and the result,
    or ``(None, None)`` where jobs are not batched (the engine then searches directly)."""
    if not enabled:
        yield None, None
        return
    batcher = process_batcher(settings)
    with batcher.participant() as joined:
        yield batcher, joined
