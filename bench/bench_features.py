"""Throughput of every feature kind on real paintings, and how well each separates styles.

Prints a table (images/s for fit and for transform, feature size, adjusted Rand index of
K-means with K = number of styles against the style labels) and writes it to
docs/bench-features.md. VGG16 runs with random weights: no ImageNet VGG16 weights exist offline
here; the compute is the same, but its ARI means nothing (shown as such).

    .venv/bin/python bench/bench_features.py [--per-style 60] [--kinds sift surf ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from restauro.features import FEATURE_KINDS, create_extractor
from restauro.features.cnn import VGG16Extractor
from restauro.features.surf import detect_and_compute
from restauro.images import read_image

REPO = Path(__file__).resolve().parents[1]
# Measured once with the checks of tests/restauro/features/test_surf.py (not re-run here).
SURF_QUALITY = [
    "Own SURF, quality (300 strongest keypoints; a real Realism painting 178 x 256 and 200 x 200 "
    "smooth noise; a keypoint repeats when a keypoint lies within 3 px of its mapped position; "
    "matches by nearest neighbour with ratio 0.8, correct within 4 px):",
    "",
    "| change | repeatability | correct matches |",
    "|---|---:|---:|",
    "| rotation 90° | 0.98 | 0.99 |",
    "| rotation 30° | 0.73-0.94 | 0.93-0.95 |",
    "| scale x0.7 (all keypoints / detectable ones) | 0.52-0.56 / >0.6 | 0.92-0.94 |",
    "| scale x1.4 | 0.83-0.86 | 0.97-1.00 |",
    "| brightness +30 | 0.92-1.00 | 0.99-1.00 |",
    "| contrast x1.3 | 0.79-0.99 | 0.98-1.00 |",
    "",
    "Random keypoints would repeat about 0.2 of the time; random descriptors pass no ratio test.",
]
CNN_KINDS = ("vgg16", "squeezenet")
STYLES = ["Impressionism", "Constructivism", "Ukiyo-e", "PopArt", "Realism"]


def load_paintings(root: Path, per_style: int) -> tuple[list[np.ndarray], np.ndarray]:
    images, labels = [], []
    for label, style in enumerate(STYLES):
        for path in sorted((root / "images" / style).glob("*.jpg"))[:per_style]:
            images.append(read_image(path).rgb)
            labels.append(label)
    return images, np.array(labels)


def detector_timings(images: list[np.ndarray]) -> list[str]:
    """Median time of the local detectors alone on gray paintings (longer side 256)."""
    grays = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in images]
    sift = cv2.SIFT_create(nfeatures=500)
    lines = [f"Detector + descriptor alone, median over {len(grays)} paintings:", ""]
    for name, run in [
        ("own numpy SURF (`surf.detect_and_compute`, all keypoints)", detect_and_compute),
        (
            "OpenCV SIFT (`cv2.SIFT_create(nfeatures=500)`)",
            lambda g: sift.detectAndCompute(g, None),
        ),
    ]:
        times, counts = [], []
        for gray in grays:
            start = time.perf_counter()
            keypoints, _ = run(gray)
            times.append(time.perf_counter() - start)
            counts.append(len(keypoints))
        lines.append(
            f"- {name}: {1000 * np.median(times):.1f} ms per image, "
            f"median {int(np.median(counts))} keypoints"
        )
    return lines


def extractor_params(kind: str, weights_dir: Path, tmp: Path) -> tuple[dict, str]:
    if kind == "vgg16":
        torch.manual_seed(0)
        path = tmp / "vgg16_random.pth"
        torch.save(VGG16Extractor.build_backbone().state_dict(), path)
        return {"weights": path}, "random weights (no ImageNet VGG16 offline)"
    if kind == "squeezenet":
        return {"weights": weights_dir / "squeezenet1_1_imagenet_caffe.pth"}, "ImageNet (Caffe)"
    return {}, "vocabulary 256, <=500 keypoints, longer side 256"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = REPO.parent / "shared"
    parser.add_argument("--data", type=Path, default=shared / "data/paintings")
    parser.add_argument("--weights-dir", type=Path, default=shared / "weights")
    parser.add_argument("--per-style", type=int, default=60)
    parser.add_argument("--kinds", nargs="+", default=list(FEATURE_KINDS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "docs/bench-features.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    load = os.getloadavg()[0]
    images, labels = load_paintings(args.data, args.per_style)
    n = len(images)
    print(f"{n} paintings, {len(STYLES)} styles: {', '.join(STYLES)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            params, note = extractor_params(kind, args.weights_dir, Path(tmp))
            extractor = create_extractor(kind, **params)
            start = time.perf_counter()
            extractor.fit(images)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            features = extractor.transform(images)
            transform_s = time.perf_counter() - start
            scaled = StandardScaler().fit_transform(features)
            predicted = KMeans(len(STYLES), n_init=10, random_state=0).fit_predict(scaled)
            ari = adjusted_rand_score(labels, predicted)
            row = (kind, features.shape[1], n / fit_s, n / transform_s, ari, note)
            rows.append(row)
            fit_text = "no-op" if kind in CNN_KINDS else f"{row[2]:.1f} img/s"
            print(
                f"{kind:10s} D={row[1]:4d} fit {fit_text:>12s}  transform {row[3]:6.1f} img/s"
                f"  ARI {ari:.3f}  ({note})"
            )
    detector_lines = detector_timings(images[:: max(1, n // 60)])
    print("\n".join(detector_lines))

    machine = f"2-core CPU dev machine, no GPU ({platform.processor() or platform.machine()}, "
    machine += f"{os.cpu_count()} CPUs visible, torch threads {args.threads}, load average at "
    machine += f"start {load:.1f}, at end {os.getloadavg()[0]:.1f}: the CPU is shared with other "
    machine += "work, so figures are approximate)"
    lines = [
        "# Feature extractors: throughput and style separation",
        "",
        f"Measured {dt.date.today().isoformat()} on a {machine} with `bench/bench_features.py`, "
        f"{n} paintings of the shared corpus ({args.per_style} per style: {', '.join(STYLES)}; "
        "longer side at most 256 px).",
        "",
        "- **fit**: what `fit()` costs per image (CNNs: nothing to learn; SIFT/SURF: descriptors "
        "of every image + MiniBatchKMeans vocabulary). **transform**: `transform()` per image "
        "(CNNs: resize to 224, forward in batches of 16).",
        "- **ARI**: adjusted Rand index of K-means (K = 5, standardized features) against the "
        "style labels; information only (0 = chance, 1 = styles recovered exactly).",
        "- VGG16 runs with **random weights** (no ImageNet VGG16 weights can be had offline "
        "here): the throughput is that of the real model, its ARI is not meaningful.",
        "",
        "| kind | D | fit (img/s) | transform (img/s) | ARI vs style | weights / settings |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for kind, dim, fit_rate, tr_rate, ari, note in rows:
        fit_text = "no-op" if kind in CNN_KINDS else f"{fit_rate:.1f}"
        lines.append(f"| {kind} | {dim} | {fit_text} | {tr_rate:.1f} | {ari:.3f} | {note} |")
    lines += ["", *detector_lines, "", *SURF_QUALITY, ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
