"""A method per kind of damage on a full-resolution scan: every candidate named and scored alike,
the GAN restoring the losses from scale-limited windows, nothing outside the mask touched."""

import dataclasses

import cv2
import numpy as np
import pytest

from restauro.errors import InvalidParameter
from restauro.inpaint import InpaintParams
from restauro.inpaint.fullres import restore_scan
from tests.data import textured_image

FAST = InpaintParams(candidates=2, steps=3, seed=0, damage_methods=True)


def _museum_scan(height: int = 1200, width: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Three losses (radius 20-60 px) and a 4 px crack crossing the scan and one loss."""
    rgb = textured_image(height, width, seed=4)
    mask = np.zeros((height, width), np.uint8)
    for x, y, r in ((300, 250, 20), (900, 520, 60), (1200, 950, 40)):
        cv2.circle(mask, (x, y), r, 1, -1)
    cv2.line(mask, (0, 300), (width - 1, 700), 1, 4)
    return rgb, mask.astype(bool)


def test_museum_scan_outside_the_mask_is_bit_identical_and_windows_keep_to_the_limit(
    tiny_models,
):
    rgb, mask = _museum_scan()
    damaged = rgb.copy()
    damaged[mask] = 255
    result = restore_scan(damaged, mask, tiny_models, FAST)
    images = list(result.candidates)
    assert len(images) == FAST.candidates + len(FAST.baselines)
    for image in images:
        assert image.shape == rgb.shape and image.dtype == np.uint8
        assert np.array_equal(image[~mask], damaged[~mask])
        assert not (image[mask] == 255).all(axis=1).any()  # every damaged pixel was restored
    kinds = [w.kind for w in result.windows]
    assert kinds.count("loss") == 3 and kinds.count("thin") >= 5
    for window in result.windows:
        assert window.within_limit and window.scale <= FAST.max_scale
    assert result.analysis["loss_components"] == 3


def test_every_candidate_names_its_method_and_the_ranking_is_by_one_score(tiny_models):
    rgb, mask = _museum_scan(400, 500)
    mask[:] = False
    cv2.circle(mask.view(np.uint8), (250, 200), 40, 1, -1)
    cv2.line(mask.view(np.uint8), (0, 100), (499, 150), 1, 3)
    result = restore_scan(rgb, mask, tiny_models, FAST)
    methods = [c.method for c in result.ranked]
    assert sorted(methods) == sorted(["gan:tiny"] * 2 + ["telea", "ns"])
    # rank_by "method" (default): the GAN's candidates first on losses, in the GAN's own order
    # (by its loss over every known pixel), then the baselines by the held-out score
    assert methods[:2] == ["gan:tiny", "gan:tiny"]
    losses = [c.gan.total for c in result.ranked[:2]]
    assert losses == sorted(losses)
    scores = [c.score for c in result.ranked[2:]]
    assert scores == sorted(scores, reverse=True)
    by_score = restore_scan(rgb, mask, tiny_models, dataclasses.replace(FAST, rank_by="score"))
    scores = [c.score for c in by_score.ranked]
    assert scores == sorted(scores, reverse=True)  # one score for all, higher is better
    assert sorted(scores) == sorted(c.score for c in result.ranked)  # the same candidates
    for c in result.ranked:
        assert set(c.methods) == {"loss", "thin"}
        assert c.to_dict()["method"] == c.method
        assert (c.gan is not None) == c.method.startswith("gan:")
    gan = [c for c in result.ranked if c.gan is not None]
    assert {c.methods["loss"] for c in gan} == {"gan:tiny+detail"}
    assert {c.methods["thin"] for c in gan} == {"telea+ns"}
    assert {c.methods["thin"] for c in result.ranked if c.gan is None} == {"telea", "ns"}


def test_thin_damage_only_runs_no_gan(tiny_models, painting):
    mask = np.zeros(painting.shape[:2], bool)
    mask[40:42, 5:75] = True  # a 2 px scratch: thin even at the model's scale
    result = restore_scan(painting, mask, tiny_models, FAST)
    assert result.steps == 0
    # the thin fill (the mean of the diffusion fills) first, then each diffusion method
    assert result.ranked[0].method == "telea+ns"
    assert sorted(c.method for c in result.ranked[1:]) == ["ns", "telea"]
    assert all(w.kind == "thin" and w.scale == 1.0 for w in result.windows)
    for image in result.candidates:
        assert np.array_equal(image[~mask], painting[~mask])


def test_same_seed_same_candidates(tiny_models, painting):
    mask = np.zeros(painting.shape[:2], bool)
    mask[30:55, 20:50] = True
    a = restore_scan(painting, mask, tiny_models, FAST)
    b = restore_scan(painting, mask, tiny_models, FAST)
    assert all(np.array_equal(x, y) for x, y in zip(a.candidates, b.candidates, strict=True))


def test_without_detail_the_gan_fill_is_the_blended_completion(tiny_models, painting):
    mask = np.zeros(painting.shape[:2], bool)
    mask[30:55, 20:50] = True
    result = restore_scan(painting, mask, tiny_models, dataclasses.replace(FAST, detail=False))
    gan = [c for c in result.ranked if c.gan is not None]
    assert gan and all(c.methods["loss"] == "gan:tiny" for c in gan)


def test_progress_reports_each_stage(tiny_models, painting):
    mask = np.zeros(painting.shape[:2], bool)
    mask[30:55, 20:50] = True
    mask[80:82, 0:80] = True
    calls = []
    restore_scan(painting, mask, tiny_models, FAST, progress=lambda *a: calls.append(a))
    stages = {c[0] for c in calls}
    assert {"analyse", "thin", "baselines", "inpaint", "compose"} <= stages
    steps = [c for c in calls if c[0] == "inpaint"]
    assert steps[-1][1] == steps[-1][2]


@pytest.mark.parametrize(
    "bad",
    [
        {"thin_width": 0.0},
        {"max_scale": 0.5},
        {"min_context_factor": 3.0},
        {"baselines": ()},
        {"baselines": ("telea", "patchmatch")},
        {"detail_block": 2},
        {"score_ring": 0},
        {"diffusion_radius": 0},
        {"rank_by": "loss"},
        {"thin_method": "exemplar"},
        {"detail_band": 0.0},
        {"structure_mix": 1.5},
        {"detail_band": float("nan")},
    ],
)
def test_invalid_damage_parameters(bad):
    with pytest.raises(InvalidParameter):
        InpaintParams(**bad)


def _close_up_scan() -> tuple[np.ndarray, np.ndarray]:
    """A 400 x 480 scan with one small loss: its window is a close-up at ~1 scan px per model px."""
    rgb = textured_image(400, 480, seed=2)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.circle(mask, (240, 200), 12, 1, -1)
    mask = mask.astype(bool)
    damaged = rgb.copy()
    damaged[mask] = 255
    return damaged, mask


def test_a_close_up_window_at_the_models_scale_gets_the_paintings_detail(tiny_models):
    # a small loss of a large scan: restored at ~1 scan px per model px, but its window is a
    # close-up of the painting, not the whole-painting view the GAN was trained on
    damaged, mask = _close_up_scan()
    result = restore_scan(damaged, mask, tiny_models, FAST)
    [window] = [w for w in result.windows if w.kind == "loss"]
    assert window.scale < 1.5 and window.window[2] - window.window[0] < 480 / 1.5
    gan = [c for c in result.ranked if c.gan is not None]
    assert gan and {c.methods["loss"] for c in gan} == {"gan:tiny+detail"}
    plain = restore_scan(damaged, mask, tiny_models, dataclasses.replace(FAST, detail=False))
    detailed, undetailed = result.candidates[0], plain.candidates[0]
    assert not np.array_equal(detailed, undetailed)  # the transfer changed the hole...
    for image in (detailed, undetailed):  # ...and nothing outside it
        assert np.array_equal(image[~mask], damaged[~mask])


def test_structure_mix_averages_the_gans_structure_with_the_first_baselines(tiny_models):
    damaged, mask = _close_up_scan()

    def gan_candidates(mix: float):
        params = dataclasses.replace(FAST, structure_mix=mix)
        result = restore_scan(damaged, mask, tiny_models, params)
        ranks = [i for i, c in enumerate(result.ranked) if c.gan is not None]
        labels = {result.ranked[i].methods["loss"] for i in ranks}
        return [result.candidates[i] for i in ranks], labels

    pure, labels = gan_candidates(0.0)
    assert labels == {"gan:tiny+detail"} and not np.array_equal(pure[0], pure[1])
    # all structure from Telea: every z-candidate gets the same low band, hence the same fill
    smooth, labels = gan_candidates(1.0)
    assert labels == {"gan:tiny~telea+detail"} and np.array_equal(smooth[0], smooth[1])
    half, _ = gan_candidates(0.5)
    for image in (*pure, *smooth, *half):
        assert np.array_equal(image[~mask], damaged[~mask])
    assert not np.array_equal(half[0], half[1]) and not np.array_equal(half[0], pure[0])


def test_at_the_models_scale_a_stroke_is_the_gans_and_gets_no_detail_transfer(
    tiny_models, painting
):
    painting = painting[:72, :64]  # near the model's size: windows ~1.1 scan px per model px
    mask = np.zeros(painting.shape[:2], bool)
    mask[40:45, 5:60] = True  # 5 px: thin on a museum scan, ~4.4 model px on this 72 x 64 one
    result = restore_scan(painting, mask, tiny_models, FAST)
    assert result.steps > 0 and {w.kind for w in result.windows} == {"loss"}
    assert all(w.scale < 1.5 for w in result.windows)
    gan = [c for c in result.ranked if c.gan is not None]
    # nothing was upscaled, so no band is missing: the GAN's own completion, blended
    assert gan and {c.methods["loss"] for c in gan} == {"gan:tiny"}
    plain = restore_scan(painting, mask, tiny_models, dataclasses.replace(FAST, detail=False))
    for a, b in zip(result.candidates, plain.candidates, strict=True):
        assert np.array_equal(a, b)
        assert np.array_equal(a[~mask], painting[~mask])
