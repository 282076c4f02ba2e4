"""Full-resolution test paintings and museum-like damage, generated at run time.

The shared corpus has no painting larger than 256 px (it was downsized for training), and
museum scans may not be redistributed in the repository, so the full-resolution test set is made
here: a public-domain composition (artists of the Renaissance to Biedermeier styles, all dead long
before 1900) is enlarged to scan size and *painted over* with brush strokes at scan resolution
(a painterly rendering in the manner of Hertzmann 1998: strokes of three sizes following the
image's edges, coloured from the enlarged painting), plus bristle streaks along the strokes,
canvas weave and sensor grain. The structure is the painter's; the detail at scan resolution is
synthetic but has the statistics that matter here (oriented marks a few pixels wide, texture
everywhere), which an enlarged 256 px JPEG alone would not have.

Damage as in issue 10: three round losses (radius 20-60 px) and one 4 px crack crossing the
painting (a random walk from the left edge to the right). Everything is a pure function of the
painting's path and the seed, so every method restores exactly the same holes.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np

PUBLIC_DOMAIN_STYLES = (
    "HighRenaissance",
    "NorthernRenaissance",
    "ProtoRenaissance",
    "InternationalGothic",
    "Rococo",
    "Classicism",
    "Biedermeier",
)


def public_domain_paintings(root: Path, count: int, skip: int = 0) -> list[Path]:
    """Landscape-format paintings of pre-1900 styles, in a fixed pseudo-random order."""
    rows = list(csv.DictReader((root / "metadata.csv").open()))
    picked = [
        r
        for r in rows
        if r["style"] in PUBLIC_DOMAIN_STYLES and int(r["width"]) >= 1.2 * int(r["height"])
    ]
    picked.sort(key=lambda r: hashlib.sha256(r["path"].encode()).hexdigest())
    return [root / r["path"] for r in picked[skip : skip + count]]


def render_scan(path: Path, width: int = 1500, height: int = 1200, seed: int = 0) -> np.ndarray:
    """An RGB uint8 'scan' of the painting at ``path``: its composition, brushwork at full size."""
    rng = np.random.default_rng(_seed(path, seed))
    small = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    base = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    guide = cv2.GaussianBlur(base, (0, 0), 3)
    grey = cv2.cvtColor(guide, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=5)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=5)
    angle = np.arctan2(gy, gx) + np.pi / 2  # strokes run along edges
    canvas = cv2.GaussianBlur(base, (0, 0), 6)
    for radius in (9, 5, 3):
        step = radius
        ys, xs = np.mgrid[step // 2 : height : step, step // 2 : width : step]
        ys = np.clip(ys + rng.integers(-step // 2, step // 2 + 1, ys.shape), 0, height - 1)
        xs = np.clip(xs + rng.integers(-step // 2, step // 2 + 1, xs.shape), 0, width - 1)
        ys, xs = ys.ravel(), xs.ravel()
        if radius == 3:  # the finest strokes only where the painting has detail
            keep = np.hypot(gx, gy)[ys, xs] > np.percentile(np.hypot(gx, gy), 40)
            ys, xs = ys[keep], xs[keep]
        order = rng.permutation(len(ys))
        length = radius * rng.uniform(2.0, 4.5, len(ys))
        jitter = rng.normal(0, 0.25, len(ys))
        tint = rng.normal(0, 6, (len(ys), 3))
        for i in order:
            y, x = int(ys[i]), int(xs[i])
            a = angle[y, x] + jitter[i]
            dx, dy = np.cos(a) * length[i] / 2, np.sin(a) * length[i] / 2
            colour = (base[y, x] + tint[i]).tolist()
            p0 = (int(x - dx), int(y - dy))
            p1 = (int(x + dx), int(y + dy))
            cv2.line(canvas, p0, p1, colour, radius, cv2.LINE_AA)
    # bristle streaks: noise smeared along the stroke direction, 8 orientations
    noise = rng.normal(0, 1, (height, width)).astype(np.float32)
    streaks = np.zeros((height, width), np.float32)
    bins = ((angle % np.pi) / np.pi * 8).astype(int) % 8
    for b in range(8):
        theta = (b + 0.5) * np.pi / 8
        kernel = np.zeros((15, 15), np.float32)
        c = 7
        for t in np.linspace(-7, 7, 29):
            kernel[round(c + t * np.sin(theta)), round(c + t * np.cos(theta))] = 1
        kernel /= kernel.sum()
        smeared = cv2.filter2D(noise, -1, kernel)
        streaks[bins == b] = smeared[bins == b]
    streaks *= 9.0 / max(float(streaks.std()), 1e-6)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    weave = 2.5 * np.sin(xx * 2 * np.pi / 5.0) * np.sin(yy * 2 * np.pi / 5.0)
    grain = rng.normal(0, 1.5, (height, width, 3)).astype(np.float32)
    out = canvas + (streaks + weave)[..., None] + grain
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def museum_damage(
    height: int = 1200, width: int = 1500, seed: int = 0, crack_width: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all damage, losses, crack) boolean masks: three round losses and a crack across."""
    rng = np.random.default_rng(seed)
    losses = np.zeros((height, width), np.uint8)
    centres: list[tuple[int, int]] = []
    for radius in (20, 40, 60):
        for _ in range(100):  # apart from each other and from the borders
            x = int(rng.integers(radius + 40, width - radius - 40))
            y = int(rng.integers(radius + 40, height - radius - 40))
            if all(np.hypot(x - cx, y - cy) > 250 for cx, cy in centres):
                break
        centres.append((x, y))
        cv2.circle(losses, (x, y), radius, 1, -1)
    crack = np.zeros((height, width), np.uint8)
    y = float(rng.uniform(0.2, 0.8) * height)
    slope = float(rng.uniform(-0.3, 0.3))
    points = []
    for x in range(0, width + 25, 25):
        slope = float(np.clip(slope + rng.normal(0, 0.15), -0.8, 0.8))
        y = float(np.clip(y + 25 * slope, 10, height - 10))
        points.append((min(x, width - 1), int(y)))
    cv2.polylines(crack, [np.array(points, np.int32)], False, 1, crack_width)
    loss = losses.astype(bool)
    thin = crack.astype(bool) & ~loss
    return loss | thin, loss, thin


def _seed(path: Path, seed: int) -> int:
    return int(hashlib.sha256(f"{path.name}:{seed}".encode()).hexdigest()[:8], 16)
