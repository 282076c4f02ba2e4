"""Global visual features of paintings, used to cluster a collection and to route a damaged scan.

Kinds: ``vgg16`` and ``squeezenet`` (CNN backbones, global average pooled), ``sift`` and ``surf``
(local descriptors -> TF-IDF bag of visual words). Create one with :func:`create_extractor`, save
``get_params()`` / ``get_state()`` in a bundle, and rebuild it with :func:`load_extractor`.
"""

from restauro.features.base import (
    FEATURE_KINDS,
    FeatureExtractor,
    NotFittedError,
    create_extractor,
    load_extractor,
)
from restauro.features.bow import BagOfWords
from restauro.features.surf import detect_and_compute

__all__ = [
    "FEATURE_KINDS",
    "BagOfWords",
    "FeatureExtractor",
    "NotFittedError",
    "create_extractor",
    "detect_and_compute",
    "load_extractor",
]
