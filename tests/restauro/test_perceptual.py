"""The LPIPS-style perceptual distance on the shipped SqueezeNet weights: metric properties."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from restauro.errors import InvalidParameter, WeightsUnavailable
from restauro.images import center_crop_square, read_image
from restauro.perceptual import PerceptualDistance
from tests.data import paintings_dir, squeezenet_weights


@pytest.fixture(scope="module")
def distance() -> PerceptualDistance:
    return PerceptualDistance(squeezenet_weights())


@pytest.fixture(scope="module")
def paintings() -> np.ndarray:
    paths = sorted((paintings_dir() / "Realism").glob("*.jpg"))[:6]
    return np.stack([center_crop_square(read_image(p).rgb, 64) for p in paths])


def _noisy(image: np.ndarray, sigma: float) -> np.ndarray:
    noise = np.random.default_rng(0).normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def test_zero_for_identical_and_symmetric(distance, paintings) -> None:
    a, b = paintings[0], paintings[1]
    assert distance.distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert distance.distance(a, b) == pytest.approx(distance.distance(b, a), rel=1e-5)
    assert distance.distance(a, b) > 0


def test_grows_with_distortion(distance, paintings) -> None:
    for image in paintings[:3]:
        scores = [distance.distance(image, _noisy(image, s)) for s in (4, 16, 48)]
        assert scores[0] < scores[1] < scores[2]
        blurred = [distance.distance(image, _blur(image, s)) for s in (0.7, 1.5, 3.0)]
        assert blurred[0] < blurred[1] < blurred[2]


def test_another_painting_is_farther_than_a_slightly_noisy_copy(distance, paintings) -> None:
    a = paintings[0]
    assert distance.distance(a, _noisy(a, 4)) < min(distance.distance(a, b) for b in paintings[1:])


def test_batched_distances_match_single_ones(distance, paintings) -> None:
    noisy = np.stack([_noisy(p, 10) for p in paintings])
    batch = distance.distances(paintings, noisy)
    assert batch.shape == (len(paintings),)
    for k in (0, 3):
        assert batch[k] == pytest.approx(distance.distance(paintings[k], noisy[k]), rel=1e-4)


def test_diversity_is_zero_for_copies_and_higher_for_real_paintings(distance, paintings) -> None:
    copies = np.repeat(paintings[:1], 4, axis=0)
    assert distance.mean_pairwise(copies) == pytest.approx(0.0, abs=1e-6)
    near_copies = np.stack([_noisy(paintings[0], 6 + k) for k in range(4)])
    assert distance.mean_pairwise(near_copies) < distance.mean_pairwise(paintings)


def test_bad_inputs_and_missing_weights_are_typed_errors(distance, paintings, tmp_path) -> None:
    with pytest.raises(InvalidParameter):
        distance.distance(paintings[0], paintings[0][:32])
    with pytest.raises(InvalidParameter):
        distance.distance(paintings[0].astype(np.float32), paintings[0].astype(np.float32))
    with pytest.raises(InvalidParameter):
        distance.mean_pairwise(paintings[:1])
    with pytest.raises(WeightsUnavailable):
        PerceptualDistance(tmp_path / "absent.pth")
