"""Decoding, encoding and resizing of paintings.

At every boundary an image is an RGB ``uint8`` array ``H x W x 3``. Decoding starts with Pillow
because it can read the header (size) before decoding any pixel: that is how decompression bombs
are refused without allocating them, and how truncated files are told apart from valid ones.
What the file says beyond 8-bit RGB (16-bit samples, an ICC profile, an EXIF orientation) is kept
beside the pixels (:class:`ImageInfo`, ``DecodedImage.deep``) so that a restoration is written
back like the scan it came from (:func:`encode_like`): outside the hole, bit for bit the file.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin, UnidentifiedImageError

from restauro.errors import ImageTooLarge, InvalidImage

DEFAULT_MAX_PIXELS = 40_000_000
ORIENTATION = 0x0112  # the EXIF (and TIFF) tag of a file's orientation, 1-8
ICC_PROFILE = 34675  # the TIFF tag of an embedded ICC profile

# Pillow warns over its own limit (~89 MP) and refuses over twice that before we can apply
# ours; we check the header against ``max_pixels`` ourselves (Settings.max_pixels: a deployment
# may allow 150 MP scans), so its check is off while a header is read, under this lock.
_PILLOW_LIMIT = threading.Lock()


@dataclass(frozen=True)
class ImageInfo:
    """What a file says about its pixels beyond their RGB values, kept so results match it.

    Museum scans are 16-bit TIFFs or PNGs with an ICC profile, sometimes with an EXIF
    orientation: a restoration returned at 8 bits, without its profile, or turned, is not the
    same painting. ``orientation`` is the file's; decoded pixels are always upright.
    """

    format: str | None = None  # "PNG", "TIFF", "JPEG" ... (Pillow's name)
    bit_depth: int = 8  # bits per channel of the file: 8 or 16
    icc_profile: bytes | None = field(default=None, repr=False)
    orientation: int = 1  # EXIF orientation 1-8 (1 = as stored)

    @property
    def plain(self) -> bool:
        """An 8-bit upright image without profile: an 8-bit PNG says everything about it."""
        return self.bit_depth == 8 and self.icc_profile is None and self.orientation == 1


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image, upright, and what is needed to write a result like the file it came from.

    ``rgb`` is 8 bits (what the models see; 16-bit files are rounded); ``deep`` holds the file's
    16-bit pixels (upright, RGB) when it had them, so a restoration can be written back at 16
    bits with every pixel outside the hole exactly the file's. ``alpha`` (H x W uint8) when the
    file had one: 255 only where it was fully opaque.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    deep: np.ndarray | None = None
    info: ImageInfo = ImageInfo()

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image"
) -> DecodedImage:
    """Decode an encoded image (PNG, JPEG, TIFF, WebP...): upright RGB, alpha, 16-bit pixels.

    The pixel count is checked from the header, before any pixel is decoded (decompression bombs
    and scans over ``max_pixels`` are refused without allocating them). 8-bit files decode
    through Pillow; 16-bit ones (Pillow would truncate them to 8 bits) through OpenCV, which also
    reads tiled and BigTIFF files. EXIF orientation is applied, so masks are drawn on the
    painting as every viewer shows it.
    """
    if not data:
        raise InvalidImage(f"{name} is empty")
    try:
        with _open(data, max_pixels, name) as img:
            info = ImageInfo(
                format=img.format,
                bit_depth=_bit_depth(img, data, name),
                icc_profile=img.info.get("icc_profile") or None,
                orientation=_orientation(img),
            )
            turned = False
            if info.bit_depth == 16:
                rgb, alpha, deep = _decode_deep(data, name)
                turned = info.orientation != 1 and _opencv_turns(info.format)
            else:
                _load(img)
                rgb, alpha = _decode_8bit(img)
                deep = None
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name} is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"{name} is not a readable image (unknown or corrupt format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"{name} is corrupt or truncated: {exc}") from exc
    o = 1 if turned else info.orientation
    return DecodedImage(
        upright(rgb, o),
        None if alpha is None else upright(alpha, o),
        None if deep is None else upright(deep, o),
        info,
    )


def image_info(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "image") -> ImageInfo:
    """The file's :class:`ImageInfo` from its header alone (no pixel is decoded)."""
    try:
        with _open(data, max_pixels, name) as img:
            return ImageInfo(
                img.format,
                _bit_depth(img, data, name),
                img.info.get("icc_profile") or None,
                _orientation(img),
            )
    except ImageTooLarge:
        raise
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidImage(f"{name} is not a readable image: {exc}") from exc


@contextmanager
def _open(data: bytes, max_pixels: int, name: str) -> Iterator[Image.Image]:
    """Pillow's lazy image (header read, no pixels), refused over ``max_pixels``."""
    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # the check below, against max_pixels, is the one
        try:
            img = Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with img:
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"{name} is too large: {width}x{height} = {width * height:,} pixels; "
                f"the limit is {max_pixels:,}"
            )
        yield img


def _load(img: Image.Image) -> None:
    """Decode the pixels; a TIFF over Pillow's own limit (checked again at load) is decoded with
    it off, as the header was: ``max_pixels`` already allowed it."""
    limit = Image.MAX_IMAGE_PIXELS
    width, height = img.size
    if limit is None or width * height <= limit:
        img.load()
        return
    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            img.load()
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _bit_depth(img: Image.Image, data: bytes, name: str) -> int:
    """8 or 16 bits per channel, read from the file (Pillow reports 16-bit RGB as "RGB")."""
    bits = 8
    if img.format == "PNG" and len(data) > 24:
        bits = data[24]  # IHDR bit depth
    elif img.format == "TIFF":
        value = getattr(img, "tag_v2", {}).get(258, 8)  # BitsPerSample
        bits = max(value) if isinstance(value, tuple | list) else int(value)
        if getattr(img, "tag_v2", {}).get(339) == 3 and bits > 8:  # SampleFormat: float
            raise InvalidImage(f"{name} has floating-point samples; send 8- or 16-bit integer RGB")
    elif img.mode.startswith("I;16"):
        bits = 16
    if bits > 16:
        raise InvalidImage(f"{name} has {bits}-bit samples; send 8- or 16-bit RGB")
    return 16 if bits == 16 else 8


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(ORIENTATION, 1))
    except Exception:  # a malformed EXIF block is no reason to refuse the painting
        return 1
    return value if 1 <= value <= 8 else 1


def _decode_8bit(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return np.ascontiguousarray(np.asarray(img.convert("RGB"))), None


def _decode_deep(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(rgb 8-bit, alpha 8-bit or None, rgb 16-bit) of a 16-bit PNG or TIFF, as stored."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InvalidImage(f"{name} is corrupt or truncated (16-bit decoder failed)")
    if arr.dtype != np.uint16:
        arr = arr.astype(np.uint16) * 257 if arr.dtype == np.uint8 else arr
        if arr.dtype != np.uint16:
            raise InvalidImage(f"{name} has {arr.dtype} samples; send 8- or 16-bit RGB")
    alpha = None
    if arr.ndim == 2:
        deep = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 1:
        deep = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 2:  # grey + alpha
        deep = np.repeat(arr[..., :1], 3, axis=2)
        alpha = arr[..., 1]
    else:
        deep = cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2RGB)
        alpha = arr[..., 3] if arr.shape[2] == 4 else None
    deep = np.ascontiguousarray(deep)
    a8 = None
    if alpha is not None:
        a8 = np.where(alpha == 65535, 255, np.minimum(to_8bit(alpha), 254)).astype(np.uint8)
    return to_8bit(deep), a8, deep


@cache
def _opencv_turns(fmt: str | None) -> bool:
    """Whether OpenCV's decoder already applies the orientation of this format's files.

    It does for TIFF and not for PNG (4.14, even with IMREAD_UNCHANGED); rather than trust a
    version, a two-pixel file mirrored by its orientation tag is decoded once and looked at.
    """
    probe = np.array([[0, 65535]], dtype=np.uint16)
    if fmt == "TIFF":
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[ORIENTATION] = 2
        buf = io.BytesIO()
        Image.fromarray(probe).save(buf, "TIFF", tiffinfo=tags)
        data = buf.getvalue()
    elif fmt == "PNG":
        _, arr = cv2.imencodeWithMetadata(
            ".png",
            probe,
            [cv2.IMAGE_METADATA_EXIF],
            [np.frombuffer(_exif_orientation(2), np.uint8)],
        )
        data = arr.tobytes()
    else:
        return False
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return out is not None and int(out.reshape(-1)[0]) == 65535


def to_8bit(deep: np.ndarray) -> np.ndarray:
    """16-bit samples rounded to the nearest 8-bit value (x * 255 / 65535)."""
    return ((deep.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_16bit(rgb: np.ndarray) -> np.ndarray:
    """8-bit samples spread over the 16-bit range exactly (x * 257: 255 -> 65535)."""
    return rgb.astype(np.uint16) * np.uint16(257)


# EXIF orientation -> how to turn the stored pixels upright (and back). 5 and 7 are transposes,
# 2-4 flips: their own inverses; 6 (stored rotated 90 degrees counter-clockwise) and 8 undo
# each other.
def upright(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels -> as shown (for EXIF ``orientation``)."""
    return np.ascontiguousarray(_ORIENT[orientation](arr))


def stored(arr: np.ndarray, orientation: int) -> np.ndarray:
    """As shown -> stored pixels: the inverse of :func:`upright`."""
    inverse = {6: 8, 8: 6}.get(orientation, orientation)
    return np.ascontiguousarray(_ORIENT[inverse](arr))


_ORIENT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def read_image(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Read and decode an image file; a missing file is an :class:`InvalidImage` too."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidImage(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decode_image(data, max_pixels=max_pixels, name=str(path))


def encode_png(rgb: np.ndarray, info: ImageInfo | None = None) -> bytes:
    """Lossless PNG bytes of an RGB (or single-channel) ``uint8`` or ``uint16`` array.

    With ``info`` the PNG is written like the file it describes: its ICC profile embedded, its
    EXIF orientation recorded and the pixels stored turned back accordingly (``rgb`` is upright),
    so it shows exactly as that file did. The depth is the array's: pass 16-bit pixels
    (:func:`like_source`) to keep a 16-bit scan at 16 bits.
    """
    info = info or ImageInfo()
    arr = stored(rgb, info.orientation) if info.orientation != 1 else rgb
    arr = arr if arr.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2BGR)
    kinds, blobs = [], []
    if info.icc_profile:
        kinds.append(cv2.IMAGE_METADATA_ICCP)
        blobs.append(np.frombuffer(info.icc_profile, np.uint8))
    if info.orientation != 1:
        kinds.append(cv2.IMAGE_METADATA_EXIF)
        blobs.append(np.frombuffer(_exif_orientation(info.orientation), np.uint8))
    if kinds:
        ok, buf = cv2.imencodeWithMetadata(".png", arr, kinds, blobs)
    else:
        ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - OpenCV fails only on invalid arrays
        raise InvalidImage("could not encode PNG")
    return buf.tobytes()


def _exif_orientation(orientation: int) -> bytes:
    """A minimal EXIF block (big-endian TIFF header, one IFD entry): the orientation only."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\x00\x00") else data  # PNG's eXIf has no prefix


def like_source(restored: np.ndarray, source: DecodedImage, mask: np.ndarray) -> np.ndarray:
    """A restoration (8-bit RGB) at the depth of its source: for a 16-bit file, the file's
    16-bit pixels outside ``mask`` (bit for bit) and the restoration, spread to 16 bits, inside."""
    if source.deep is None:
        return restored
    out = source.deep.copy()
    hole = np.asarray(mask, dtype=bool)
    out[hole] = to_16bit(restored[hole])
    return out


def encode_like(restored: np.ndarray, source: DecodedImage, mask: np.ndarray) -> bytes:
    """PNG bytes of a restoration written like its source file: depth, ICC, orientation."""
    return encode_png(like_source(restored, source, mask), source.info)


def write_png(path: Path | str, rgb: np.ndarray, info: ImageInfo | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(rgb, info))
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
