"""Where tests find the shared paintings corpus, and small synthetic images.

Real data lies outside the repository (it may not be redistributed). Tests that need it call
:func:`paintings_dir`; outside CI its absence skips them, in CI (``CI=true``) it fails them.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def paintings_dir() -> Path:
    root = Path(os.environ.get("RESTAURO_TEST_DATA", REPO.parent / "shared/data/paintings"))
    if not (root / "images").is_dir():
        _missing(f"paintings corpus not found at {root} (set RESTAURO_TEST_DATA)")
    return root / "images"


def squeezenet_weights() -> Path:
    """The shipped SqueezeNet 1.1 Caffe weights (``../shared/weights`` or RESTAURO_TEST_WEIGHTS)."""
    root = Path(os.environ.get("RESTAURO_TEST_WEIGHTS", REPO.parent / "shared/weights"))
    path = root / "squeezenet1_1_imagenet_caffe.pth"
    if not path.is_file():
        _missing(f"SqueezeNet weights not found at {path} (set RESTAURO_TEST_WEIGHTS)")
    return path


def textured_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A painting-like RGB image: smooth colour fields plus strokes, so features find keypoints."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            127 + 100 * np.sin(xx / (7 + 5 * rng.random()) + rng.random() * 6),
            127 + 100 * np.cos(yy / (9 + 5 * rng.random()) + rng.random() * 6),
            127 + 100 * np.sin((xx + yy) / (11 + 5 * rng.random())),
        ],
        axis=-1,
    )
    noise = rng.normal(0, 12, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims ``width x height`` grey pixels, with one tiny row of data.

    Decoding it would allocate width * height bytes; a safe decoder refuses it from the header.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def tiny_train_options(registry: Path, **overrides):
    """Settings for a bundle of tiny DCGANs on a few real paintings (seconds on 2 cores)."""
    from training.pipeline import TrainOptions

    base = dict(
        images=paintings_dir(),
        registry=registry,
        features="sift",
        clusters=2,
        image_size=64,
        epochs=1,
        batch_size=16,
        max_images=40,
        vocabulary=32,
        ngf=8,
        ndf=8,
        seed=0,
    )
    return TrainOptions(**(base | overrides))
