"""Which cluster a scan would be restored by, without restoring it."""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile

from restauro.config import Settings
from restauro.jobs import cluster_queue
from restauro.masks import load_image_and_mask
from service.bundles import BundleCache
from service.deps import BundlesDep, SettingsDep
from service.uploads import read_upload

router = APIRouter(prefix="/v1/route", tags=["routing"])


def _route(
    settings: Settings, bundles: BundleCache, image: bytes, mask: bytes | None
) -> dict[str, Any]:
    rgb, hole = load_image_and_mask(image, mask, settings.max_pixels)
    bundle = bundles.current()
    route = bundle.route(rgb, hole)
    return {
        **route.to_dict(),
        "queue": cluster_queue(route.cluster),
        "bundle_version": bundle.version,
    }


@router.post(
    "",
    summary="Route a damaged scan to its nearest cluster (no restoration)",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "cluster": 1,
                        "distances": {"0": 41.2, "1": 17.9},
                        "queue": "restore.c1",
                        "bundle_version": "20261122-143005-3fa9c1",
                    }
                }
            }
        }
    },
)
async def route(
    http: Request,
    settings: SettingsDep,
    bundles: BundlesDep,
    image: Annotated[UploadFile, File(description="the damaged scan")],
    mask: Annotated[UploadFile | None, File(description="nonzero = missing")] = None,
) -> dict[str, Any]:
    image_bytes = await read_upload(image, "image", settings.max_upload_bytes)
    mask_bytes = (
        await read_upload(mask, "mask", settings.max_upload_bytes) if mask is not None else None
    )
    # In the routing pool, like POST /v1/restorations: feature extraction is CPU-bound.
    work = functools.partial(_route, settings, bundles, image_bytes, mask_bytes)
    return await asyncio.get_running_loop().run_in_executor(http.app.state.routing, work)
