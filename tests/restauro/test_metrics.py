import numpy as np
import pytest

from restauro.errors import InvalidParameter
from restauro.metrics import hole_metrics, l1, ns_baseline, psnr, ssim, telea_baseline


def _pair():
    yy, xx = np.mgrid[0:48, 0:64]
    truth = np.stack([xx * 3, yy * 4, xx + yy], axis=2).astype(np.uint8)
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:20, 10:30] = True
    damaged = truth.copy()
    damaged[mask] = 0
    return truth, damaged, mask


def test_identical_images_score_perfectly():
    truth, _, mask = _pair()
    assert psnr(truth, truth, mask) == float("inf")
    assert ssim(truth, truth, mask) == pytest.approx(1.0)
    assert l1(truth, truth) == 0.0


def test_scores_inside_the_hole_see_only_the_hole():
    truth, damaged, mask = _pair()
    expected_l1 = np.abs(truth.astype(float) - damaged)[mask].mean() / 255
    assert l1(damaged, truth, mask) == pytest.approx(expected_l1)
    assert l1(damaged, truth) < l1(damaged, truth, mask)
    assert psnr(damaged, truth, mask) < psnr(damaged, truth)
    assert ssim(damaged, truth, mask) < ssim(damaged, truth)
    mse = ((truth.astype(float) - damaged)[mask] ** 2).mean()
    assert psnr(damaged, truth, mask) == pytest.approx(10 * np.log10(255**2 / mse))


def test_baselines_fill_the_hole_and_nothing_else():
    truth, damaged, mask = _pair()
    for baseline in (telea_baseline, ns_baseline):
        out = baseline(damaged, mask)
        assert np.array_equal(out[~mask], damaged[~mask])
        assert l1(out, truth, mask) < 0.5 * l1(damaged, truth, mask)


def test_hole_metrics_keys():
    truth, damaged, mask = _pair()
    scores = hole_metrics(damaged, truth, mask)
    assert set(scores) == {"psnr_hole", "ssim_hole", "l1_hole", "psnr", "ssim", "l1"}


def test_bad_inputs_are_typed_errors():
    truth, damaged, mask = _pair()
    with pytest.raises(InvalidParameter):
        psnr(truth, truth[:10])
    with pytest.raises(InvalidParameter):
        l1(truth, damaged, np.zeros_like(mask))
    with pytest.raises(InvalidParameter):
        ssim(truth, damaged, mask[:5])
