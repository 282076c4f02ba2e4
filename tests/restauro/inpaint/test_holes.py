import numpy as np

from restauro.inpaint.holes import find_hole_groups


def test_far_holes_are_restored_apart_and_near_ones_together():
    mask = np.zeros((400, 600), dtype=bool)
    mask[50:60, 50:60] = True
    mask[50:60, 70:80] = True  # 10 px away: windows overlap
    mask[300:320, 500:520] = True  # far away
    labels, groups = find_hole_groups(mask, context_factor=2.0, min_side=64)
    assert sorted(len(g.labels) for g in groups) == [1, 2]
    near = next(g for g in groups if len(g.labels) == 2)
    assert near.bbox.as_tuple() == (50, 50, 60, 80)
    assert near.hole_pixels == 200
    assert labels.max() == 3


def test_windows_are_square_inside_the_image_and_contain_their_holes():
    mask = np.zeros((300, 500), dtype=bool)
    mask[0:40, 0:30] = True  # corner
    mask[150:250, 420:500] = True  # right border
    _, groups = find_hole_groups(mask, context_factor=2.0, min_side=64)
    for g in groups:
        w = g.window
        assert w.height == w.width
        assert w.top >= 0 and w.left >= 0 and w.bottom <= 300 and w.right <= 500
        assert w.top <= g.bbox.top and g.bbox.bottom <= w.bottom
        assert w.left <= g.bbox.left and g.bbox.right <= w.right
    assert groups[0].side == 80  # 40 px tall hole x context factor 2


def test_small_image_window_overhangs_symmetrically():
    mask = np.zeros((30, 50), dtype=bool)
    mask[10:20, 10:20] = True
    _, groups = find_hole_groups(mask, context_factor=2.0, min_side=64)
    (g,) = groups
    assert g.side == 50  # capped to the image's longer side
    assert g.window.left == 0 and g.window.top == -10
    assert g.visible_window(30, 50).as_tuple() == (0, 0, 30, 50)
    assert g.wanted_side == 64
