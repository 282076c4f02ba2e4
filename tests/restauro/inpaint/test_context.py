import torch

from restauro.inpaint.context import context_weights


def _hole_mask(size: int = 32) -> torch.Tensor:
    missing = torch.zeros(size, size)
    missing[12:20, 12:20] = 1.0
    return missing


def test_far_known_pixels_weigh_zero_and_neighbours_of_the_hole_weigh_more():
    w = context_weights(_hole_mask(), window=7)
    assert w[0, 0] == 0  # far from the hole
    assert w[11, 15] > 0  # touching the hole
    assert w[11, 15] > w[9, 15] > 0  # nearer the hole = more missing pixels in its window
    assert w[8, 15] == 0  # 4 rows away: the 7 x 7 window no longer reaches the hole


def test_hole_pixels_weigh_zero():
    missing = _hole_mask()
    w = context_weights(missing, window=7)
    assert torch.all(w[missing.bool()] == 0)


def test_weight_is_the_missing_fraction_of_the_window():
    w = context_weights(_hole_mask(), window=3)
    assert torch.isclose(w[11, 15], torch.tensor(3 / 9))  # 3 hole pixels below it in a 3x3
    assert torch.isclose(w[11, 11], torch.tensor(1 / 9))  # diagonal corner: one hole pixel


def test_window_parameter_sets_the_reach():
    missing = _hole_mask()
    assert context_weights(missing, window=3)[10, 15] == 0
    assert context_weights(missing, window=5)[10, 15] > 0
    assert context_weights(missing, window=11)[7, 15] > 0


def test_padding_neither_counts_as_missing_nor_weighs():
    missing = torch.zeros(1, 1, 16, 16)
    valid = torch.ones(1, 1, 16, 16)
    valid[..., :, 12:] = 0  # padding on the right
    w = context_weights(missing, window=5, valid=valid)
    assert torch.all(w == 0)  # no hole at all: padding is not damage
    missing[..., 4:8, 4:8] = 1
    w = context_weights(missing, window=5, valid=valid)
    assert torch.all(w[..., 12:] == 0) and w[0, 0, 3, 5] > 0


def test_batched_shape_is_kept():
    m = torch.zeros(2, 1, 8, 8)
    m[1, 0, 3, 3] = 1
    w = context_weights(m)
    assert w.shape == (2, 1, 8, 8) and torch.all(w[0] == 0) and w[1].sum() > 0
