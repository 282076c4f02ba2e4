"""Which real images and which noise each training step sees, and where they live.

All randomness of an epoch comes from a generator seeded by (seed, epoch) (:func:`epoch_generator`),
so resuming a run at any epoch is exact; :class:`TrainingBatches` keeps the dataset on the GPU when
there is one (issue 9) and converts batch by batch on the CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from restauro.images import to_model_range

if TYPE_CHECKING:
    from restauro.gan_training import DCGANTrainer


def epoch_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """All randomness of one epoch; independent of earlier epochs so that resuming is exact.

    A GPU run draws on a generator of its own device (the same seed, another stream), so that
    noise and shuffling never cross the bus; a CPU run's stream is the one it always was.
    """
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


# Above this size (float32, model range) a GPU run copies each batch from the host instead of
# keeping the whole dataset on the device: 3,000 paintings at 64 px are 150 MB, at 128 px 590 MB.
DEVICE_DATASET_LIMIT_BYTES = 2 * 1024**3


class TrainingBatches:
    """The real images of each step, in the epoch's shuffled order, on the training device.

    On the CPU the images stay uint8 until a batch is picked (float copies of a whole collection
    would take 4x the memory) and the order comes from the epoch's CPU generator: exactly what
    every earlier version computed. On a GPU the whole dataset, converted to the model's range
    and memory format, is copied to the device once (at most ``limit_bytes``; above that, each
    batch is converted and copied from the host as on the CPU, slower but bounded), the order is
    drawn there and each batch is an ``index_select`` on the device: no host work per step.
    ``resident`` forces the choice (tests check on the CPU that both give the same batches).
    """

    def __init__(
        self,
        images: np.ndarray,
        trainer: DCGANTrainer,
        limit_bytes: int = DEVICE_DATASET_LIMIT_BYTES,
        resident: bool | None = None,
    ) -> None:
        self.images = images
        self.trainer = trainer
        self.on_gpu = trainer.device.type != "cpu"
        if resident is None:
            resident = self.on_gpu and images.size * 4 <= limit_bytes
        self.resident: torch.Tensor | None = None
        if resident:
            self.resident = self._upload(images)

    def _upload(self, images: np.ndarray) -> torch.Tensor:
        """The whole dataset in [-1, 1], NCHW, on the device: copied as uint8 (a quarter of the
        bytes, no float copy on the host) and converted there with :func:`to_model_range`'s
        operations (x / 127.5 - 1)."""
        raw = torch.from_numpy(np.ascontiguousarray(images)).to(self.trainer.device)
        real = raw.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return real.contiguous(memory_format=self.trainer.memory_format)

    def epoch_rngs(self, seed: int, epoch: int) -> tuple[torch.Generator, torch.Generator]:
        """(host generator, noise generator) of one epoch: the same one on the CPU, which keeps
        its historic single stream; on a GPU the noise and the order come from the device's."""
        host = epoch_generator(seed, epoch)
        if not self.on_gpu:
            return host, host
        return host, epoch_generator(seed, epoch, self.trainer.device)

    def order(self, rng: torch.Generator) -> torch.Tensor:
        """A permutation of the images drawn on ``rng``: on the device it feeds, or on the host
        for per-batch copies (one read-back per epoch)."""
        n = len(self.images)
        order = torch.randperm(n, generator=rng, device=rng.device)
        return order if self.resident is not None else order.cpu()

    def batch(self, order: torch.Tensor, i: int, size: int) -> torch.Tensor:
        """Batch ``i`` of ``size`` images of the epoch whose permutation is ``order``."""
        picked = order[i * size : (i + 1) * size]
        if self.resident is not None:
            return self.resident.index_select(0, picked).contiguous(
                memory_format=self.trainer.memory_format
            )
        return self.trainer.to_device(to_model_range(self.images[picked.numpy()]))


def batches_per_epoch(n_images: int, batch_size: int) -> tuple[int, int, bool]:
    """(batch size, batches per epoch, drop_last) for a dataset of ``n_images``.

    The ragged last batch is dropped (its few images would give batch norm noisy statistics),
    unless the dataset is smaller than one batch: then the whole dataset is the one batch.
    """
    if n_images >= batch_size:
        return batch_size, n_images // batch_size, True
    return n_images, 1, False
