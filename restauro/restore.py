"""A restoration request end to end in the core: ``plan`` it, ``restore`` it, one result type.

The adapters are thin around these two calls. The API decodes the upload, calls :func:`plan`
(routing happens here, once), stores the plan with the job and enqueues it on the plan's queue;
the worker reads the job back and calls :func:`restore` with that plan; the CLI and the evaluation
call :func:`restore` with a request and let it plan. Every one of them writes the same
:meth:`RestoreResult.to_dict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from restauro.bundle import GENERAL, Bundle
from restauro.errors import InvalidParameter
from restauro.inpaint import InpaintParams, Restoration, inpaint
from restauro.inpaint.fullres import ZOPT_SCORE_KIND, ScanRestoration, restore_scan
from restauro.inpaint.search import ZSearch
from restauro.jobs import queue_for
from restauro.progress import Progress
from restauro.request import AUTO, RestorePlan, RestoreRequest

# What the product restores with unless a caller sets the engine's knobs itself: a method per
# kind of damage (diffusion on thin damage, the GAN + detail on losses, diffusion baselines as
# candidates), the best two GAN candidates of each window fine-tuned for 100 steps (Deep
# Generative Prior: docs/results.md Run 4 measured it on 100 held-out paintings), and where the
# painting's detail is transferred into a loss, the structure beneath it half the GAN's, half
# Telea's (``structure_mix``: on the full-resolution test scans +0.03 to +1.31 dB hole PSNR on
# every painting, detail ratio still 0.73-0.80; docs/results.md, issue 10).
# ``InpaintParams()`` alone is the paper's engine: plain z-optimization on every hole.
PRODUCT = InpaintParams(damage_methods=True, finetune_steps=100, structure_mix=0.5)


def plan(bundle: Bundle, rgb: np.ndarray, mask: np.ndarray, request: RestoreRequest) -> RestorePlan:
    """Decide which of ``bundle``'s networks restore this painting, and on which queue.

    ``auto`` routes by the visible pixels (the hole is prefilled so it pulls no cluster); a named
    cluster must exist in the bundle (UnknownCluster otherwise). ``mask`` is the validated damage
    mask (``restauro.masks.load_image_and_mask`` checks uploads).
    """
    route = None
    target = request.target
    if target == AUTO:
        route = bundle.route(rgb, mask)
        target = route.cluster
    name = bundle.check_target(target)
    return RestorePlan(
        bundle_version=bundle.version,
        target=name,
        queue=queue_for(name),
        request=replace(request, target=target),
        route=route,
    )


@dataclass
class RestoreResult:
    """Ranked restorations of one scan and what produced them (the plan, the engine's report)."""

    plan: RestorePlan
    params: InpaintParams  # everything the engine was run with (for reproducing the result)
    restoration: ScanRestoration | Restoration  # methods per damage | the GAN on every hole

    @property
    def candidates(self) -> Sequence[np.ndarray]:
        """Full-resolution RGB images, best first (candidate ``rank`` 1 is index 0)."""
        return self.restoration.candidates

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able result (everything but pixels): result.json of the CLI and of a job.

        Every candidate names its ``method`` and its ``score`` (of ``score_kind``, the ranking
        key); GAN candidates also carry the z-search's ``loss``. ``windows`` (methods per damage)
        or ``holes`` (the GAN alone) say where each part of the damage was restored from.
        """
        r = self.restoration
        head = {
            "bundle_version": self.plan.bundle_version,
            "target": self.plan.target,
            "cluster": self.plan.cluster,
            "route": self.plan.route.to_dict() if self.plan.route is not None else None,
            "params": self.params.to_dict(),
        }
        tail = {
            "steps": r.steps,
            "seconds": round(r.seconds, 3),
            "warnings": list(r.warnings),
        }
        if isinstance(r, ScanRestoration):
            candidates = [{"rank": n, **c.to_dict()} for n, c in enumerate(r.ranked, start=1)]
            return {**head, "candidates": candidates, **r.to_dict(), **tail}
        return {
            **head,
            "score_kind": ZOPT_SCORE_KIND,
            "candidates": [
                {
                    "rank": rank,
                    "method": f"gan:{r.model}",
                    "score": round(loss.total, 6),
                    "loss": round(loss.total, 6),
                    "contextual": round(loss.contextual, 6),
                    "perceptual": round(loss.perceptual, 6),
                }
                for rank, loss in enumerate(r.losses, start=1)
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
            **tail,
        }


def restore(
    rgb: np.ndarray,
    mask: np.ndarray,
    bundle: Bundle,
    request: RestoreRequest | RestorePlan,
    *,
    device: str = "cpu",
    progress: Progress | None = None,
    engine: InpaintParams | None = None,
    search: ZSearch | None = None,
) -> RestoreResult:
    """Restore the masked pixels of ``rgb``; pixels outside ``mask`` are returned unchanged.

    ``request`` is planned first unless it already is a plan (the worker's case: the API planned
    it). ``engine`` sets the engine's expert knobs (evaluations, benchmarks; default
    :data:`PRODUCT`, a method per kind of damage); the request's candidates, steps and seed
    always win. With ``engine.damage_methods`` False the GAN restores every hole (the paper).
    ``search`` runs the z-searches (default: now; a worker passes its cross-request batcher).
    """
    chosen = request if isinstance(request, RestorePlan) else plan(bundle, rgb, mask, request)
    if chosen.bundle_version != bundle.version:
        raise InvalidParameter(
            f"the plan is for bundle {chosen.bundle_version}, not {bundle.version}"
        )
    params = chosen.request.inpaint_params(engine if engine is not None else PRODUCT)
    models = bundle.models(GENERAL if chosen.cluster is None else chosen.cluster, device)
    run = restore_scan if params.damage_methods else inpaint
    restoration = run(rgb, mask, models, params, device=device, progress=progress, search=search)
    return RestoreResult(chosen, params, restoration)
