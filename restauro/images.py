"""Decoding, encoding and resizing of paintings.

At every boundary an image is an RGB ``uint8`` array ``H x W x 3``. Decoding goes through Pillow
because it can read the header (size) before decoding any pixel: that is how decompression bombs
are refused without allocating them, and how truncated files are told apart from valid ones.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from restauro.errors import ImageTooLarge, InvalidImage

DEFAULT_MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image and, when the file had one, its alpha channel (``H x W`` uint8)."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image"
) -> DecodedImage:
    """Decode an encoded image (PNG, JPEG, TIFF, WebP...) into RGB plus optional alpha."""
    if not data:
        raise InvalidImage(f"{name} is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"{name} is {width}x{height} = {width * height:,} pixels; "
                    f"the limit is {max_pixels:,}"
                )
            img.load()
            has_alpha = img.mode in ("RGBA", "LA", "PA") or (
                img.mode == "P" and "transparency" in img.info
            )
            if has_alpha:
                rgba = np.asarray(img.convert("RGBA"))
                return DecodedImage(
                    np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
                )
            return DecodedImage(np.ascontiguousarray(np.asarray(img.convert("RGB"))))
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name} is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"{name} is not a readable image (unknown or corrupt format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"{name} is corrupt or truncated: {exc}") from exc


def read_image(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Read and decode an image file; a missing file is an :class:`InvalidImage` too."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidImage(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode_image(data, max_pixels=max_pixels, name=str(path))


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB (or single-channel) ``uint8`` array."""
    arr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays
        raise InvalidImage("could not encode PNG")
    return buf.tobytes()


def write_png(path: Path | str, rgb: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(rgb))
    return path


def resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area interpolation when shrinking (no aliasing), bicubic when enlarging."""
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return rgb.copy()
    interp = cv2.INTER_AREA if height * width < h * w else cv2.INTER_CUBIC
    return cv2.resize(rgb, (width, height), interpolation=interp)


def fit_longer_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink so the longer side is at most ``max_side`` (never enlarges)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    return resize(rgb, max(1, round(h * scale)), max(1, round(w * scale)))


def center_crop_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square, resized to ``size`` x ``size`` (the DCGAN training view)."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize(rgb[top : top + side, left : left + side], size, size)


def to_model_range(batch: np.ndarray):
    """uint8 ``N x H x W x 3`` (or one ``H x W x 3``) -> float tensor in [-1, 1], NCHW."""
    import torch

    arr = batch[None] if batch.ndim == 3 else batch
    tensor = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    return tensor.div_(127.5).sub_(1.0)


def from_model_range(tensor) -> np.ndarray:
    """float tensor in [-1, 1], NCHW -> uint8 ``N x H x W x 3``."""
    arr = tensor.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().byte()
    return arr.permute(0, 2, 3, 1).contiguous().numpy()
