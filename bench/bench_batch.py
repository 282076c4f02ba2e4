"""`restauro inpaint DIR`: a folder of 50 scans, one of them broken, restored and then resumed.

Makes N-1 scans from real paintings (longer side --size px) with stroke-and-loss masks in a
masks/ folder, plus one truncated file; runs the real CLI on them twice (the second run must
restore nothing) and writes the figures to --out.

    .venv/bin/python bench/bench_batch.py [--scans 50] [--size 256] [--steps 50] [--registry REG]

Without --registry it trains the tests' tiny bundle first (seconds), as bench_service.py does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from restauro.images import encode_png, fit_longer_side, read_image  # noqa: E402
from tests.data import paintings_dir, tiny_train_options  # noqa: E402


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def damage_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Two scratches and one loss: the kinds of damage a scan shows."""
    mask = np.zeros((h, w), np.uint8)
    for _ in range(2):
        pts = (rng.random((4, 2)) * [w, h]).astype(np.int32)
        cv2.polylines(mask, [pts], False, 255, thickness=max(2, w // 80))
    c = (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4)))
    cv2.ellipse(mask, c, (w // 14, h // 18), float(rng.integers(0, 180)), 0, 360, 255, -1)
    return mask


def make_folder(root: Path, n: int, size: int) -> tuple[Path, Path]:
    scans, masks = root / "scans", root / "masks"
    scans.mkdir(parents=True)
    masks.mkdir()
    rng = np.random.default_rng(0)
    paintings = sorted(paintings_dir().rglob("*.jpg"))[: n - 1]
    for i, path in enumerate(paintings):
        rgb = fit_longer_side(read_image(path).rgb, size)
        (scans / f"scan{i:02d}.png").write_bytes(encode_png(rgb))
        (masks / f"scan{i:02d}.png").write_bytes(encode_png(damage_mask(*rgb.shape[:2], rng)))
    (scans / "broken.png").write_bytes(encode_png(rgb)[:200])  # truncated: refused, reported
    return scans, masks


def run(args: list[str], env: dict[str, str]) -> tuple[int, float, str, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "training.cli", "inpaint", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return done.returncode, time.perf_counter() - start, done.stdout, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--registry", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "var/bench/bench-batch.md")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    registry = args.registry
    if registry is None:
        import torch

        from training.pipeline import run_training

        torch.set_num_threads(2)
        registry = root / "registry"
        run_training(tiny_train_options(registry, max_images=24))
    scans, masks = make_folder(root, args.scans, args.size)
    out = root / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(REPO)}
    cli = [str(scans), "--masks", str(masks), "--out", str(out), "--registry", str(registry)]
    cli += ["--candidates", str(args.candidates), "--steps", str(args.steps), "--device", "cpu"]

    load_first = load()
    code1, seconds1, stdout1, err1 = run(cli, env)
    counts1 = json.loads((out / "report.json").read_text())["counts"]
    load_second = load()
    code2, seconds2, _, _ = run(cli, env)
    counts2 = json.loads((out / "report.json").read_text())["counts"]
    print(stdout1)
    print(f"first: exit {code1}, {seconds1:.1f} s, {counts1}; errors: {err1.strip()}")
    print(f"rerun: exit {code2}, {seconds2:.1f} s, {counts2}")

    engine = json.loads((out / "report.json").read_text())["engine"]
    restored = counts1["restored"]
    lines = [
        "# Batch restore benchmark",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        "no GPU (the 2-core CPU dev machine, shared with other work while measuring).",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')}; {engine}.",
        f"Command: `.venv/bin/python bench/bench_batch.py --scans {args.scans} --size {args.size} "
        f"--steps {args.steps} --candidates {args.candidates}` (runs `restauro inpaint DIR "
        "--masks DIR --out DIR` twice).",
        "",
        f"{args.scans - 1} real paintings at {args.size} px (longer side), two scratches and one "
        "loss each, masks in a folder matched by name; one truncated file.",
        "",
        "| run | exit status | restored | skipped | failed | wall s | load average at start |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| first | {code1} | {counts1['restored']} | {counts1['skipped']} | {counts1['failed']} "
        f"| {seconds1:.1f} | {load_first} |",
        f"| rerun | {code2} | {counts2['restored']} | {counts2['skipped']} | {counts2['failed']} "
        f"| {seconds2:.1f} | {load_second} |",
        "",
        f"First run: {seconds1 / max(1, restored):.2f} s per restored scan, process start, torch "
        "import and bundle load included. The failure, as printed:",
        "",
        "```",
        err1.strip(),
        "```",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
