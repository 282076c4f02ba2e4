"""What a full-resolution restoration returns: ranked candidates and a report per window.

Every candidate names the method that restored each kind of damage and carries one score, the
same measurement for every method (:data:`SCORE_KIND`), so a conservator's list compares like with
like; :func:`rank` orders it. Candidates hold only the mask's pixels and are composed into full
images when read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from restauro.inpaint.engine import CandidateLoss

SCORE_KIND = "held-out ring structure PSNR (dB, higher is better)"
ZOPT_SCORE_KIND = "z-optimization loss (lower is better)"


@dataclass(frozen=True)
class Candidate:
    """One restored scan: which method restored what, its score, its pixels in the mask."""

    method: str  # the losses' method ("gan:c3", "telea", "ns"); thin damage's when no loss
    methods: dict[str, str]  # per kind of damage present: {"loss": "gan:c3+detail", "thin": ...}
    score: float  # SCORE_KIND, pooled over every window (the ranking key)
    detail_ratio: float  # gradient inside the damage / around it (no reference; ~1 = as detailed)
    fill: np.ndarray  # N x 3 uint8: the values of the mask's pixels, in np.flatnonzero order
    gan: CandidateLoss | None = None  # the z-optimization's losses (GAN candidates only)
    primary: bool = False  # the product's own method for this damage (the GAN, the thin fill)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "methods": dict(self.methods),
            "score": _round(self.score),
            "detail_ratio": _round(self.detail_ratio),
        }
        if self.gan is not None:
            out.update(
                loss=round(self.gan.total, 6),
                contextual=round(self.gan.contextual, 6),
                perceptual=round(self.gan.perceptual, 6),
            )
        return out


@dataclass(frozen=True)
class WindowReport:
    """Where one window was restored from, how much it was downscaled, how each method scored."""

    kind: str
    bbox: tuple[int, int, int, int]  # top, left, bottom, right of its hole pixels
    window: tuple[int, int, int, int]  # the square window (may overhang the image)
    scale: float  # scan px per model px of the GAN's view; 1.0 where only diffusion ran
    within_limit: bool  # scale <= max_scale (False: a hole larger than the limit allows)
    hole_pixels: int
    methods: list[str]
    scores: dict[str, float]  # method -> ring score here (the GAN's best candidate for "gan:")
    steps: int = 0  # z-optimization steps (GAN windows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bbox": list(self.bbox),
            "window": list(self.window),
            "side": self.window[2] - self.window[0],
            "scale": round(self.scale, 3),
            "within_limit": self.within_limit,
            "hole_pixels": self.hole_pixels,
            "methods": list(self.methods),
            "scores": {k: _round(v) for k, v in self.scores.items()},
            "steps": self.steps,
        }


class CandidateImages(Sequence[np.ndarray]):
    """The ranked candidates as full images, each composed when it is read (best first)."""

    def __init__(self, base: np.ndarray, index: np.ndarray, fills: list[np.ndarray]) -> None:
        self._base, self._index, self._fills = base, index, fills

    def __len__(self) -> int:
        return len(self._fills)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        out = self._base.copy()
        out.reshape(-1, 3)[self._index] = self._fills[i]
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]


@dataclass
class ScanRestoration:
    """Ranked candidates of one scan, by methods per kind of damage, and how they were made."""

    ranked: list[Candidate]
    windows: list[WindowReport]
    warnings: list[str]
    seconds: float
    steps: int  # z-optimization steps, summed over GAN windows
    model: str
    analysis: dict[str, int]
    score_kind: str = SCORE_KIND
    base: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.uint8), repr=False)
    index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @property
    def candidates(self) -> CandidateImages:
        """Full-resolution RGB images, best first."""
        return CandidateImages(self.base, self.index, [c.fill for c in self.ranked])

    @property
    def losses(self) -> list[CandidateLoss]:
        """The z-optimization losses of the GAN candidates, in rank order."""
        return [c.gan for c in self.ranked if c.gan is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_kind": self.score_kind,
            "damage": dict(self.analysis),
            "windows": [w.to_dict() for w in self.windows],
        }


def rank(candidates: list[Candidate], rank_by: str) -> list[Candidate]:
    """Best first. ``"score"``: by the held-out score alone. ``"method"``: the product's own
    method for the damage (the GAN on losses; the thin fill when there is no loss) before the
    baselines; the GAN's candidates in its own order, the baselines by the held-out score.

    Why both: the ring score is the same measurement for every method, but a thin ring next to
    known pixels is what diffusion predicts best (it continues them), so on losses it tends to
    put the smooth fills a conservator rejects first. ``"method"`` (the default) keeps the GAN the
    heart of loss restoration. Its own order (fine-tuned candidates first, each group by its
    loss) is kept because that loss weighs every known pixel of the window, and the fine-tuned
    completion is what is delivered, while the ring score is a few pixels around the hole,
    predicted by the z-search before fine-tuning. (Ordering by it, with the ring hidden from
    fine-tuning too, cost 0.41 ± 0.08 dB on the strokes of issue 8's 64 px evaluation; the two
    were changed together: docs/results.md, Run 5.)
    A candidate that could not be scored goes last among the scored; ties keep the order above.
    """

    def by_score(c: Candidate) -> float:
        return -c.score if np.isfinite(c.score) else np.inf

    if rank_by == "score":
        return sorted(candidates, key=by_score)
    return sorted(candidates, key=lambda c: (not c.primary, 0.0 if c.primary else by_score(c)))


def _round(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None
