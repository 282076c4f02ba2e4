"""The feature extractor interface, the registry of kinds, and input checks shared by all kinds.

A feature extractor turns paintings into one global vector each. The same fitted extractor must
run offline (clustering a collection) and online (routing one damaged scan), possibly in another
process on another machine, so everything it learned or loaded is exported by ``get_state()`` as
plain numpy arrays (saved as safetensors in a bundle) and ``get_params()`` as JSON: a bundle never
points at a weights file that may not exist where it is loaded.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from restauro.errors import InvalidImage, MaskSizeMismatch, RestauroError, UnknownFeatureKind
from restauro.progress import Progress

# kind -> (module, class). Imported lazily so that routing with SIFT never imports torch.
_KINDS: dict[str, tuple[str, str]] = {
    "vgg16": ("restauro.features.cnn", "VGG16Extractor"),
    "squeezenet": ("restauro.features.cnn", "SqueezeNetExtractor"),
    "sift": ("restauro.features.local", "SiftBowExtractor"),
    "surf": ("restauro.features.local", "SurfBowExtractor"),
}
FEATURE_KINDS: tuple[str, ...] = tuple(_KINDS)


class NotFittedError(RestauroError):
    """``transform`` or ``get_state`` was called on an extractor that still needs ``fit``."""

    code = "extractor_not_fitted"


class FeatureExtractor(ABC):
    """Images in, one float32 row per image out.

    ``masks`` (``H x W`` bool, True = missing) tell which pixels are not the painting: the caller
    has already filled the hole with something plausible, so CNNs may look at the whole image,
    while local-feature extractors drop keypoints that fall in (or next to) the hole.
    """

    kind: ClassVar[str]

    @abstractmethod
    def fit(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> None:
        """Learn what the kind needs from a collection (a vocabulary); a no-op for CNNs."""

    @abstractmethod
    def transform(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray | None] | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """(N, D) float32 features, finite, identical for identical inputs."""

    @abstractmethod
    def get_params(self) -> dict:
        """JSON-serialisable constructor settings (go into the bundle manifest)."""

    @abstractmethod
    def get_state(self) -> dict[str, np.ndarray]:
        """Everything learned or loaded, as contiguous numpy arrays (go into safetensors)."""

    @classmethod
    @abstractmethod
    def from_state(cls, params: dict, state: dict[str, np.ndarray]) -> FeatureExtractor:
        """Rebuild a fitted extractor from ``get_params()`` and ``get_state()``, with no file."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """D, the length of one feature vector (known once fitted)."""

    def fit_transform(
        self, images: Sequence[np.ndarray], progress: Progress | None = None
    ) -> np.ndarray:
        """``fit`` then ``transform`` of the same collection; kinds override it to share work."""
        self.fit(images, progress=progress)
        return self.transform(images, progress=progress)

    def to(self, device: str) -> FeatureExtractor:
        """Move to a torch device; kinds that do not use torch ignore it."""
        return self


def _extractor_class(kind: str) -> type[FeatureExtractor]:
    try:
        module_name, class_name = _KINDS[kind]
    except KeyError:
        raise UnknownFeatureKind(
            f"unknown feature kind {kind!r}; choose one of: {', '.join(FEATURE_KINDS)}"
        ) from None
    return getattr(importlib.import_module(module_name), class_name)


def create_extractor(kind: str, **params) -> FeatureExtractor:
    """A new extractor of ``kind``; CNN kinds load their backbone weights here."""
    return _extractor_class(kind)(**params)


def load_extractor(kind: str, params: dict, state: dict[str, np.ndarray]) -> FeatureExtractor:
    """The extractor saved in a bundle, ready to transform."""
    return _extractor_class(kind).from_state(params, state)


def check_inputs(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Validate images (RGB uint8; a 2-D gray image is accepted) and align masks with them.

    Returns RGB ``H x W x 3`` uint8 images and boolean masks (or None).
    """
    rgbs: list[np.ndarray] = []
    for i, image in enumerate(images):
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise InvalidImage(f"image {i} must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise InvalidImage(f"image {i} must be H x W x 3 (RGB), got shape {arr.shape}")
        rgbs.append(arr)
    if masks is None:
        return rgbs, [None] * len(rgbs)
    if len(masks) != len(rgbs):
        raise MaskSizeMismatch(f"got {len(masks)} masks for {len(rgbs)} images")
    out: list[np.ndarray | None] = []
    for i, (rgb, mask) in enumerate(zip(rgbs, masks, strict=True)):
        if mask is None:
            out.append(None)
            continue
        m = np.asarray(mask)
        if m.shape != rgb.shape[:2]:
            raise MaskSizeMismatch(
                f"mask {i} has shape {m.shape} but its image is {rgb.shape[0]}x{rgb.shape[1]}"
            )
        out.append(m.astype(bool, copy=False))
    return rgbs, out
