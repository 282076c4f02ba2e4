"""Liveness, readiness and Prometheus metrics (never behind the API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from restauro.errors import RestauroError
from service.deps import BundlesDep, MetricsDep, QueueDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="A bundle is loaded and the broker is reachable",
    responses={503: {"description": "not ready: the body names the failing check"}},
)
async def readyz(bundles: BundlesDep, queue: QueueDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        bundle = await run_in_threadpool(bundles.current)
        checks["bundle"] = bundle.version
    except RestauroError as exc:
        checks["bundle"] = f"failed: {exc.detail}"
    try:
        await run_in_threadpool(queue.ping)
        checks["broker"] = "ok"
    except RestauroError as exc:
        checks["broker"] = f"failed: {exc.detail}"
    failed = [name for name, value in checks.items() if value.startswith("failed")]
    if failed:
        detail = "; ".join(f"{name} {checks[name]}" for name in failed)
        return JSONResponse(
            {"error": "not_ready", "detail": detail, "checks": checks}, status_code=503
        )
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, m: MetricsDep) -> Response:
    body = await run_in_threadpool(generate_latest, m.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
