"""What a bundle hands the inpainting engine for one cluster (or for the general model)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from restauro.dcgan import DCGANConfig


@dataclass
class GANModels:
    """The trained networks of one cluster.

    ``encoder`` is optional: when present it maps ``(masked image, known mask)`` to a latent that
    starts some of the z-optimization candidates close to a good solution (fewer steps needed).
    """

    generator: nn.Module
    discriminator: nn.Module
    encoder: nn.Module | None
    config: DCGANConfig
    name: str = "general"

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def nz(self) -> int:
        return self.config.nz
