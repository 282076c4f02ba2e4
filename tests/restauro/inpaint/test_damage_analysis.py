"""The damage analysis: thin vs loss by width, long damage cut into pieces, windows at the limit."""

import cv2
import numpy as np
import pytest

from restauro.inpaint.damage_analysis import (
    LOSS,
    THIN,
    DamageParams,
    analyse_damage,
    split_by_width,
)

PARAMS = DamageParams()  # 64 px model, at most 4 scan px per model px


def _museum_mask(height: int = 1200, width: int = 1500) -> np.ndarray:
    """Three round losses (radius 20-60) and a 4 px crack across the painting, through one."""
    mask = np.zeros((height, width), np.uint8)
    for x, y, r in ((400, 300, 20), (1000, 420, 60), (700, 900, 40)):
        cv2.circle(mask, (x, y), r, 1, -1)
    cv2.line(mask, (0, 80), (width - 1, 700), 1, 4)  # passes through the 60 px loss
    return mask.astype(bool)


def test_a_crack_across_the_painting_no_longer_merges_everything():
    mask = _museum_mask()
    damage = analyse_damage(mask, PARAMS)
    # every damaged pixel belongs to exactly one piece, nothing else does
    assert np.array_equal(damage.labels > 0, mask)
    assert set(np.unique(damage.labels[mask])) == {p.label for p in damage.pieces}
    losses = damage.windows_of(LOSS)
    assert len(losses) == 3
    assert len(damage.windows_of(THIN)) >= 5  # the crack, cut along its length
    for window in damage.windows:
        assert window.within_limit
        assert window.scale <= PARAMS.max_scale + 1e-9
        assert window.group.window.height == window.group.window.width
    for piece in damage.pieces:
        if piece.kind == THIN:
            assert max(piece.bbox.height, piece.bbox.width) <= 1.25 * PARAMS.piece_extent
            assert piece.width <= PARAMS.thin_width


def test_a_crack_entering_a_loss_is_cut_where_it_enters():
    mask = np.zeros((400, 400), np.uint8)
    cv2.circle(mask, (200, 200), 50, 1, -1)
    cv2.line(mask, (0, 200), (399, 200), 1, 3)
    thin, loss = split_by_width(mask.astype(bool), PARAMS.thin_width)
    assert loss[200, 200] and not loss[200, 20] and not loss[200, 380]
    assert thin[200, 20] and thin[200, 380] and not thin[200, 200]
    count, _ = cv2.connectedComponents(thin.view(np.uint8))
    assert count - 1 == 2  # one stretch of crack on either side


def test_a_square_loss_keeps_its_corners():
    """The opening shaves the corners of a square; they go back to the loss, not to 'thin'."""
    mask = np.zeros((300, 300), bool)
    mask[100:160, 80:170] = True
    thin, loss = split_by_width(mask, PARAMS.thin_width)
    assert not thin.any() and np.array_equal(loss, mask)


def test_a_long_wide_scratch_is_cut_so_each_window_keeps_to_the_limit():
    mask = np.zeros((400, 1600), np.uint8)
    cv2.line(mask, (50, 200), (1550, 230), 1, 24)  # 24 px wide: a loss, far too long for one
    damage = analyse_damage(mask.astype(bool), PARAMS)
    pieces = [p for p in damage.pieces if p.kind == LOSS]
    assert len(pieces) >= 10
    assert all(w.within_limit for w in damage.windows)
    assert sum(p.pixels for p in damage.pieces) == int(mask.sum())


def test_a_loss_too_large_for_the_limit_gets_the_smallest_window_that_holds_it():
    mask = np.zeros((900, 900), bool)
    cv2.circle(mask.view(np.uint8), (450, 450), 250, 1, -1)
    damage = analyse_damage(mask, PARAMS)
    (window,) = damage.windows
    assert not window.within_limit
    side = window.group.window.height
    assert side >= 501 * PARAMS.min_context_factor - 1  # the hole keeps its minimum context
    assert side < 501 * PARAMS.context_factor


def test_near_losses_share_a_window_far_ones_do_not():
    mask = np.zeros((800, 800), bool)
    mask[100:130, 100:130] = True
    mask[100:130, 150:180] = True  # 20 px apart
    mask[600:630, 600:630] = True
    damage = analyse_damage(mask, PARAMS)
    sizes = sorted(len(w.labels) for w in damage.windows_of(LOSS))
    assert sizes == [1, 2]


def test_nearby_losses_are_not_merged_beyond_the_scale_limit():
    mask = np.zeros((800, 800), bool)
    mask[100:200, 100:200] = True  # 100 px: alone, a 200 px window
    mask[100:200, 230:330] = True  # together: 230 px, more than 256 / 1.5 can hold
    damage = analyse_damage(mask, PARAMS)
    assert len(damage.windows_of(LOSS)) == 2
    assert all(w.within_limit for w in damage.windows)


def test_craquelure_network_pieces_stay_bounded():
    mask = np.zeros((700, 900), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(40):
        x0, y0 = rng.integers(0, 900), rng.integers(0, 700)
        x1, y1 = x0 + rng.integers(-300, 300), y0 + rng.integers(-300, 300)
        cv2.line(mask, (int(x0), int(y0)), (int(x1), int(y1)), 1, 2)
    damage = analyse_damage(mask.astype(bool), PARAMS)
    assert np.array_equal(damage.labels > 0, mask.astype(bool))
    assert all(p.kind == THIN for p in damage.pieces)
    assert all(w.within_limit for w in damage.windows)
    for piece in damage.pieces:  # a piece may have taken in a sliver (< extent / 4) at a cut
        assert max(piece.bbox.height, piece.bbox.width) <= 1.25 * PARAMS.piece_extent


@pytest.mark.parametrize("model_size", [64, 128])
def test_small_holes_get_at_least_the_model_size(model_size):
    mask = np.zeros((500, 500), bool)
    mask[200:205, 200:205] = True
    damage = analyse_damage(mask, DamageParams(model_size=model_size))
    (window,) = damage.windows
    assert window.group.window.height == model_size


def test_the_thin_limit_is_also_two_model_pixels_at_the_scale_of_the_whole_scan():
    assert PARAMS.thin_threshold((1200, 1500)) == PARAMS.thin_width  # museum scans: 9 px
    assert PARAMS.thin_threshold((256, 200)) == 8.0  # seen 4x downscaled: 2 model px = 8 px
    assert PARAMS.thin_threshold((64, 64)) == PARAMS.thin_threshold((40, 30)) == 2.0
    stroke = np.zeros((64, 64), np.uint8)
    cv2.line(stroke, (5, 10), (58, 50), 1, 4)
    scratch = np.zeros((64, 64), np.uint8)
    cv2.line(scratch, (5, 40), (58, 60), 1, 1)
    for mask, kind in ((stroke, LOSS), (scratch, THIN)):
        damage = analyse_damage(mask.astype(bool), PARAMS)
        assert {p.kind for p in damage.pieces} == {kind}
    # the same 4 px stroke drawn across a museum scan is a crack: diffusion's
    big = np.zeros((1200, 1500), np.uint8)
    cv2.line(big, (0, 100), (1499, 800), 1, 4)
    assert {p.kind for p in analyse_damage(big.astype(bool), PARAMS).pieces} == {THIN}
