"""Restoration jobs: submit a damaged scan, poll it, download the candidates, delete it.

One request, in order: the form becomes a typed ``RestoreRequest`` (restauro/request.py: one set of
defaults and bounds, shared with the CLI), the uploads are read within the size limit (uploads.py)
and decoded and validated by the core (pixel limit, mask), ``plan`` (restauro/restore.py) routes
the painting with the current bundle and names the queue, the job is stored as files
(restauro/jobs.py), and the job id is enqueued on the plan's queue. A worker restores it
(worker/tasks.py) and writes the candidates beside the inputs.

Decoding and routing are CPU-bound (feature extraction): they run in the app's routing pool
(``Settings.route_threads`` threads, ``app.state.routing``), never on the event loop and never in
the thread pool that serves status polls and downloads, so those stay fast while uploads are
routed (docs/bench-service.md).
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from restauro.config import Settings
from restauro.errors import NotFound
from restauro.jobs import INPUT, MASK, RESULT, JobStore, candidate_name, new_job_id
from restauro.masks import load_scan
from restauro.request import RestoreRequest
from restauro.restore import plan
from service.bundles import BundleCache
from service.deps import BundlesDep, MetricsDep, QueueDep, SettingsDep, StoreDep
from service.errors import NotReady
from service.queue import JobQueue
from service.uploads import read_upload
from service.views import TERMINAL, job_links, job_view

router = APIRouter(prefix="/v1/restorations", tags=["restorations"])

ACCEPTED_EXAMPLE = {
    "id": "3f0c5e0d9b5c4a7e8f1d2c3b4a596877",
    "status": "queued",
    "cluster": 1,
    "target": "c1",
    "queue": "restore.c1",
    "bundle_version": "20261122-143005-3fa9c1",
    "route": {"cluster": 1, "distances": {"0": 41.2, "1": 17.9}},
    "callback_url": None,
    "links": {"self": "/v1/restorations/3f0c5e0d9b5c4a7e8f1d2c3b4a596877"},
}
ERRORS = {
    400: {"description": "corrupt or truncated image"},
    413: {"description": "upload or pixel count over the limit"},
    415: {"description": "not multipart/form-data, or a part that is not an image"},
    422: {"description": "bad mask (size mismatch, empty, full) or parameter"},
    503: {"description": "no active bundle, or the broker is unreachable"},
}


def _accept(
    settings: Settings,
    store: JobStore,
    bundles: BundleCache,
    queue: JobQueue,
    image: bytes,
    mask: bytes | None,
    request: RestoreRequest,
) -> dict[str, Any]:
    """Decode, plan, store, enqueue: the CPU-bound part, run in the routing pool."""
    scan = load_scan(image, mask, settings.max_pixels)  # 16-bit, ICC, orientation kept
    rgb, hole = scan.rgb, scan.mask
    chosen = plan(bundles.current(), rgb, hole, request)
    job_id = new_job_id()
    job = store.create(job_id, rgb, hole, chosen, created=round(time.time(), 3), source=scan.image)
    try:
        queue.submit(job_id, chosen.queue)
    except Exception:
        store.delete(job_id)  # a 503 leaves nothing behind
        raise
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a damaged scan for restoration",
    responses={
        202: {"content": {"application/json": {"example": ACCEPTED_EXAMPLE}}},
        200: {"description": "with ?wait=: the job finished within the wait"},
        **ERRORS,
    },
)
async def submit(
    http: Request,
    settings: SettingsDep,
    store: StoreDep,
    bundles: BundlesDep,
    queue: QueueDep,
    metrics: MetricsDep,
    image: Annotated[UploadFile, File(description="the damaged scan (PNG, JPEG, TIFF, WebP)")],
    mask: Annotated[
        UploadFile | None,
        File(description="nonzero = missing; optional if the image's alpha marks the damage"),
    ] = None,
    candidates: Annotated[
        int | None, Form(description="completions to return", examples=[4])
    ] = None,
    steps: Annotated[int | None, Form(description="z-optimization steps", examples=[200])] = None,
    seed: Annotated[int | None, Form(description="same seed, same result")] = None,
    cluster: Annotated[int | None, Form(description="override routing")] = None,
    general: Annotated[bool, Form(description="use the general DCGAN (baseline)")] = False,
    callback_url: Annotated[
        str | None,
        Form(
            description="POST the job's JSON here when it ends, signed (docs/api.md, Webhooks); "
            "http(s) on a host the server allows"
        ),
    ] = None,
    wait: Annotated[
        float, Query(ge=0, le=300, description="wait up to this many seconds for the result")
    ] = 0,
) -> JSONResponse:
    request = RestoreRequest.from_settings(
        settings,
        cluster=cluster,
        general=general,
        candidates=candidates,
        steps=steps,
        seed=seed,
        callback_url=callback_url,
    )
    image_bytes = await read_upload(image, "image", settings.max_upload_bytes)
    mask_bytes = (
        await read_upload(mask, "mask", settings.max_upload_bytes) if mask is not None else None
    )
    accept = functools.partial(
        _accept, settings, store, bundles, queue, image_bytes, mask_bytes, request
    )
    job = await asyncio.get_running_loop().run_in_executor(http.app.state.routing, accept)
    metrics.submitted.labels(job["queue"]).inc()
    job_id = job["id"]
    location = {"Location": f"/v1/restorations/{job_id}"}

    deadline = time.monotonic() + wait
    while wait and time.monotonic() < deadline:
        if store.status(job_id) in TERMINAL:
            view = await run_in_threadpool(job_view, store, queue, job_id)
            return JSONResponse(view, status_code=200, headers=location)
        await asyncio.sleep(0.1)

    body = {
        "id": job_id,
        "status": "queued",
        "cluster": job["cluster"],
        "target": job["target"],
        "queue": job["queue"],
        "bundle_version": job["bundle_version"],
        "route": job["route"],
        "callback_url": job.get("callback_url"),
        "links": job_links(job_id),
    }
    return JSONResponse(body, status_code=202, headers=location)


@router.get("/{job_id}", summary="Status, routing, scores and download links of a job")
async def get_restoration(job_id: str, store: StoreDep, queue: QueueDep) -> dict[str, Any]:
    # A few small files from the page cache (~0.2 ms) are read here, on the event loop: a hop
    # to a thread costs more than that under load. Only a running job's progress asks the
    # result backend (the network), and that goes to a thread.
    view = store.view(job_id)
    if view["status"] == "running":
        view["progress"] = await run_in_threadpool(queue.progress, job_id)
    return view


def _png(store: JobStore, job_id: str, name: str) -> FileResponse:
    return FileResponse(store.file(job_id, name), media_type="image/png")


@router.get(
    "/{job_id}/candidates/{n}",
    summary="The n-th restored image (1 = best), PNG at full resolution",
    response_class=FileResponse,
    responses={409: {"description": "the job has not succeeded (yet)"}},
)
async def get_candidate(job_id: str, n: int, store: StoreDep) -> FileResponse:
    store.existing(job_id)  # unknown or malformed id -> 404
    result = store.read_result(job_id)
    if result is None:
        raise NotReady(f"job {job_id} is {store.status(job_id)}: no candidates yet")
    if not 1 <= n <= len(result["candidates"]):
        raise NotFound(f"job {job_id} has candidates 1..{len(result['candidates'])}, not {n}")
    return _png(store, job_id, candidate_name(n))


@router.get(
    "/{job_id}/result.json",
    summary="The job's result.json (the same file `restauro inpaint` writes)",
    response_class=FileResponse,
    responses={409: {"description": "the job has not succeeded (yet)"}},
)
async def get_result(job_id: str, store: StoreDep) -> FileResponse:
    store.existing(job_id)
    if store.read_result(job_id) is None:
        raise NotReady(f"job {job_id} is {store.status(job_id)}: no result yet")
    return FileResponse(
        store.file(job_id, RESULT),
        media_type="application/json",
        filename=f"result-{job_id}.json",
        content_disposition_type="inline",
    )


@router.get(
    "/{job_id}/original", summary="The uploaded image (as PNG)", response_class=FileResponse
)
async def get_original(job_id: str, store: StoreDep) -> FileResponse:
    return _png(store, job_id, INPUT)


@router.get(
    "/{job_id}/mask", summary="The damage mask (white = restored)", response_class=FileResponse
)
async def get_mask(job_id: str, store: StoreDep) -> FileResponse:
    return _png(store, job_id, MASK)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a job and its files (a running job finishes without writing)",
)
def delete_restoration(job_id: str, store: StoreDep, queue: QueueDep) -> Response:
    store.delete(job_id)
    queue.forget(job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
