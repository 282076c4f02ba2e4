"""What a person looks at to judge a DCGAN run: sample grids, the loss history and its plot.

A GAN's losses say little about whether it draws paintings (a collapsed generator can have fine
losses), so every epoch the training loop renders the same fixed batch of noise into a grid: the
grids of one run are comparable epoch after epoch, and mode collapse shows as repeated tiles.

Files in a training folder::

    samples/epoch_NNN.png   the generator on the run's fixed noise
    history.json            per-epoch losses, D outputs and speed
    loss.png                loss_d and loss_g per epoch
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from restauro.atomic import write_json_atomic
from restauro.dcgan import DCGANConfig
from restauro.images import from_model_range, write_png

SAMPLES_DIR = "samples"
HISTORY_FILE = "history.json"
LOSS_PLOT = "loss.png"


def fixed_noise(config: DCGANConfig, seed: int, count: int) -> torch.Tensor:
    """The noise behind every sample grid of a run: the same z's, epoch after epoch."""
    return torch.randn(
        count, config.nz, 1, 1, generator=torch.Generator().manual_seed(seed * 1_000_003 + 999_983)
    )


@torch.no_grad()
def sample_grid(generator: nn.Module, noise: torch.Tensor, padding: int = 2) -> np.ndarray:
    """The generator's images for ``noise`` tiled in a square-ish RGB grid (uint8).

    The generator runs in eval mode (batch-norm running statistics), as the inpainting engine
    uses it, and without updating those statistics; its mode is restored afterwards.
    """
    was_training = generator.training
    generator.eval()
    try:
        device = next(generator.parameters()).device
        tiles = from_model_range(generator(noise.to(device)))
    finally:
        generator.train(was_training)
    n, size = len(tiles), tiles.shape[1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    step = size + padding
    grid = np.zeros((rows * step + padding, cols * step + padding, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        top, left = padding + r * step, padding + c * step
        grid[top : top + size, left : left + size] = tile
    return grid


def write_sample_grid(workdir: Path, epoch: int, generator: nn.Module, noise: torch.Tensor) -> Path:
    """``samples/epoch_NNN.png`` for the epoch just finished (1-based)."""
    path = workdir / SAMPLES_DIR / f"epoch_{epoch:03d}.png"
    return write_png(path, sample_grid(generator, noise))


def write_history(workdir: Path, history: list[dict[str, float]]) -> None:
    """history.json and loss.png, rewritten after every epoch (each write is atomic)."""
    write_json_atomic(workdir / HISTORY_FILE, history)
    write_png(workdir / LOSS_PLOT, loss_curve(history))


def loss_curve(history: list[dict[str, float]], width: int = 640, height: int = 360) -> np.ndarray:
    """A plain RGB plot of loss_d (red) and loss_g (blue) per epoch, drawn with OpenCV."""
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    margin = 40
    series = {"loss_d": (220, 40, 40), "loss_g": (40, 80, 220)}
    values = [h[k] for h in history for k in series if k in h]
    if not values:
        return img
    top = max(values) * 1.05 or 1.0
    x0, x1, y0, y1 = margin, width - 10, height - margin, 10
    cv2.rectangle(img, (x0, y1), (x1, y0), (0, 0, 0), 1)
    span = max(len(history) - 1, 1)
    for key, colour in series.items():
        pts = [
            (x0 + round((x1 - x0) * i / span), y0 - round((y0 - y1) * h[key] / top))
            for i, h in enumerate(history)
        ]
        cv2.polylines(img, [np.array(pts, np.int32).reshape(-1, 1, 2)], False, colour, 2)
        for p in pts:
            cv2.circle(img, p, 3, colour, -1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "loss_d", (x0 + 8, y1 + 18), font, 0.5, series["loss_d"], 1)
    cv2.putText(img, "loss_g", (x0 + 80, y1 + 18), font, 0.5, series["loss_g"], 1)
    cv2.putText(img, f"{top:.2f}", (2, y1 + 10), font, 0.4, (0, 0, 0), 1)
    cv2.putText(img, "0", (20, y0), font, 0.4, (0, 0, 0), 1)
    cv2.putText(img, f"epoch {len(history)}", (x1 - 90, height - 12), font, 0.5, (0, 0, 0), 1)
    return img
