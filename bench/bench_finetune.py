"""What generator fine-tuning at restoration time (Deep Generative Prior) costs on this machine.

Times one whole restoration (``restauro.inpaint.inpaint``: z-search, fine-tuning, Poisson blend)
of a 64 px painting with a centre hole, at the default 8 candidates / 200 steps, with and without
fine-tuning, for several fine-tuning step counts and candidate counts. The nets are loaded the way
a worker loads a bundle's (eval mode, channels_last on the CPU). Timing does not depend on what
the weights are, so a bundle is optional: without ``--bundle`` the nets are random (BN calibrated).
Quality is measured by ``restauro evaluate`` (docs/results.md), not here.

    .venv/bin/python bench/bench_finetune.py [--registry var/eval-registry] [--width 32]
        [--repeats 2] [--out var/bench/finetune_cost.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.gan_ema import recalibrate_batch_norm
from restauro.images import center_crop_square, read_image
from restauro.inpaint import GANModels, InpaintParams, inpaint

REPO = Path(__file__).resolve().parents[1]
VARIANTS = [(0, 0), (25, 2), (50, 2), (100, 1), (100, 2), (200, 2)]  # (finetune steps, candidates)


def random_models(width: int) -> GANModels:
    config = DCGANConfig(image_size=64, nz=100, ngf=width, ndf=width)
    torch.manual_seed(0)
    g, d = Generator(config), Discriminator(config)
    recalibrate_batch_norm(g, 256, 64, torch.Generator().manual_seed(1))
    g, d = (m.eval().requires_grad_(False).to(memory_format=torch.channels_last) for m in (g, d))
    return GANModels(g, d, None, config, f"random-w{width}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, help="time a bundle's cluster 0 instead")
    parser.add_argument("--width", type=int, default=32, help="width of the random nets")
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared/data/paintings/images")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "var/bench/finetune_cost.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.registry is not None:
        from restauro.registry import Registry

        models = Registry(args.registry).load().models(0)
    else:
        models = random_models(args.width)
    painting = sorted(args.images.rglob("*.jpg"))[0]
    rgb = center_crop_square(read_image(painting).rgb, 64)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    base = InpaintParams()
    inpaint(rgb, mask, models, dataclasses.replace(base, steps=5))  # oneDNN warm-up, once
    print(f"models {models.name}, width {models.config.ngf}, {args.threads} threads")
    # Variants interleaved round by round: a load change on this shared machine hits them alike.
    runs: dict[tuple[int, int], list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.repeats):
        for steps, count in VARIANTS:
            params = dataclasses.replace(
                base, finetune_steps=steps, finetune_candidates=max(count, 1)
            )
            load = os.getloadavg()[0]
            wall, cpu = time.perf_counter(), time.process_time()
            inpaint(rgb, mask, models, params)
            runs[(steps, count)].append(
                {
                    "wall": time.perf_counter() - wall,
                    "cpu": time.process_time() - cpu,
                    "load": load,
                }
            )
            print(f"  {steps} x {count}: {runs[(steps, count)][-1]}", flush=True)
    plain = float(np.median([r["wall"] for r in runs[(0, 0)]]))
    print(
        "| fine-tune steps | candidates tuned | wall s (median) | CPU s (median) | x plain | load |"
    )
    print("|---:|---:|---:|---:|---:|---|")
    rows = []
    for (steps, count), values in runs.items():
        wall = float(np.median([r["wall"] for r in values]))
        cpu = float(np.median([r["cpu"] for r in values]))
        loads = "/".join(f"{r['load']:.1f}" for r in values)
        rows.append(
            {
                "finetune_steps": steps,
                "candidates": count,
                "runs": values,
                "wall_median": wall,
                "cpu_median": cpu,
            }
        )
        print(f"| {steps} | {count} | {wall:.2f} | {cpu:.2f} | {wall / plain:.2f} | {loads} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "torch": torch.__version__,
                    "threads": args.threads,
                },
                "models": models.name,
                "width": models.config.ngf,
                "params": base.to_dict(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
