"""The JSON a client sees for a job: the core composes it from the job files
(:meth:`restauro.jobs.JobStore.view`, also the webhook's body); the API adds live progress from
the result backend."""

from __future__ import annotations

from typing import Any

from restauro.jobs import TERMINAL, JobStore, job_links
from service.queue import JobQueue

__all__ = ["TERMINAL", "job_links", "job_view"]


def job_view(store: JobStore, queue: JobQueue | None, job_id: str) -> dict[str, Any]:
    return store.view(job_id, progress=queue.progress if queue is not None else None)
