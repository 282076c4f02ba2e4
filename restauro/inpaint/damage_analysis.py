"""What damage a mask holds, and the windows each part of it is restored from.

Museum scans are 2,000-10,000 px and their damage is mostly thin and long (craquelure, cracks,
scratches) plus a few paint losses. Grouping holes by overlapping context windows (``holes.py``)
breaks on such masks: a crack across the painting touches everything, so the whole painting
becomes one window, downscaled ~15x to the generator's 64 px, where a 4 px crack is a fraction of
a model pixel and every loss comes back as an upscaled blob.

So the mask is first decomposed and classified:

* **Width** comes from the distance transform: a pixel lies in a *loss* when a disk of radius
  ``thin_width / 2`` centred deeper inside the damage covers it (a morphological opening, computed
  as ``dilate(distance > r)``); the rest is *thin* damage (cracks, scratches), restored at full
  resolution by diffusion. (On a scan near the model's size the limit is lower, see
  :meth:`DamageParams.thin_threshold`: there the GAN sees a stroke at its own scale.) A crack
  running into a loss is cut where it enters it. Slivers that an opening leaves at a loss's
  corners are given back to the loss.
* **Length**: a long component (one narrow enough that a stretch of it fits a window at the
  limit) whose bounding box is longer than ``piece_extent`` (the hole a window of
  ``max_scale x model size`` holds with ``context_factor`` context) is cut into pieces along its
  length: recursively into slabs across its longer side, each slab split into its connected parts,
  so a curved or branching crack yields pieces of bounded extent that follow it. Pieces partition
  the component; their windows overlap, and the pixels of the neighbouring pieces are restored
  first (or weigh nothing), so the pieces meet without a seam.
* **Windows**: each piece gets a square window, ``context_factor`` x its extent, at least the
  model's size (small holes are not blown up) and at most ``max_scale`` x the model's size, as
  long as the hole still has ``min_context_factor`` context; a hole too large for that is given the
  smallest window that fits it, and the report says so. Nearby pieces of the same kind share a
  window when their windows overlap and the shared window still keeps to those bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from restauro.inpaint.holes import Box, HoleGroup, _merge_overlapping, _place
from restauro.inpaint.params import InpaintParams

THIN = "thin"  # cracks, scratches: diffusion at full resolution
LOSS = "loss"  # compact paint losses: the GAN (+ detail transfer)
KINDS = (THIN, LOSS)


@dataclass(frozen=True)
class DamageParams:
    """The knobs of the analysis (InpaintParams carries them; see its field comments)."""

    thin_width: float = 9.0
    max_scale: float = 4.0
    context_factor: float = 2.0
    min_context_factor: float = 1.5
    model_size: int = 64
    thin_model_width: float = 2.0

    @classmethod
    def of(cls, params: InpaintParams, model_size: int) -> DamageParams:
        """The analysis knobs of a restoration's parameters, for a model of ``model_size`` px."""
        return cls(
            thin_width=params.thin_width,
            max_scale=params.max_scale,
            context_factor=params.context_factor,
            min_context_factor=params.min_context_factor,
            model_size=model_size,
            thin_model_width=params.thin_model_width,
        )

    def thin_threshold(self, shape: tuple[int, ...]) -> float:
        """The width (scan px) below which damage of a scan of ``shape`` counts as thin.

        Thin damage goes to diffusion because the GAN would see it downscaled to a fraction of
        a model pixel, in a window far smaller than the whole paintings it was trained on. A
        scan near the model's own size is the GAN's home ground: there a stroke a few pixels
        wide is a few model pixels wide, in a window that is the whole painting, and the GAN
        (fine-tuned per image) restores it better than diffusion does (docs/results.md Run 3).
        So the width limit is also ``thin_model_width`` model px at the downscale at which the
        GAN sees the whole scan; on museum scans (1,000 px and up) ``thin_width`` decides.
        """
        whole = max(1.0, max(shape[:2]) / self.model_size)
        return min(self.thin_width, self.thin_model_width * whole)

    @property
    def max_side(self) -> int:
        """The largest window side that keeps to ``max_scale`` scan px per model px."""
        return max(self.model_size, math.floor(self.max_scale * self.model_size))

    @property
    def piece_extent(self) -> int:
        """The longest piece a window of ``max_side`` holds with full context."""
        return max(8, math.floor(self.max_side / self.context_factor))


@dataclass(frozen=True)
class Piece:
    """One restoration unit: a compact loss, or a stretch of a crack or of a long loss."""

    label: int  # in DamageMap.labels
    kind: str  # THIN or LOSS
    component: int  # the damage component (of its kind) it was cut from, 1-based
    bbox: Box
    pixels: int
    width: float  # widest point of its component, px (2 x the largest distance to known)


@dataclass(frozen=True)
class DamageWindow:
    """A square window and the pieces restored from it (a ``HoleGroup`` plus what they are)."""

    group: HoleGroup
    kind: str
    scale: float  # window side / model size: scan px per model px when the GAN restores it
    within_limit: bool  # scale <= max_scale (False only for holes too large for the limit)

    @property
    def labels(self) -> tuple[int, ...]:
        return self.group.labels


@dataclass
class DamageMap:
    """The decomposed mask: a label image of pieces, the pieces, and their windows."""

    labels: np.ndarray  # int32 H x W, 0 = known, else the piece's label
    pieces: list[Piece]
    windows: list[DamageWindow]
    params: DamageParams

    def kind_mask(self, kind: str) -> np.ndarray:
        """Pixels of the damage of one kind (boolean H x W)."""
        wanted = [p.label for p in self.pieces if p.kind == kind]
        lut = np.zeros(len(self.pieces) + 1, dtype=bool)
        lut[wanted] = True
        return lut[self.labels]

    def windows_of(self, kind: str) -> list[DamageWindow]:
        return [w for w in self.windows if w.kind == kind]

    def groups_of(self, kind: str) -> list[HoleGroup]:
        return [w.group for w in self.windows if w.kind == kind]

    def summary(self) -> dict[str, int]:
        """Counts for reports: pieces and windows per kind, components per kind."""
        out: dict[str, int] = {}
        for kind in KINDS:
            pieces = [p for p in self.pieces if p.kind == kind]
            out[f"{kind}_components"] = len({p.component for p in pieces})
            out[f"{kind}_pieces"] = len(pieces)
            out[f"{kind}_windows"] = len(self.windows_of(kind))
        return out


def analyse_damage(mask: np.ndarray, params: DamageParams) -> DamageMap:
    """Decompose ``mask`` (boolean H x W, True = missing) into classified pieces and windows."""
    mask = np.ascontiguousarray(mask.astype(bool, copy=False))
    height, width = mask.shape
    thin, loss = split_by_width(mask, params.thin_threshold(mask.shape))
    labels = np.zeros((height, width), dtype=np.int32)
    pieces: list[Piece] = []
    for kind, part in ((LOSS, loss), (THIN, thin)):
        count, comp, stats, _ = cv2.connectedComponentsWithStats(
            part.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        for c in range(1, count):
            box = _stat_box(stats[c])
            rows, cols = slice(box.top, box.bottom), slice(box.left, box.right)
            local = comp[rows, cols] == c
            widest = _widest(local)
            # Only long damage is cut: a compact loss wider than a window can hold whole keeps
            # its one window (cut into a grid, its inner pieces would see no painting at all).
            long = widest * params.min_context_factor <= params.max_side
            parts = _cut(local, params.piece_extent) if long else [np.nonzero(local)]
            for py, px in parts:
                label = len(pieces) + 1
                py, px = py + box.top, px + box.left
                labels[py, px] = label
                pieces.append(
                    Piece(
                        label=label,
                        kind=kind,
                        component=c,
                        bbox=Box(
                            int(py.min()), int(px.min()), int(py.max()) + 1, int(px.max()) + 1
                        ),
                        pixels=len(py),
                        width=widest,
                    )
                )
    windows = _windows(pieces, params, height, width)
    return DamageMap(labels=labels, pieces=pieces, windows=windows, params=params)


def gan_windows(
    mask: np.ndarray, params: InpaintParams, model_size: int
) -> tuple[np.ndarray, list[HoleGroup]]:
    """(piece labels, windows) for restoring every hole of ``mask`` with the GAN (the engine's
    view when no method per kind of damage is asked for: cracks too get scale-limited windows)."""
    damage = analyse_damage(mask, DamageParams.of(params, model_size))
    return damage.labels, [w.group for w in damage.windows]


def split_by_width(mask: np.ndarray, thin_width: float) -> tuple[np.ndarray, np.ndarray]:
    """(thin, loss): the opening of ``mask`` by a disk of diameter ``thin_width`` is the loss.

    ``distance > r`` is the mask eroded by a disk of radius r; dilating it back by the same disk
    covers every pixel of a part at least ``2 r`` wide. Thin components that touch a loss and are
    no longer than ``2 thin_width`` are the corners and ragged edges the opening shaved off that
    loss: they go back to it (a crack leaving a loss is longer and stays thin).
    """
    r = thin_width / 2.0
    u8 = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    distance = cv2.distanceTransform(u8, cv2.DIST_L2, 5)
    core = (distance > r).astype(np.uint8)
    if not core.any():
        return mask.copy(), np.zeros_like(mask)
    radius = math.ceil(r)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    loss = cv2.dilate(core, disk).astype(bool) & mask
    thin = mask & ~loss
    if thin.any():
        count, comp, stats, _ = cv2.connectedComponentsWithStats(
            thin.view(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        near_loss = cv2.dilate(loss.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        touching = np.zeros(count, dtype=bool)
        touching[np.unique(comp[near_loss & thin])] = True
        extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
        shaved = touching & (extent <= 2 * thin_width)
        shaved[0] = False
        if shaved.any():
            back = shaved[comp]
            loss |= back
            thin &= ~back
    return thin, loss


def _stat_box(stat: np.ndarray) -> Box:
    top, left = int(stat[cv2.CC_STAT_TOP]), int(stat[cv2.CC_STAT_LEFT])
    return Box(top, left, top + int(stat[cv2.CC_STAT_HEIGHT]), left + int(stat[cv2.CC_STAT_WIDTH]))


def _widest(local: np.ndarray) -> float:
    padded = np.pad(local.view(np.uint8), 1)  # the crop's border is known, not image border
    return float(2.0 * cv2.distanceTransform(padded, cv2.DIST_L2, 5).max())


def _cut(local: np.ndarray, extent: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pieces (pixel coordinates in ``local``) of extent <= ``extent`` where the shape allows.

    Recursive: a part longer than ``extent`` is cut into equal slabs across its longer side and
    each slab into its connected parts; a part that cannot be cut further (a compact blob wider
    than ``extent``) stays whole. Slivers (parts no longer than a quarter of ``extent``, cut off
    at a slab's edge) join the neighbouring piece they touch most. Parts are kept as pixel
    coordinates, so a craquelure network of thousands of pieces costs memory in its pixels only.
    """
    ys, xs = np.nonzero(local)
    parts = _cut_points(ys, xs, extent)
    if len(parts) > 1:
        parts = _absorb_slivers(parts, local.shape, max(2, extent // 4))
    return parts


def _cut_points(ys: np.ndarray, xs: np.ndarray, extent: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(ys) == 0:
        return []
    top, left = int(ys.min()), int(xs.min())
    height, width = int(ys.max()) - top + 1, int(xs.max()) - left + 1
    if max(height, width) <= extent:
        return [(ys, xs)]
    along = ys - top if height >= width else xs - left
    length = max(height, width)
    slab = np.minimum(along * math.ceil(length / extent) // length, math.ceil(length / extent) - 1)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for s in np.unique(slab):
        sy, sx = ys[slab == s], xs[slab == s]
        t, lft = int(sy.min()), int(sx.min())
        crop = np.zeros((int(sy.max()) - t + 1, int(sx.max()) - lft + 1), dtype=np.uint8)
        crop[sy - t, sx - lft] = 1
        count, comp = cv2.connectedComponents(crop, connectivity=8)
        ids = comp[sy - t, sx - lft]
        for c in range(1, count):
            keep = ids == c
            out += _cut_points(sy[keep], sx[keep], extent)
    return out


def _absorb_slivers(
    parts: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, ...], small: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Merge parts no longer than ``small`` into the touching part that shares most border."""
    ids = np.zeros(shape, dtype=np.int32)
    for i, (py, px) in enumerate(parts, start=1):
        ids[py, px] = i
    height, width = shape
    for i, (py, px) in enumerate(parts, start=1):
        if max(py.max() - py.min(), px.max() - px.min()) + 1 > small:
            continue
        votes: list[np.ndarray] = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ny, nx = py + dy, px + dx
                ok = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
                votes.append(ids[ny[ok], nx[ok]])
        near = np.concatenate(votes)
        near = near[(near != 0) & (near != i)]
        if len(near):
            ids[py, px] = np.bincount(near).argmax()
    py, px = np.nonzero(ids)
    owner = ids[py, px]
    order = np.argsort(owner, kind="stable")
    py, px, owner = py[order], px[order], owner[order]
    cuts = np.flatnonzero(np.diff(owner)) + 1
    return list(zip(np.split(py, cuts), np.split(px, cuts), strict=True))


def window_side(longest: int, params: DamageParams, extent: int) -> tuple[int, int]:
    """(side, wanted): the square side for a hole of longest side ``longest``.

    ``wanted`` is the context rule (``context_factor`` x the hole, at least the model's size);
    the side is capped at ``max_side`` as long as the hole keeps ``min_context_factor`` context,
    and at the image (``extent``: its longer side) as long as the hole fits.
    """
    wanted = max(math.ceil(longest * params.context_factor), params.model_size)
    floor = max(math.ceil(longest * params.min_context_factor), params.model_size)
    side = max(min(wanted, params.max_side), floor) if wanted > params.max_side else wanted
    side = max(min(side, extent), longest)
    return side, wanted


def _square(bbox: Box, params: DamageParams, height: int, width: int) -> tuple[Box, int]:
    side, wanted = window_side(max(bbox.height, bbox.width), params, max(height, width))
    top = _place(bbox.top, bbox.bottom, side, height)
    left = _place(bbox.left, bbox.right, side, width)
    return Box(top, left, top + side, left + side), wanted


def _fits(bbox: Box, params: DamageParams) -> bool:
    """A hole this size keeps ``min_context_factor`` context inside ``max_side``."""
    return max(bbox.height, bbox.width) * params.min_context_factor <= params.max_side


def _windows(
    pieces: list[Piece], params: DamageParams, height: int, width: int
) -> list[DamageWindow]:
    """Windows per kind; pieces of a kind share one where their windows overlap and it fits."""
    out: list[DamageWindow] = []
    for kind in KINDS:
        members = [[p] for p in pieces if p.kind == kind]
        while len(members) > 1:
            boxes = [_union(m) for m in members]
            windows = [_square(b, params, height, width)[0].clip(height, width) for b in boxes]
            roots = _merge_overlapping(windows)
            merged: dict[int, list[Piece]] = {}
            for root, group in zip(roots, members, strict=True):
                merged.setdefault(root, []).extend(group)
            joined = []
            for root, group in merged.items():
                # Merge only where the shared window keeps to the scale limit; otherwise the
                # pieces are restored apart (each sees the other's pixels as not-known context).
                if len(group) > 1 and not _fits(_union(group), params):
                    joined += [members[i] for i, r in enumerate(roots) if r == root]
                else:
                    joined.append(group)
            if len(joined) == len(members):
                break
            members = joined
        for group in members:
            bbox = _union(group)
            window, wanted = _square(bbox, params, height, width)
            side = window.height
            scale = side / params.model_size
            hole = HoleGroup(
                labels=tuple(sorted(p.label for p in group)),
                bbox=bbox,
                window=window,
                wanted_side=wanted,
                hole_pixels=sum(p.pixels for p in group),
            )
            out.append(DamageWindow(hole, kind, scale, scale <= params.max_scale + 1e-9))
    out.sort(key=lambda w: (KINDS.index(w.kind), w.group.bbox.top, w.group.bbox.left))
    return out


def _union(pieces: list[Piece]) -> Box:
    box = pieces[0].bbox
    for p in pieces[1:]:
        box = box.union(p.bbox)
    return box
