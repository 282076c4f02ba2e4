"""The contract every feature extractor kind must honour (subclassed once per kind).

A bundle is built with one process's extractor and routed with another's, so the properties that
matter are exactness (same input -> same bits, also after a safetensors round trip) and
robustness (any size, gray images, masks, images without keypoints).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from restauro.errors import InvalidImage, MaskSizeMismatch
from restauro.features import FeatureExtractor, create_extractor, load_extractor

from .conftest import blob_painting


class ExtractorContract:
    """Subclasses (``Test*`` in test_local.py, test_cnn.py) set ``kind`` and provide a
    class-scoped ``params`` fixture."""

    kind: str
    n_images = 6
    image_size = (120, 160)

    @pytest.fixture(scope="class")
    @classmethod
    def images(cls) -> list[np.ndarray]:
        h, w = cls.image_size
        return [blob_painting(h + 7 * i, w - 5 * i, seed=i) for i in range(cls.n_images)]

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, params: dict, images: list[np.ndarray]) -> FeatureExtractor:
        extractor = create_extractor(cls.kind, **params)
        extractor.fit(images)
        return extractor

    @pytest.fixture(scope="class")
    @classmethod
    def features(cls, fitted: FeatureExtractor, images: list[np.ndarray]) -> np.ndarray:
        return fitted.transform(images)

    def test_one_finite_float32_row_per_image(
        self, fitted: FeatureExtractor, features: np.ndarray
    ) -> None:
        assert fitted.kind == self.kind
        assert features.shape == (self.n_images, fitted.dim)
        assert features.dtype == np.float32
        assert np.isfinite(features).all()
        assert not np.allclose(features[0], features[1]), "features ignore the image"

    def test_same_input_gives_identical_features(
        self, fitted: FeatureExtractor, images: list[np.ndarray], features: np.ndarray
    ) -> None:
        np.testing.assert_array_equal(fitted.transform(images), features)

    def test_refitting_gives_identical_features(
        self, params: dict, images: list[np.ndarray], features: np.ndarray
    ) -> None:
        again = create_extractor(self.kind, **params)
        again.fit(images)
        np.testing.assert_array_equal(again.transform(images), features)

    def test_fit_transform_equals_fit_then_transform(
        self, params: dict, images: list[np.ndarray], features: np.ndarray
    ) -> None:
        fresh = create_extractor(self.kind, **params)
        np.testing.assert_array_equal(fresh.fit_transform(images), features)
        np.testing.assert_array_equal(fresh.transform(images), features)

    def test_state_round_trip_through_json_and_safetensors(
        self,
        fitted: FeatureExtractor,
        images: list[np.ndarray],
        features: np.ndarray,
        tmp_path: Path,
    ) -> None:
        params = json.loads(json.dumps(fitted.get_params()))
        state = fitted.get_state()
        assert all(isinstance(v, np.ndarray) for v in state.values())
        save_file(state, str(tmp_path / "state.safetensors"))
        loaded = load_extractor(self.kind, params, load_file(str(tmp_path / "state.safetensors")))
        assert type(loaded) is type(fitted)
        np.testing.assert_array_equal(loaded.transform(images), features)

    def test_any_size_and_gray_images(self, fitted: FeatureExtractor) -> None:
        colour = blob_painting(300, 41, seed=11)
        gray = np.dot(blob_painting(57, 333, seed=12), [0.299, 0.587, 0.114]).astype(np.uint8)
        graylike = np.repeat(gray[:, :, None], 3, axis=2)
        out = fitted.transform([colour, gray, graylike, blob_painting(20, 20, seed=13)])
        assert out.shape == (4, fitted.dim)
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out[1], out[2])

    def test_flat_image_gives_finite_features(self, fitted: FeatureExtractor) -> None:
        out = fitted.transform([np.full((90, 130, 3), 128, np.uint8)])
        assert out.shape == (1, fitted.dim)
        assert np.isfinite(out).all()

    def test_masks_are_accepted(self, fitted: FeatureExtractor, images: list[np.ndarray]) -> None:
        def hole(image: np.ndarray) -> np.ndarray:
            h, w = image.shape[:2]
            mask = np.zeros((h, w), dtype=bool)
            mask[h // 3 : h // 2, w // 4 : w // 2] = True
            return mask

        masks: list[np.ndarray | None] = [None] * len(images)
        masks[0] = hole(images[0])
        masks[1] = hole(images[1]).astype(np.uint8) * 255  # the on-disk convention: 255 = missing
        out = fitted.transform(images, masks)
        assert out.shape == (len(images), fitted.dim)
        assert np.isfinite(out).all()
        # An image without a mask is unaffected by its neighbours' masks.
        np.testing.assert_array_equal(out[3:], fitted.transform(images[3:]))

    def test_mask_of_the_wrong_size_is_refused(
        self, fitted: FeatureExtractor, images: list[np.ndarray]
    ) -> None:
        with pytest.raises(MaskSizeMismatch):
            fitted.transform(images[:1], [np.zeros((5, 5), dtype=bool)])
        with pytest.raises(MaskSizeMismatch):
            fitted.transform(images[:2], [None])

    def test_empty_batch_and_invalid_images(self, fitted: FeatureExtractor) -> None:
        assert fitted.transform([]).shape == (0, fitted.dim)
        with pytest.raises(InvalidImage):
            fitted.transform([np.zeros((32, 32, 3), dtype=np.float32)])
        with pytest.raises(InvalidImage):
            fitted.transform([np.zeros((32, 32, 4), dtype=np.uint8)])
