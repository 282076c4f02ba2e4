"""Benchmark of the inpainting engine (Yeh et al. z-optimization) on this machine.

Prints figures for docs/bench-inpainting.md:

1. Seconds per z-optimization step and per restoration at 64 and 128 px for 1, 8 and 32
   candidates, with the standard-width DCGAN (ngf = ndf = 64, nz = 100) at *random* weights:
   timing does not depend on what the weights are.
2. CPU speedups at 64 px / 8 candidates: channels_last, inference-mode bookkeeping is already in
   (no parameter grads, eval mode); torch.compile only with --compile (17-24 s cold compile).
3. Steps needed to reach a fixed loss with and without encoder initialisation, and the steps the
   default settings (lr 0.03 + early stop) need to reach the loss of Yeh et al.'s plain 1,500 steps
   at lr 0.01, on a small DCGAN (ngf = ndf = 32) + encoder briefly trained on ~200 real paintings.

Run: .venv/bin/python bench/bench_inpaint.py [--compile] [--data ../shared/data/paintings]
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.encoder import EncoderSettings, train_encoder
from restauro.gan_training import TrainSettings, train_dcgan
from restauro.images import center_crop_square, to_model_range
from restauro.inpaint import GANModels, InpaintParams, ZOptimizer, inpaint


def step_seconds(models: GANModels, candidates: int, steps: int = 4) -> float:
    """Seconds per Adam step on B candidates (after one warm-up run)."""
    size = models.config.image_size
    target = torch.rand(1, 3, size, size) * 2 - 1
    missing = torch.zeros(1, 1, size, size)
    missing[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    opt = ZOptimizer(InpaintParams(candidates=candidates, steps=1, patience=0))
    opt.optimize(models.generator, models.discriminator, target, missing)
    opt = ZOptimizer(InpaintParams(candidates=candidates, steps=steps, patience=0))
    start = time.perf_counter()
    opt.optimize(models.generator, models.discriminator, target, missing)
    return (time.perf_counter() - start) / steps


def random_models(size: int) -> GANModels:
    config = DCGANConfig(image_size=size, nz=100, ngf=64, ndf=64)
    torch.manual_seed(0)
    return GANModels(Generator(config), Discriminator(config), None, config, f"random{size}")


def load_paintings(root: Path, count: int, size: int) -> np.ndarray:
    files = sorted(glob.glob(str(root / "images" / "*" / "*.jpg")))
    rng = np.random.default_rng(0)
    picked = rng.choice(len(files), size=min(count, len(files)), replace=False)
    out = []
    for i in picked:
        bgr = cv2.imread(files[i], cv2.IMREAD_COLOR)
        if bgr is not None:
            out.append(center_crop_square(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size))
    return np.stack(out)


def steps_to_reach(curve: list[float], level: float) -> int | None:
    for i, value in enumerate(curve):
        if value <= level:
            return i + 1
    return None


def timing_section(use_compile: bool) -> None:
    print("## Step time, standard-width DCGAN (ngf=ndf=64, nz=100), random weights")
    print("| px | candidates | s/step | steps/s | 300 steps (s) | 1500 steps (s) |")
    print("|---|---|---|---|---|---|")
    for size in (64, 128):
        models = random_models(size)
        for b in (1, 8, 32):
            sec = step_seconds(models, b, steps=4 if size == 64 else 2)
            print(
                f"| {size} | {b} | {sec:.4f} | {1 / sec:.1f} | {300 * sec:.1f} | {1500 * sec:.1f} |"
            )

    models = random_models(64)
    base = step_seconds(models, 8, steps=8)
    models.generator.to(memory_format=torch.channels_last)
    models.discriminator.to(memory_format=torch.channels_last)
    cl = step_seconds(models, 8, steps=8)
    print("\n## CPU speedups, 64 px, 8 candidates")
    print(f"- contiguous (NCHW): {base:.4f} s/step")
    print(f"- channels_last G and D: {cl:.4f} s/step ({base / cl:.2f}x)")
    if use_compile:
        models = random_models(64)
        models = dataclasses.replace(
            models,
            generator=torch.compile(models.generator),
            discriminator=torch.compile(models.discriminator),
        )
        models.generator.config = models.config  # type: ignore[attr-defined]
        start = time.perf_counter()
        step_seconds(models, 8, steps=1)
        cold = time.perf_counter() - start
        comp = step_seconds(models, 8, steps=8)
        print(f"- torch.compile: {comp:.4f} s/step ({base / comp:.2f}x), cold compile {cold:.0f} s")

    # Whole engine on a 4000 x 3000 scan with 3 holes (3 groups), few steps: the fixed overheads.
    rng = np.random.default_rng(0)
    scan = cv2.resize(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), (4000, 3000))
    mask = np.zeros((3000, 4000), dtype=bool)
    mask[500:800, 600:900] = True
    mask[2000:2100, 3000:3400] = True
    mask[2900:3000, 0:200] = True
    start = time.perf_counter()
    result = inpaint(
        scan, mask, random_models(64), InpaintParams(candidates=8, steps=5, patience=0)
    )
    total = time.perf_counter() - start
    steps = result.steps
    print(
        f"\n4000x3000 scan, 3 holes, 8 candidates, {steps} steps in all: {total:.1f} s "
        f"(~{total - steps * base:.1f} s outside the z-steps: cut, resize, blend 8 candidates)"
    )


def encoder_section(root: Path, train_seconds: float) -> None:
    images = load_paintings(root, 210, 64)
    train, held = images[:200], images[200:]
    config = DCGANConfig(image_size=64, nz=100, ngf=32, ndf=32)
    start = time.perf_counter()
    # Epoch cost is ~equal: pick the epoch count from a one-epoch probe to stay in budget.
    probe = train_dcgan(train, config, TrainSettings(epochs=1, batch_size=32, seed=0))
    per_epoch = time.perf_counter() - start
    epochs = max(2, int(train_seconds / max(per_epoch, 1e-3)))
    gan = train_dcgan(train, config, TrainSettings(epochs=epochs, batch_size=32, seed=0))
    del probe
    enc_start = time.perf_counter()
    enc = train_encoder(
        gan.generator, train, settings=EncoderSettings(epochs=1, steps_per_epoch=40, batch_size=32)
    )
    print(
        f"\n## Encoder initialisation (DCGAN ngf=ndf=32 trained {epochs} epochs on "
        f"{len(train)} paintings in {enc_start - start:.0f} s; encoder 40 steps in "
        f"{time.perf_counter() - enc_start:.0f} s)"
    )
    g, d = gan.generator, gan.discriminator
    print("| painting | plain best loss @150 | steps to reach it: plain | encoder init |")
    print("|---|---|---|---|")
    ratios = []
    for i, painting in enumerate(held[:4]):
        target = to_model_range(painting)
        missing = torch.zeros(1, 1, 64, 64)
        missing[..., 16:48, 16:48] = 1
        base = InpaintParams(candidates=8, steps=150, lr=0.03, patience=0, seed=i)
        plain = ZOptimizer(base).optimize(g, d, target, missing, encoder=None)
        level = plain.curve[-1]
        with_enc = ZOptimizer(dataclasses.replace(base, encoder_fraction=0.5)).optimize(
            g, d, target, missing, encoder=enc.encoder
        )
        s_plain = steps_to_reach(plain.curve, level)
        s_enc = steps_to_reach(with_enc.curve, level)
        ratios.append((s_plain, s_enc))
        print(f"| {i} | {level:.2f} | {s_plain} | {s_enc if s_enc else '>150'} |")

    print("\n## Default settings vs Yeh et al.'s plain 1,500 steps (lr 0.01), 8 candidates")
    painting = held[0]
    target = to_model_range(painting)
    missing = torch.zeros(1, 1, 64, 64)
    missing[..., 16:48, 16:48] = 1
    start = time.perf_counter()
    yeh = ZOptimizer(InpaintParams(steps=1500, lr=0.01, patience=0)).optimize(g, d, target, missing)
    t_yeh = time.perf_counter() - start
    print(f"- plain: 1500 steps, final best loss {yeh.curve[-1]:.3f}, {t_yeh:.1f} s")
    for lr in (0.03, 0.1):
        start = time.perf_counter()
        fast = ZOptimizer(InpaintParams(steps=1500, lr=lr, patience=40)).optimize(
            g, d, target, missing
        )
        t_fast = time.perf_counter() - start
        reach = steps_to_reach(fast.curve, yeh.curve[-1])
        print(
            f"- lr {lr} + early stop (patience 40): stopped after {fast.steps} steps, "
            f"best loss {fast.curve[-1]:.3f}, {t_fast:.1f} s; reached the plain 1500-step loss "
            f"after {reach if reach else 'never'} steps"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--data", default=os.environ.get("RESTAURO_TEST_DATA", "../shared/data/paintings")
    )
    parser.add_argument("--train-seconds", type=float, default=45.0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, {time.strftime('%Y-%m-%d')}"
    )
    timing_section(args.compile)
    root = Path(args.data)
    if (root / "images").is_dir():
        encoder_section(root, args.train_seconds)
    else:
        print(f"\n(no paintings under {root}: encoder section skipped)")
    print(f"\nbench total: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
