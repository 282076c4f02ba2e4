"""Training throughput of the DCGAN (64 and 128 px) and of the z-encoder, on this machine.

Standard width (ngf = ndf = 64, nz = 100), batch 64, the training step of
:class:`restauro.gan_training.DCGANTrainer` (one D step + one G step), with and without
channels_last; plus the per-epoch batch-norm recalibration of G and the encoder's training step.
Warm-up iterations are not timed. Prints a table and writes docs/bench-training.md.

    .venv/bin/python bench/bench_dcgan.py [--threads 2] [--iters 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from restauro.dcgan import DCGANConfig
from restauro.encoder import EncoderConfig, EncoderSettings, train_encoder
from restauro.gan_ema import recalibrate_batch_norm
from restauro.gan_training import DCGANTrainer, TrainSettings
from restauro.images import to_model_range

REPO = Path(__file__).resolve().parents[1]
BATCH = 64
# What the page says about training on a GPU (not measured by this script: bench_gpu.py).
GPU_NOTE = [
    "## On a GPU: the dataset on the device, checkpoints every N epochs (issue 9)",
    "",
    "On a CUDA device `train_dcgan` uploads the training set once (as uint8, converted to "
    "[-1, 1] floats there) and keeps it on the device while it takes at most 2 GB of floats "
    "(3,000 paintings: 150 MB at 64 px, 590 MB at 128 px; a larger set falls back to copying "
    "each batch from the host); each batch is an index on the device, shuffling and noise are"
    " drawn there from a device generator seeded by (seed, epoch), and the per-step "
    "statistics are summed on the device and read once per epoch. On the CPU nothing changed:"
    " same arithmetic, same random stream, the same weights for the same seed.",
    "",
    "`restauro train --checkpoint-every N` writes the checkpoint, the sample grid and the "
    "history every N epochs and always after the last (issue 9 measured ~0.3 s of them per "
    "epoch per model on an H100, more than a whole epoch of a 500-painting cluster there); "
    "`--resume` continues from the last checkpoint and trains the epochs after it again, to "
    "the same weights on the CPU (epochs reseed, so no random state is saved). The GPU "
    "figures come from `bench/bench_gpu.py --device cuda`; none has been measured yet (no GPU"
    " lent so far).",
    "",
]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_gan_steps(
    size: int, channels_last: bool, iters: int, device: str
) -> tuple[list[float], list[float]]:
    """Wall seconds and process CPU seconds of each timed iteration.

    CPU seconds (all threads together) are reported beside wall time because the dev machine is
    shared: other people's jobs stretch wall time, much less the CPU time our threads consume.
    """
    config = DCGANConfig(image_size=size, nz=100, ngf=64, ndf=64)
    settings = TrainSettings(batch_size=BATCH, channels_last=channels_last, device=device)
    trainer = DCGANTrainer(config, settings)
    rng = np.random.default_rng(0)
    real = trainer.to_device(to_model_range(rng.integers(0, 256, (BATCH, size, size, 3), np.uint8)))
    noise = torch.Generator().manual_seed(0)
    trainer.step(real, noise)  # warm-up: allocator, oneDNN primitive cache
    sync(device)
    times, cpu = [], []
    for _ in range(iters):
        started, cpu_started = time.perf_counter(), time.process_time()
        trainer.step(real, noise)
        sync(device)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return times, cpu


def time_recalibration(device: str) -> float:
    trainer = DCGANTrainer(DCGANConfig(64, 100, 64, 64), TrainSettings(device=device))
    started = time.perf_counter()
    recalibrate_batch_norm(trainer.generator, 256, BATCH, torch.Generator().manual_seed(0))
    sync(device)
    return time.perf_counter() - started


def encoder_images_per_s(iters: int, device: str) -> tuple[float, EncoderSettings]:
    """Second epoch's images/s (the first one warms up); G at standard width, frozen."""
    trainer = DCGANTrainer(DCGANConfig(64, 100, 64, 64), TrainSettings(device=device))
    generator = trainer.generator.eval()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (128, 64, 64, 3), np.uint8)
    settings = EncoderSettings(epochs=2, steps_per_epoch=iters, batch_size=BATCH, device=device)
    # (a frozen G of random weights costs the same as a trained one)
    result = train_encoder(generator, images, EncoderConfig(64, 100, nef=32), settings)
    return result.history[-1]["images_per_s"], settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=2, help="timed iterations at 64 px")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--machine", default="2-core CPU dev machine, no GPU")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench-training.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    rows = []
    for size, iters in ((64, args.iters), (128, max(1, args.iters - 1))):
        for channels_last in (False, True):
            times, cpu = time_gan_steps(size, channels_last, iters, args.device)
            median, cpu_median = statistics.median(times), statistics.median(cpu)
            rows.append((size, channels_last, median, cpu_median, len(times)))
            layout = "channels_last" if channels_last else "contiguous"
            print(
                f"DCGAN {size:3d} px {layout:13s} {median:6.2f} s/iter {BATCH / median:7.1f} img/s"
                f"  (CPU {cpu_median:6.2f} s/iter)"
            )
    recal = time_recalibration(args.device)
    print(f"G batch-norm recalibration (256 samples, 64 px): {recal:.2f} s")
    enc_speed, enc_settings = encoder_images_per_s(args.iters, args.device)
    print(f"encoder training, 64 px: {enc_speed:.1f} img/s")
    total = time.perf_counter() - started

    lines = [
        "# Training throughput: DCGAN and z-encoder",
        "",
        f"Measured {dt.date.today().isoformat()} on: {args.machine} "
        f"({platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} torch threads, device `{args.device}`). Load average when the run "
        f"started: {load_before:.1f} (the machine is shared, so figures are indicative). "
        f"Whole run: {total:.0f} s. Produced by `bench/bench_dcgan.py`.",
        "",
        "## DCGAN training step (one D step + one G step)",
        "",
        f"Standard width ngf = ndf = 64, nz = 100, batch {BATCH}, Adam (2e-4, beta1 0.5), "
        "BCE-with-logits; median over the timed iterations after one warm-up iteration.",
        "",
        "| size | memory layout | wall s / iteration | images / s | CPU s / iteration | timed |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for size, channels_last, median, cpu_median, n in rows:
        layout = "channels_last" if channels_last else "contiguous"
        cells = [f"{size} px", layout, f"{median:.2f}", f"{BATCH / median:.1f}"]
        cells += [f"{cpu_median:.2f}", str(n)]
        lines.append("| " + " | ".join(cells) + " |")
    by_key = {(r[0], r[1]): r[2] for r in rows}
    cpu_by_key = {(r[0], r[1]): r[3] for r in rows}
    lines += [""]
    for size in (64, 128):
        gain = by_key[(size, False)] / by_key[(size, True)]
        cpu_gain = cpu_by_key[(size, False)] / cpu_by_key[(size, True)]
        lines.append(
            f"- channels_last speed-up at {size} px: x{gain:.2f} wall, x{cpu_gain:.2f} CPU time"
        )
    parallelism = statistics.mean(r[3] / r[2] for r in rows)
    if args.threads > 1 and parallelism < 0.75 * args.threads:
        lines.append(
            f"- CPU time / wall time = {parallelism:.2f} with {args.threads} threads: the threads "
            "mostly did not run at once (other jobs held the cores), so wall times are upper "
            "bounds; on an idle machine expect up to "
            f"x{args.threads / parallelism:.1f} less wall time (CPU time per iteration stays)"
        )
    epoch_64 = by_key[(64, True)]
    lines += [
        f"- per-epoch batch-norm recalibration of G (256 samples, 64 px): {recal:.2f} s, "
        f"about {recal / epoch_64:.1f} training iterations' worth, once per epoch",
        f"- a cluster of 500 paintings at 64 px ({500 // BATCH} iterations per epoch) takes "
        f"~{(500 // BATCH) * epoch_64 + recal:.0f} s per epoch, "
        f"~{25 * ((500 // BATCH) * epoch_64 + recal) / 60:.0f} min for 25 epochs here",
        "",
        "## z-encoder training step",
        "",
        f"Encoder nef = 32 on a frozen standard-width 64 px G; per step {enc_settings.batch_size} "
        f"G samples + {enc_settings.real_per_step} real images with random damage masks "
        "(latent MSE + masked L1 through G). Images/s counts both; second epoch of "
        f"{enc_settings.steps_per_epoch} steps (the first warms up).",
        "",
        "| size | images / s |",
        "|---:|---:|",
        f"| 64 px | {enc_speed:.1f} |",
        "",
        *GPU_NOTE,
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out} ({total:.0f} s)")


if __name__ == "__main__":
    main()
