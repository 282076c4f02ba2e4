"""The active bundle: clusters, sizes, feature kind, and a sample thumbnail per cluster."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from restauro.errors import NotFound
from restauro.jobs import cluster_queue, queue_for
from service.deps import BundlesDep

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", summary="The active model bundle")
async def active_models(bundles: BundlesDep) -> dict[str, Any]:
    bundle = await run_in_threadpool(bundles.current)
    manifest = bundle.manifest
    base = f"/v1/models/{bundle.version}"
    clusters = [
        {
            **{k: v for k, v in c.items() if isinstance(v, int | float | str)},
            "queue": cluster_queue(int(c["id"])),
            "thumbnail": f"{base}/clusters/{int(c['id'])}/sample.png",
        }
        for c in manifest.get("clusters", [])
    ]
    return {
        "version": bundle.version,
        "created": manifest.get("created"),
        "features": {"kind": manifest.get("features", {}).get("kind")},
        "image_size": manifest.get("image_size"),
        "clusters": clusters,
        "general": {"queue": queue_for("general"), "thumbnail": f"{base}/general/sample.png"},
    }


def _sample(bundles: BundlesDep, version: str, target: int | str) -> FileResponse:
    path = bundles.get(version).sample_path(target)
    if not path.is_file():
        raise NotFound(f"bundle {version} has no sample image for {target}")
    return FileResponse(path, media_type="image/png")


@router.get(
    "/{version}/clusters/{cluster}/sample.png",
    summary="A grid of samples from one cluster's generator",
    response_class=FileResponse,
)
async def cluster_sample(bundles: BundlesDep, version: str, cluster: int) -> FileResponse:
    return await run_in_threadpool(_sample, bundles, version, cluster)


@router.get(
    "/{version}/general/sample.png",
    summary="A grid of samples from the general generator",
    response_class=FileResponse,
)
async def general_sample(bundles: BundlesDep, version: str) -> FileResponse:
    return await run_in_threadpool(_sample, bundles, version, "general")
