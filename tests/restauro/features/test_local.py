"""SIFT and SURF bag-of-words extractors: the contract, damaged regions, real paintings."""

from __future__ import annotations

import numpy as np
import pytest

from restauro.errors import DatasetError, InvalidParameter
from restauro.features import NotFittedError, create_extractor
from restauro.features.local import LocalBowExtractor

from .conftest import blob_painting, real_paintings
from .contract import ExtractorContract

LOCAL_KINDS = ["sift", "surf"]


class TestSiftContract(ExtractorContract):
    kind = "sift"

    @pytest.fixture(scope="class")
    @classmethod
    def params(cls) -> dict:
        return {"vocab_size": 16, "max_keypoints": 200}


class TestSurfContract(ExtractorContract):
    kind = "surf"

    @pytest.fixture(scope="class")
    @classmethod
    def params(cls) -> dict:
        return {"vocab_size": 16, "max_keypoints": 200}


@pytest.fixture(scope="module", params=LOCAL_KINDS)
def fitted(request: pytest.FixtureRequest) -> LocalBowExtractor:
    extractor = create_extractor(request.param, vocab_size=16, max_keypoints=200)
    extractor.fit([blob_painting(128, 160, seed=s) for s in range(4)])
    return extractor


def test_keypoints_inside_the_hole_are_not_used(fitted: LocalBowExtractor) -> None:
    # Texture only on the left; the mask covers the texture and a margin: nothing is left.
    image = np.full((160, 200, 3), 120, dtype=np.uint8)
    image[:, :90] = blob_painting(160, 90, seed=7)
    mask = np.zeros((160, 200), dtype=bool)
    mask[:, :100] = True
    assert len(fitted.descriptors(image)) > 10
    assert len(fitted.descriptors(image, mask)) == 0
    np.testing.assert_array_equal(fitted.transform([image], [mask]), 0.0)


def test_a_partial_hole_drops_only_some_keypoints(fitted: LocalBowExtractor) -> None:
    image = blob_painting(160, 200, seed=8)
    mask = np.zeros((160, 200), dtype=bool)
    mask[40:100, 50:130] = True
    full, masked = len(fitted.descriptors(image)), len(fitted.descriptors(image, mask))
    assert 0 < masked < full
    features = fitted.transform([image], [mask])
    assert np.linalg.norm(features) == pytest.approx(1.0, abs=1e-5)


def test_the_hole_is_dilated_before_dropping(fitted: LocalBowExtractor) -> None:
    image = blob_painting(160, 200, seed=9)
    mask = np.zeros((160, 200), dtype=bool)
    mask[60:100, 70:130] = True
    tight = create_extractor(fitted.kind, **{**fitted.get_params(), "mask_dilation": 0})
    assert len(fitted.descriptors(image, mask)) < len(tight.descriptors(image, mask))


@pytest.mark.parametrize("kind", LOCAL_KINDS)
def test_transform_before_fit_is_a_clear_error(kind: str) -> None:
    with pytest.raises(NotFittedError, match="fit"):
        create_extractor(kind).transform([blob_painting(64, 64)])


@pytest.mark.parametrize("kind", LOCAL_KINDS)
def test_fit_on_images_without_keypoints_is_a_dataset_error(kind: str) -> None:
    with pytest.raises(DatasetError):
        create_extractor(kind).fit([np.zeros((64, 64, 3), dtype=np.uint8)] * 2)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidParameter):
        create_extractor("sift", vocab_size=0)
    with pytest.raises(InvalidParameter):
        create_extractor("surf", hessian_threshold=-1.0)


def _perturbed(rgb: np.ndarray) -> np.ndarray:
    """The same painting, a little brighter and rescaled (as another scan of it would be)."""
    import cv2

    h, w = rgb.shape[:2]
    bright = np.clip(rgb.astype(np.int16) + 15, 0, 255).astype(np.uint8)
    return cv2.resize(bright, (int(w * 1.3), int(h * 1.3)), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("kind", LOCAL_KINDS)
def test_real_paintings_are_recognised_after_a_rescan(kind: str) -> None:
    """Nearest neighbour (cosine) of a re-scanned painting is the painting itself."""
    paintings = real_paintings(8)
    extractor = create_extractor(kind, vocab_size=64)
    extractor.fit(paintings)
    originals = extractor.transform(paintings)
    rescans = extractor.transform([_perturbed(p) for p in paintings])
    nearest = np.argmax(rescans @ originals.T, axis=1)
    assert (nearest == np.arange(len(paintings))).mean() >= 0.75
