"""Local descriptors (SIFT, SURF) turned into global bag-of-visual-words features.

Both kinds share everything but the detector: size normalization (the longer side to
``max_side``, so a keypoint's scale means the same for a 4000 px scan and a 256 px thumbnail),
dropping keypoints in the damaged region, the vocabulary and the TF-IDF histograms.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import cv2
import numpy as np

from restauro.errors import InvalidParameter
from restauro.features import surf
from restauro.features.base import FeatureExtractor, NotFittedError, check_inputs
from restauro.features.bow import BagOfWords
from restauro.images import resize
from restauro.progress import Progress, report


class LocalBowExtractor(FeatureExtractor):
    """Template: subclasses only say how to get keypoints and descriptors from a gray image."""

    def __init__(
        self,
        vocab_size: int = 256,
        max_side: int = 256,
        max_keypoints: int = 500,
        sample_cap: int = 100_000,
        mask_dilation: int = 5,
        seed: int = 0,
    ) -> None:
        if vocab_size < 1 or max_side < 16 or max_keypoints < 1 or sample_cap < 1:
            raise InvalidParameter(
                "vocab_size, max_keypoints and sample_cap must be >= 1 and max_side >= 16"
            )
        if mask_dilation < 0:
            raise InvalidParameter("mask_dilation must be >= 0")
        self.vocab_size = int(vocab_size)
        self.max_side = int(max_side)
        self.max_keypoints = int(max_keypoints)
        self.sample_cap = int(sample_cap)
        self.mask_dilation = int(mask_dilation)
        self.seed = int(seed)
        self.bow: BagOfWords | None = None

    @abstractmethod
    def detect_and_compute(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoint positions (N, 2) as x, y and descriptors (N, D) of a uint8 gray image."""

    def detector_params(self) -> dict[str, Any]:
        """Settings of the detector itself, saved with the others."""
        return {}

    # --- the shared pipeline ----------------------------------------------------------------
    def descriptors(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Descriptors of one image at the working size, without those on or near the hole."""
        h, w = rgb.shape[:2]
        scale = self.max_side / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        gray = cv2.cvtColor(resize(rgb, *size), cv2.COLOR_RGB2GRAY)
        xy, desc = self.detect_and_compute(gray)
        if mask is not None and mask.any() and len(xy):
            hole = cv2.resize(
                mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST
            )
            if self.mask_dilation:
                kernel = cv2.getStructuringElement(
                    cv2.MORPH_ELLIPSE, (2 * self.mask_dilation + 1, 2 * self.mask_dilation + 1)
                )
                hole = cv2.dilate(hole, kernel)
            cols = np.clip(np.rint(xy[:, 0]).astype(np.intp), 0, size[1] - 1)
            rows = np.clip(np.rint(xy[:, 1]).astype(np.intp), 0, size[0] - 1)
            desc = desc[hole[rows, cols] == 0]
        return np.ascontiguousarray(desc, dtype=np.float32)

    def _all_descriptors(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray | None] | None,
        progress: Progress | None,
    ) -> list[np.ndarray]:
        rgbs, hole_masks = check_inputs(images, masks)
        out = []
        for i, (rgb, mask) in enumerate(zip(rgbs, hole_masks, strict=True)):
            out.append(self.descriptors(rgb, mask))
            report(progress, f"{self.kind} descriptors", i + 1, len(rgbs))
        return out

    def fit(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> None:
        self._fit_vocabulary(self._all_descriptors(images, None, progress), progress)

    def _fit_vocabulary(self, descs: list[np.ndarray], progress: Progress | None) -> BagOfWords:
        report(progress, f"{self.kind} vocabulary", 0, 1)
        self.bow = BagOfWords.fit(
            descs, vocab_size=self.vocab_size, sample_cap=self.sample_cap, seed=self.seed
        )
        report(progress, f"{self.kind} vocabulary", 1, 1)
        return self.bow

    def fit_transform(
        self, images: Sequence[np.ndarray], progress: Progress | None = None
    ) -> np.ndarray:
        """Detect once: the descriptors that build the vocabulary are the ones then counted."""
        descs = self._all_descriptors(images, None, progress)
        return self._fit_vocabulary(descs, progress).transform(descs)

    def transform(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray | None] | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        bow = self._fitted()
        return bow.transform(self._all_descriptors(images, masks, progress))

    def _fitted(self) -> BagOfWords:
        if self.bow is None:
            raise NotFittedError(f"the {self.kind} extractor has no vocabulary yet: call fit()")
        return self.bow

    @property
    def dim(self) -> int:
        return self._fitted().size

    def get_params(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "max_side": self.max_side,
            "max_keypoints": self.max_keypoints,
            "sample_cap": self.sample_cap,
            "mask_dilation": self.mask_dilation,
            "seed": self.seed,
            **self.detector_params(),
        }

    def get_state(self) -> dict[str, np.ndarray]:
        return self._fitted().get_state()

    @classmethod
    def from_state(cls, params: dict, state: dict[str, np.ndarray]) -> LocalBowExtractor:
        extractor = cls(**params)
        extractor.bow = BagOfWords.from_state(state)
        return extractor


class SiftBowExtractor(LocalBowExtractor):
    """OpenCV SIFT (128-d) -> bag of words."""

    kind: ClassVar[str] = "sift"

    def detect_and_compute(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sift = cv2.SIFT_create(nfeatures=self.max_keypoints)
        keypoints, desc = sift.detectAndCompute(gray, None)
        if not keypoints or desc is None:
            return np.zeros((0, 2)), np.zeros((0, 128), dtype=np.float32)
        xy = np.array([k.pt for k in keypoints], dtype=np.float64)
        return xy, desc


class SurfBowExtractor(LocalBowExtractor):
    """SURF (64-d; our numpy implementation unless OpenCV has the non-free one) -> bag of words."""

    kind: ClassVar[str] = "surf"

    def __init__(self, hessian_threshold: float = surf.DEFAULT_THRESHOLD, **params: Any) -> None:
        super().__init__(**params)
        if hessian_threshold <= 0:
            raise InvalidParameter("hessian_threshold must be > 0")
        self.hessian_threshold = float(hessian_threshold)

    def detector_params(self) -> dict[str, Any]:
        return {"hessian_threshold": self.hessian_threshold}

    def detect_and_compute(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keypoints, desc = surf.detect_and_compute(
            gray, threshold=self.hessian_threshold, max_keypoints=self.max_keypoints
        )
        return keypoints[:, :2], desc
