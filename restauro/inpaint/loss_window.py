"""One loss window restored by the GAN: its crop for the engine, then detail, blend and score.

The scan-level orchestration (``fullres.restore_scan``) batches every window's z-search into one
engine call; what a window does before (hide its hole and a held-out ring) and after (transfer the
painting's detail into each completion, Poisson-blend it, score its ring prediction) is here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from restauro.inpaint.blending import PoissonBlender
from restauro.inpaint.damage_analysis import LOSS, DamageWindow
from restauro.inpaint.diffusion import diffuse
from restauro.inpaint.engine import CandidateLoss, Damaged, Restoration
from restauro.inpaint.holes import Box, HoleGroup
from restauro.inpaint.models import GANModels
from restauro.inpaint.params import InpaintParams
from restauro.inpaint.scan_result import WindowReport
from restauro.inpaint.scoring import psnr_db, ring_around, structure_error
from restauro.inpaint.texture_transfer import transfer_detail

if TYPE_CHECKING:
    from restauro.inpaint.fullres import ScanState

# A GAN window gets detail transfer when it was downscaled at least this much (scan px per model
# px), or when it shows at most 1 / DETAIL_MIN_ZOOM of the image's longer side (see gets_detail).
DETAIL_MIN_SCALE = 1.5
DETAIL_MIN_ZOOM = 1.5


class GanWindow:
    """One loss window restored by the GAN: z-search on the crop, detail, blend, ring score."""

    def __init__(
        self,
        state: ScanState,
        context: np.ndarray,
        window,
        models: GANModels,
        params: InpaintParams,
        device: str | torch.device,
        index: int,
    ) -> None:
        self.state, self.window, self.models, self.params = state, window, models, params
        self.device, self.index = device, index
        group = window.group
        self.visible, (rows, cols) = state.crop(group)
        self.rows, self.cols = rows, cols
        self.crop = context[rows, cols]
        self.truth = state.rgb[rows, cols]
        self.damage = state.mask[rows, cols]
        self.own = state.own(group, rows, cols)
        self.ring = ring_around(self.own, params.score_ring, allowed=~self.damage)
        self.fills: list[np.ndarray] = []
        self.sums: list[tuple[float, int]] = []
        self.losses: list[CandidateLoss] = []
        self.steps = 0
        self.warnings: list[str] = []
        self.ran = False

    def runnable(self) -> bool:
        """Whether the window has a known pixel for the GAN to restore from."""
        if (self.own | self.ring).all():
            self.warnings.append(
                f"{where(self.window.group.bbox)} has no known pixel in its window"
            )
            return False
        return True

    def damaged(self) -> Damaged:
        """This window's crop for the engine: hole + ring hidden from the z-search (the ring is
        held out to score its completion; fine-tuning then sees it, like the rest of the
        painting), other damage in the window weighing nothing."""
        group, visible = self.window.group, self.visible
        hidden = self.own | self.ring
        self.hidden = hidden
        labels = np.zeros(self.own.shape, dtype=np.int32)
        labels[self.damage & ~self.own] = 2  # other damage in the window: weighs nothing
        labels[hidden] = 1
        ys, xs = np.nonzero(hidden)
        local = HoleGroup(
            labels=(1,),
            bbox=Box(int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1),
            window=Box(
                group.window.top - visible.top,
                group.window.left - visible.left,
                group.window.bottom - visible.top,
                group.window.right - visible.left,
            ),
            wanted_side=group.window.height,  # the scan-level warning is the analysis' own
            hole_pixels=int(hidden.sum()),
        )
        params = replace(self.params, blend=False, seed=self.params.seed + self.index)
        return Damaged(self.crop, hidden, params, (labels, [local]), held_out=self.ring)

    def take(self, result: Restoration) -> None:
        """The engine's completions of this window: detail, score and blend each candidate."""
        group, hidden = self.window.group, self.hidden
        self.ran = True
        self.steps = result.steps
        fraction = float(hidden.sum()) / hidden.size  # the engine's warning is in crop terms
        if fraction > self.params.max_hole_fraction:
            self.warnings.append(
                f"{where(group.bbox)} covers {fraction:.0%} of its context window (more than "
                f"{self.params.max_hole_fraction:.0%}): little context, the GAN's fill is a guess"
            )
        blender = PoissonBlender(self.own)
        known = ~self.damage & ~self.ring
        sigma = self.params.detail_sigma or max(1.0, self.params.detail_band * self.window.scale)
        detail = gets_detail(self.params, self.window, self.state.mask.shape)
        # Where the painting's detail is transferred, the structure (the low band) it is laid on
        # can be the GAN's averaged with a diffusion fill of the same hole and held-out ring:
        # PSNR rewards the posterior mean, a GAN completion is one sample of what could be there,
        # and the two estimates err partly independently (docs/results.md, issue 10).
        mix = structure_weight(self.params, detail)
        if mix > 0:
            method, radius = self.params.baselines[0], self.params.diffusion_radius
            smooth = diffuse(self.crop, self.damage | hidden, method, radius).astype(np.float32)
        searched = result.searched if result.searched is not None else result.raw

        def structure(completion: np.ndarray) -> np.ndarray:
            if mix <= 0:
                return completion
            mixed = completion.astype(np.float32)
            mixed[hidden] = (1 - mix) * mixed[hidden] + mix * smooth[hidden]
            return mixed  # only its low band is kept (mix > 0 implies detail)

        for i, raw in enumerate(result.raw):
            # The score: the z-search's prediction of the held-out ring (fine-tuning, after it,
            # saw the ring), its structure as the fill's; copied brushwork is not scored.
            prediction = structure(raw)
            held = prediction if searched[i] is raw else structure(searched[i])
            self.sums.append(structure_error(held, self.truth, self.ring))
            if detail:
                detailed = transfer_detail(
                    prediction,
                    known,
                    hidden,
                    sigma,
                    block=self.params.detail_block,
                    gain=self.params.detail_gain,
                ).image
                prediction = np.clip(np.rint(detailed), 0, 255).astype(np.uint8)
            blended = blender.blend(prediction, self.crop)
            self.fills.append(blended[self.own])
            self.losses.append(result.losses[i])

    def report(self, gan_name: str) -> WindowReport:
        group = self.window.group
        scores = dict(self.state.window_scores.get(group.bbox.as_tuple(), {}))
        if self.sums:
            scores[gan_name] = max(psnr_db(*s) for s in self.sums)
        methods = ([gan_name] if self.ran else []) + list(self.params.baselines)
        return WindowReport(
            kind=LOSS,
            bbox=group.bbox.as_tuple(),
            window=group.window.as_tuple(),
            scale=self.window.scale,
            within_limit=self.window.within_limit,
            hole_pixels=group.hole_pixels,
            methods=methods,
            scores=scores,
            steps=self.steps,
        )


def gets_detail(params: InpaintParams, window: DamageWindow, shape: tuple[int, ...]) -> bool:
    """Whether the GAN's completions of ``window`` (in an image of ``shape``) get detail transfer.

    Either of two reasons suffices:

    * the window was **downscaled** to the model's size (``scale >= DETAIL_MIN_SCALE``): the
      upscale back to the scan lost the band above the model's pixels;
    * the window is a **close-up** of the painting (its side at most ``1 / DETAIL_MIN_ZOOM`` of the
      image's longer side). The GAN learnt whole paintings at its size, so what it draws at its
      own pixels is a whole painting's detail, not a close-up's brushwork: on the 1,500 x 1,200
      test scans a 41 px loss, restored at 1.28 scan px per model px, came back with 0.58 of the
      gradient around it (EMA generator, fine-tuned); with the painting's detail, 0.74-0.81, at
      -0.02 / +0.01 dB hole PSNR (docs/results.md, issue 10).

    Only a window that shows (nearly) the whole painting at about the model's size, the view the
    GAN was trained on (a 64 px evaluation image, a scan near the model's size), keeps the GAN's
    own detail: copied brushwork there would only replace it with marks that are not where the
    lost ones were.
    """
    zoom = max(shape[:2]) / max(1, window.group.window.height)
    return params.detail and (window.scale >= DETAIL_MIN_SCALE or zoom >= DETAIL_MIN_ZOOM)


def structure_weight(params: InpaintParams, detailed: bool) -> float:
    """The weight of ``baselines[0]``'s fill in the structure of a GAN completion: the low band
    is only kept where the painting's detail is transferred on top of it, so nowhere else."""
    return params.structure_mix if detailed else 0.0


def where(box: Box) -> str:
    return f"hole at rows {box.top}-{box.bottom}, cols {box.left}-{box.right}"
