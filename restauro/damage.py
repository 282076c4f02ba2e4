"""Synthetic damage: masks shaped like the losses seen on scans of old paintings.

Real damage is rarely a clean square: paint flakes off in irregular blotches, canvases tear or get
scratched along lines, varnish and paint crack into a fine net (craquelure), and some scans miss a
rectangular piece (a label, a torn corner). Training the encoder and evaluating restorations on
such shapes, rather than only on centred squares, keeps the figures honest. Masks follow
:mod:`restauro.masks`: ``True`` = missing.

Two families: :func:`random_damage_masks` (a random kind and a chosen area, 10-50% by default, for
encoder training) and the four named kinds of ``restauro evaluate`` (:data:`EVAL_MASKS`), each a
pure function of its seed so every method of an evaluation restores the same holes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import cv2
import numpy as np

from restauro.errors import InvalidParameter

DAMAGE_KINDS = ("rectangle", "blotch", "scratches")


def random_damage_masks(
    n: int,
    size: int,
    rng: np.random.Generator,
    min_area: float = 0.1,
    max_area: float = 0.5,
    kinds: Sequence[str] = DAMAGE_KINDS,
) -> np.ndarray:
    """``n`` boolean masks ``size x size`` (True = missing), each of a random kind and area.

    The area of each mask is drawn uniformly in ``[min_area, max_area]`` (fractions of the image);
    rectangles and blotches hit it within a few pixels, scratches within 5% of the image. The same
    ``rng`` state gives the same masks.
    """
    if n < 0 or size < 8:
        raise InvalidParameter(f"need n >= 0 and size >= 8, got n={n}, size={size}")
    if not 0.0 < min_area <= max_area < 1.0:
        raise InvalidParameter(
            f"areas must satisfy 0 < min_area <= max_area < 1, got {min_area}, {max_area}"
        )
    unknown = sorted(set(kinds) - set(DAMAGE_KINDS))
    if not kinds or unknown:
        raise InvalidParameter(f"damage kinds must be among {DAMAGE_KINDS}, got {list(kinds)}")
    makers = {"rectangle": _rectangle, "blotch": _blotch, "scratches": _scratches}
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        area = float(rng.uniform(min_area, max_area))
        masks[i] = makers[kind](size, area, rng)
    return masks


def _rectangle(size: int, area: float, rng: np.random.Generator) -> np.ndarray:
    """One axis-aligned rectangle of random aspect ratio (a missing piece of the canvas)."""
    pixels = area * size * size
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    width = int(np.clip(round(np.sqrt(pixels * aspect)), 1, size))
    height = int(np.clip(round(pixels / width), 1, size))
    top = int(rng.integers(0, size - height + 1))
    left = int(rng.integers(0, size - width + 1))
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def _blotch(size: int, area: float, rng: np.random.Generator) -> np.ndarray:
    """Irregular blobs: smoothed noise thresholded at the quantile that gives the wanted area.

    The smoothing scale sets how many blobs appear: large scales give one or two flakes, small
    ones a scatter of spots, as in paint loss.
    """
    noise = rng.standard_normal((size, size)).astype(np.float32)
    sigma = float(rng.uniform(size / 16, size / 6))
    smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    threshold = np.quantile(smooth, 1.0 - area)
    return smooth > threshold


def _scratches(size: int, area: float, rng: np.random.Generator) -> np.ndarray:
    """Random thick strokes (tears, scratches) added until they cover the wanted area.

    A stroke that would overshoot the area by more than 5% of the image is redrawn, so the
    coverage stays close to what was asked for.
    """
    return _strokes(size, area, area + 0.05, rng)


def _strokes(size: int, area: float, ceiling: float, rng: np.random.Generator) -> np.ndarray:
    """Thick polylines added until they cover ``area`` of the image, never more than ``ceiling``.

    A stroke that would push the coverage above ``ceiling`` is redrawn, so the result lands in
    ``[area, ceiling]`` (400 tries are far more than needed: a stroke covers ~1-10% at these
    widths). Line ends and joints are rounded, as a brush or a tear leaves them.
    """
    canvas = np.zeros((size, size), dtype=np.uint8)
    target = area * size * size
    limit = ceiling * size * size
    for _ in range(400):
        thickness = int(rng.integers(max(2, size // 32), max(3, size // 10) + 1))
        points = [rng.integers(0, size, 2)]
        for _ in range(int(rng.integers(1, 4))):
            step = rng.normal(0, size / 4, 2)
            points.append(np.clip(points[-1] + step, 0, size - 1).astype(np.int64))
        polyline = np.stack(points).astype(np.int32).reshape(-1, 1, 2)
        trial = canvas.copy()
        cv2.polylines(trial, [polyline], isClosed=False, color=1, thickness=thickness)
        covered = int(trial.sum())
        if covered > limit:
            continue
        canvas = trial
        if covered >= target:
            break
    return canvas.astype(bool)


# --- evaluation masks --------------------------------------------------------------------------
# The four kinds `restauro evaluate` scores. Each is a pure function of (size, rng): the same seed
# gives the same mask, so every method of an evaluation restores exactly the same holes.

EVAL_MASKS = ("centre", "strokes", "cracks", "blotches")
STROKES_AREA = (0.10, 0.30)
BLOTCHES_AREA = (0.10, 0.30)
CRACKS_AREA = (0.03, 0.10)
CENTRE_AREA = 0.25


def centre_mask(size: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """The centre square covering 25% of the image (side size/2): Yeh et al.'s benchmark hole.

    It takes ``rng`` only to share the signature of the other kinds; it is always the same mask.
    """
    _check_size(size)
    side = size // 2
    top = (size - side) // 2
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, top : top + side] = True
    return mask


def strokes_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Free-form brush strokes covering 10-30% of the image (the free-form masks of Yu et al.).

    The wanted area is drawn uniformly in the range; strokes are added until it is reached and
    any stroke that would exceed 30% is redrawn, so the area always lies inside the range.
    """
    _check_size(size)
    low, high = STROKES_AREA
    return _strokes(size, float(rng.uniform(low, high)), high, rng)


def blotches_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Irregular paint losses (flakes, spots) covering 10-30% of the image."""
    _check_size(size)
    return _blotch(size, float(rng.uniform(*BLOTCHES_AREA)), rng)


def cracks_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """Craquelure: a network of one-pixel-wide, wobbly cracks over a patch of the painting.

    Ageing paint cracks into a net of small irregular cells. This draws the boundaries of a
    Voronoi tessellation (cells ~8 px across at any size, as a crack net is a property of the
    paint, not of the image size) whose sample positions are displaced by smooth noise, so the
    cracks wander instead of running straight. Boundaries are marked on one side only, which keeps
    the lines one pixel wide (a staircase on diagonals; tiny cells may leave a small knot). A
    smooth random field then keeps the cracks of one region, sized so that 3-10% of the pixels are
    missing: real craquelure is dense in some areas of a painting and absent in others.
    """
    _check_size(size)
    cell = 8.0
    seeds = rng.uniform(0, size, (max(4, round((size / cell) ** 2)), 2)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = [_smooth_noise(size, size / 16, rng) * (cell / 3) for _ in range(2)]
    wy, wx = yy + warp[0], xx + warp[1]
    labels = np.empty((size, size), dtype=np.int64)
    rows = max(1, 4_000_000 // (size * len(seeds)))  # bound the rows x size x seeds distances
    for top in range(0, size, rows):
        y, x = wy[top : top + rows, :, None], wx[top : top + rows, :, None]
        labels[top : top + rows] = np.argmin((y - seeds[:, 0]) ** 2 + (x - seeds[:, 1]) ** 2, -1)
    edges = np.zeros((size, size), dtype=bool)
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:-1, :] |= labels[:-1, :] != labels[1:, :]
    area = float(rng.uniform(*CRACKS_AREA))
    region = _smooth_noise(size, size / 6, rng)
    wanted = round(area * size * size)
    if edges.sum() > wanted:
        # keep the crack pixels lying where the region field is highest: one or two dense patches
        threshold = np.sort(region[edges])[-wanted]
        edges &= region >= threshold
    return edges


MASK_MAKERS = {
    "centre": centre_mask,
    "strokes": strokes_mask,
    "cracks": cracks_mask,
    "blotches": blotches_mask,
}


def evaluation_mask(kind: str, size: int, seed: int, key: str = "") -> np.ndarray:
    """The mask of one kind for one painting: a pure function of (kind, size, seed, key).

    ``key`` names the painting (its path), so a painting gets the same mask whichever other
    paintings are evaluated with it, and every method sees the same mask.
    """
    if kind not in MASK_MAKERS:
        raise InvalidParameter(f"mask kind must be among {EVAL_MASKS}, got {kind!r}")
    digest = hashlib.sha256(f"{kind}:{key}".encode()).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest[:8], "big")])
    return MASK_MAKERS[kind](size, rng)


def _smooth_noise(size: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to unit standard deviation."""
    noise = rng.standard_normal((size, size)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    return smooth / max(float(smooth.std()), 1e-6)


def _check_size(size: int) -> None:
    if size < 8:
        raise InvalidParameter(f"mask size must be >= 8, got {size}")
