"""DiffAugment (Zhao, Liu, Lin, Zhu, Han 2020, "Differentiable augmentation for data-efficient GAN
training"): the same random colour / translation / cutout applied to every image D sees.

With a few hundred paintings per cluster, D memorises the training set and its verdicts stop
teaching G anything. Augmenting only the real images would teach G to draw augmented paintings;
DiffAugment augments real *and* generated images, and differentiably, so G's gradient flows
through the augmentation. The operations and their ranges are those of the authors'
``DiffAugment_pytorch.py`` (images in [-1, 1]):

- ``color``: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5);
- ``translation``: shift by up to 1/8 of the side, zero fill;
- ``cutout``: a zeroed square of half the side at a random centre.

Randomness is drawn from an explicit ``torch.Generator`` (:meth:`DiffAugment.sample`) before it is
applied (:meth:`DiffAugment.apply`): training draws it from the epoch's generator, which keeps a
resumed run bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from restauro.errors import InvalidParameter

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> its operations, in that canonical order; ``""`` = none."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = sorted(set(names) - set(POLICIES))
    if unknown:
        raise InvalidParameter(f"DiffAugment: unknown operation(s) {unknown}; known: {POLICIES}")
    return tuple(p for p in POLICIES if p in names)


@dataclass(frozen=True)
class AugmentDraw:
    """The random numbers of one augmentation of a batch of ``n`` images (CPU tensors)."""

    brightness: torch.Tensor | None = None  # (n,) in [-0.5, 0.5)
    saturation: torch.Tensor | None = None  # (n,) in [0, 2)
    contrast: torch.Tensor | None = None  # (n,) in [0.5, 1.5)
    shift: torch.Tensor | None = None  # (n, 2) integer shifts (rows, cols)
    cutout: torch.Tensor | None = None  # (n, 2) integer centres (rows, cols)


class DiffAugment:
    """One policy for a run, applied to any batch at size ``image_size``."""

    def __init__(self, policy: str, image_size: int) -> None:
        self.ops = parse_policy(policy)
        self.size = image_size

    def __bool__(self) -> bool:
        return bool(self.ops)

    def sample(self, n: int, rng: torch.Generator) -> AugmentDraw:
        """Draw the randomness for ``n`` images; nothing is drawn for operations that are off."""
        draw: dict[str, torch.Tensor] = {}
        if "color" in self.ops:
            draw["brightness"] = torch.rand(n, generator=rng) - 0.5
            draw["saturation"] = torch.rand(n, generator=rng) * 2.0
            draw["contrast"] = torch.rand(n, generator=rng) + 0.5
        if "translation" in self.ops:
            s = int(self.size * TRANSLATION_RATIO + 0.5)
            draw["shift"] = torch.randint(-s, s + 1, (n, 2), generator=rng)
        if "cutout" in self.ops:
            side = int(self.size * CUTOUT_RATIO + 0.5)
            draw["cutout"] = torch.randint(0, self.size + (1 - side % 2), (n, 2), generator=rng)
        return AugmentDraw(**draw)

    def apply(self, x: torch.Tensor, draw: AugmentDraw) -> torch.Tensor:
        """Augment ``x`` (N x C x S x S in [-1, 1]) with ``draw``; differentiable in ``x``."""
        if draw.brightness is not None:
            x = x + _per_image(draw.brightness, x)
        if draw.saturation is not None:
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * _per_image(draw.saturation, x) + mean
        if draw.contrast is not None:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * _per_image(draw.contrast, x) + mean
        if draw.shift is not None:
            x = _translate(x, draw.shift.to(x.device))
        if draw.cutout is not None:
            x = _cutout(x, draw.cutout.to(x.device))
        return x

    def __call__(self, x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample(len(x), rng)) if self.ops else x


def _per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift each image by its (rows, cols); pixels shifted in are 0 (mid-grey in [-1, 1])."""
    n, _, h, w = x.shape
    pad = int(shift.abs().max()) if shift.numel() else 0
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = torch.arange(h, device=x.device)[None, :] + pad - shift[:, :1]  # n x h
    cols = torch.arange(w, device=x.device)[None, :] + pad - shift[:, 1:]  # n x w
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indexing on dims 0, 2, 3 puts them first: n x h x w x C -> back to N x C x H x W
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Zero a square of side S/2 around each image's centre (clipped at the borders)."""
    _, _, h, w = x.shape
    side_h, side_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    top = centre[:, :1] - side_h // 2
    left = centre[:, 1:] - side_w // 2
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    inside_r = (r >= top) & (r < top + side_h)  # n x h
    inside_c = (c >= left) & (c < left + side_w)  # n x w
    keep = ~(inside_r[:, :, None] & inside_c[:, None, :])  # n x h x w
    return x * keep[:, None].to(x.dtype)
