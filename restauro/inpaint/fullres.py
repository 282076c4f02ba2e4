"""Restore a full-resolution scan with a method per kind of damage, every method a candidate.

1. **Analyse** the mask (``damage_analysis``): thin damage (cracks, scratches) and losses, long
   components cut into pieces, each piece or group of nearby losses with its own window.
2. **Thin damage**, window by window at full resolution, by every diffusion method
   (``params.baselines``: Telea, Navier-Stokes). The best of them by the held-out ring score is
   the thin fill of every GAN candidate; each diffusion method is also a candidate on its own.
3. **Losses** by the GAN (the paper's heart: Yeh et al.'s z-optimization, through the engine,
   every window's z-search in one batch), each completion given the painting's own detail at
   full resolution (``texture_transfer``) and Poisson-blended into the hole (``loss_window``);
   and by the same diffusion methods, the baselines a GAN has to beat.
4. **Score like with like** (``scoring``): every method restores its hole together with a ring of
   known pixels it is not shown, and is scored on how well it predicted that ring (structure
   band PSNR, pooled over windows). The GAN's own loss is kept beside it for the GAN candidates.
   What is delivered uses the ring: a diffusion method's fill is a second run that sees it, and
   the GAN's z-search (which is scored) is followed by fine-tuning, which sees it.
5. **Compose** ranked candidates: ``gan:<target>`` (one per z-candidate), ``telea``, ``ns``;
   by default the GAN's first, in its own order, then the baselines by score
   (``rank_by="method"``, see ``scan_result.rank``).

Candidates are kept as the values of the mask's pixels only and composed into full images on
access, so a 100-megapixel scan costs a few copies of its damage, not of itself. Every pixel
outside the mask is the input's, bit for bit.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from restauro.errors import InvalidImage, InvalidParameter
from restauro.inpaint.damage_analysis import LOSS, THIN, DamageMap, DamageParams, analyse_damage
from restauro.inpaint.diffusion import diffuse
from restauro.inpaint.engine import CandidateLoss, inpaint_many
from restauro.inpaint.holes import Box, HoleGroup
from restauro.inpaint.loss_window import GanWindow, gets_detail, structure_weight, where
from restauro.inpaint.models import GANModels
from restauro.inpaint.params import InpaintParams
from restauro.inpaint.scan_result import (
    SCORE_KIND,
    ZOPT_SCORE_KIND,
    Candidate,
    CandidateImages,
    ScanRestoration,
    WindowReport,
    rank,
)
from restauro.inpaint.scoring import detail_ratio, psnr_db, ring_around, structure_error
from restauro.inpaint.search import ZSearch
from restauro.masks import validate_mask
from restauro.progress import Progress, report

__all__ = [
    "SCORE_KIND",
    "ZOPT_SCORE_KIND",
    "Candidate",
    "CandidateImages",
    "ScanRestoration",
    "WindowReport",
    "gets_detail",
    "rank",
    "restore_scan",
]


def restore_scan(
    rgb: np.ndarray,
    mask: np.ndarray,
    models: GANModels,
    params: InpaintParams,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    search: ZSearch | None = None,
) -> ScanRestoration:
    """Restore ``mask`` (nonzero = missing) in ``rgb`` (H x W x 3 uint8), a method per damage.

    ``search`` runs the z-searches of the loss windows (default: now, all in one batch).
    """
    started = time.perf_counter()
    _check(rgb, params)
    mask = validate_mask(np.asarray(mask), rgb.shape[:2])
    damage = analyse_damage(mask, DamageParams.of(params, models.image_size))
    report(progress, "analyse", 1, 1)
    state = ScanState(rgb, mask, damage, params)
    state.warnings += _scale_warnings(damage, rgb.shape[:2])

    diffusion = list(params.baselines)
    thin = damage.windows_of(THIN)
    losses = damage.windows_of(LOSS)
    for i, window in enumerate(thin):
        state.diffuse_window(window, diffusion)
        report(progress, "thin", i + 1, len(thin))
    best_thin = _thin_method(state, params, diffusion)

    for i, window in enumerate(losses):
        state.diffuse_window(window, diffusion)
        report(progress, "baselines", i + 1, len(losses))
    gan_name = f"gan:{models.name}"
    gan_fills: list[list[np.ndarray]] = []  # per window: per candidate, own-pixel values
    gan_sums: list[list[tuple[float, int]]] = []
    gan_losses: list[list[CandidateLoss]] = []
    steps = 0
    if losses:
        context = state.context(best_thin, params.baselines[0])
        outcomes = [
            GanWindow(state, context, window, models, params, device, k)
            for k, window in enumerate(losses)
        ]
        runnable = [o for o in outcomes if o.runnable()]

        def engine_progress(stage: str, done: int, total: int) -> None:
            if stage == "inpaint":
                report(progress, "inpaint", done, total)

        # every loss window's z-search in one batch: one step of G and D serves them all
        restored = inpaint_many(
            [o.damaged() for o in runnable],
            models,
            device,
            engine_progress if progress is not None else None,
            search,
        )
        for outcome, result in zip(runnable, restored, strict=True):
            outcome.take(result)
        for outcome in outcomes:
            gan_fills.append(outcome.fills)
            gan_sums.append(outcome.sums)
            gan_losses.append(outcome.losses)
            steps += outcome.steps
            state.windows.append(outcome.report(gan_name))
            state.warnings += outcome.warnings

    ranked = state.compose(best_thin, diffusion, gan_name, gan_fills, gan_sums, gan_losses)
    report(progress, "compose", 1, 1)
    return ScanRestoration(
        ranked=ranked,
        windows=state.windows,
        warnings=state.warnings,
        seconds=time.perf_counter() - started,
        steps=steps,
        model=models.name,
        analysis=damage.summary(),
        base=rgb,
        index=state.index,
    )


def _check(rgb: np.ndarray, params: InpaintParams) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidImage(
            f"image must be an H x W x 3 RGB array, got {getattr(rgb, 'shape', None)}"
        )
    if rgb.dtype != np.uint8:
        raise InvalidImage(f"image must be uint8, got {rgb.dtype}")
    if not isinstance(params, InpaintParams):
        raise InvalidParameter(f"params must be InpaintParams, got {type(params).__name__}")


class ScanState:
    """The scan, its damage, and what every method has filled so far (values per mask pixel)."""

    def __init__(
        self, rgb: np.ndarray, mask: np.ndarray, damage: DamageMap, params: InpaintParams
    ) -> None:
        self.rgb, self.mask, self.damage, self.params = rgb, mask, damage, params
        self.index = np.flatnonzero(mask)
        # fills are N x 3 arrays in ``index`` order; a pixel's row is found by binary search
        # (``index`` is sorted), not a scan-sized lookup table (800 MB at 100 megapixels)
        self.fills: dict[str, np.ndarray] = {}  # diffusion method -> N x 3
        self.sums: dict[tuple[str, str], list[float]] = {}  # (kind, method) -> [sq err, count]
        self.window_scores: dict[tuple[int, int, int, int], dict[str, float]] = {}
        self.windows: list[WindowReport] = []
        self.warnings: list[str] = []
        labels = damage.labels.reshape(-1)[self.index]
        kinds = np.array([""] + [p.kind for p in damage.pieces])
        self.kind_of = kinds[labels]  # kind per mask pixel

    def crop(self, group: HoleGroup) -> tuple[Box, tuple[slice, slice]]:
        height, width = self.mask.shape
        visible = group.visible_window(height, width)
        return visible, (slice(visible.top, visible.bottom), slice(visible.left, visible.right))

    def own(self, group: HoleGroup, rows: slice, cols: slice) -> np.ndarray:
        return np.isin(self.damage.labels[rows, cols], group.labels)

    def positions(self, visible: Box, own: np.ndarray) -> np.ndarray:
        """Indices into a fill of the ``own`` pixels of a crop (row-major, like the crop)."""
        ys, xs = np.nonzero(own)
        flat = (ys + visible.top) * self.mask.shape[1] + (xs + visible.left)
        return np.searchsorted(self.index, flat)

    def fill_of(self, method: str) -> np.ndarray:
        if method not in self.fills:
            self.fills[method] = np.zeros((len(self.index), 3), dtype=np.uint8)
        return self.fills[method]

    def add(self, kind: str, method: str, sq: float, count: int) -> None:
        acc = self.sums.setdefault((kind, method), [0.0, 0])
        acc[0] += sq
        acc[1] += count

    def diffuse_window(self, window, methods: list[str]) -> None:
        """Each diffusion method on one window: the fill (all damage unknown) and its ring score."""
        group = window.group
        visible, (rows, cols) = self.crop(group)
        crop = self.rgb[rows, cols]
        damage = self.mask[rows, cols]
        own = self.own(group, rows, cols)
        ring = ring_around(own, self.params.score_ring, allowed=~damage)
        at = self.positions(visible, own)
        scores: dict[str, float] = {}
        fills, held = [], []
        for method in methods:
            filled = diffuse(crop, damage, method, self.params.diffusion_radius)
            self.fill_of(method)[at] = filled[own]
            held_out = diffuse(crop, damage | ring, method, self.params.diffusion_radius)
            sq, n = structure_error(held_out, crop, ring)
            self.add(window.kind, method, sq, n)
            scores[method] = psnr_db(sq, n)
            fills.append(filled[own].astype(np.uint16))
            held.append(held_out.astype(np.uint16))
        if len(methods) > 1:  # their mean: the thin fill (errors partly cancel: _thin_method)
            name = mean_name(methods)
            self.fill_of(name)[at] = _mean(fills)
            sq, n = structure_error(_mean(held), crop, ring)
            self.add(window.kind, name, sq, n)
            scores[name] = psnr_db(sq, n)
        if window.kind == THIN:
            self.windows.append(
                WindowReport(
                    kind=THIN,
                    bbox=group.bbox.as_tuple(),
                    window=group.window.as_tuple(),
                    scale=1.0,
                    within_limit=True,
                    hole_pixels=group.hole_pixels,
                    methods=list(methods),
                    scores=scores,
                )
            )
        else:
            self.window_scores[group.bbox.as_tuple()] = scores

    def best(self, kind: str, methods: list[str]) -> str:
        """The method with the best pooled ring score on ``kind`` (the first when none scored)."""

        def score(method: str) -> float:
            value = psnr_db(*self.sums.get((kind, method), (0.0, 0)))
            return -np.inf if np.isnan(value) else value

        return max(methods, key=score)  # the first of equals

    def context(self, thin_method: str, loss_method: str) -> np.ndarray:
        """The scan with thin damage filled by ``thin_method`` and losses by ``loss_method``:
        what a GAN window sees around its hole (and blends against) where other damage lies."""
        out = self.rgb.copy()
        values = np.where(
            (self.kind_of == THIN)[:, None], self.fill_of(thin_method), self.fill_of(loss_method)
        )
        out.reshape(-1, 3)[self.index] = values
        return out

    def compose(
        self,
        best_thin: str,
        diffusion: list[str],
        gan_name: str,
        gan_fills: list[list[np.ndarray]],
        gan_sums: list[list[tuple[float, int]]],
        gan_losses: list[list[CandidateLoss]],
    ) -> list[Candidate]:
        has_thin = bool((self.kind_of == THIN).any())
        has_loss = bool((self.kind_of == LOSS).any())
        candidates: list[Candidate] = []
        thin_sq, thin_n = self.sums.get((THIN, best_thin), (0.0, 0))
        count = min((len(f) for f in gan_fills), default=0)  # 0: a window the GAN could not run
        if has_loss and count:
            loss_windows = self.damage.windows_of(LOSS)
            detailed = any(gets_detail(self.params, w, self.mask.shape) for w in loss_windows)
            detail = "+detail" if detailed else ""
            if structure_weight(self.params, detailed) > 0:  # the GAN's structure with a fill's
                detail = f"~{self.params.baselines[0]}{detail}"
            for i in range(count):
                fill = self.fill_of(best_thin).copy() if has_thin else self._empty()
                sq, n = (thin_sq, thin_n) if has_thin else (0.0, 0)
                for k, window in enumerate(loss_windows):
                    visible, (rows, cols) = self.crop(window.group)
                    fill[self.positions(visible, self.own(window.group, rows, cols))] = gan_fills[
                        k
                    ][i]
                    sq, n = sq + gan_sums[k][i][0], n + gan_sums[k][i][1]
                methods = {LOSS: gan_name + detail}
                if has_thin:
                    methods[THIN] = best_thin
                candidates.append(
                    Candidate(
                        method=gan_name,
                        methods=methods,
                        score=psnr_db(sq, n),
                        detail_ratio=self._detail(fill),
                        fill=fill,
                        gan=_sum_losses([gan_losses[k][i] for k in range(len(loss_windows))]),
                        primary=True,
                    )
                )
        offered = list(diffusion)
        if has_thin and not count and best_thin not in offered:
            offered.insert(0, best_thin)  # no GAN ran: the thin method is the product's own
        for method in offered:
            sq = n = 0
            methods = {}
            for kind, present in ((LOSS, has_loss), (THIN, has_thin)):
                if present:
                    s, c = self.sums.get((kind, method), (0.0, 0))
                    sq, n = sq + s, n + c
                    methods[kind] = method
            fill = self.fill_of(method)
            candidates.append(
                Candidate(
                    method=method,
                    methods=methods,
                    score=psnr_db(sq, n),
                    detail_ratio=self._detail(fill),
                    fill=fill,
                    primary=not count and method == best_thin,
                )
            )
        return rank(candidates, self.params.rank_by)

    def _empty(self) -> np.ndarray:
        return np.zeros((len(self.index), 3), dtype=np.uint8)

    def _detail(self, fill: np.ndarray) -> float:
        """Detail ratio over the losses' windows (the thin windows' when there is no loss),
        pooled as a mean weighted by hole pixels."""
        windows = self.damage.windows_of(LOSS) or self.damage.windows_of(THIN)
        total, weight = 0.0, 0
        for window in windows:
            visible, (rows, cols) = self.crop(window.group)
            own = self.own(window.group, rows, cols)
            crop = self.rgb[rows, cols].copy()
            crop[self.mask[rows, cols]] = 0
            damage = self.mask[rows, cols]
            ys, xs = np.nonzero(damage)
            flat = (ys + visible.top) * self.mask.shape[1] + (xs + visible.left)
            crop[ys, xs] = fill[np.searchsorted(self.index, flat)]
            ratio = detail_ratio(crop, own)
            if np.isfinite(ratio):
                total += ratio * window.group.hole_pixels
                weight += window.group.hole_pixels
        return total / weight if weight else float("nan")


def mean_name(methods: list[str]) -> str:
    """The name of the mean of several diffusion fills ("telea+ns")."""
    return "+".join(methods)


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    total = np.sum(np.stack(arrays).astype(np.uint32), axis=0)
    return ((total + len(arrays) // 2) // len(arrays)).astype(np.uint8)


def _thin_method(state: ScanState, params: InpaintParams, diffusion: list[str]) -> str:
    """The fill of thin damage in the GAN's candidates (``params.thin_method``).

    ``"mean"`` (default): the mean of the diffusion fills. Telea and Navier-Stokes continue the
    crack's sides differently, their errors partly cancel, and on the development paintings
    (bench/bench_fullres.py --skip 0) the mean beat both on 4 px cracks (+0.1-0.2 dB); the
    held-out ring score picked the worse of the two as often as not. ``"best"``: the diffusion
    method with the best ring score; or a method's name.
    """
    choice = params.thin_method
    if choice == "mean":
        return mean_name(diffusion) if len(diffusion) > 1 else diffusion[0]
    if choice == "best":
        return state.best(THIN, diffusion)
    return choice


def _sum_losses(losses: list[CandidateLoss]) -> CandidateLoss:
    groups = [g for loss in losses for g in loss.groups]
    return CandidateLoss(
        total=sum(loss.total for loss in losses),
        contextual=sum(loss.contextual for loss in losses),
        perceptual=sum(loss.perceptual for loss in losses),
        groups=groups,
    )


def _scale_warnings(damage: DamageMap, size: tuple[int, int]) -> list[str]:
    height, width = size
    out = []
    limit = damage.params.max_scale
    for w in damage.windows_of(LOSS):
        if not w.within_limit:
            out.append(
                f"{where(w.group.bbox)} is too large for the scale limit: restored "
                f"{w.scale:.1f}x downscaled (limit {limit:g}x)"
            )
        if w.group.wanted_side > 1.25 * max(height, width):
            out.append(
                f"{where(w.group.bbox)} needs a context window of {w.group.wanted_side} px but "
                f"the image is only {width}x{height}: the restoration has less context than it "
                "should"
            )
    return out
