"""Synthetic damage masks: shapes, areas, kinds and reproducibility."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from restauro.damage import DAMAGE_KINDS, EVAL_MASKS, evaluation_mask, random_damage_masks
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


# --- the evaluation's mask kinds ---------------------------------------------------------------
def _masks(kind: str, size: int, count: int = 30) -> np.ndarray:
    return np.stack([evaluation_mask(kind, size, 0, f"painting-{i}.jpg") for i in range(count)])


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [("centre", 0.25, 0.25), ("strokes", 0.10, 0.30), ("blotches", 0.09, 0.31),
     ("cracks", 0.025, 0.105)],
)  # fmt: skip
def test_each_evaluation_mask_covers_its_documented_area(
    kind: str, low: float, high: float, size: int
) -> None:
    masks = _masks(kind, size)
    assert masks.shape == (30, size, size) and masks.dtype == bool
    areas = masks.mean(axis=(1, 2))
    assert areas.min() >= low and areas.max() <= high
    if low < high:
        assert areas.std() > 0.005  # drawn across the range, not all alike


def test_centre_mask_is_the_centred_square_of_half_the_side() -> None:
    mask = evaluation_mask("centre", 64, 0, "a")
    assert mask[16:48, 16:48].all() and mask.sum() == 32 * 32


def test_cracks_are_thin_lines() -> None:
    kernel = np.ones((3, 3), np.uint8)
    for mask in _masks("cracks", 128, 10):
        # a 3x3 erosion removes every pixel of a line at most 2 px wide; only the odd junction
        # of tiny cells survives it
        assert mask.sum() > 0
        assert cv2.erode(mask.astype(np.uint8), kernel).sum() <= 0.02 * mask.sum()


@pytest.mark.parametrize("kind", EVAL_MASKS)
def test_evaluation_masks_are_a_function_of_kind_size_seed_and_painting(kind: str) -> None:
    a = evaluation_mask(kind, 64, 7, "x/a.jpg")
    assert np.array_equal(a, evaluation_mask(kind, 64, 7, "x/a.jpg"))
    if kind != "centre":
        assert not np.array_equal(a, evaluation_mask(kind, 64, 8, "x/a.jpg"))
        assert not np.array_equal(a, evaluation_mask(kind, 64, 7, "x/b.jpg"))


def test_unknown_evaluation_mask_is_a_typed_error() -> None:
    with pytest.raises(InvalidParameter):
        evaluation_mask("fire", 64, 0)
    with pytest.raises(InvalidParameter):
        evaluation_mask("centre", 4, 0)
