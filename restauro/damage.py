"""Synthetic damage: random masks shaped like the losses seen on scans of old paintings.

Real damage is rarely a clean square: paint flakes off in irregular blotches, canvases tear or get
scratched along lines, and some scans miss a rectangular piece (a label, a torn corner). Training
the encoder and evaluating restorations on such shapes, rather than only on centred squares, keeps
the figures honest. Masks follow :mod:`restauro.masks`: ``True`` = missing.

Every mask covers a chosen fraction of the image (10-50% by default), so that evaluations can
report results by how much of the painting is lost.
"""

from __future__ import annotations

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
    canvas = np.zeros((size, size), dtype=np.uint8)
    target = area * size * size
    slack = 0.05 * size * size
    covered = 0
    for _ in range(400):  # far more than needed: a stroke covers ~1-10% at these widths
        thickness = int(rng.integers(max(2, size // 32), max(3, size // 10) + 1))
        points = [rng.integers(0, size, 2)]
        for _ in range(int(rng.integers(1, 4))):
            step = rng.normal(0, size / 4, 2)
            points.append(np.clip(points[-1] + step, 0, size - 1).astype(np.int64))
        polyline = np.stack(points).astype(np.int32).reshape(-1, 1, 2)
        trial = canvas.copy()
        cv2.polylines(trial, [polyline], isClosed=False, color=1, thickness=thickness)
        trial_covered = int(trial.sum())
        if trial_covered > target + slack:
            continue
        canvas, covered = trial, trial_covered
        if covered >= target:
            break
    return canvas.astype(bool)
