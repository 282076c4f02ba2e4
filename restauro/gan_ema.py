"""The generator used for inference: a moving average of G's weights, with its own batch norm.

Beside the training loop (``gan_training``) like a scheduler beside a network: no weights of its
own beyond the averaged copy of G.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from restauro.dcgan import Generator


class GeneratorEMA:
    """An exponential moving average of G's weights (Karras et al.; Yazici et al. 2019).

    G's weights rattle around as D keeps moving the target; their average over the last few
    hundred steps draws cleaner, more varied images, and costs one copy of G. The decay warms up
    as ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so that a short run (or one
    fine-tuned from the general GAN) does not average in its first random-looking steps for long.
    Buffers (batch-norm statistics) are copied from G; the training loop then recalibrates them
    for the averaged weights at every epoch's end.
    """

    FILE = "generator_ema.safetensors"

    def __init__(self, generator: Generator, decay: float) -> None:
        self.decay = decay
        self.model: Generator = copy.deepcopy(generator).requires_grad_(False)

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1.0 + updates) / (10.0 + updates))

    @torch.no_grad()
    def update(self, generator: Generator, updates: int) -> None:
        weight = 1.0 - self.decay_at(updates)
        for average, param in zip(self.model.parameters(), generator.parameters(), strict=True):
            average.lerp_(param, weight)
        for mine, theirs in zip(self.model.buffers(), generator.buffers(), strict=True):
            mine.copy_(theirs)


@torch.no_grad()
def recalibrate_batch_norm(
    generator: Generator, samples: int, batch_size: int, rng: torch.Generator
) -> None:
    """Recompute G's batch-norm running statistics for its current weights.

    Inpainting runs G in eval mode, on running statistics that training accumulated with momentum
    from weights that kept changing: they lag behind, and early in training an eval-mode G can
    render nearly flat grey where the train-mode G renders paintings. An exact average over fresh
    samples at the final weights (as ``torch.optim.swa_utils.update_bn`` does) removes the lag.
    Training itself never reads these statistics, so this does not change its trajectory.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = generator.training
    momenta = [m.momentum for m in norms]
    device = next(generator.parameters()).device
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    generator.train()
    try:
        done = 0
        while done < samples:
            n = min(batch_size, samples - done)
            z = torch.randn(n, generator.config.nz, 1, 1, generator=rng, device=rng.device)
            generator(z.to(device))
            done += n
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        generator.train(was_training)
