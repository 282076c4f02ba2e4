"""Images and backbone weight files shared by the feature extractor tests.

CNN tests never touch torchvision's weights API (it downloads): they build the architecture with
random weights and save them to a temporary file, which exercises the same loading path as a real
weights file at the same compute cost.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from restauro.images import read_image
from tests.data import paintings_dir


def blob_painting(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Colour fields with blobs and strokes of many sizes: corners and blobs for SIFT and SURF."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, size=(6, 6, 3)).astype(np.float32)
    img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(max(8, h * w // 1500)):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        if rng.random() < 0.6:
            cv2.circle(img, centre, int(rng.integers(2, max(3, min(h, w) // 8))), colour, -1)
        else:
            end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, centre, end, colour, int(rng.integers(1, 4)))
    img += rng.normal(0, 4, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def random_weights_file(directory: Path, kind: str, name: str) -> Path:
    """Imports torch only when a CNN test asks for it, so SURF/BoW tests start fast."""
    import torch

    from restauro.features.cnn import SqueezeNetExtractor, VGG16Extractor

    extractor = {"vgg16": VGG16Extractor, "squeezenet": SqueezeNetExtractor}[kind]
    torch.manual_seed(0)
    path = directory / name
    torch.save(extractor.build_backbone().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def vgg16_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_weights_file(tmp_path_factory.mktemp("vgg16"), "vgg16", "vgg16.pth")


@pytest.fixture(scope="session")
def squeezenet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("squeezenet")
    return random_weights_file(directory, "squeezenet", "squeezenet.pth")


def real_paintings(count: int, style: str = "Impressionism") -> list[np.ndarray]:
    """The first ``count`` paintings of a style (skips outside CI when the corpus is absent)."""
    paths = sorted((paintings_dir() / style).glob("*.jpg"))[:count]
    return [read_image(p).rgb for p in paths]
