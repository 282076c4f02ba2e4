"""Restore a full-resolution scan: holes -> context windows -> z-optimization -> blending.

This is the composition layer (the "pipeline" next to the weight-free :class:`ZOptimizer` and
:class:`GeneratorFineTuner`): it cuts each group of holes out of the scan with its context,
brings it to the generator's size, asks the optimizer for ranked completions (and, when
``finetune_steps`` > 0, fine-tunes a copy of the generator for the best of them), brings them back
to full resolution and blends them inside the mask. Every pixel outside the mask is copied from
the input, so the result equals the input bit for bit there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch

from restauro.errors import InvalidImage, InvalidParameter
from restauro.images import from_model_range, resize, to_model_range
from restauro.inpaint.blending import PoissonBlender, paste
from restauro.inpaint.damage_analysis import gan_windows
from restauro.inpaint.diffusion import telea
from restauro.inpaint.finetune import GeneratorFineTuner
from restauro.inpaint.holes import Box, HoleGroup
from restauro.inpaint.models import GANModels
from restauro.inpaint.params import InpaintParams
from restauro.inpaint.search import DirectSearch, ZSearch
from restauro.inpaint.zopt import ZOptResult, ZProblem
from restauro.masks import validate_mask
from restauro.progress import Progress, report


@dataclass(frozen=True)
class GroupLoss:
    """The loss of one candidate on one group of holes."""

    total: float
    contextual: float
    perceptual: float
    from_encoder: bool
    finetuned: bool = False  # G was fine-tuned for this candidate (Deep Generative Prior)


@dataclass(frozen=True)
class CandidateLoss:
    """A candidate's losses summed over the groups, and the detail per group."""

    total: float
    contextual: float
    perceptual: float
    groups: list[GroupLoss]


@dataclass(frozen=True)
class GroupReport:
    """Where one group of holes was restored from and how the search went."""

    bbox: tuple[int, int, int, int]  # top, left, bottom, right of the hole pixels
    window: tuple[int, int, int, int]  # the square context window (may overhang the image)
    hole_pixels: int
    hole_fraction: float  # hole pixels / visible pixels of the window
    steps: int
    curve: list[float]  # best total loss after each step
    finetune_steps: int = 0  # Adam steps on each fine-tuned candidate's copy of G
    finetuned: int = 0  # candidates fine-tuned


@dataclass
class Restoration:
    """Ranked restorations (best first) of one scan, at the scan's full resolution."""

    candidates: list[np.ndarray]  # Poisson-blended, H x W x 3 uint8
    raw: list[np.ndarray]  # the generator's output pasted into the hole, unblended
    losses: list[CandidateLoss]
    warnings: list[str]
    steps: int  # z-optimization steps run, summed over groups
    seconds: float
    groups: list[GroupReport] = field(default_factory=list)
    model: str = ""
    # Like ``raw``, but each candidate as the z-search drew it, before fine-tuning: given only
    # for a scan with held-out pixels (``Damaged.held_out``), whose prediction of them it is.
    searched: list[np.ndarray] | None = None


@dataclass(frozen=True)
class _Window:
    """One group's patch at model size, and how to put a completion back."""

    visible: Box  # the window's part inside the image
    pad: tuple[int, int]  # (top, left) offset of ``visible`` inside the square window
    hole: np.ndarray  # the group's hole pixels inside ``visible`` (bool)
    target: torch.Tensor  # 1 x 3 x S x S in [-1, 1]
    missing: torch.Tensor  # 1 x 1 x S x S, 1 = hole (held-out pixels included)
    valid: torch.Tensor  # 1 x 1 x S x S, 0 = padding beyond the image
    fit_missing: torch.Tensor  # what fine-tuning does not see: the hole without held-out pixels


@dataclass(frozen=True)
class Damaged:
    """One scan (or crop) to restore: its pixels, its mask, the parameters it is restored with.

    ``windows`` (a label image and the groups of labels to restore, each from its window) come
    from the damage analysis (``damage_analysis.gan_windows``) unless given; pixels of other
    labels inside a window are neither context nor restored there.

    ``held_out`` (inside ``mask``) are known pixels hidden from the z-search, so that its
    completions are a prediction of them that can be scored (``Restoration.searched``);
    fine-tuning, which comes after and is not scored, sees them like the rest of the painting,
    so the completion delivered fits all that is there (``rgb`` holds their true values).
    """

    rgb: np.ndarray
    mask: np.ndarray
    params: InpaintParams
    windows: tuple[np.ndarray, list[HoleGroup]] | None = None
    held_out: np.ndarray | None = None


def inpaint(
    rgb: np.ndarray,
    mask: np.ndarray,
    models: GANModels,
    params: InpaintParams,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    windows: tuple[np.ndarray, list[HoleGroup]] | None = None,
    search: ZSearch | None = None,
) -> Restoration:
    """Restore every hole of ``mask`` (nonzero = missing) in ``rgb`` (H x W x 3 uint8).

    ``windows``: see :class:`Damaged`. ``search`` runs the z-searches (default: now, all of this
    scan's windows in one batch).
    """
    return inpaint_many([Damaged(rgb, mask, params, windows)], models, device, progress, search)[0]


def inpaint_many(
    scans: list[Damaged],
    models: GANModels,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    search: ZSearch | None = None,
) -> list[Restoration]:
    """Restore several scans with one generator, their windows' z-searches in one batch.

    Each window is searched exactly as it would be alone (its scan's parameters, seed + its
    index in the scan), so batching changes the time, not the result. Fine-tuning (when on) and
    blending follow window by window.
    """
    started = time.perf_counter()
    search = search if search is not None else DirectSearch()
    device = torch.device(device)
    models = _on(models, device)
    size = models.config.image_size
    prepared = [_prepare(scan, size, device) for scan in scans]
    problems = [
        ZProblem(w.target, w.missing, w.valid, replace(job.params, seed=job.params.seed + index))
        for job in prepared
        for index, w in enumerate(job.windows)
    ]
    finetuners = [GeneratorFineTuner(job.params) for job in prepared]
    tuned = [f.count(job.params.candidates) for f, job in zip(finetuners, prepared, strict=True)]
    search_units = max((p.params.steps for p in problems if p.params is not None), default=0)
    tune_units = sum(
        n * job.params.finetune_steps * len(job.windows)
        for n, job in zip(tuned, prepared, strict=True)
    )
    total_units = search_units + tune_units

    def search_progress(stage: str, done: int, total: int) -> None:
        report(progress, stage, round(done * search_units / max(total, 1)), total_units)

    found = iter(search(models, problems, search_progress if progress is not None else None))
    restorations, tuned_so_far = [], 0
    windows_done, windows_total = 0, len(problems)
    for job, finetuner, n_tuned in zip(prepared, finetuners, tuned, strict=True):
        count = job.params.candidates
        blended = [job.rgb.copy() for _ in range(count)]
        raw = [job.rgb.copy() for _ in range(count)]
        searched = [job.rgb.copy() for _ in range(count)] if job.held_out else None
        results: list[ZOptResult] = []
        reports: list[GroupReport] = []
        for group, window in zip(job.groups, job.windows, strict=True):
            result = next(found)
            if n_tuned:
                offset = search_units + tuned_so_far

                def tune_progress(stage: str, done: int, total: int, at: int = offset) -> None:
                    # one bar for the whole restoration: fine-tuning continues the "inpaint"
                    report(progress, "inpaint", at + done, total_units)

                result = finetuner.finetune(
                    models.generator,
                    models.discriminator,
                    window.target,
                    window.missing,
                    result,
                    window.valid,
                    progress=tune_progress if progress is not None else None,
                    fit_missing=window.fit_missing,
                )
                tuned_so_far += n_tuned * job.params.finetune_steps
            results.append(result)
            _put_back(result.completions, window, group.side, raw, blended, job.params.blend)
            if searched is not None:
                _put_back(result.search_completions, window, group.side, searched)
            reports.append(
                GroupReport(
                    bbox=group.bbox.as_tuple(),
                    window=group.window.as_tuple(),
                    hole_pixels=group.hole_pixels,
                    hole_fraction=float(window.hole.sum()) / window.hole.size,
                    steps=result.steps,
                    curve=result.curve,
                    finetune_steps=result.finetune_steps,
                    finetuned=n_tuned,
                )
            )
            windows_done += 1
            report(progress, "blend", windows_done, windows_total)
        restorations.append(
            Restoration(
                candidates=blended,
                raw=raw,
                losses=_candidate_losses(results, count),
                warnings=job.warnings,
                steps=sum(r.steps for r in results),
                seconds=time.perf_counter() - started,
                groups=reports,
                model=models.name,
                searched=searched,
            )
        )
    return restorations


@dataclass
class _Prepared:
    """A scan checked and cut into its windows, ready for the z-search."""

    rgb: np.ndarray  # with every hole prefilled by diffusion (see _prepare)
    params: InpaintParams
    groups: list[HoleGroup]
    windows: list[_Window]
    warnings: list[str]
    held_out: bool  # the scan has held-out pixels (Damaged.held_out)


def _prepare(scan: Damaged, size: int, device: torch.device) -> _Prepared:
    _check_image(scan.rgb)
    params = scan.params
    if not isinstance(params, InpaintParams):
        raise InvalidParameter(f"params must be InpaintParams, got {type(params).__name__}")
    mask = validate_mask(np.asarray(scan.mask), scan.rgb.shape[:2])
    labels, groups = scan.windows if scan.windows is not None else gan_windows(mask, params, size)
    held = np.zeros_like(mask) if scan.held_out is None else np.asarray(scan.held_out, bool) & mask
    # Where a window's hole borders another hole (a crack entering a loss, the pieces of a long
    # one), blending needs values there: a diffusion fill until that hole is restored in turn.
    # Held-out pixels keep their values: fine-tuning fits them.
    rgb = telea(scan.rgb, mask)
    rgb[held] = scan.rgb[held]
    height, width = mask.shape
    windows, warnings = [], []
    for group in groups:
        window = _cut_window(rgb, labels, group, size, device, held)
        fraction = float(window.hole.sum()) / window.hole.size
        warnings += _warnings(group, fraction, params, height, width)
        windows.append(window)
    return _Prepared(rgb, params, list(groups), windows, warnings, bool(held.any()))


def _on(models: GANModels, device: torch.device) -> GANModels:
    """``models`` with its networks on ``device`` (moved in place, as before: a cached model)."""
    models.generator.to(device)
    models.discriminator.to(device)
    if models.encoder is not None:
        models.encoder.to(device)
    return models


def _check_image(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise InvalidImage(f"image must be an H x W x 3 RGB array, got shape {shape}")
    if rgb.dtype != np.uint8:
        raise InvalidImage(f"image must be uint8, got {rgb.dtype}")
    if min(rgb.shape[:2]) < 1:
        raise InvalidImage("image is empty")


def _coverage(mask: np.ndarray, size: int) -> np.ndarray:
    """Which model pixels see any of ``mask`` (a model pixel partly in the hole is in the hole)."""
    side = mask.shape[0]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(mask.astype(np.float32), (size, size), interpolation=interp) > 1e-6


def _cut_window(
    rgb: np.ndarray,
    labels: np.ndarray,
    group: HoleGroup,
    size: int,
    device: torch.device,
    held_out: np.ndarray,
) -> _Window:
    height, width = rgb.shape[:2]
    visible = group.visible_window(height, width)
    rows, cols = slice(visible.top, visible.bottom), slice(visible.left, visible.right)
    hole = np.isin(labels[rows, cols], group.labels)
    held = held_out[rows, cols] & hole
    foreign = (labels[rows, cols] > 0) & ~hole  # other holes: weigh nothing, like padding
    patch = rgb[rows, cols].copy()
    # Damaged pixels must not leak into the context through resampling: fill them neutrally.
    # (Held-out pixels keep their values: the search's mask covers every model pixel they touch,
    # and fine-tuning is meant to see them.)
    known = ~hole & ~foreign
    fill = patch[known].mean(axis=0).round().astype(np.uint8) if known.any() else 127
    patch[(hole & ~held) | foreign] = fill
    top, left = visible.top - group.window.top, visible.left - group.window.left
    bottom = group.side - top - visible.height
    right = group.side - left - visible.width
    square = cv2.copyMakeBorder(patch, top, bottom, left, right, cv2.BORDER_REPLICATE)
    outside = np.ones((group.side, group.side), dtype=bool)
    outside[top : top + visible.height, left : left + visible.width] = foreign
    hole_square = np.zeros_like(outside)
    hole_square[top : top + visible.height, left : left + visible.width] = hole
    valid = ~_coverage(outside, size)
    missing = _coverage(hole_square, size) & valid
    hole_square[top : top + visible.height, left : left + visible.width] = hole & ~held
    fit_missing = _coverage(hole_square, size) & valid

    def on_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.astype(np.float32))[None, None].to(device)

    return _Window(
        visible=visible,
        pad=(top, left),
        hole=hole,
        target=to_model_range(resize(square, size, size)).to(device),
        missing=on_device(missing),
        valid=on_device(valid),
        fit_missing=on_device(fit_missing),
    )


def _put_back(
    completions: torch.Tensor,
    window: _Window,
    side: int,
    raw: list[np.ndarray],
    blended: list[np.ndarray] | None = None,
    blend: bool = False,
) -> None:
    """Resize each completion to the window and paste it into ``raw`` inside the hole only;
    and into ``blended``, Poisson-blended when ``blend``."""
    images = from_model_range(completions)  # B x S x S x 3 uint8
    top, left = window.pad
    v = window.visible
    rows, cols = slice(v.top, v.bottom), slice(v.left, v.right)
    blender = PoissonBlender(window.hole) if blend and blended is not None else None
    for i, completion in enumerate(images):
        full = resize(completion, side, side)[top : top + v.height, left : left + v.width]
        raw[i][rows, cols] = paste(full, raw[i][rows, cols], window.hole)
        if blender is not None:
            blended[i][rows, cols] = blender.blend(full, blended[i][rows, cols])
        elif blended is not None:
            blended[i][rows, cols] = raw[i][rows, cols]


def _warnings(
    group: HoleGroup, fraction: float, params: InpaintParams, height: int, width: int
) -> list[str]:
    box = group.bbox
    where = f"hole at rows {box.top}-{box.bottom}, cols {box.left}-{box.right}"
    out = []
    if fraction > params.max_hole_fraction:
        out.append(
            f"{where} covers {fraction:.0%} of its context window (more than "
            f"{params.max_hole_fraction:.0%}): little context, the restoration is a guess"
        )
    if group.wanted_side > 1.25 * max(height, width):
        out.append(
            f"{where} needs a context window of {group.wanted_side} px but the image is only "
            f"{width}x{height}: the restoration has less context than it should"
        )
    return out


def _candidate_losses(per_group: list[ZOptResult], count: int) -> list[CandidateLoss]:
    losses = []
    for i in range(count):
        groups = [
            GroupLoss(
                total=float(r.total[i]),
                contextual=float(r.contextual[i]),
                perceptual=float(r.perceptual[i]),
                from_encoder=bool(r.from_encoder[i]),
                finetuned=bool(r.finetuned[i]) if r.finetuned is not None else False,
            )
            for r in per_group
        ]
        losses.append(
            CandidateLoss(
                total=sum(g.total for g in groups),
                contextual=sum(g.contextual for g in groups),
                perceptual=sum(g.perceptual for g in groups),
                groups=groups,
            )
        )
    return losses
