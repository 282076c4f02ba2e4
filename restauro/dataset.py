"""Ingest a folder of paintings: find, validate, de-duplicate, preprocess.

A museum's folder is never clean: broken downloads, thumbnails, a poster-size TIFF, the same
painting twice under two names. Every file is either taken or rejected with a reason, so an
operator sees a summary table instead of a crash half-way through a training run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from restauro.errors import DatasetError, InvalidInput
from restauro.images import (
    DEFAULT_MAX_PIXELS,
    center_crop_square,
    decode_image,
    fit_longer_side,
    resize,
)
from restauro.progress import Progress, report

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"})
MIN_SIDE = 64
FEATURE_SIDE = 256  # features are computed on this view; the longer side of the corpus here


@dataclass(frozen=True)
class Painting:
    """One accepted painting: where it came from, its label (the folder it lies in), its pixels.

    ``rgb`` is the painting shrunk so its longer side is at most ``FEATURE_SIDE``: large enough for
    the feature extractors, small enough to hold thousands in memory.
    """

    path: str  # relative to the ingested folder, with forward slashes
    label: str | None
    rgb: np.ndarray
    sha256: str


@dataclass(frozen=True)
class Rejection:
    path: str
    reason: str


@dataclass
class Dataset:
    root: Path
    paintings: list[Painting]
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: list[Rejection] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paintings)

    @property
    def labels(self) -> list[str | None]:
        return [p.label for p in self.paintings]

    def training_images(
        self, size: int, crops: int = 0, max_zoom: float = 4.0, seed: int = 0
    ) -> np.ndarray:
        """The DCGAN's training views at its size, ``N * (1 + crops) x size x size x 3`` uint8.

        Painting ``i`` gives rows ``i * (1 + crops)`` on: its centre-cropped square, then
        ``crops`` random squares zoomed in 1 to ``max_zoom`` times (side = the painting's short
        side / zoom, log-uniform). Why the crops: a GAN trained on whole paintings only has never
        seen what a restoration window of a large scan shows, a region of a painting at a closer
        scale. Each painting's crops are drawn from its own seed (``seed``, its index): the same
        for any subset order.
        """
        views = 1 + crops
        if not self.paintings:
            return np.zeros((0, size, size, 3), np.uint8)
        out = np.empty((len(self.paintings) * views, size, size, 3), np.uint8)
        for i, painting in enumerate(self.paintings):
            out[i * views] = center_crop_square(painting.rgb, size)
            if crops:
                rng = np.random.default_rng([seed, _path_key(painting.path)])
                for j in range(crops):
                    out[i * views + 1 + j] = random_crop_square(painting.rgb, size, max_zoom, rng)
        return out

    def subset(self, indices) -> Dataset:
        return Dataset(
            self.root, [self.paintings[i] for i in indices], self.rejected, self.duplicates
        )

    def summary(self) -> dict:
        """What was taken and what was not, and why: for the CLI's table and the manifest."""
        reasons = Counter(r.reason.split(":")[0] for r in self.rejected)
        return {
            "root": str(self.root),
            "accepted": len(self.paintings),
            "rejected": len(self.rejected),
            "duplicates": len(self.duplicates),
            "rejection_reasons": dict(reasons),
            "labels": dict(Counter(p.label or "" for p in self.paintings)),
        }


def random_crop_square(
    rgb: np.ndarray, size: int, max_zoom: float, rng: np.random.Generator
) -> np.ndarray:
    """A random square of ``rgb`` zoomed in 1 to ``max_zoom`` times, resized to ``size``."""
    h, w = rgb.shape[:2]
    zoom = float(np.exp(rng.uniform(0.0, np.log(max(max_zoom, 1.0)))))
    side = max(1, min(h, w, round(min(h, w) / zoom)))
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return resize(rgb[top : top + side, left : left + side], size, size)


def _path_key(path: str) -> int:
    """A stable integer of a painting's path (seeds its crops whatever the dataset's order)."""
    return int.from_bytes(hashlib.sha1(path.encode()).digest()[:8], "little")


def find_image_files(root: Path) -> list[Path]:
    """All files with an image suffix below ``root``, in a stable order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def stable_sample(paths: list[str], limit: int | None, seed: int = 0) -> list[str]:
    """A deterministic sample that spreads over every folder (style) of the collection.

    Within each folder paths are ordered by a seeded hash, then folders take turns: with at least
    as many picks as folders, every folder is represented, whatever order the files are listed in.
    """
    if limit is None or limit >= len(paths):
        return sorted(paths)
    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(p.rsplit("/", 1)[0] if "/" in p else "", []).append(p)
    queues = [
        sorted(group, key=lambda p: hashlib.sha1(f"{seed}:{p}".encode()).hexdigest())
        for _, group in sorted(groups.items())
    ]
    picked: list[str] = []
    for turn in range(max(len(q) for q in queues)):
        picked.extend(q[turn] for q in queues if turn < len(q))
        if len(picked) >= limit:
            break
    return sorted(picked[:limit])


def is_validation(path: str, fraction: float) -> bool:
    """A fixed hash split: the same painting is always on the same side, run after run."""
    if fraction <= 0:
        return False
    digest = hashlib.sha1(f"val:{path}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def ingest(
    root: Path | str,
    max_images: int | None = None,
    seed: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    include: Collection[str] | None = None,
) -> Dataset:
    """Read every image below ``root``; keep the good ones, record why the others were dropped.

    ``include`` restricts the read to these relative paths (an evaluation's held-out paintings).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a folder")
    files = {p.relative_to(root).as_posix(): p for p in find_image_files(root)}
    if not files:
        raise DatasetError(f"no images (.jpg .jpeg .png .tif .tiff .webp) found below {root}")
    if include is not None:
        wanted = set(include)
        files = {rel: path for rel, path in files.items() if rel in wanted}
    chosen = stable_sample(sorted(files), max_images, seed)
    paintings: list[Painting] = []
    rejected: list[Rejection] = []
    duplicates: list[Rejection] = []
    seen: dict[str, str] = {}
    for i, rel in enumerate(chosen):
        report(progress, "ingest", i, len(chosen))
        data = files[rel].read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            duplicates.append(Rejection(rel, f"duplicate: same file as {seen[digest]}"))
            continue
        try:
            rgb = decode_image(data, max_pixels=max_pixels, name=rel).rgb
        except InvalidInput as exc:  # unreadable, truncated or absurdly large
            rejected.append(Rejection(rel, f"{exc.code}: {exc.detail}"))
            continue
        if min(rgb.shape[:2]) < MIN_SIDE:
            h, w = rgb.shape[:2]
            rejected.append(Rejection(rel, f"too_small: {w}x{h}, need at least {MIN_SIDE} px"))
            continue
        seen[digest] = rel
        label = rel.rsplit("/", 1)[0] if "/" in rel else None
        paintings.append(Painting(rel, label, fit_longer_side(rgb, FEATURE_SIDE), digest))
    report(progress, "ingest", len(chosen), len(chosen))
    if not paintings:
        raise DatasetError(
            f"none of the {len(chosen)} image files below {root} is usable "
            f"({len(rejected)} unreadable or too small, {len(duplicates)} duplicates)"
        )
    return Dataset(root, paintings, rejected, duplicates)
