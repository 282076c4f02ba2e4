"""DiffAugment: the operations of Zhao et al., differentiable, reproducible from a generator."""

from __future__ import annotations

import pytest
import torch

from restauro.diffaugment import AugmentDraw, DiffAugment, parse_policy
from restauro.errors import InvalidParameter


def _batch(n: int = 4, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_policy_parsing_is_canonical_and_refuses_unknown_operations() -> None:
    assert parse_policy("") == ()
    assert parse_policy("cutout, color") == ("color", "cutout")
    assert not DiffAugment("", 16)
    with pytest.raises(InvalidParameter, match="flip"):
        parse_policy("color,flip")


def test_same_generator_state_same_augmentation_and_gradients_flow() -> None:
    aug = DiffAugment("color,translation,cutout", 16)
    x = _batch().requires_grad_(True)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and torch.isfinite(a).all()
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_moves_content_by_the_drawn_shift_and_fills_with_zero() -> None:
    aug = DiffAugment("translation", 16)
    x = torch.zeros(1, 3, 16, 16)
    x[0, :, 5, 7] = 1.0
    out = aug.apply(x, AugmentDraw(shift=torch.tensor([[2, -1]])))
    assert out[0, :, 7, 6].eq(1).all() and float(out.sum()) == 3.0
    edge = aug.apply(torch.ones(1, 3, 16, 16), AugmentDraw(shift=torch.tensor([[2, 0]])))
    assert edge[0, :, :2].eq(0).all() and edge[0, :, 2:].eq(1).all()


def test_cutout_zeroes_a_square_of_half_the_side() -> None:
    aug = DiffAugment("cutout", 16)
    out = aug.apply(torch.ones(1, 3, 16, 16), AugmentDraw(cutout=torch.tensor([[8, 8]])))
    zero = out[0, 0] == 0
    assert int(zero.sum()) == 8 * 8 and zero[4:12, 4:12].all()


def test_colour_changes_are_per_image_and_keep_the_layout() -> None:
    aug = DiffAugment("color", 16)
    x = _batch().contiguous(memory_format=torch.channels_last)
    out = aug(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    shifts = (out - x).mean(dim=(1, 2, 3))
    assert len(set(shifts.tolist())) == len(x)  # each image its own draw
