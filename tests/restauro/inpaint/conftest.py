"""A tiny DCGAN, briefly trained once per test session on synthetic paintings.

A DCGAN needs thousands of steps to learn even simple images, far beyond a unit test's budget on
a 2-core machine, so the fixture runs the real training loop for a few batches only. The tests
therefore check properties that hold for any generator (and build targets the generator can
reproduce exactly where they need a reachable optimum); quality is measured in bench/.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restauro.dcgan import DCGANConfig
from restauro.gan_training import TrainSettings, train_dcgan
from restauro.inpaint import GANModels

TINY = DCGANConfig(image_size=64, nz=16, ngf=8, ndf=8)


def synthetic_paintings(count: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth two-colour gradients with a darker band: structure a tiny GAN can learn fast."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        a, b = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
        t = ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
        img = a * (1 - t) + b * t + np.zeros((size, size, 1), dtype=np.float32)
        top = rng.integers(0, size - 12)
        img[top : top + 10] *= 0.6
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


@pytest.fixture(scope="session")
def tiny_models() -> GANModels:
    torch.set_num_threads(1)
    images = synthetic_paintings(64)
    result = train_dcgan(images, TINY, TrainSettings(epochs=2, batch_size=16, seed=0))
    return GANModels(result.generator, result.discriminator, None, TINY, "tiny")


@pytest.fixture
def painting() -> np.ndarray:
    """A 96 x 80 synthetic painting (not square, not the model size)."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(0.0, 1.0, 80, dtype=np.float32)[None, :, None]
    img = np.array([200, 80, 40]) * (1 - ramp) + np.array([40, 90, 200]) * ramp
    img = img + rng.normal(0, 4, (96, 80, 3))
    return np.clip(img, 0, 255).astype(np.uint8)
