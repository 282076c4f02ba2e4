"""CNN extractors: the contract, weight loading and its errors, self-contained state.

No test calls torchvision's weights API (it downloads): VGG16 and SqueezeNet get random weights
saved to a temporary file; the real Caffe SqueezeNet file is used when the shared folder exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from restauro.errors import WeightsUnavailable
from restauro.features import create_extractor, load_extractor

from .conftest import blob_painting, real_paintings
from .contract import ExtractorContract

REPO = Path(__file__).resolve().parents[3]


class TestSqueezeNetContract(ExtractorContract):
    kind = "squeezenet"
    n_images = 3

    @pytest.fixture(scope="class")
    @classmethod
    def params(cls, squeezenet_weights: Path) -> dict:
        return {"weights": str(squeezenet_weights), "input_size": 96, "batch_size": 2}


class TestVGG16Contract(ExtractorContract):
    """Random weights (the same compute as ImageNet ones); VGG16 is slow on a CPU, so two images
    at a reduced input size."""

    kind = "vgg16"
    n_images = 2

    @pytest.fixture(scope="class")
    @classmethod
    def params(cls, vgg16_weights: Path) -> dict:
        return {"weights": str(vgg16_weights), "input_size": 112}


@pytest.mark.parametrize(
    ("kind", "variable"),
    [("vgg16", "RESTAURO_VGG16_WEIGHTS"), ("squeezenet", "RESTAURO_SQUEEZENET_WEIGHTS")],
)
def test_missing_weights_file_says_how_to_provide_one(
    kind: str, variable: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsUnavailable) as info:
        create_extractor(kind, weights=str(missing))
    message = str(info.value)
    assert str(missing) in message
    assert "does not exist" in message
    assert variable in message
    assert "--weights" in message


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "vgg16.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(WeightsUnavailable, match="not a readable torch state dict"):
        create_extractor("vgg16", weights=garbage)


def test_weights_of_another_architecture_are_refused(squeezenet_weights: Path) -> None:
    with pytest.raises(WeightsUnavailable, match="do not fit the vgg16 architecture"):
        create_extractor("vgg16", weights=squeezenet_weights)


def test_a_full_vgg16_state_dict_gives_the_same_features(
    vgg16_weights: Path, tmp_path: Path
) -> None:
    """torchvision's own checkpoint has ``features.*`` and ``classifier.*`` keys."""
    features_only = torch.load(vgg16_weights, weights_only=True)
    full = {f"features.{k}": v for k, v in features_only.items()}
    full["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(full, tmp_path / "full.pth")
    image = [blob_painting(90, 120)]
    a = create_extractor("vgg16", weights=vgg16_weights, input_size=64).transform(image)
    b = create_extractor("vgg16", weights=tmp_path / "full.pth", input_size=64).transform(image)
    np.testing.assert_array_equal(a, b)


def test_state_carries_the_weights_so_the_file_is_not_needed(
    squeezenet_weights: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.pth"
    copy.write_bytes(squeezenet_weights.read_bytes())
    extractor = create_extractor("squeezenet", weights=copy, input_size=64)
    params, state = extractor.get_params(), extractor.get_state()
    copy.unlink()
    assert not any(isinstance(v, str) and "copy.pth" in v for v in params.values())
    image = [blob_painting(70, 50)]
    loaded = load_extractor("squeezenet", params, state)
    np.testing.assert_array_equal(loaded.transform(image), extractor.transform(image))


def _shared_weights() -> Path:
    root = Path(os.environ.get("RESTAURO_TEST_WEIGHTS", REPO.parent / "shared/weights"))
    path = root / "squeezenet1_1_imagenet_caffe.pth"
    if not path.is_file():
        message = f"SqueezeNet weights not found at {path} (set RESTAURO_TEST_WEIGHTS)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_pretrained_squeezenet_on_real_paintings() -> None:
    """The shared Caffe weights load, their state equals the file, and a re-scanned painting's
    features stay nearest to its own among other paintings."""
    path = _shared_weights()
    paintings = real_paintings(6, style="Realism")
    extractor = create_extractor("squeezenet", weights=path)
    on_disk = torch.load(path, weights_only=True)
    state = extractor.get_state()
    assert set(state) == {f"backbone.{k}" for k in on_disk}
    for name, tensor in on_disk.items():
        np.testing.assert_array_equal(state[f"backbone.{name}"], tensor.numpy())
    features = extractor.transform(paintings)
    assert (features >= 0).all()  # pooled ReLU maps
    rescans = extractor.transform([np.clip(p * 1.1, 0, 255).astype(np.uint8) for p in paintings])
    dist = np.linalg.norm(rescans[:, None] - features[None], axis=2)
    assert (np.argmin(dist, axis=1) == np.arange(len(paintings))).all()
