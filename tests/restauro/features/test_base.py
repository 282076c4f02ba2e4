"""The registry of feature kinds."""

from __future__ import annotations

import numpy as np
import pytest

from restauro.errors import UnknownFeatureKind
from restauro.features import FEATURE_KINDS, create_extractor, load_extractor


def test_the_four_kinds_of_the_paper_and_the_offline_cnn() -> None:
    assert set(FEATURE_KINDS) == {"vgg16", "squeezenet", "sift", "surf"}


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(UnknownFeatureKind) as info:
        create_extractor("hog")
    assert info.value.code == "unknown_feature_kind"
    for kind in FEATURE_KINDS:
        assert kind in str(info.value)
    with pytest.raises(UnknownFeatureKind):
        load_extractor("hog", {}, {"x": np.zeros(1)})


def test_each_kind_builds_an_extractor_of_that_kind() -> None:
    for kind in ("sift", "surf"):
        assert create_extractor(kind).kind == kind
