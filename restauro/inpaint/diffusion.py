"""Diffusion inpainting at full resolution: OpenCV's Telea (2004) and Navier-Stokes (2001).

Thin damage (cracks, scratches a few pixels wide) is filled well by propagating the colours on
either side of it inward; a GAN would have to see it downscaled to its 64 px, where a 4 px crack
is a fraction of a pixel. So these are product methods for thin damage, and the baselines every
restoration of a loss is offered beside (and evaluations compare against: ``restauro.metrics``
re-exports them under their old names).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from restauro.errors import InvalidParameter

TELEA = "telea"
NS = "ns"
FLAGS = {TELEA: cv2.INPAINT_TELEA, NS: cv2.INPAINT_NS}
METHODS = tuple(FLAGS)

Fill = Callable[[np.ndarray, np.ndarray], np.ndarray]


def diffuse(rgb: np.ndarray, mask: np.ndarray, method: str = TELEA, radius: int = 5) -> np.ndarray:
    """``rgb`` (H x W x 3 uint8) with the pixels of ``mask`` filled by ``method``, nothing else.

    ``radius`` is the neighbourhood each filled pixel is computed from (OpenCV's inpaintRadius).
    """
    if method not in FLAGS:
        raise InvalidParameter(f"diffusion method must be one of {METHODS}, got {method!r}")
    if radius < 1:
        raise InvalidParameter(f"radius must be >= 1, got {radius}")
    m = np.asarray(mask).astype(bool)
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    filled = cv2.inpaint(bgr, m.view(np.uint8) * np.uint8(255), radius, FLAGS[method])
    out = rgb.copy()
    out[m] = cv2.cvtColor(filled, cv2.COLOR_BGR2RGB)[m]  # nothing changes outside the mask
    return out


def telea(rgb: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """OpenCV's fast-marching inpainting (Telea 2004)."""
    return diffuse(rgb, mask, TELEA, radius)


def navier_stokes(rgb: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """OpenCV's Navier-Stokes inpainting (Bertalmio et al. 2001)."""
    return diffuse(rgb, mask, NS, radius)
