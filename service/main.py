"""The FastAPI application factory: it only assembles settings, state, middleware and routers."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from restauro.config import Settings, get_settings
from restauro.jobs import GENERAL_QUEUE, JobStore, cluster_queue
from service.bundles import BundleCache
from service.deps import require_api_key
from service.errors import install_error_handlers
from service.metrics import JobCollector, Metrics, QueueCollector, RequestMetrics
from service.queue import JobQueue
from service.routers import health, models, page, restorations, routing
from service.uploads import MULTIPART_SLACK, UploadGuard

DESCRIPTION = """
Restores damaged scans of paintings with cluster-specialized GANs.

A restoration page for people is served at `/`.

Submit a scan and its damage mask (white = missing) to `POST /v1/restorations`; the scan is routed
to the visually nearest cluster of paintings and restored by that cluster's generator. Poll
`GET /v1/restorations/{id}` and download the ranked candidates.

    curl -F image=@scan.png -F mask=@mask.png -F candidates=4 http://HOST/v1/restorations
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app; with ``settings`` it ignores the environment (tests, ``python -m service``)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.routing.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        lifespan=lifespan,
        title="Restauro",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "restorations", "description": "submit, poll, download, delete"},
            {"name": "routing", "description": "which cluster a scan goes to"},
            {"name": "models", "description": "the active bundle"},
            {"name": "operations", "description": "health, readiness, metrics"},
        ],
    )
    app.state.settings = settings
    app.state.store = JobStore(settings.results_dir)
    app.state.bundles = BundleCache(settings.registry)
    app.state.queue = JobQueue(settings)
    app.state.metrics = Metrics()
    # Decoding and routing uploads (CPU-bound) get their own threads: status polls and downloads
    # are served by the event loop and Starlette's thread pool, never queued behind routing.
    app.state.routing = ThreadPoolExecutor(
        settings.route_threads, thread_name_prefix="route", initializer=_background_priority
    )
    app.state.metrics.add_collector(JobCollector(app.state.store))
    app.state.metrics.add_collector(QueueCollector(lambda: _queue_depths(app)))

    install_error_handlers(app)
    keyed = [Depends(require_api_key)]
    app.include_router(restorations.router, dependencies=keyed)
    app.include_router(routing.router, dependencies=keyed)
    app.include_router(models.router, dependencies=keyed)
    app.include_router(health.router)
    # The restoration page: static files, no key needed (the API calls it makes send one).
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")

    app.add_middleware(
        UploadGuard,
        limit=2 * settings.max_upload_bytes + MULTIPART_SLACK,  # image + mask + form fields
        multipart_paths={"/v1/restorations", "/v1/route"},
    )
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    return app


ROUTE_NICE = 10  # routing threads' nice value: below the event loop's, above nothing else


def _background_priority() -> None:
    """Lower this thread's CPU priority (Linux: nice is per thread; elsewhere a no-op).

    Routing is throughput work; on a machine with fewer cores than busy threads the scheduler
    then runs the event loop first, so a status poll is answered between two routings instead
    of after them. Most of routing runs in OpenCV and NumPy without the GIL, so the event loop
    is not left waiting for a descheduled routing thread's GIL either.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ROUTE_NICE)


def _queue_depths(app: FastAPI) -> dict[str, int]:
    version = app.state.bundles.current_version()
    names = [GENERAL_QUEUE]
    if version is not None:
        names = [cluster_queue(k) for k in app.state.bundles.get(version).cluster_ids] + names
    return app.state.queue.depths(names)
