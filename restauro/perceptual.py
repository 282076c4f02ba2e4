"""An LPIPS-style perceptual distance on the shipped SqueezeNet 1.1 weights (offline, uncalibrated).

PSNR and SSIM reward the blurry average of the plausible completions, which is what diffusion
inpainting (Telea, Navier-Stokes) produces; a GAN that paints a sharp but slightly shifted texture
loses on them. Deep-feature distances (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric") track what people see much better. The ``lpips``, ``piq`` and
``pyiqa`` packages download their backbone and calibration weights at run time, which these
machines cannot, so this is the same recipe on the SqueezeNet 1.1 weights Restauro already ships
for routing:

- the 7 layers LPIPS taps in SqueezeNet (relu1 and fire2..fire8 outputs: indices 1, 4, 7, 9, 10,
  11, 12 of ``squeezenet1_1().features``), with Caffe preprocessing (BGR, 0..255, mean subtracted);
- every feature vector unit-normalised over its channels;
- squared differences summed over channels, averaged over positions, summed over layers.

**Uncalibrated:** LPIPS learns one weight per channel from human judgements (its "lin" layers);
here every channel weighs 1. The distance is 0 for identical images, symmetric, and grows with
distortion, and it ranks methods sensibly (measured on the H100 run of issue 8), but its scale is
its own: compare values with each other, on the same image size, never with published LPIPS
numbers. Images are scored at their own resolution (64 px images give 3x3 maps at the deepest
layers), so distances at different sizes are not comparable either.

The backbone is built and its weights loaded by :class:`~restauro.features.cnn.SqueezeNetExtractor`
(one place that knows the architecture, the file format and the preprocessing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from restauro.errors import InvalidParameter

TAPS = (1, 4, 7, 9, 10, 11, 12)  # LPIPS's SqueezeNet slices end after these features indices
_EPS = 1e-10


class PerceptualDistance:
    """Distances between uint8 RGB images (``H x W x 3`` or ``N x H x W x 3``), lower = closer."""

    def __init__(self, weights: str | Path, device: str = "cpu", batch_size: int = 32) -> None:
        from restauro.features.cnn import SqueezeNetExtractor

        # WeightsUnavailable (a clear message) if the file is missing or is not SqueezeNet 1.1
        extractor = SqueezeNetExtractor(weights=weights, device=device)
        self.weights = Path(weights)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._backbone = extractor.backbone.eval().requires_grad_(False)
        self._preprocess = extractor.preprocess

    # --- features -------------------------------------------------------------------------------
    def features(self, images: np.ndarray) -> list[torch.Tensor]:
        """Unit-normalised feature maps of the tapped layers, one ``N x C x h x w`` per layer."""
        batch = _as_batch(images)
        chunks: list[list[torch.Tensor]] = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                x = torch.from_numpy(batch[start : start + self.batch_size]).to(self.device)
                x = self._preprocess(x.permute(0, 3, 1, 2).float())
                maps = []
                for index, layer in enumerate(self._backbone):
                    x = layer(x)
                    if index in TAPS:
                        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt()
                        maps.append(x / (norm + _EPS))
                    if index >= TAPS[-1]:
                        break
                chunks.append(maps)
        return [torch.cat([c[i] for c in chunks]) for i in range(len(TAPS))]

    # --- distances ------------------------------------------------------------------------------
    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-pair distances of two equally long stacks of images (or of two single images)."""
        a, b = _as_batch(a), _as_batch(b)
        if a.shape != b.shape:
            raise InvalidParameter(f"images differ in shape: {a.shape} vs {b.shape}")
        fa, fb = self.features(a), self.features(b)
        total = sum(_layer_distance(x, y) for x, y in zip(fa, fb, strict=True))
        return total.cpu().numpy().astype(np.float64)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """The distance between two images of the same shape; 0 when they are identical."""
        return float(self.distances(a, b)[0])

    def mean_pairwise(self, images: np.ndarray) -> float:
        """Mean distance over all unordered pairs of a set: a diversity score.

        A generator that has collapsed onto a few modes draws samples that are close to each
        other, so this number falls; real paintings of a collection set the reference.
        """
        batch = _as_batch(images)
        n = len(batch)
        if n < 2:
            raise InvalidParameter(f"diversity needs at least 2 images, got {n}")
        feats = self.features(batch)
        rows, cols = np.triu_indices(n, k=1)
        total = torch.zeros(len(rows), device=self.device)
        for f in feats:
            for start in range(0, len(rows), 256):
                i = torch.as_tensor(rows[start : start + 256], device=self.device)
                j = torch.as_tensor(cols[start : start + 256], device=self.device)
                total[start : start + 256] += _layer_distance(f[i], f[j])
        return float(total.mean())


def _layer_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared difference of unit vectors, summed over channels, averaged over positions."""
    return (x - y).pow(2).sum(dim=1).mean(dim=(1, 2))


def _as_batch(images: np.ndarray) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise InvalidParameter(
            f"expected uint8 RGB images (H x W x 3 or N x H x W x 3), got {arr.dtype} {arr.shape}"
        )
    if min(arr.shape[1:3]) < 32:
        raise InvalidParameter(f"images must be at least 32 px a side, got {arr.shape[1:3]}")
    return np.ascontiguousarray(arr)
