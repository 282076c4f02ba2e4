"""A > 100-megapixel tiled TIFF end to end within a raised pixel limit: decode, restore, encode.

Not a quality benchmark (bench_fullres.py is): it checks that a scan of this size is handled
(refused over the limit from its header, decoded when the limit allows it, restored with memory
in proportion to its damage) and how long each stage takes on this machine. The scan is a
public-domain painting enlarged to 12,000 x 9,000 with grain, written as a tiled 8-bit TIFF;
damage is three losses and a crack across the painting.

Run: .venv/bin/python bench/bench_large_scan.py [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fullres_paintings import public_domain_paintings

from restauro.errors import ImageTooLarge
from restauro.images import decode_image, encode_like
from restauro.registry import Registry
from restauro.request import RestoreRequest
from restauro.restore import restore
from tests.tiff import tiff_bytes


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, default=Path("var/issue10/registry"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/paintings"))
    parser.add_argument("--size", default="12000x9000")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    row: dict = {"size": args.size, "megapixels": width * height / 1e6, "load": os.getloadavg()}

    painting = public_domain_paintings(args.data, 1, skip=3)[0]
    small = cv2.cvtColor(cv2.imread(str(painting)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    rgb = cv2.add(rgb, np.random.default_rng(0).integers(0, 6, rgb.shape, dtype=np.uint8))
    data = tiff_bytes(rgb, tile=512)
    del rgb
    row["file_mb"] = round(len(data) / 1e6, 1)

    start = time.perf_counter()
    try:
        decode_image(data, max_pixels=40_000_000)
        row["refused_at_40mp"] = False
    except ImageTooLarge as exc:
        row["refused_at_40mp"] = True
        row["refusal"] = exc.detail
    row["refusal_seconds"] = round(time.perf_counter() - start, 3)

    start = time.perf_counter()
    decoded = decode_image(data, max_pixels=150_000_000)
    row["decode_seconds"] = round(time.perf_counter() - start, 2)
    del data

    mask = np.zeros((height, width), np.uint8)
    for x, y, r in ((2000, 1500, 60), (6000, 4000, 40), (9500, 7000, 20)):
        cv2.circle(mask, (x, y), r, 1, -1)
    cv2.line(mask, (0, 3000), (width - 1, 6000), 1, 4)
    hole = mask.astype(bool)
    del mask
    row["mask_pixels"] = int(hole.sum())

    bundle = Registry(args.registry).load()
    start = time.perf_counter()
    result = restore(
        decoded.rgb, hole, bundle, RestoreRequest(target="general", steps=args.steps, seed=0)
    )
    row["restore_seconds"] = round(time.perf_counter() - start, 1)
    summary = result.to_dict()
    row["windows"] = len(summary["windows"])
    row["max_gan_scale"] = max(w["scale"] for w in summary["windows"] if w["kind"] == "loss")

    start = time.perf_counter()
    first = result.candidates[0]
    assert np.array_equal(first[~hole], decoded.rgb[~hole])
    png = encode_like(first, decoded, hole)
    row["encode_one_candidate_seconds"] = round(time.perf_counter() - start, 1)
    row["candidate_png_mb"] = round(len(png) / 1e6, 1)
    row["peak_rss_gb"] = round(peak_rss_gb(), 2)
    print(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
