"""Global CNN features: a convolutional backbone, global average pooled.

The backbone's weights are loaded once (a local file, or torchvision's weights API for VGG16) and
then belong to the extractor's state: a bundle carries them in its safetensors, and
``from_state`` rebuilds the network from those arrays, so a worker never needs the original file
or the internet.

Masks are ignored: the caller fills the hole before routing, and a CNN's global average is robust
to a filled patch.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from restauro.errors import InvalidParameter, WeightsUnavailable
from restauro.features.base import FeatureExtractor, check_inputs
from restauro.images import resize
from restauro.progress import Progress, report

_STATE_PREFIX = "backbone."


def _load_state_file(path: Path, what: str, how: str) -> dict[str, torch.Tensor]:
    """A torch state dict from disk, without running pickled code (weights_only=True)."""
    if not path.is_file():
        raise WeightsUnavailable(f"{what} weights file {path} does not exist; {how}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailable(
            f"{what} weights file {path} is not a readable torch state dict ({exc}); {how}"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsUnavailable(f"{what} weights file {path} does not hold a state dict; {how}")
    return state


def _features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a full model's state dict (``features.0.weight``) or its ``features`` part."""
    if any(k.startswith("features.") for k in state):
        return {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


class CNNExtractor(FeatureExtractor):
    """Template: subclasses give the backbone architecture, its weights and its preprocessing."""

    output_dim: ClassVar[int]

    def __init__(
        self,
        weights: str | Path | None = None,
        input_size: int = 224,
        batch_size: int = 16,
        device: str = "cpu",
    ) -> None:
        state = _features_only(self.load_pretrained(weights))
        self._setup(state, input_size, batch_size, device)

    def _setup(
        self,
        state: dict[str, torch.Tensor],
        input_size: int,
        batch_size: int,
        device: str,
    ) -> None:
        if input_size < 32 or batch_size < 1:
            raise InvalidParameter("input_size must be >= 32 and batch_size >= 1")
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        backbone = self.build_backbone()
        try:
            backbone.load_state_dict(state)
        except RuntimeError as exc:
            raise WeightsUnavailable(
                f"the {self.kind} weights do not fit the {self.kind} architecture: {exc}"
            ) from exc
        self.backbone = backbone.eval().to(self.device)

    @classmethod
    @abstractmethod
    def build_backbone(cls) -> nn.Module:
        """The convolutional part, randomly initialized (weights are loaded afterwards)."""

    @abstractmethod
    def load_pretrained(self, weights: str | Path | None) -> dict[str, torch.Tensor]:
        """The backbone's pretrained state dict, or :class:`WeightsUnavailable`."""

    @abstractmethod
    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8-valued float NCHW RGB in 0..255 -> what the backbone was trained on."""

    # --- the shared pipeline ----------------------------------------------------------------
    def fit(self, images: Sequence[np.ndarray], progress: Progress | None = None) -> None:
        """Nothing to learn: the backbone is pretrained."""

    def transform(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray | None] | None = None,
        progress: Progress | None = None,
    ) -> np.ndarray:
        rgbs, _ = check_inputs(images, masks)
        out = np.zeros((len(rgbs), self.output_dim), dtype=np.float32)
        size = self.input_size
        with torch.inference_mode():
            for start in range(0, len(rgbs), self.batch_size):
                chunk = rgbs[start : start + self.batch_size]
                batch = np.stack([resize(rgb, size, size) for rgb in chunk])
                tensor = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
                maps = self.backbone(self.preprocess(tensor))
                pooled = maps.mean(dim=(2, 3))
                out[start : start + len(chunk)] = pooled.float().cpu().numpy()
                report(progress, f"{self.kind} features", start + len(chunk), len(rgbs))
        return out

    @property
    def dim(self) -> int:
        return self.output_dim

    def to(self, device: str) -> CNNExtractor:
        self.device = torch.device(device)
        self.backbone = self.backbone.to(self.device)
        return self

    def get_params(self) -> dict:
        return {"input_size": self.input_size, "batch_size": self.batch_size}

    def get_state(self) -> dict[str, np.ndarray]:
        return {
            _STATE_PREFIX + name: np.ascontiguousarray(t.detach().cpu().numpy())
            for name, t in self.backbone.state_dict().items()
        }

    @classmethod
    def from_state(cls, params: dict, state: dict[str, np.ndarray]) -> CNNExtractor:
        tensors = {
            name[len(_STATE_PREFIX) :]: torch.from_numpy(np.array(arr))
            for name, arr in state.items()
            if name.startswith(_STATE_PREFIX)
        }
        extractor = cls.__new__(cls)
        extractor._setup(
            tensors,
            input_size=params.get("input_size", 224),
            batch_size=params.get("batch_size", 16),
            device=params.get("device", "cpu"),
        )
        return extractor


class VGG16Extractor(CNNExtractor):
    """VGG16 (Simonyan & Zisserman), output of the last convolutional block (pool5), 512-d."""

    kind: ClassVar[str] = "vgg16"
    output_dim: ClassVar[int] = 512
    _HOW = (
        "give a torchvision VGG16 state dict (full or features-only) with "
        "RESTAURO_VGG16_WEIGHTS=/path/vgg16.pth or --weights /path/vgg16.pth "
        "(on a machine with internet, torchvision.models.VGG16_Weights.IMAGENET1K_V1 "
        "downloads it to ~/.cache/torch/hub/checkpoints/vgg16-397923af.pth)"
    )

    @classmethod
    def build_backbone(cls) -> nn.Module:
        from torchvision.models import vgg

        # Only the convolutional part: building vgg16() would also allocate the 120M-parameter
        # classifier that global features never use.
        return vgg.make_layers(vgg.cfgs["D"], batch_norm=False)

    def load_pretrained(self, weights: str | Path | None) -> dict[str, torch.Tensor]:
        if weights is not None:
            return _load_state_file(Path(weights), "VGG16", self._HOW)
        try:
            from torchvision.models import VGG16_Weights

            return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as exc:
            raise WeightsUnavailable(
                f"VGG16 ImageNet weights could not be downloaded ({type(exc).__name__}: {exc}); "
                + self._HOW
            ) from exc

    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor([0.485, 0.456, 0.406], device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=batch.device).view(1, 3, 1, 1)
        return (batch / 255.0 - mean) / std


class SqueezeNetExtractor(CNNExtractor):
    """SqueezeNet 1.1 ``features`` (Caffe-trained weights from a local file), 512-d."""

    kind: ClassVar[str] = "squeezenet"
    output_dim: ClassVar[int] = 512
    _HOW = (
        "give the SqueezeNet 1.1 features state dict with "
        "RESTAURO_SQUEEZENET_WEIGHTS=/path/squeezenet1_1.pth or --weights /path/squeezenet1_1.pth"
    )
    # Caffe preprocessing: BGR, 0..255, mean subtracted, no std.
    _BGR_MEAN = (103.939, 116.779, 123.68)

    @classmethod
    def build_backbone(cls) -> nn.Module:
        from torchvision.models import squeezenet1_1

        return squeezenet1_1(weights=None).features

    def load_pretrained(self, weights: str | Path | None) -> dict[str, torch.Tensor]:
        if weights is None:
            raise WeightsUnavailable("no SqueezeNet weights file configured; " + self._HOW)
        return _load_state_file(Path(weights), "SqueezeNet", self._HOW)

    def preprocess(self, batch: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self._BGR_MEAN, device=batch.device).view(1, 3, 1, 1)
        return batch.flip(1) - mean
