"""An encoder that guesses a starting latent for inpainting (beyond Jboor et al. and Yeh et al.).

Yeh et al. start the z-search from random latents, so most of the search is spent just finding
the right region of the latent space, and some candidates never get there. A small conv net
E(masked image, known mask) -> z, trained once per cluster after its DCGAN, gives the search a
head start: the inpainting engine calls ``encoder(y * known, known)`` and starts some candidates
from that guess.

Training needs no labelled data: with G frozen, draw z, render x = G(z), damage it with random
masks shaped like real losses (:mod:`restauro.damage`) and teach E to give z back:

    loss = ||E(x * known, known) - z||^2  +  rec_weight * ||(G(E(.)) - x) * known||_1
         + real_weight * ||(G(E(r * known, known)) - r) * known||_1      (real paintings r)

The latent term alone would ignore that different z's can render alike; the reconstruction term on
the known pixels is what inpainting actually scores, and the real-painting term teaches E the
images G will meet in service, not only G's own renderings.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from restauro.damage import random_damage_masks
from restauro.dcgan import SUPPORTED_SIZES, Generator, downsampling_trunk
from restauro.errors import DatasetError, InvalidParameter
from restauro.images import to_model_range
from restauro.nets import frozen
from restauro.progress import Progress, report


@dataclass(frozen=True)
class EncoderConfig:
    image_size: int = 64
    nz: int = 100  # must equal the generator's
    nef: int = 32  # width of the first layer; doubles at each down-sampling
    nc: int = 3

    def __post_init__(self) -> None:
        if self.image_size not in SUPPORTED_SIZES:
            raise InvalidParameter(
                f"encoder image_size must be one of {SUPPORTED_SIZES}, got {self.image_size}"
            )
        for name in ("nz", "nef", "nc"):
            if getattr(self, name) < 1:
                raise InvalidParameter(f"encoder {name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        return cls(**{f.name: int(data[f.name]) for f in fields(cls) if f.name in data})


def _down(cin: int, cout: int, norm: bool = True) -> list[nn.Module]:
    """Halve the spatial size. GroupNorm, not BatchNorm: inpainting encodes one image at a time,
    and a batch-norm net behaves differently on one image than on the batches it trained on."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.GroupNorm(math.gcd(8, cout), cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class Encoder(nn.Module):
    """(masked image N x nc x S x S in [-1, 1], known mask N x 1 x S x S, 1 = known) -> z (N, nz).

    The mask is an input channel so that E can tell a black pixel from a missing one.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        nef, extra = config.nef, SUPPORTED_SIZES.index(config.image_size)
        # The discriminator's trunk on RGB + mask channels, S x S -> (width x 4 x 4).
        layers, width = downsampling_trunk(config.nc + 1, nef, extra, down=_down)
        layers.append(nn.Conv2d(width, config.nz, 4, 1, 0))  # nz x 1 x 1: the latent
        self.main = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")

    def forward(self, masked_image: torch.Tensor, known_mask: torch.Tensor) -> torch.Tensor:
        known_mask = known_mask.to(masked_image.dtype)
        x = torch.cat([masked_image * known_mask, known_mask], dim=1)
        return self.main(x).flatten(1)


@dataclass(frozen=True)
class EncoderSettings:
    epochs: int = 5
    steps_per_epoch: int = 100  # synthetic data never runs out: an epoch is a number of steps
    batch_size: int = 64  # G samples per step
    real_batch_size: int | None = None  # real paintings per step; None = batch_size // 2, 0 = none
    lr: float = 1e-3
    rec_weight: float = 10.0  # at 1, the latent term wins and E shrinks z toward 0 (off-shell)
    real_weight: float = 5.0
    min_area: float = 0.1  # damaged fraction of each training image
    max_area: float = 0.5
    seed: int = 0
    device: str = "cpu"
    name: str = "encoder"  # progress stage

    def __post_init__(self) -> None:
        checks = {
            "epochs must be >= 1": self.epochs >= 1,
            "steps_per_epoch must be >= 1": self.steps_per_epoch >= 1,
            "batch_size must be >= 1": self.batch_size >= 1,
            "real_batch_size must be >= 0": (self.real_batch_size or 0) >= 0,
            "lr must be > 0": math.isfinite(self.lr) and self.lr > 0,
            "weights must be >= 0": self.rec_weight >= 0 and self.real_weight >= 0,
        }
        for message, ok in checks.items():
            if not ok:
                raise InvalidParameter(f"encoder settings: {message}")

    @property
    def real_per_step(self) -> int:
        return self.batch_size // 2 if self.real_batch_size is None else self.real_batch_size


@dataclass
class EncoderResult:
    encoder: Encoder
    history: list[dict[str, float]]
    config: EncoderConfig
    settings: EncoderSettings


def masked_l1(output: torch.Tensor, target: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the known pixels only (what inpainting's context loss sees)."""
    weight = known.expand_as(output)
    return ((output - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


def as_encoder_settings(settings: Any) -> EncoderSettings:
    """Accept the DCGAN's TrainSettings too: epochs, batch size, seed and device carry over; the
    GAN's lr and beta1 do not (they suit an adversarial game, not this regression)."""
    if settings is None:
        return EncoderSettings()
    if isinstance(settings, EncoderSettings):
        return settings
    return EncoderSettings(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        device=settings.device,
    )


def train_encoder(
    generator: Generator,
    images: np.ndarray | None = None,
    config: EncoderConfig | None = None,
    settings: EncoderSettings | Any = None,
    progress: Progress | None = None,
) -> EncoderResult:
    """Train an encoder for a trained (frozen, left unchanged) ``generator``.

    ``images`` (N x S x S x 3 uint8, optional) are the cluster's real paintings for the
    reconstruction-only term. ``config`` defaults to the generator's size and latent with nef=32.
    Progress: ``("<settings.name>", done_steps, total_steps)``.
    """
    gconf = generator.config
    config = config or EncoderConfig(image_size=gconf.image_size, nz=gconf.nz, nc=gconf.nc)
    if (config.image_size, config.nz, config.nc) != (gconf.image_size, gconf.nz, gconf.nc):
        raise InvalidParameter(
            f"encoder {config.to_dict()} does not fit the generator {gconf.to_dict()}: "
            "image_size, nz and nc must match"
        )
    s = as_encoder_settings(settings)
    real = _real_images(images, config) if s.real_per_step > 0 and s.real_weight > 0 else None
    device = torch.device(s.device)
    size = config.image_size

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        encoder = Encoder(config).to(device)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=s.lr, betas=(0.9, 0.999))
    noise_rng = torch.Generator().manual_seed(s.seed)
    mask_rng = np.random.default_rng(s.seed)

    def known_masks(n: int) -> torch.Tensor:
        missing = random_damage_masks(n, size, mask_rng, s.min_area, s.max_area)
        return torch.from_numpy(~missing).float()[:, None].to(device)

    history: list[dict[str, float]] = []
    total = s.epochs * s.steps_per_epoch
    report(progress, s.name, 0, total)
    with frozen(generator):
        for epoch in range(s.epochs):
            sums = {"loss_z": 0.0, "loss_rec": 0.0, "loss_real": 0.0}
            seen = 0
            started = time.perf_counter()
            encoder.train()
            for step in range(s.steps_per_epoch):
                z = torch.randn(s.batch_size, config.nz, generator=noise_rng).to(device)
                with torch.no_grad():
                    x = generator(z)
                known = known_masks(s.batch_size)
                z_hat = encoder(x * known, known)
                loss_z = nn.functional.mse_loss(z_hat, z)
                loss_rec = masked_l1(generator(z_hat), x, known)
                loss = loss_z + s.rec_weight * loss_rec
                seen += s.batch_size
                loss_real = torch.zeros(())
                if real is not None:
                    pick = torch.randint(len(real), (s.real_per_step,), generator=noise_rng)
                    r = real[pick].to(device)
                    known_r = known_masks(len(r))
                    loss_real = masked_l1(generator(encoder(r * known_r, known_r)), r, known_r)
                    loss = loss + s.real_weight * loss_real
                    seen += len(r)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sums["loss_z"] += float(loss_z.detach())
                sums["loss_rec"] += float(loss_rec.detach())
                sums["loss_real"] += float(loss_real.detach())
                report(progress, s.name, epoch * s.steps_per_epoch + step + 1, total)
            seconds = time.perf_counter() - started
            record = {"epoch": epoch + 1, **{k: v / s.steps_per_epoch for k, v in sums.items()}}
            record.update(seconds=seconds, images_per_s=seen / max(seconds, 1e-9))
            history.append(record)
    encoder.eval()
    return EncoderResult(encoder=encoder, history=history, config=config, settings=s)


def _real_images(images: np.ndarray | None, config: EncoderConfig) -> torch.Tensor | None:
    if images is None or len(images) == 0:
        return None
    size = config.image_size
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise DatasetError(
            f"encoder training images must be uint8 N x {size} x {size} x 3, got "
            f"{images.dtype} {images.shape}"
        )
    return to_model_range(images)
