import numpy as np
import pytest

from restauro.inpaint import blending
from restauro.inpaint.blending import PoissonBlender, paste, poisson_blend


def _painting(h: int = 60, w: int = 70) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([2 * xx + 40, 3 * yy + 20, xx + yy + 10], axis=2)
    return np.clip(img, 0, 255).astype(np.uint8)


def _mask(h: int = 60, w: int = 70) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[20:35, 25:45] = True
    mask[0:8, 60:70] = True  # touches the top and right borders
    return mask


def test_only_hole_pixels_change():
    painting, mask = _painting(), _mask()
    completion = np.full_like(painting, 250)
    out = poisson_blend(completion, painting, mask)
    assert np.array_equal(out[~mask], painting[~mask])
    assert out.dtype == np.uint8 and out.shape == painting.shape


def test_a_completion_off_by_a_constant_blends_back_to_the_painting():
    """Right gradients but wrong brightness is what the generator gives: blending removes it."""
    painting, mask = _painting(), _mask()
    completion = painting + np.uint8(30)  # no overflow: the painting stays below 200
    raw = paste(completion, painting, mask)
    out = poisson_blend(completion, painting, mask)
    assert np.abs(raw.astype(int) - painting)[mask].mean() > 25
    assert np.abs(out.astype(int) - painting)[mask].max() <= 1


def test_seam_vanishes_for_a_flat_completion():
    painting = np.full((40, 40, 3), 100, dtype=np.uint8)
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 10:30] = True
    out = poisson_blend(np.full_like(painting, 200), painting, mask)
    assert np.all(out == 100)


def test_hole_touching_every_border_side_is_solved():
    painting = _painting()
    mask = np.zeros(painting.shape[:2], dtype=bool)
    mask[:, :10] = True  # the whole left column band: touches top, bottom and left
    completion = np.clip(painting.astype(int) + 20, 0, 255).astype(np.uint8)
    out = poisson_blend(completion, painting, mask)
    assert np.abs(out.astype(int) - painting)[mask].max() <= 1


def test_iterative_path_matches_the_direct_one(monkeypatch):
    painting, mask = _painting(), _mask()
    rng = np.random.default_rng(0)
    completion = np.clip(painting + rng.normal(0, 20, painting.shape), 0, 255).astype(np.uint8)
    direct = PoissonBlender(mask).blend(completion, painting)
    monkeypatch.setattr(blending, "DIRECT_LIMIT", 50)
    iterative = PoissonBlender(mask)
    assert iterative._lu is None
    out = iterative.blend(completion, painting)
    assert np.array_equal(out[~mask], painting[~mask])
    assert np.abs(out.astype(int) - direct.astype(int)).max() <= 2


@pytest.mark.parametrize("channels", [1, 3])
def test_empty_mask_changes_nothing(channels):
    painting = np.zeros((5, 5, channels), dtype=np.uint8)
    mask = np.zeros((5, 5), dtype=bool)
    assert np.array_equal(poisson_blend(painting + 9, painting, mask), painting)
