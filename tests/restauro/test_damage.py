"""Synthetic damage masks: shapes, areas, kinds and reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from restauro.damage import DAMAGE_KINDS, random_damage_masks
from restauro.errors import InvalidParameter


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
@pytest.mark.parametrize("size", [64, 128])
def test_each_kind_covers_the_requested_area(kind: str, size: int) -> None:
    masks = random_damage_masks(40, size, np.random.default_rng(0), 0.1, 0.5, kinds=[kind])
    assert masks.shape == (40, size, size) and masks.dtype == bool
    areas = masks.mean(axis=(1, 2))
    assert areas.min() >= 0.09 and areas.max() <= 0.55  # scratches may overshoot by <= 5%
    assert areas.std() > 0.05  # areas are drawn across the range, not all alike


def test_kinds_differ_in_shape() -> None:
    rng = np.random.default_rng(1)
    rect = random_damage_masks(1, 64, rng, 0.3, 0.3, kinds=["rectangle"])[0]
    rows, cols = np.nonzero(rect)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert box == rect.sum()  # a rectangle fills its bounding box
    blotch = random_damage_masks(1, 64, rng, 0.3, 0.3, kinds=["blotch"])[0]
    rows, cols = np.nonzero(blotch)
    assert (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) > blotch.sum()


def test_same_seed_same_masks_and_a_mix_of_kinds() -> None:
    a = random_damage_masks(30, 64, np.random.default_rng(5))
    b = random_damage_masks(30, 64, np.random.default_rng(5))
    c = random_damage_masks(30, 64, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.any(axis=(1, 2)).all() and not a.all(axis=(1, 2)).any()  # never empty or full


@pytest.mark.parametrize(
    "kwargs",
    [{"min_area": 0.0}, {"min_area": 0.6, "max_area": 0.5}, {"max_area": 1.0}, {"kinds": ["fire"]}],
)
def test_bad_parameters_are_typed_errors(kwargs: dict) -> None:
    with pytest.raises(InvalidParameter):
        random_damage_masks(2, 64, np.random.default_rng(0), **kwargs)
