"""Does specialisation pay? Cluster DCGANs vs the general DCGAN and OpenCV, on held-out paintings.

The paper's claim is that a GAN trained on one visually coherent cluster restores that cluster's
paintings better than one GAN trained on everything. This measures it on the paintings the bundle
never trained on (its validation split): each painting gets synthetic damage, is routed, and is
restored four ways — its cluster's DCGAN, the general DCGAN, OpenCV Telea and Navier-Stokes — with
the same masks and seeds. Scores are taken inside the hole, at the model's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from restauro.bundle import GENERAL
from restauro.damage import random_damage_masks
from restauro.dataset import ingest
from restauro.errors import DatasetError
from restauro.images import center_crop_square
from restauro.inpaint import InpaintParams, inpaint
from restauro.metrics import hole_metrics, ns_baseline, telea_baseline
from restauro.progress import Progress, report
from restauro.registry import Registry

METHODS = ("cluster", "general", "telea", "navier_stokes")


@dataclass
class EvalOptions:
    images: Path
    registry: Path
    version: str | None = None
    limit: int | None = None  # evaluate at most this many held-out paintings
    min_area: float = 0.1
    max_area: float = 0.3
    candidates: int = 8
    steps: int = 300
    seed: int = 0
    device: str = "cpu"


def evaluate(options: EvalOptions, progress: Progress | None = None) -> dict[str, Any]:
    registry = Registry(options.registry)
    bundle = registry.load(options.version)
    held_out = set(bundle.manifest.get("dataset", {}).get("validation", []))
    if not held_out:
        raise DatasetError(
            f"bundle {bundle.version} has no validation split (trained with "
            "--validation-fraction 0): nothing held out to evaluate on"
        )
    dataset = ingest(options.images, progress=progress, include=held_out)
    paintings = [p for p in dataset.paintings if p.path in held_out][: options.limit]
    if not paintings:
        raise DatasetError(f"none of the bundle's validation paintings is below {options.images}")
    size = bundle.image_size
    rng = np.random.default_rng(options.seed)
    masks = random_damage_masks(len(paintings), size, rng, options.min_area, options.max_area)
    params = InpaintParams(candidates=options.candidates, steps=options.steps, seed=options.seed)
    rows = []
    for i, (painting, mask) in enumerate(zip(paintings, masks, strict=True)):
        report(progress, "evaluate", i, len(paintings))
        original = center_crop_square(painting.rgb, size)
        damaged = original.copy()
        damaged[mask] = 0
        cluster = bundle.route(damaged, mask).cluster
        restored = {
            "cluster": _restore(bundle, cluster, damaged, mask, params, options.device),
            "general": _restore(bundle, GENERAL, damaged, mask, params, options.device),
            "telea": telea_baseline(damaged, mask),
            "navier_stokes": ns_baseline(damaged, mask),
        }
        rows.append(
            {
                "path": painting.path,
                "routed_to": cluster,
                "hole_fraction": float(mask.mean()),
                **{m: hole_metrics(img, original, mask) for m, img in restored.items()},
            }
        )
    report(progress, "evaluate", len(paintings), len(paintings))
    return {
        "bundle_version": bundle.version,
        "options": _jsonable(options),
        "summary": summarize(rows),
        "rows": rows,
    }


def _restore(bundle, target, damaged, mask, params, device) -> np.ndarray:
    return inpaint(damaged, mask, bundle.models(target, device), params, device).candidates[0]


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std of each score per method; how often the cluster GAN beats the general one."""
    summary: dict[str, Any] = {"paintings": len(rows)}
    for method in METHODS:
        summary[method] = {
            metric: {
                "mean": float(np.mean([r[method][metric] for r in rows])),
                "std": float(np.std([r[method][metric] for r in rows])),
            }
            for metric in ("psnr_hole", "ssim_hole", "l1_hole")
        }
    gain = np.array([r["cluster"]["psnr_hole"] - r["general"]["psnr_hole"] for r in rows])
    summary["cluster_beats_general_psnr"] = float(np.mean(gain > 0)) if len(gain) else None
    summary["psnr_gain_over_general"] = {
        "mean": float(gain.mean()) if len(gain) else None,
        # the standard error of the mean paired difference: is the gain more than noise?
        "stderr": float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else None,
    }
    summary["by_cluster"] = {
        str(c): {
            "paintings": sum(r["routed_to"] == c for r in rows),
            **{
                m: float(np.mean([r[m]["psnr_hole"] for r in rows if r["routed_to"] == c]))
                for m in METHODS
            },
        }
        for c in sorted({r["routed_to"] for r in rows})
    }
    return summary


def _jsonable(options: EvalOptions) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()}


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{'method':<15}{'PSNR hole (dB)':>18}{'SSIM hole':>16}{'L1 hole':>14}"]
    for method in METHODS:
        s = summary[method]
        lines.append(
            f"{method:<15}{s['psnr_hole']['mean']:>11.2f} ± {s['psnr_hole']['std']:<4.2f}"
            f"{s['ssim_hole']['mean']:>10.3f} ± {s['ssim_hole']['std']:<4.3f}"
            f"{s['l1_hole']['mean']:>8.3f} ± {s['l1_hole']['std']:<5.3f}"
        )
    share = summary["cluster_beats_general_psnr"]
    gain = summary["psnr_gain_over_general"]
    stderr = f" ± {gain['stderr']:.2f}" if gain["stderr"] is not None else ""
    lines.append(
        f"cluster DCGAN beats general DCGAN (PSNR) on {share:.0%} of {summary['paintings']} "
        f"paintings; mean gain {gain['mean']:+.2f}{stderr} dB"
    )
    return "\n".join(lines)
