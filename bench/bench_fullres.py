"""Full-resolution restoration of museum-like damage (issue 10): windows, time, quality vs Telea.

For each test painting (``fullres_paintings.py``: a public-domain composition rendered at scan
size with brushwork; three round losses of radius 20-60 px and a 4 px crack across), the product
path (``restauro.restore.restore``, a method per kind of damage) restores the scan once; OpenCV
Telea restores the same damaged scan. Measured on the same paintings, masks and seeds:

* result.json's windows: how many, by kind, the largest downscale of a GAN window;
* the whole restoration's wall time (one process, torch on this machine's threads);
* on the crack's pixels: hole PSNR of Restauro's best candidate vs Telea;
* on the losses' pixels: hole PSNR and detail ratio (mean gradient magnitude inside / in a 16 px
  ring around each loss) of the best candidate, of the best GAN candidate (GAN + detail), of the
  same GAN run without detail transfer, and of Telea.

Writes ``OUT/fullres.json`` and ``OUT/side_by_side.png`` (original | damaged | Restauro | Telea,
full-resolution crops around the largest loss and a stretch of the crack, first painting).

Run: .venv/bin/python bench/bench_fullres.py --registry var/issue10/registry [--paintings 6]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fullres_paintings import museum_damage, public_domain_paintings, render_scan

from restauro.inpaint import InpaintParams
from restauro.inpaint.scoring import detail_ratio
from restauro.metrics import psnr, telea_baseline
from restauro.registry import Registry
from restauro.request import RestoreRequest
from restauro.restore import PRODUCT, restore


def loss_detail(image: np.ndarray, losses: np.ndarray) -> float:
    """Mean over the losses of each loss's detail ratio (computed on a crop around it)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(losses.astype(np.uint8))
    ratios = []
    for c in range(1, count):
        x, y, w, h = stats[c][:4]
        pad = 24
        rows = slice(max(0, y - pad), y + h + pad)
        cols = slice(max(0, x - pad), x + w + pad)
        ratios.append(detail_ratio(image[rows, cols], labels[rows, cols] == c))
    return float(np.mean(ratios))


def measure(
    painting: Path,
    bundle,
    seed: int,
    size: tuple[int, int],
    steps: int | None = None,
    ablation: bool = False,
    engine=None,
) -> tuple[dict, dict]:
    width, height = size
    original = render_scan(painting, width, height, seed)
    mask, losses, crack = museum_damage(height, width, seed)
    damaged = original.copy()
    damaged[mask] = 255
    request = RestoreRequest(target="auto", seed=seed, steps=steps or RestoreRequest.steps)
    load = os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    result = restore(damaged, mask, bundle, request, engine=engine)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    load_end = os.getloadavg()[0]
    summary = result.to_dict()
    ranked = result.restoration.ranked
    best = result.candidates[0]
    gan_rank = next(i for i, c in enumerate(ranked) if c.method.startswith("gan:"))
    gan = result.candidates[gan_rank]
    plain_gan = None
    if ablation:  # the same GAN restoration without detail transfer
        plain = restore(
            damaged, mask, bundle, request, engine=replace(engine or PRODUCT, detail=False)
        )
        plain_rank = next(
            i for i, c in enumerate(plain.restoration.ranked) if c.method.startswith("gan:")
        )
        plain_gan = plain.candidates[plain_rank]
    start = time.perf_counter()
    telea = telea_baseline(damaged, mask)
    telea_seconds = time.perf_counter() - start
    for image in (best, gan, telea) if plain_gan is None else (best, gan, plain_gan, telea):
        assert np.array_equal(image[~mask], damaged[~mask])  # outside the mask: the input's
    gan_windows = [w for w in summary["windows"] if w["kind"] == "loss"]
    row = {
        "painting": painting.name,
        "size": f"{width}x{height}",
        "target": summary["target"],
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # user + system of this process (both cores count)
        "load_at_start": round(load, 2),
        "load_at_end": round(load_end, 2),
        "telea_seconds": round(telea_seconds, 3),
        "windows": len(summary["windows"]),
        "windows_by_kind": {
            kind: sum(w["kind"] == kind for w in summary["windows"]) for kind in ("thin", "loss")
        },
        "max_gan_scale": max((w["scale"] for w in gan_windows), default=None),
        "all_within_limit": all(w["within_limit"] for w in summary["windows"]),
        "ranking": [c["method"] for c in summary["candidates"]],
        "best": summary["candidates"][0],
        "crack": {
            "restauro": psnr(best, original, crack),
            "telea": psnr(telea, original, crack),
            "restauro_method": summary["candidates"][0]["methods"].get("thin"),
        },
        "losses": {
            "restauro": {
                "psnr": psnr(best, original, losses),
                "detail": loss_detail(best, losses),
                "method": summary["candidates"][0]["methods"].get("loss"),
            },
            "gan_detail": {
                "psnr": psnr(gan, original, losses),
                "detail": loss_detail(gan, losses),
                "rank": gan_rank + 1,
            },
            "telea": {"psnr": psnr(telea, original, losses), "detail": loss_detail(telea, losses)},
            "original": {"detail": loss_detail(original, losses)},
        },
    }
    if plain_gan is not None:
        row["losses"]["gan_no_detail"] = {
            "psnr": psnr(plain_gan, original, losses),
            "detail": loss_detail(plain_gan, losses),
        }
    images = {
        "original": original,
        "damaged": damaged,
        "restauro": best,
        "gan": gan,
        "telea": telea,
        "mask": mask,
        "losses": losses,
        "crack": crack,
    }
    return row, images


def side_by_side(images: dict, path: Path) -> None:
    """Rows of full-resolution crops: the largest loss, then a stretch of the crack."""
    losses, crack = images["losses"], images["crack"]
    _, _, stats, _ = cv2.connectedComponentsWithStats(losses.astype(np.uint8))
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = stats[big][:4]
    cy, cx = y + h // 2, x + w // 2
    ys, xs = np.nonzero(crack)
    mid = len(xs) // 3
    crops = [(cy, cx), (int(ys[mid]), int(xs[mid]))]
    half = 100
    height, width = losses.shape
    rows = []
    for y0, x0 in crops:
        top = int(np.clip(y0 - half, 0, height - 2 * half))
        left = int(np.clip(x0 - half, 0, width - 2 * half))
        tiles = []
        for name in ("original", "damaged", "restauro", "telea"):
            tile = images[name][top : top + 2 * half, left : left + 2 * half].copy()
            tile = cv2.resize(tile, (400, 400), interpolation=cv2.INTER_NEAREST)  # 2x, no blur
            cv2.putText(tile, name, (8, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
            tiles.append(tile)
            tiles.append(np.full((400, 6, 3), 255, np.uint8))
        rows.append(np.hstack(tiles[:-1]))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.vstack(rows[:-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def _engine(detail_gain: float | None, settings: list[str]) -> InpaintParams | None:
    """The product engine with --detail-gain and --engine KEY=VALUE applied (None: as is)."""
    changes: dict[str, object] = {}
    if detail_gain is not None:
        changes["detail_gain"] = detail_gain
    defaults = PRODUCT.to_dict()
    for item in settings:
        key, _, value = item.partition("=")
        if key not in defaults:
            raise SystemExit(f"--engine: {key!r} is not an InpaintParams field")
        kind = type(defaults[key])
        changes[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return replace(PRODUCT, **changes) if changes else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, default=Path("var/issue10/registry"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/paintings"))
    parser.add_argument("--paintings", type=int, default=6)
    parser.add_argument("--skip", type=int, default=2, help="paintings 0..skip-1 are the dev set")
    parser.add_argument("--size", default="1500x1200")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the i-th painting of this run gets seed + i (its scan's detail and its damage): "
        "docs/results.md ran the dev set (--skip 0 --paintings 2) and the test set (--skip 2 "
        "--paintings 4) separately, so run them the same way to get the same scans",
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench/fullres"))
    parser.add_argument("--steps", type=int, default=None, help="z-steps (default: product's)")
    parser.add_argument(
        "--detail-gain", type=float, default=None, help="InpaintParams.detail_gain (default 1)"
    )
    parser.add_argument(
        "--ablation", type=int, default=2, help="also restore without detail, first N paintings"
    )
    parser.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other InpaintParams field of the product engine, e.g. finetune_steps=100",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (default: every core)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads or max(1, os.cpu_count() or 1))
    width, height = (int(v) for v in args.size.split("x"))
    bundle = Registry(args.registry).load()
    engine = _engine(args.detail_gain, args.engine)
    rows = []
    for i, painting in enumerate(public_domain_paintings(args.data, args.paintings, args.skip)):
        row, images = measure(
            painting, bundle, args.seed + i, (width, height), args.steps, i < args.ablation, engine
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
        if i == 0:
            side_by_side(images, args.out / "side_by_side.png")
    summary = {
        "paintings": len(rows),
        "mean_seconds": float(np.mean([r["seconds"] for r in rows])),
        "max_seconds": float(np.max([r["seconds"] for r in rows])),
        "crack_psnr": {
            k: float(np.mean([r["crack"][k] for r in rows])) for k in ("restauro", "telea")
        },
        "crack_wins": sum(r["crack"]["restauro"] >= r["crack"]["telea"] for r in rows),
        "losses": {
            k: {
                m: float(np.mean([r["losses"][k][m] for r in rows if k in r["losses"]]))
                for m in rows[0]["losses"][k]
                if m in ("psnr", "detail")
            }
            for k in rows[0]["losses"]
        },
        "loss_gan_within_0_5_db_of_telea": sum(
            r["losses"]["gan_detail"]["psnr"] >= r["losses"]["telea"]["psnr"] - 0.5 for r in rows
        ),
        "loss_gan_detail_at_least_0_7": sum(
            r["losses"]["gan_detail"]["detail"] >= 0.7 for r in rows
        ),
        "bundle": bundle.version,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "engine": (engine or PRODUCT).to_dict(),
    }
    print(json.dumps(summary, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fullres.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
