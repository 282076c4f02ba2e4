"""``restore(image, mask, bundle, params)``: the one entry point of the worker and the CLI.

It does what a restoration request means end to end in the core: check the mask against the image,
route the painting to its cluster (unless the caller names one, or asks for the general DCGAN),
and run the inpainting engine with that cluster's networks. The adapters only decode uploads,
call this, and store what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from restauro.bundle import GENERAL, Bundle, Route, target_name
from restauro.inpaint import InpaintParams, Restoration, inpaint
from restauro.masks import validate_mask
from restauro.progress import Progress


@dataclass
class RestoreResult:
    route: Route | None  # None when the caller chose the cluster or the general model
    target: str  # "c3" or "general": whose networks restored it
    bundle_version: str
    restoration: Restoration

    def summary(self) -> dict[str, Any]:
        """The JSON-able part (everything but pixels), as written to result.json."""
        r = self.restoration
        return {
            "bundle_version": self.bundle_version,
            "target": self.target,
            "route": self.route.to_dict() if self.route else None,
            "candidates": [
                {
                    "rank": n,
                    "loss": loss.total,
                    "contextual": loss.contextual,
                    "perceptual": loss.perceptual,
                }
                for n, loss in enumerate(r.losses, start=1)
            ],
            "holes": [
                {
                    "bbox": g.bbox,
                    "window": g.window,
                    "hole_pixels": g.hole_pixels,
                    "hole_fraction": g.hole_fraction,
                    "steps": g.steps,
                }
                for g in r.groups
            ],
            "steps": r.steps,
            "seconds": r.seconds,
            "warnings": r.warnings,
        }


def restore(
    rgb: np.ndarray,
    mask: np.ndarray,
    bundle: Bundle,
    params: InpaintParams | None = None,
    *,
    cluster: int | None = None,
    general: bool = False,
    device: str = "cpu",
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the masked pixels of ``rgb``; pixels outside ``mask`` are returned unchanged."""
    params = params or InpaintParams()
    mask = validate_mask(mask, rgb.shape[:2])
    route = None
    if general:
        target: int | str = GENERAL
    elif cluster is not None:
        target = cluster
    else:
        route = bundle.route(rgb, mask)
        target = route.cluster
    models = bundle.models(target, device)  # unknown cluster -> UnknownCluster
    restoration = inpaint(rgb, mask, models, params, device=device, progress=progress)
    return RestoreResult(route, target_name(target), bundle.version, restoration)
