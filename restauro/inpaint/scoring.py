"""Scores that compare candidates of different methods like with like.

A z-optimization loss ranks G(z)s against each other, but says nothing about a Telea fill, and a
Telea fill has no loss at all. So every candidate, whatever made it, is also scored the same way:

* **Held-out ring score**: a ring of known pixels around the hole (``ring`` px wide) is hidden
  from the method, which restores hole + ring from what lies beyond; its prediction of the ring
  is then compared with the painting there. The comparison is on the *structure band* (errors
  averaged over ``sigma`` px, a normalised convolution over the ring): no method can predict the
  exact phase of brush marks it never saw, and a plain PSNR would reward the smoothest fill for
  not trying. Reported as a PSNR in dB, higher is better.
* **Detail ratio** (no reference): mean gradient magnitude inside the hole / in a ring around it.
  About 1 when the fill is as detailed as its surroundings, near 0 for a smooth fill.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def ring_around(hole: np.ndarray, width: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Pixels within ``width`` px of ``hole`` (not in it), restricted to ``allowed`` if given."""
    size = 2 * int(width) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    ring = cv2.dilate(hole.astype(np.uint8), kernel).astype(bool) & ~hole
    return ring if allowed is None else ring & allowed


def structure_error(
    predicted: np.ndarray, truth: np.ndarray, ring: np.ndarray, sigma: float = 2.0
) -> tuple[float, int]:
    """(sum of squared structure-band errors over the ring's pixels and channels, their count).

    Sums, not means, so the errors of several windows pool into one score (:func:`psnr_db`).
    """
    if not ring.any():
        return 0.0, 0
    diff = (predicted.astype(np.float32) - truth.astype(np.float32)) * ring[..., None]
    weight = ring.astype(np.float32)
    num = cv2.GaussianBlur(diff, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    local = num[ring] / np.maximum(den[ring], 1e-6)[:, None]
    return float((local.astype(np.float64) ** 2).sum()), int(local.size)


def psnr_db(squared_error: float, count: int) -> float:
    """PSNR (8-bit) of pooled squared errors; ``inf`` for a perfect prediction, nan for none."""
    if count == 0:
        return float("nan")
    mse = squared_error / count
    return float("inf") if mse <= 0 else float(10.0 * math.log10(255.0**2 / mse))


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of the luminance (float32 H x W)."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    grey = grey.astype(np.float32)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def detail_ratio(rgb: np.ndarray, hole: np.ndarray, ring: int = 16) -> float:
    """Mean gradient magnitude inside ``hole`` / in a ``ring`` px band around it (nan if flat).

    The hole is eroded by one pixel first, so the seam at its edge does not count as detail.
    """
    hole = hole.astype(bool)
    inner = cv2.erode(hole.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    inner = inner if inner.any() else hole
    around = ring_around(hole, ring)
    if not around.any():
        return float("nan")
    grad = gradient_magnitude(rgb)
    outside = float(grad[around].mean())
    return float(grad[inner].mean() / outside) if outside > 0 else float("nan")
