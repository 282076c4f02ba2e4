"""Damage masks: where the painting is missing and must be restored.

A mask is a boolean ``H x W`` array, ``True`` = missing. On disk and over HTTP a mask is an image
whose nonzero pixels mark the damage (the OpenCV / IOPaint convention), or the alpha channel of an
RGBA upload, where any pixel that is not fully opaque is treated as missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from restauro.errors import EmptyMask, FullMask, InvalidMask, MaskSizeMismatch
from restauro.images import DEFAULT_MAX_PIXELS, DecodedImage, decode_image


def mask_from_image(decoded: DecodedImage) -> np.ndarray:
    """Nonzero in any channel = missing. A mask with alpha uses alpha as the coverage."""
    pixels = decoded.deep if decoded.deep is not None else decoded.rgb  # 16-bit: any nonzero
    if decoded.alpha is not None and decoded.alpha.min() < 255 and not pixels.any():
        # A black image whose alpha paints the damage (as some editors export masks).
        return decoded.alpha > 0
    return pixels.any(axis=2)


def mask_from_alpha(alpha: np.ndarray) -> np.ndarray:
    """Transparent (alpha < 255) = missing."""
    return alpha < 255


def validate_mask(mask: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Check a mask against its image; return it as a contiguous boolean array."""
    if mask.ndim != 2:
        raise InvalidMask(f"mask must be two-dimensional, got shape {mask.shape}")
    if mask.shape != tuple(image_size):
        h, w = image_size
        mh, mw = mask.shape
        raise MaskSizeMismatch(f"mask is {mw}x{mh} but the image is {w}x{h}; they must match")
    mask = np.ascontiguousarray(mask.astype(bool, copy=False))
    if not mask.any():
        raise EmptyMask("mask marks no missing pixels: nothing to restore")
    if mask.all():
        raise FullMask("mask covers the whole image: there is no context to restore from")
    return mask


@dataclass(frozen=True)
class Scan:
    """A decoded upload (8-bit RGB for the models, the file's depth, profile and orientation for
    writing results like it) and its validated damage mask."""

    image: DecodedImage
    mask: np.ndarray

    @property
    def rgb(self) -> np.ndarray:
        return self.image.rgb


def load_image_and_mask(
    image_bytes: bytes,
    mask_bytes: bytes | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[np.ndarray, np.ndarray]:
    """The one place both the HTTP service and the CLI turn uploads into (rgb, mask)."""
    scan = load_scan(image_bytes, mask_bytes, max_pixels)
    return scan.rgb, scan.mask


def load_scan(
    image_bytes: bytes,
    mask_bytes: bytes | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Scan:
    """:func:`load_image_and_mask` keeping what is needed to write results like the upload.

    With a separate mask, the image's alpha (if any) is ignored. Without one, the image must carry
    an alpha channel whose transparent pixels mark the damage. Both are turned upright by their
    EXIF orientation, so a mask drawn on the painting as shown fits it.
    """
    image = decode_image(image_bytes, max_pixels=max_pixels, name="image")
    if mask_bytes is not None:
        mask = mask_from_image(decode_image(mask_bytes, max_pixels=max_pixels, name="mask"))
    elif image.alpha is not None:
        mask = mask_from_alpha(image.alpha)
    else:
        raise InvalidMask(
            "no mask given: send a mask image (nonzero = missing) or an RGBA image whose "
            "transparent pixels mark the damage"
        )
    return Scan(image, validate_mask(mask, image.size))
