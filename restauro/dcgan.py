"""The DCGAN of Radford, Metz and Chintala (2016), as in pytorch/examples ``dcgan/main.py``.

One generator maps a latent ``z ~ N(0, I)`` of ``nz`` numbers to a painting patch in [-1, 1]; one
discriminator tells such patches from real ones. Restauro trains one pair per cluster of paintings
(plus one general pair on everything, the paper's baseline), and the inpainting engine searches
the generator's latent space for the patch that best fits a damaged painting's visible pixels.

The architecture is the paper's: strided (transposed) convolutions, batch norm, ReLU in G, leaky
ReLU in D, tanh output. 64 px uses four up-sampling blocks; 128 px adds one more block to each net.
Hyperparameters are constructor arguments and travel with the weights (:class:`DCGANConfig`).

One option for small datasets: ``spectral_norm=True`` divides every convolution of D by its
largest singular value (Miyato et al. 2018, "Spectral normalization for GANs"), which bounds how
sharply D can react to its input; a D trained on a few hundred paintings otherwise wins outright
and G's gradients vanish. As in Miyato et al.'s DCGAN-style D, spectral norm replaces D's batch
norm (the same layers otherwise). G is unchanged, so inpainting's z-search is unaffected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial

import torch
from torch import nn

from restauro.errors import InvalidParameter

SUPPORTED_SIZES = (64, 128)


@dataclass(frozen=True)
class DCGANConfig:
    image_size: int = 64  # 64 or 128
    nz: int = 100  # latent size
    ngf: int = 64  # generator width
    ndf: int = 64  # discriminator width
    nc: int = 3  # image channels
    spectral_norm: bool = False  # D's convolutions spectrally normalised (instead of batch norm)

    def __post_init__(self) -> None:
        # A config comes from operators (CLI flags) and from manifests: a typed error, not a 500.
        if self.image_size not in SUPPORTED_SIZES:
            raise InvalidParameter(
                f"image_size must be one of {SUPPORTED_SIZES}, got {self.image_size}"
            )
        for name in ("nz", "ngf", "ndf", "nc"):
            if getattr(self, name) < 1:
                raise InvalidParameter(
                    f"{name} must be a positive integer, got {getattr(self, name)}"
                )

    @property
    def extra_blocks(self) -> int:
        """Blocks beyond the 64 px design: one per doubling."""
        return SUPPORTED_SIZES.index(self.image_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DCGANConfig:
        """Read a manifest's ``dcgan`` entry; keys added later default (old bundles still load)."""
        sizes = {k: int(data[k]) for k in ("image_size", "nz", "ngf", "ndf", "nc") if k in data}
        return cls(**sizes, spectral_norm=bool(data.get("spectral_norm", False)))


def weights_init(module: nn.Module) -> None:
    """Radford et al.: all weights from N(0, 0.02); batch-norm scales from N(1, 0.02)."""
    name = module.__class__.__name__
    if "Conv" in name:
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _up(cin: int, cout: int) -> list[nn.Module]:
    """Double the spatial size: transposed conv 4x4 stride 2, batch norm, ReLU."""
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]


def _down(cin: int, cout: int, norm: bool = True, spectral: bool = False) -> list[nn.Module]:
    """Halve the spatial size: conv 4x4 stride 2, (batch norm), leaky ReLU 0.2.

    ``spectral``: the convolution is spectrally normalised and takes batch norm's place.
    """
    conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=False)
    if spectral:
        return [_spectral(conv), nn.LeakyReLU(0.2, inplace=True)]
    layers: list[nn.Module] = [conv]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


def _spectral(conv: nn.Conv2d) -> nn.Module:
    """The conv's weight divided by its largest singular value (one power iteration per step)."""
    nn.init.normal_(conv.weight, 0.0, 0.02)  # Radford's init, before the parametrization wraps it
    return nn.utils.parametrizations.spectral_norm(conv)


def downsampling_trunk(
    cin: int, width: int, extra: int, down: Callable[..., list[nn.Module]] = _down
) -> tuple[list[nn.Module], int]:
    """D's body, S x S -> 4 x 4, also the encoder's (with its own ``down`` block).

    Returns the layers and the output width.
    """
    layers: list[nn.Module] = []
    layers += down(cin, width, norm=False)  # width x S/2 x S/2 (no normalization on the input)
    layers += down(width, width * 2)  # (width*2) x 16 x 16 at 64 px
    layers += down(width * 2, width * 4)  # (width*4) x 8 x 8
    layers += down(width * 4, width * 8)  # (width*8) x 4 x 4 at 64 px
    width *= 8
    for _ in range(extra):
        layers += down(width, width * 2)  # at 128 px: (width*16) x 4 x 4
        width *= 2
    return layers, width


class Generator(nn.Module):
    """z (N x nz x 1 x 1, or N x nz) -> image (N x nc x S x S) in [-1, 1]."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        nz, ngf, nc, extra = config.nz, config.ngf, config.nc, config.extra_blocks
        top = ngf * 8 * (2**extra)  # 128 px starts one block wider
        layers: list[nn.Module] = [
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, top, 4, 1, 0, bias=False),
            nn.BatchNorm2d(top),
            nn.ReLU(True),
        ]  # state size: top x 4 x 4
        width = top
        for _ in range(extra):
            layers += _up(width, width // 2)  # (width/2) x 8 x 8 at 128 px
            width //= 2
        layers += _up(width, ngf * 4)  # (ngf*4) x 8 x 8   [x 16 x 16 at 128 px]
        layers += _up(ngf * 4, ngf * 2)  # (ngf*2) x 16 x 16 [x 32 x 32]
        layers += _up(ngf * 2, ngf)  # ngf x 32 x 32      [x 64 x 64]
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]  # nc x S x S
        self.main = nn.Sequential(*layers)
        self.apply(weights_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.main(z)


class Discriminator(nn.Module):
    """image (N x nc x S x S) -> one logit per image (N,); sigmoid(logit) = P(real)."""

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__()
        self.config = config
        ndf, nc, extra = config.ndf, config.nc, config.extra_blocks
        down = partial(_down, spectral=config.spectral_norm)
        layers, width = downsampling_trunk(nc, ndf, extra, down)  # width x 4 x 4
        head = nn.Conv2d(width, 1, 4, 1, 0, bias=False)  # 1 x 1 x 1: the logit
        layers.append(_spectral(head) if config.spectral_norm else head)
        self.main = nn.Sequential(*layers)
        if not config.spectral_norm:
            self.apply(weights_init)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.main(image).view(-1)
