"""Quality of a restoration against the undamaged painting, measured where it matters.

Whole-image scores are dominated by the untouched pixels (identical by construction), so every
metric can be restricted to the hole. The OpenCV diffusion inpainting methods (Telea 2004,
Navier-Stokes; restauro/inpaint/diffusion.py, where they are product methods for thin damage) are
the classical baselines a GAN restoration has to beat. The perceptual distance lives in
:mod:`restauro.perceptual` (it needs torch and the SqueezeNet weights; these scores need neither).
"""

from __future__ import annotations

import cv2
import numpy as np

from restauro.errors import InvalidParameter
from restauro.inpaint.diffusion import navier_stokes, telea


def _pixels(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise InvalidParameter(f"images differ in shape: {a.shape} vs {b.shape}")
    x, y = a.astype(np.float64), b.astype(np.float64)
    if mask is None:
        return x.reshape(-1), y.reshape(-1)
    m = np.asarray(mask, dtype=bool)
    if m.shape != a.shape[:2]:
        raise InvalidParameter(f"mask shape {m.shape} does not match image {a.shape[:2]}")
    if not m.any():
        raise InvalidParameter("mask is empty: no pixel to measure")
    return x[m].reshape(-1), y[m].reshape(-1)


def l1(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute difference in [0, 1] (uint8 images scaled by 255)."""
    x, y = _pixels(a, b, mask)
    return float(np.abs(x - y).mean() / 255.0)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit images; ``inf`` when identical."""
    x, y = _pixels(a, b, mask)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03).

    Colour images are averaged over channels, so the map is ``H x W``.
    """
    if a.shape != b.shape:
        raise InvalidParameter(f"images differ in shape: {a.shape} vs {b.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return ssim.mean(axis=2) if ssim.ndim == 3 else ssim


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean SSIM, over the whole image or over the pixels of ``mask``."""
    values = ssim_map(a, b)
    if mask is None:
        return float(values.mean())
    m = np.asarray(mask, dtype=bool)
    if m.shape != values.shape:
        raise InvalidParameter(f"mask shape {m.shape} does not match image {values.shape}")
    if not m.any():
        raise InvalidParameter("mask is empty: no pixel to measure")
    return float(values[m].mean())


def hole_metrics(restored: np.ndarray, original: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The scores reported in evaluations: inside the hole, and over the whole image."""
    return {
        "psnr_hole": psnr(restored, original, mask),
        "ssim_hole": ssim(restored, original, mask),
        "l1_hole": l1(restored, original, mask),
        "psnr": psnr(restored, original),
        "ssim": ssim(restored, original),
        "l1": l1(restored, original),
    }


def telea_baseline(rgb: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """OpenCV's fast-marching inpainting (Telea 2004): a product method now (thin damage)."""
    return telea(rgb, mask, radius)


def ns_baseline(rgb: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """OpenCV's Navier-Stokes inpainting (Bertalmio et al. 2001)."""
    return navier_stokes(rgb, mask, radius)
