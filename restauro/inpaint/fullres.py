"""Restore a full-resolution scan with a method per kind of damage, every method a candidate.

1. **Analyse** the mask (``damage_analysis``): thin damage (cracks, scratches) and losses, long
   components cut into pieces, each piece or group of nearby losses with its own window.
2. **Thin damage**, window by window at full resolution, by every diffusion method
   (``params.baselines``: Telea, Navier-Stokes). The best of them by the held-out ring score is
   the thin fill of every GAN candidate; each diffusion method is also a candidate on its own.
3. **Losses** by the GAN (the paper's heart: Yeh et al.'s z-optimization, through the engine,
   one call per window on the window's crop), each completion given the painting's own detail at
   full resolution (``texture_transfer``) and Poisson-blended into the hole; and by the same
   diffusion methods, the baselines a GAN has to beat.
4. **Score like with like** (``scoring``): every method restores its hole together with a ring of
   known pixels it is not shown, and is scored on how well it predicted that ring (structure
   band PSNR, pooled over windows). The GAN's own loss is kept beside it for the GAN candidates.
5. **Compose** ranked candidates: ``gan:<target>`` (one per z-candidate), ``telea``, ``ns``;
   by default the GAN's first (``rank_by="method"``, see :func:`rank`), each group by score.

Candidates are kept as the values of the mask's pixels only and composed into full images on
access, so a 100-megapixel scan costs a few copies of its damage, not of itself. Every pixel
outside the mask is the input's, bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from restauro.errors import InvalidImage, InvalidParameter
from restauro.inpaint.blending import PoissonBlender
from restauro.inpaint.damage_analysis import LOSS, THIN, DamageMap, DamageParams, analyse_damage
from restauro.inpaint.diffusion import diffuse
from restauro.inpaint.engine import CandidateLoss, Damaged, Restoration, inpaint_many
from restauro.inpaint.holes import Box, HoleGroup
from restauro.inpaint.models import GANModels
from restauro.inpaint.params import InpaintParams
from restauro.inpaint.scoring import detail_ratio, psnr_db, ring_around, structure_error
from restauro.inpaint.search import ZSearch
from restauro.inpaint.texture_transfer import transfer_detail
from restauro.masks import validate_mask
from restauro.progress import Progress, report

SCORE_KIND = "held-out ring structure PSNR (dB, higher is better)"
DETAIL_MIN_SCALE = 1.5  # scan px per model px below which a GAN window gets no detail transfer
ZOPT_SCORE_KIND = "z-optimization loss (lower is better)"


@dataclass(frozen=True)
class Candidate:
    """One restored scan: which method restored what, its score, its pixels in the mask."""

    method: str  # the losses' method ("gan:c3", "telea", "ns"); thin damage's when no loss
    methods: dict[str, str]  # per kind of damage present: {"loss": "gan:c3+detail", "thin": ...}
    score: float  # SCORE_KIND, pooled over every window (the ranking key)
    detail_ratio: float  # gradient inside the damage / around it (no reference; ~1 = as detailed)
    fill: np.ndarray  # N x 3 uint8: the values of the mask's pixels, in np.flatnonzero order
    gan: CandidateLoss | None = None  # the z-optimization's losses (GAN candidates only)
    primary: bool = False  # the product's own method for this damage (the GAN, the thin fill)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "methods": dict(self.methods),
            "score": _round(self.score),
            "detail_ratio": _round(self.detail_ratio),
        }
        if self.gan is not None:
            out.update(
                loss=round(self.gan.total, 6),
                contextual=round(self.gan.contextual, 6),
                perceptual=round(self.gan.perceptual, 6),
            )
        return out


@dataclass(frozen=True)
class WindowReport:
    """Where one window was restored from, how much it was downscaled, how each method scored."""

    kind: str
    bbox: tuple[int, int, int, int]  # top, left, bottom, right of its hole pixels
    window: tuple[int, int, int, int]  # the square window (may overhang the image)
    scale: float  # scan px per model px of the GAN's view; 1.0 where only diffusion ran
    within_limit: bool  # scale <= max_scale (False: a hole larger than the limit allows)
    hole_pixels: int
    methods: list[str]
    scores: dict[str, float]  # method -> ring score here (the GAN's best candidate for "gan:")
    steps: int = 0  # z-optimization steps (GAN windows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bbox": list(self.bbox),
            "window": list(self.window),
            "side": self.window[2] - self.window[0],
            "scale": round(self.scale, 3),
            "within_limit": self.within_limit,
            "hole_pixels": self.hole_pixels,
            "methods": list(self.methods),
            "scores": {k: _round(v) for k, v in self.scores.items()},
            "steps": self.steps,
        }


class CandidateImages(Sequence[np.ndarray]):
    """The ranked candidates as full images, each composed when it is read (best first)."""

    def __init__(self, base: np.ndarray, index: np.ndarray, fills: list[np.ndarray]) -> None:
        self._base, self._index, self._fills = base, index, fills

    def __len__(self) -> int:
        return len(self._fills)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        out = self._base.copy()
        out.reshape(-1, 3)[self._index] = self._fills[i]
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]


@dataclass
class ScanRestoration:
    """Ranked candidates of one scan, by methods per kind of damage, and how they were made."""

    ranked: list[Candidate]
    windows: list[WindowReport]
    warnings: list[str]
    seconds: float
    steps: int  # z-optimization steps, summed over GAN windows
    model: str
    analysis: dict[str, int]
    score_kind: str = SCORE_KIND
    base: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.uint8), repr=False)
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @property
    def candidates(self) -> CandidateImages:
        """Full-resolution RGB images, best first."""
        return CandidateImages(self.base, self.index, [c.fill for c in self.ranked])

    @property
    def losses(self) -> list[CandidateLoss]:
        """The z-optimization losses of the GAN candidates, in rank order."""
        return [c.gan for c in self.ranked if c.gan is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_kind": self.score_kind,
            "damage": dict(self.analysis),
            "windows": [w.to_dict() for w in self.windows],
        }


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
    state = _State(rgb, mask, damage, params)
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
            _GanWindow(state, context, window, models, params, device, k)
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


class _State:
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
            detailed = any(gets_detail(self.params, w.scale) for w in loss_windows)
            detail = "+detail" if detailed else ""
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


class _GanWindow:
    """One loss window restored by the GAN: z-search on the crop, detail, blend, ring score."""

    def __init__(
        self,
        state: _State,
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
                f"{_where(self.window.group.bbox)} has no known pixel in its window"
            )
            return False
        return True

    def damaged(self) -> Damaged:
        """This window's crop for the engine: hole + ring hidden (the ring is held out to score
        the completion), other damage in the window weighing nothing."""
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
        return Damaged(self.crop, hidden, params, (labels, [local]))

    def take(self, result: Restoration) -> None:
        """The engine's completions of this window: detail, score and blend each candidate."""
        group, hidden = self.window.group, self.hidden
        self.ran = True
        self.steps = result.steps
        fraction = float(hidden.sum()) / hidden.size  # the engine's warning is in crop terms
        if fraction > self.params.max_hole_fraction:
            self.warnings.append(
                f"{_where(group.bbox)} covers {fraction:.0%} of its context window (more than "
                f"{self.params.max_hole_fraction:.0%}): little context, the GAN's fill is a guess"
            )
        blender = PoissonBlender(self.own)
        known = ~self.damage & ~self.ring
        sigma = self.params.detail_sigma or max(1.0, 0.5 * self.window.scale)
        detail = gets_detail(self.params, self.window.scale)
        for i, raw in enumerate(result.raw):
            if detail:
                detailed = transfer_detail(
                    raw,
                    known,
                    hidden,
                    sigma,
                    block=self.params.detail_block,
                    gain=self.params.detail_gain,
                ).image
                prediction = np.clip(np.rint(detailed), 0, 255).astype(np.uint8)
            else:
                prediction = raw
            self.sums.append(structure_error(prediction, self.truth, self.ring))
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


def gets_detail(params: InpaintParams, scale: float) -> bool:
    """Whether a GAN window restored at ``scale`` scan px per model px gets detail transfer.

    Detail transfer gives back the band an upscale from the model's size lost; a window restored
    at (nearly) the model's own scale lost none, and copied brushwork would only replace the
    GAN's own fine detail with marks that are not where the lost ones were.
    """
    return params.detail and scale >= DETAIL_MIN_SCALE


def mean_name(methods: list[str]) -> str:
    """The name of the mean of several diffusion fills ("telea+ns")."""
    return "+".join(methods)


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    total = np.sum(np.stack(arrays).astype(np.uint32), axis=0)
    return ((total + len(arrays) // 2) // len(arrays)).astype(np.uint8)


def _thin_method(state: _State, params: InpaintParams, diffusion: list[str]) -> str:
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


def rank(candidates: list[Candidate], rank_by: str) -> list[Candidate]:
    """Best first. ``"score"``: by the held-out score alone. ``"method"``: the product's own
    method for the damage (the GAN on losses; the thin fill when there is no loss) before the
    baselines, each group by the held-out score.

    Why both: the ring score is the same measurement for every method, but a thin ring next to
    known pixels is what diffusion predicts best (it continues them), so on losses it tends to
    put the smooth fills a conservator rejects first. ``"method"`` (the default) keeps the GAN the
    heart of loss restoration and still orders its candidates, and the baselines, like with like.
    A candidate that could not be scored goes last; ties keep the order above.
    """

    def by_score(c: Candidate) -> float:
        return -c.score if np.isfinite(c.score) else np.inf

    if rank_by == "score":
        return sorted(candidates, key=by_score)
    return sorted(candidates, key=lambda c: (not c.primary, by_score(c)))


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
                f"{_where(w.group.bbox)} is too large for the scale limit: restored "
                f"{w.scale:.1f}x downscaled (limit {limit:g}x)"
            )
        if w.group.wanted_side > 1.25 * max(height, width):
            out.append(
                f"{_where(w.group.bbox)} needs a context window of {w.group.wanted_side} px but "
                f"the image is only {width}x{height}: the restoration has less context than it "
                "should"
            )
    return out


def _where(box: Box) -> str:
    return f"hole at rows {box.top}-{box.bottom}, cols {box.left}-{box.right}"


def _round(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None
