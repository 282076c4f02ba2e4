"""SURF, "Speeded-Up Robust Features" (Bay, Tuytelaars, Van Gool, ECCV 2006), in numpy.

OpenCV's SURF is non-free and PyPI's wheels are built without it, so Restauro carries its own
implementation and uses OpenCV's only when the installed build has it. Everything is vectorized
over pixels and keypoints: an integral image makes every box sum four lookups, whole response
maps are computed with strided slices of the (edge-padded) integral image, and the orientation
and descriptor stages gather the integral image at all sample points of all keypoints at once.

Conventions: ``x`` is the column, ``y`` the row, pixel centres are integers (as in OpenCV), the
angle is ``atan2(dy, dx)`` in image coordinates (y down) in radians, and the scale is the
Gaussian sigma the box filter approximates (1.2 for the 9 x 9 filter).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

DESCRIPTOR_SIZE = 64
DEFAULT_THRESHOLD = 0.0004  # on the determinant of the Hessian of an image in [0, 1]

# Orientation: Haar responses at sample step s within radius 6s, weighted by a Gaussian (2s).
_ORI_I, _ORI_J = np.meshgrid(np.arange(-6, 7), np.arange(-6, 7), indexing="ij")
_ORI_KEEP = _ORI_I**2 + _ORI_J**2 < 36
_ORI_DX = _ORI_I[_ORI_KEEP].astype(np.float64)  # (109,)
_ORI_DY = _ORI_J[_ORI_KEEP].astype(np.float64)
_ORI_WEIGHT = np.exp(-(_ORI_DX**2 + _ORI_DY**2) / (2 * 2.0**2))
_ORI_BINS = 72  # 5 degree bins; the sliding window spans pi/3 = 12 of them
_ORI_WINDOW = _ORI_BINS // 6

# Descriptor: a 20s square, 4 x 4 subregions of 5 x 5 samples each, Gaussian (3.3s) weighted.
_DESC_OFFSETS = np.arange(20, dtype=np.float64) - 9.5
_DESC_U, _DESC_V = np.meshgrid(_DESC_OFFSETS, _DESC_OFFSETS, indexing="xy")  # u along x
_DESC_WEIGHT = np.exp(-(_DESC_U**2 + _DESC_V**2) / (2 * 3.3**2)).ravel()


def integral_image(gray: np.ndarray) -> np.ndarray:
    """``ii[r, c]`` = sum of ``gray[:r, :c]``; shape (H + 1, W + 1), float64."""
    h, w = gray.shape
    ii = np.zeros((h + 1, w + 1), dtype=np.float64)
    np.cumsum(np.cumsum(gray, axis=0, dtype=np.float64), axis=1, out=ii[1:, 1:])
    return ii


def filter_sizes(octave: int, layers: int = 4) -> list[int]:
    """Box filter sizes of an octave: 9, 15, 21, 27; 15, 27, 39, 51; 27, 51, 75, 99; ..."""
    return [3 * ((2 ** (octave + 1)) * (i + 1) + 1) for i in range(layers)]


class _ResponseMaps:
    """Box sums over the whole image grid at a sampling step, via an edge-padded integral image.

    Padding the integral image by repeating its edge is the same as clamping box coordinates to
    the image, i.e. treating pixels outside it as zero; responses near the border are discarded
    later anyway.
    """

    def __init__(self, ii: np.ndarray, margin: int) -> None:
        self.h, self.w = ii.shape[0] - 1, ii.shape[1] - 1
        self.margin = margin
        self.padded = np.pad(ii, margin, mode="edge")

    def box(self, step: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """For every sample (r, c): sum of rows [r + r0, r + r1) and cols [c + c0, c + c1)."""
        nr, nc = -(-self.h // step), -(-self.w // step)
        p, m = self.padded, self.margin

        def at(dr: int, dc: int) -> np.ndarray:
            return p[
                m + dr : m + dr + step * (nr - 1) + 1 : step,
                m + dc : m + dc + step * (nc - 1) + 1 : step,
            ]

        return at(r1, c1) - at(r0, c1) - at(r1, c0) + at(r0, c0)

    def hessian_det(self, size: int, step: int) -> np.ndarray:
        """Approximated det(H) for filter ``size`` at every sample (Bay et al., eq. 3)."""
        lobe = size // 3
        half = (size - 1) // 2
        dxx = self.box(step, -lobe + 1, lobe, -half, half + 1) - 3 * self.box(
            step, -lobe + 1, lobe, -(lobe // 2), lobe // 2 + 1
        )
        dyy = self.box(step, -half, half + 1, -lobe + 1, lobe) - 3 * self.box(
            step, -(lobe // 2), lobe // 2 + 1, -lobe + 1, lobe
        )
        dxy = (
            self.box(step, -lobe, 0, 1, lobe + 1)
            + self.box(step, 1, lobe + 1, -lobe, 0)
            - self.box(step, -lobe, 0, -lobe, 0)
            - self.box(step, 1, lobe + 1, 1, lobe + 1)
        )
        area = float(size * size)
        return (dxx * dyy - 0.81 * dxy * dxy) / (area * area)


def _local_max_3x3x3(stack: np.ndarray) -> np.ndarray:
    """Max over each 3x3x3 neighbourhood of the middle layers of a (4, H, W) stack -> (2, H, W)."""
    across = np.maximum(np.maximum(stack[:-2], stack[1:-1]), stack[2:])
    rows = across.copy()
    rows[:, 1:] = np.maximum(rows[:, 1:], across[:, :-1])
    rows[:, :-1] = np.maximum(rows[:, :-1], across[:, 1:])
    out = rows.copy()
    out[:, :, 1:] = np.maximum(out[:, :, 1:], rows[:, :, :-1])
    out[:, :, :-1] = np.maximum(out[:, :, :-1], rows[:, :, 1:])
    return out


def _interpolate(stack: np.ndarray, li: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sub-sample offsets (dx, dy, ds) of extrema by a quadratic fit (Brown & Lowe 2002).

    Returns (N, 3); rows with an offset beyond one sample in any direction are NaN (the fit
    says the extremum is elsewhere: the point is dropped, as in OpenCV).
    """
    v = stack[li, r, c]
    gx = (stack[li, r, c + 1] - stack[li, r, c - 1]) / 2
    gy = (stack[li, r + 1, c] - stack[li, r - 1, c]) / 2
    gs = (stack[li + 1, r, c] - stack[li - 1, r, c]) / 2
    hxx = stack[li, r, c + 1] + stack[li, r, c - 1] - 2 * v
    hyy = stack[li, r + 1, c] + stack[li, r - 1, c] - 2 * v
    hss = stack[li + 1, r, c] + stack[li - 1, r, c] - 2 * v
    hxy = (
        stack[li, r + 1, c + 1]
        - stack[li, r + 1, c - 1]
        - stack[li, r - 1, c + 1]
        + stack[li, r - 1, c - 1]
    ) / 4
    hxs = (
        stack[li + 1, r, c + 1]
        - stack[li + 1, r, c - 1]
        - stack[li - 1, r, c + 1]
        + stack[li - 1, r, c - 1]
    ) / 4
    hys = (
        stack[li + 1, r + 1, c]
        - stack[li + 1, r - 1, c]
        - stack[li - 1, r + 1, c]
        + stack[li - 1, r - 1, c]
    ) / 4
    hess = np.stack(
        [
            np.stack([hxx, hxy, hxs], axis=-1),
            np.stack([hxy, hyy, hys], axis=-1),
            np.stack([hxs, hys, hss], axis=-1),
        ],
        axis=-2,
    )
    grad = np.stack([gx, gy, gs], axis=-1)
    offsets = np.full(grad.shape, np.nan)
    ok = np.abs(np.linalg.det(hess)) > 1e-30
    if ok.any():
        offsets[ok] = -np.linalg.solve(hess[ok], grad[ok][..., None])[..., 0]
    offsets[~(np.abs(offsets) <= 1).all(axis=1)] = np.nan
    return offsets


def detect(
    gray01: np.ndarray,
    ii: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    octaves: int = 4,
    init_step: int = 1,
) -> np.ndarray:
    """Fast-Hessian keypoints as an (N, 4) array of x, y, scale, response."""
    h, w = gray01.shape
    found: list[np.ndarray] = []
    largest = filter_sizes(octaves - 1)[-1]
    maps = _ResponseMaps(ii, margin=largest // 2 + 2)
    for octave in range(octaves):
        sizes = filter_sizes(octave)
        step = init_step * 2**octave
        # The biggest filter of the NMS neighbourhood must fit inside the image.
        if 2 * ((sizes[3] - 1) // 2 + 1) >= min(h, w):
            break
        stack = np.stack([maps.hessian_det(size, step) for size in sizes])
        maxima = _local_max_3x3x3(stack)
        for k in (1, 2):
            border = (sizes[k + 1] - 1) // 2 + 1  # pixels
            layer = stack[k]
            cand = (layer > threshold) & (layer >= maxima[k - 1])
            rows, cols = np.arange(layer.shape[0]), np.arange(layer.shape[1])
            rows_ok = (rows * step >= border) & (rows * step + border < h)
            cols_ok = (cols * step >= border) & (cols * step + border < w)
            rows_ok &= (rows >= 1) & (rows <= rows.size - 2)
            cols_ok &= (cols >= 1) & (cols <= cols.size - 2)
            cand &= rows_ok[:, None] & cols_ok[None, :]
            r, c = np.nonzero(cand)
            if r.size == 0:
                continue
            li = np.full(r.shape, k)
            off = _interpolate(stack, li, r, c)
            keep = ~np.isnan(off[:, 0])
            r, c, off = r[keep], c[keep], off[keep]
            x = (c + off[:, 0]) * step
            y = (r + off[:, 1]) * step
            size = sizes[k] + off[:, 2] * (sizes[k + 1] - sizes[k])
            found.append(np.stack([x, y, 1.2 * size / 9.0, stack[k][r, c]], axis=1))
    if not found:
        return np.zeros((0, 4))
    return np.concatenate(found)


def _haar(
    ii: np.ndarray, x: np.ndarray, y: np.ndarray, half: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Haar wavelet responses (dx, dy) of side ``2 * half`` centred at integer points (x, y).

    Coordinates are clamped to the image (pixels outside count as zero).
    """
    h, w = ii.shape[0] - 1, ii.shape[1] - 1
    r0 = np.clip(y - half, 0, h)
    rm = np.clip(y, 0, h)
    r1 = np.clip(y + half, 0, h)
    c0 = np.clip(x - half, 0, w)
    cm = np.clip(x, 0, w)
    c1 = np.clip(x + half, 0, w)
    a, b, c = ii[r0, c0], ii[r0, cm], ii[r0, c1]
    d, e, f = ii[rm, c0], ii[rm, c1], ii[r1, cm]
    g, k = ii[r1, c0], ii[r1, c1]
    # right half minus left half; bottom half minus top half
    dx = (k - c - f + b) - (f - b - g + a)
    dy = (k - g - e + d) - (e - d - c + a)
    return dx, dy


def orientations(ii: np.ndarray, kps: np.ndarray) -> np.ndarray:
    """Dominant orientation per keypoint: the longest sum of Haar responses in a pi/3 window."""
    if len(kps) == 0:
        return np.zeros(0)
    s = kps[:, 2:3]
    x = np.rint(kps[:, 0:1] + _ORI_DX * s).astype(np.intp)
    y = np.rint(kps[:, 1:2] + _ORI_DY * s).astype(np.intp)
    half = np.maximum(1, np.rint(2 * s)).astype(np.intp)
    dx, dy = _haar(ii, x, y, half)
    dx *= _ORI_WEIGHT
    dy *= _ORI_WEIGHT
    # Sum the responses into fine angular bins, then slide a pi/3 window over the circle of bins.
    n = len(kps)
    bins = (np.arctan2(dy, dx) % (2 * np.pi) * (_ORI_BINS / (2 * np.pi))).astype(np.intp)
    idx = (np.minimum(bins, _ORI_BINS - 1) + np.arange(n)[:, None] * _ORI_BINS).ravel()
    sums = np.stack(
        [
            np.bincount(idx, weights=comp.ravel(), minlength=n * _ORI_BINS).reshape(n, _ORI_BINS)
            for comp in (dx, dy)
        ]
    )  # (2, N, bins)
    wrapped = np.concatenate([sums, sums[:, :, : _ORI_WINDOW - 1]], axis=2)
    csum = np.concatenate([np.zeros((2, n, 1)), np.cumsum(wrapped, axis=2)], axis=2)
    window = csum[:, :, _ORI_WINDOW:] - csum[:, :, :-_ORI_WINDOW]  # (2, N, bins)
    best = np.argmax(window[0] ** 2 + window[1] ** 2, axis=1)
    rows = np.arange(n)
    return np.arctan2(window[1, rows, best], window[0, rows, best])


def descriptors(ii: np.ndarray, kps: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """The 64-d SURF descriptor, in the keypoint's rotated frame, unit length."""
    n = len(kps)
    if n == 0:
        return np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)
    s = kps[:, 2:3]
    co, si = np.cos(angles)[:, None], np.sin(angles)[:, None]
    u = _DESC_U.ravel() * s  # (N, 400), offsets along the keypoint's own x axis
    v = _DESC_V.ravel() * s
    x = np.rint(kps[:, 0:1] + co * u - si * v).astype(np.intp)
    y = np.rint(kps[:, 1:2] + si * u + co * v).astype(np.intp)
    half = np.maximum(1, np.rint(s)).astype(np.intp)
    dx, dy = _haar(ii, x, y, half)
    # Responses expressed along the keypoint's axes, weighted by distance from its centre.
    du = (co * dx + si * dy) * _DESC_WEIGHT
    dv = (-si * dx + co * dy) * _DESC_WEIGHT
    # (N, 20 rows, 20 cols) -> (N, 4, 5, 4, 5) -> sums per 4 x 4 subregion
    parts = []
    for comp in (du, dv, np.abs(du), np.abs(dv)):
        parts.append(comp.reshape(n, 4, 5, 4, 5).sum(axis=(2, 4)))
    desc = np.stack(parts, axis=-1).reshape(n, DESCRIPTOR_SIZE)
    norm = np.linalg.norm(desc, axis=1, keepdims=True)
    desc = np.divide(desc, norm, out=np.zeros_like(desc), where=norm > 0)
    return desc.astype(np.float32)


@functools.cache
def opencv_surf_available() -> bool:
    """Whether this OpenCV build has the non-free SURF (checked once: creating it may raise)."""
    try:
        cv2.xfeatures2d.SURF_create()
    except (AttributeError, cv2.error):
        return False
    return True


def _to_gray01(gray: np.ndarray) -> np.ndarray:
    arr = np.asarray(gray)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    return arr.astype(np.float64)


def detect_and_compute(
    gray: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    octaves: int = 4,
    init_step: int = 1,
    max_keypoints: int | None = None,
    use_opencv: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """SURF keypoints and descriptors of a gray image (uint8, or float in [0, 1]).

    Returns keypoints as an (N, 5) float64 array of x, y, scale, angle, response (strongest
    first, at most ``max_keypoints``) and descriptors as (N, 64) float32. ``use_opencv=None``
    uses OpenCV's non-free SURF when the installed build has it.
    """
    g = _to_gray01(gray)
    if use_opencv is None:
        use_opencv = opencv_surf_available()
    if use_opencv:
        return _opencv_detect_and_compute(g, threshold, octaves, max_keypoints)
    ii = integral_image(g)
    kps = detect(g, ii, threshold=threshold, octaves=octaves, init_step=init_step)
    order = np.argsort(-kps[:, 3], kind="stable")
    if max_keypoints is not None:
        order = order[:max_keypoints]
    kps = kps[order]
    angles = orientations(ii, kps)
    desc = descriptors(ii, kps, angles)
    out = np.column_stack([kps[:, 0], kps[:, 1], kps[:, 2], angles, kps[:, 3]])
    return out.reshape(-1, 5), desc


def _opencv_detect_and_compute(
    g: np.ndarray, threshold: float, octaves: int, max_keypoints: int | None
) -> tuple[np.ndarray, np.ndarray]:
    # OpenCV works on 0..255 images: the determinant scales with the square of the intensity.
    surf = cv2.xfeatures2d.SURF_create(hessianThreshold=threshold * 255.0**2, nOctaves=octaves)
    img = np.clip(np.rint(g * 255), 0, 255).astype(np.uint8)
    keypoints, desc = surf.detectAndCompute(img, None)
    if not keypoints:
        return np.zeros((0, 5)), np.zeros((0, DESCRIPTOR_SIZE), dtype=np.float32)
    kps = np.array(
        [(k.pt[0], k.pt[1], k.size * 1.2 / 9.0, np.deg2rad(k.angle), k.response) for k in keypoints]
    )
    order = np.argsort(-kps[:, 4], kind="stable")[:max_keypoints]
    return kps[order], desc[order].astype(np.float32)
