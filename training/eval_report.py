"""What an evaluation reports: per-method statistics, paired differences, and the files.

:func:`summarize` turns the per-painting rows of :func:`training.evaluate.evaluate` into means,
standard errors and paired differences (same painting, same mask); :func:`write_report` writes
``evaluation.json``, ``report.md`` and the PNG grids a person looks at.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from restauro.images import encode_png
from training.eval_methods import ORACLE, Method

if TYPE_CHECKING:
    from training.evaluate import Evaluation

# metric -> True when higher is better
METRICS: dict[str, bool] = {
    "psnr": True,
    "ssim": True,
    "psnr_hole": True,
    "ssim_hole": True,
    "l1_hole": False,
    "perceptual": False,
}
PERCEPTUAL_NOTE = (
    "perceptual = uncalibrated LPIPS-style distance on SqueezeNet 1.1 (the shipped Caffe weights): "
    "unit-normalised channels of 7 layers, squared differences averaged over positions, summed; "
    "lower is better; comparable only between methods of one evaluation at one image size"
)


# --- summaries -----------------------------------------------------------------------------------
def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    arr = np.asarray(values, dtype=np.float64)
    n = len(arr)
    return {
        "mean": float(arr.mean()) if n else None,
        "std": float(arr.std(ddof=1)) if n > 1 else None,
        # the standard error of the mean: how far the mean would move on other paintings
        "stderr": float(arr.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
        "n": n,
    }


def summarize(rows: list[dict[str, Any]], kind: str, methods: list[Method]) -> dict[str, Any]:
    """Per method: mean / std / stderr of every metric; paired differences between methods."""
    rows = [r for r in rows if r["mask"] == kind]
    names = [m.name for m in methods]
    metrics = [m for m in METRICS if rows and all(m in r["scores"][names[0]] for r in rows)]
    per_method = {
        name: {metric: _stats([r["scores"][name][metric] for r in rows]) for metric in metrics}
        for name in names
    }
    for name in names:
        per_method[name]["outside_mask_changed"] = sum(
            r["scores"][name]["outside_mask_changed"] for r in rows
        )
        per_method[name]["seconds"] = _stats([r["scores"][name].get("seconds", 0.0) for r in rows])
    deployable = [m.name for m in methods if m.is_gan and m.target != ORACLE]
    best = (
        max(deployable, key=lambda n: per_method[n]["psnr"]["mean"])
        if rows and deployable
        else None
    )
    pairs = [("cluster", "general"), ("oracle", "cluster"), ("product", "cluster")]
    for a in dict.fromkeys([best, "product"]):
        pairs += [(a, "telea"), (a, "navier_stokes")]
    paired = {
        f"{a} - {b}": paired_difference(rows, a, b, metrics)
        for a, b in dict.fromkeys(pairs)
        if a in names and b in names and a != b
    }
    routed = [r["routed_to"] for r in rows if "routed_to" in r]
    summary: dict[str, Any] = {
        "paintings": len(rows),
        "hole_fraction": _stats([r["hole_fraction"] for r in rows]),
        "methods": per_method,
        "best_gan": best,
        "paired": paired,
    }
    if routed:
        summary["routed_to"] = {str(c): routed.count(c) for c in sorted(set(routed))}
    if routed and all("oracle_cluster" in r for r in rows):
        summary["routing_matches_oracle"] = float(
            np.mean([r["routed_to"] == r["oracle_cluster"] for r in rows])
        )
    return summary


def paired_difference(
    rows: list[dict[str, Any]], a: str, b: str, metrics: Sequence[str]
) -> dict[str, Any]:
    """Mean of (a - b) per painting, its standard error, and how often a is the better one."""
    out: dict[str, Any] = {}
    for metric in metrics:
        diff = np.array([r["scores"][a][metric] - r["scores"][b][metric] for r in rows])
        better = diff > 0 if METRICS[metric] else diff < 0
        out[metric] = {**_stats(diff), "a_better": float(better.mean()) if len(diff) else None}
    return out


# --- output --------------------------------------------------------------------------------------
def write_report(evaluation: Evaluation, out: Path) -> list[Path]:
    """``evaluation.json``, ``report.md``, ``grid_<mask>_<page>.png`` and ``samples_<gan>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "evaluation.json", out / "report.md"]
    for kind, entries in evaluation.grids.items():
        for page, start in enumerate(range(0, len(entries), GRID_ROWS), start=1):
            path = out / f"grid_{kind}_{page}.png"
            path.write_bytes(encode_png(comparison_grid(entries[start : start + GRID_ROWS])))
            written.append(path)
    for name, images in evaluation.samples.items():
        path = out / f"samples_{name}.png"
        path.write_bytes(encode_png(sample_grid(images)))
        written.append(path)
    evaluation.report["files"] = [p.name for p in written]
    written[0].write_text(json.dumps(evaluation.report, indent=2) + "\n")
    written[1].write_text(format_markdown(evaluation.report))
    return written


GRID_ROWS = 8
_HOLE_COLOUR = (255, 0, 255)  # magenta: no painting uses it much, so the hole stands out


def comparison_grid(entries: list[dict[str, Any]]) -> np.ndarray:
    """Rows of original | damaged (hole in magenta) | each method, under a header of names.

    Cells are enlarged (nearest neighbour: every pixel stays visible as it is) to at least 128 px.
    """
    if not entries:
        return np.full((16, 16, 3), 255, np.uint8)
    size = entries[0]["original"].shape[0]
    scale = max(1, int(np.ceil(128 / size)))
    cell, gap = size * scale, 4
    names = ["original", "damaged", *entries[0]["images"]]
    header = 18
    height = header + len(entries) * (cell + gap)
    width = len(names) * (cell + gap)
    grid = np.full((height, width, 3), 255, np.uint8)
    for col, name in enumerate(names):
        origin = (col * (cell + gap) + 2, 13)
        cv2.putText(grid, name[:18], origin, cv2.FONT_HERSHEY_SIMPLEX, 0.38, 0, 1, cv2.LINE_AA)
    for row, entry in enumerate(entries):
        damaged = entry["damaged"].copy()
        damaged[entry["mask"]] = _HOLE_COLOUR
        pictures = [entry["original"], damaged, *entry["images"].values()]
        top = header + row * (cell + gap)
        for col, picture in enumerate(pictures):
            big = np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)
            left = col * (cell + gap)
            grid[top : top + cell, left : left + cell] = big
    return grid


def sample_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """A GAN's diversity samples side by side, so the number can be checked by eye."""
    n, size = len(images), images.shape[1]
    rows = -(-n // columns)
    grid = np.full((rows * (size + 2), min(n, columns) * (size + 2), 3), 255, np.uint8)
    for i, image in enumerate(images):
        top, left = (i // columns) * (size + 2), (i % columns) * (size + 2)
        grid[top : top + size, left : left + size] = image
    return grid


def _fmt(stat: dict[str, Any] | None, digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    err = stat.get("stderr")
    return f"{stat['mean']:.{digits}f}" + (f" ± {err:.{digits}f}" if err is not None else "")


PAIRED_NOTE = (
    "Paired differences (same painting, same mask): mean of a - b ± standard error, and in "
    "brackets the share of paintings where a is the better one."
)
_COLUMNS = [
    ("psnr", "PSNR dB", 2),
    ("ssim", "SSIM", 3),
    ("psnr_hole", "PSNR hole", 2),
    ("ssim_hole", "SSIM hole", 3),
    ("l1_hole", "L1 hole", 3),
    ("perceptual", "perceptual*", 3),
]


def format_markdown(result: dict[str, Any]) -> str:
    """The human-readable report: one table per mask kind, paired differences, diversity."""
    test, machine, bundle = result["test_set"], result["machine"], result["bundle"]
    sizes = " / ".join(str(v) for v in bundle["clusters"].values())
    lines = [
        f"# Evaluation of bundle {result['bundle_version']}",
        "",
        f"- Created {result['created'][:19]} UTC on {machine['device']} "
        f"({machine['cpu_threads']} torch threads; load average "
        f"{machine['load_before'][0]:.2f} before, {machine['load_after'][0]:.2f} after).",
        f"- Bundle: {bundle['features']} features, K = {len(bundle['clusters'])} (cluster sizes "
        f"{sizes}; general {bundle['general_size']}), {bundle['image_size']} px.",
        f"- Test set: {test['paintings']} paintings from `{test['folder']}` ({test['source']}: "
        f"{test['note']}); evaluated at {result['size']} px (centre crops).",
        f"- Restoration parameters: {_params_line(result)}.",
        f"- Time: {result['seconds']['evaluate']:.0f} s restoring and scoring, "
        f"{result['seconds']['diversity']:.0f} s diversity.",
        "",
        "Mean ± standard error over paintings. Higher is better except L1 and perceptual.",
        "",
    ]
    for kind, summary in result["masks"].items():
        hole = summary["hole_fraction"]["mean"]
        lines += [
            f"## Mask: {kind} ({summary['paintings']} paintings, mean hole {hole:.1%})",
            "",
        ]
        metrics = [c for c in _COLUMNS if c[0] in next(iter(summary["methods"].values()))]
        lines.append("| method | " + " | ".join(c[1] for c in metrics) + " | s / painting |")
        lines.append("|---|" + "---:|" * (len(metrics) + 1))
        for name, stats in summary["methods"].items():
            cells = [_fmt(stats[m], d) for m, _, d in metrics]
            per = stats["seconds"]["mean"] if "seconds" in stats else None
            if per is None:  # a report written before per-row seconds: the mean over all masks
                per = result["seconds"]["per_restoration"].get(name, 0.0)
            flag = " (CHANGED PIXELS OUTSIDE THE MASK)" if stats["outside_mask_changed"] else ""
            lines.append(f"| {name}{flag} | " + " | ".join(cells) + f" | {per:.2f} |")
        lines += ["", PAIRED_NOTE, ""]
        lines.append("| a - b | " + " | ".join(c[1] for c in metrics) + " |")
        lines.append("|---|" + "---:|" * len(metrics))
        for pair, stats in summary["paired"].items():
            cells = [
                f"{_fmt(stats[m], d)} ({stats[m]['a_better']:.0%})" if m in stats else "-"
                for m, _, d in metrics
            ]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
        if "routed_to" in summary:
            routed = ", ".join(f"c{c}: {n}" for c, n in summary["routed_to"].items())
            lines += ["", f"Routed to: {routed}."]
        if "routing_matches_oracle" in summary:
            lines.append(
                f"Routing picked the oracle's cluster for {summary['routing_matches_oracle']:.0%}"
                " of the paintings."
            )
        grids = [f for f in result.get("files", []) if f.startswith(f"grid_{kind}_")]
        if grids:
            lines += ["", "Grids: " + ", ".join(f"[{g}]({g})" for g in grids)]
        lines.append("")
    lines += ["## Diversity of the GANs", ""]
    diversity = result["diversity"]
    if "skipped" in diversity:
        lines.append(f"Skipped: {diversity['skipped']}.")
    else:
        lines += [
            f"Mean pairwise perceptual distance of {diversity['samples']} samples per GAN "
            f"(seed {diversity['seed']}); higher = more varied, a collapsed GAN scores low. "
            f"Reference: {diversity['real_count']} real test paintings at "
            f"{result['bundle']['image_size']} px.",
            "",
            "| GAN | diversity |",
            "|---|---:|",
        ]
        for name, score in diversity["gans"].items():
            lines.append(f"| [{name}](samples_{name}.png) | {score:.3f} |")
        if diversity.get("real_paintings") is not None:
            lines.append(f"| real paintings | {diversity['real_paintings']:.3f} |")
    lines += ["", f"(*) {result['perceptual']['note']}.", ""]
    return "\n".join(lines)


def _params_line(result: dict[str, Any]) -> str:
    """The common search parameters, then what each GAN method runs differently."""
    gans = {n: m["params"] for n, m in result["methods"].items() if m.get("params")}
    if not gans:
        return "no GAN method"
    base_name = "cluster" if "cluster" in gans else next(iter(gans))
    base = gans[base_name]
    line = f"{base['candidates']} candidates, {base['steps']} z-steps, seed {base['seed']}"
    for name, params in gans.items():
        changed = {k: v for k, v in params.items() if base.get(k) != v}
        if changed:
            line += f"; {name} differs from {base_name} in {changed}"
    return line


def format_summary(result: dict[str, Any]) -> str:
    """A terminal table per mask kind: whole-image PSNR, hole PSNR, perceptual; key gains."""
    lines = []
    for kind, summary in result["masks"].items():
        lines.append(f"{kind} ({summary['paintings']} paintings)")
        has_perceptual = "perceptual" in next(iter(summary["methods"].values()))
        header = f"  {'method':<16}{'PSNR dB':>16}{'PSNR hole':>16}{'SSIM':>16}"
        lines.append(header + (f"{'perceptual':>16}" if has_perceptual else ""))
        for name, s in summary["methods"].items():
            line = f"  {name:<16}{_fmt(s['psnr'], 2):>16}{_fmt(s['psnr_hole'], 2):>16}"
            line += f"{_fmt(s['ssim'], 3):>16}"
            if has_perceptual:
                line += f"{_fmt(s['perceptual'], 3):>16}"
            lines.append(line)
        for pair, stats in summary["paired"].items():
            text = f"  {pair}: PSNR {_fmt(stats['psnr'], 2)} dB"
            if "perceptual" in stats:
                text += f", perceptual {_fmt(stats['perceptual'], 3)}"
            lines.append(text)
    diversity = result["diversity"]
    if "gans" in diversity:
        scores = ", ".join(f"{n} {s:.2f}" for n, s in diversity["gans"].items())
        real = diversity.get("real_paintings")
        lines.append(f"diversity: {scores}" + (f" (real paintings {real:.2f})" if real else ""))
    else:
        lines.append(f"diversity: skipped ({diversity['skipped']})")
    if not result["perceptual"]["available"]:
        lines.append(result["perceptual"]["note"])
    return "\n".join(lines)
