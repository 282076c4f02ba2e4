"""Issue 9's GPU figures in one script: restore() latency, DCGAN training speed, batched throughput.

Written to run on a lent GPU in a few minutes, self-contained (no paintings corpus, no Redis, no
HTTP service there), and on the CPU with ``--quick`` as a smoke test of the same code:

(a) ``restore()`` latency: one damaged painting at 64 px and one at 128 px (a square loss in the
    middle, which the product engine gives to the GAN), 8 candidates, the default steps, the
    median of ``--runs`` calls after ``--warmup``. Each size uses a bundle the script trains
    itself in seconds (synthetic paintings, SIFT, one cluster, one epoch, width 64): latency does
    not depend on how well the nets were trained, only on their shapes. The plan is made first
    (routing is the API's work), so the figure is the worker's ``restore()`` alone.
(b) DCGAN training, batch 64, width 64, 64 px: ms per iteration (one D step + one G step) of
    ``DCGANTrainer.step`` on a batch already on the device with noise drawn there, with and
    without channels_last, ``torch.cuda.synchronize`` around the timed loop; and the whole
    epoch loop of ``train_dcgan`` (dataset resident on the device, statistics read once per
    epoch), from its second epoch's wall time.
(c) Worker-side throughput of cross-request batching: ``k`` = 1, 8, 32 threads of one process,
    each running restorations inside ``CrossRequestBatcher.participant()`` with
    ``search=batcher``, as a GPU worker serving ``k`` jobs at once does. Restorations per second
    of the worker's compute, **not** the HTTP service: no API, broker, Redis or result storage
    is involved (the device machine has none), so the service's figure will be lower.

Prints a JSON summary; ``--out FILE`` also writes it as a Markdown table, each figure with the
device it ran on (``torch.cuda.get_device_name``) and the torch version.

    .venv/bin/python bench/bench_gpu.py --device cuda [--out docs/bench-gpu.md]
    .venv/bin/python bench/bench_gpu.py --device cpu --quick --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from restauro.bundle import Bundle  # noqa: E402
from restauro.dcgan import DCGANConfig  # noqa: E402
from restauro.gan_training import (  # noqa: E402
    DCGANTrainer,
    TrainSettings,
    train_dcgan,
)
from restauro.images import encode_png  # noqa: E402
from restauro.inpaint.batching import CrossRequestBatcher  # noqa: E402
from restauro.registry import Registry  # noqa: E402
from restauro.request import RestoreRequest  # noqa: E402
from restauro.restore import plan, restore  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does: the full run, or a CPU smoke test (``--quick``)."""

    width: int = 64  # DCGAN width (ngf = ndf) of the bundles and of the training figure
    steps: int | None = None  # z-search steps of restore(); None = the default
    runs: int = 10  # timed restore() calls per size
    warmup: int = 2  # restore() calls and training steps not timed
    train_iters: int = 50  # timed training iterations
    train_batch: int = 64
    loop_batches: int = 30  # batches per epoch of the train_dcgan loop figure
    clients: tuple[int, ...] = (1, 8, 32)
    per_client: int = 2  # restorations each client runs in the throughput figure
    sizes: tuple[int, ...] = (64, 128)


QUICK = Sizes(
    width=8,
    steps=10,
    runs=2,
    warmup=1,
    train_iters=2,
    train_batch=8,
    loop_batches=2,
    clients=(1, 2, 4),
    per_client=1,
)


def sync(device: str) -> None:
    """Wait for the GPU: a timer read while kernels are still queued measures only the queueing."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_info(device: str) -> dict[str, Any]:
    """What each figure ran on, so that no figure is read as another machine's."""
    info: dict[str, Any] = {"device": device, "torch": torch.__version__}
    if device.startswith("cuda"):
        info["name"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    else:
        info["name"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
        info["cpus"] = os.cpu_count()
    return info


# --- a bundle of the right shapes, trained here in seconds ----------------------------------------
def synthetic_painting(side: int, seed: int) -> np.ndarray:
    """Smooth colour fields with strokes and grain: SIFT finds keypoints, K-means has data.

    Made here rather than read from the paintings corpus, which the device machine does not have.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    phase = rng.random(3) * 6
    scale = 7 + 9 * rng.random(3)
    base = np.stack(
        [
            127 + 100 * np.sin(xx / scale[0] + phase[0]),
            127 + 100 * np.cos(yy / scale[1] + phase[1]),
            127 + 100 * np.sin((xx + yy) / scale[2] + phase[2]),
        ],
        axis=-1,
    )
    grain = rng.normal(0, 12, (side, side, 3))
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def tiny_bundle(root: Path, image_size: int, width: int, device: str) -> Bundle:
    """A published bundle at ``image_size``: 24 synthetic paintings, one cluster, one epoch."""
    from training.pipeline import TrainOptions, run_training

    images = root / "paintings"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(24):
        path = images / f"p{i:02d}.png"
        if not path.exists():
            path.write_bytes(encode_png(synthetic_painting(2 * 128, seed=i)))
    registry = root / f"registry{image_size}"
    options = TrainOptions(
        images=images,
        registry=registry,
        features="sift",
        clusters=1,
        image_size=image_size,
        epochs=1,
        batch_size=16,
        device=device,
        vocabulary=32,
        ngf=width,
        ndf=width,
        validation_fraction=0.0,
    )
    run_training(options)
    return Registry(registry).load()


def damaged(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A painting of ``size`` px with a square loss of a quarter of its side in the middle."""
    rgb = synthetic_painting(size, seed=1000 + seed)
    mask = np.zeros((size, size), bool)
    a, b = 3 * size // 8, 5 * size // 8
    mask[a:b, a:b] = True
    rgb = rgb.copy()
    rgb[mask] = 255
    return rgb, mask


def request_for(sizes: Sizes, seed: int) -> RestoreRequest:
    steps = sizes.steps if sizes.steps is not None else RestoreRequest.steps
    return RestoreRequest(target=0, candidates=8, steps=steps, seed=seed)


# --- (a) restore() latency ------------------------------------------------------------------------
def restore_latency(bundle: Bundle, size: int, sizes: Sizes, device: str) -> dict[str, Any]:
    """Median wall seconds of ``restore()`` on one ``size`` px painting, after the warm-up
    (model loading, cuDNN autotuning and allocator growth are not part of a job's latency)."""
    rgb, mask = damaged(size, seed=0)
    chosen = plan(bundle, rgb, mask, request_for(sizes, seed=0))
    times = []
    for i in range(sizes.warmup + sizes.runs):
        sync(device)
        started = time.perf_counter()
        restore(rgb, mask, bundle, chosen, device=device)
        sync(device)
        if i >= sizes.warmup:
            times.append(time.perf_counter() - started)
    return {
        "size": size,
        "candidates": 8,
        "steps": chosen.request.steps,
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "runs": len(times),
    }


# --- (b) training ---------------------------------------------------------------------------------
def training_step_ms(sizes: Sizes, device: str, channels_last: bool) -> dict[str, Any]:
    """ms per iteration of one D + one G step, batch and noise already on the device."""
    config = DCGANConfig(64, 100, sizes.width, sizes.width)
    settings = TrainSettings(
        batch_size=sizes.train_batch, device=device, channels_last=channels_last
    )
    trainer = DCGANTrainer(config, settings)
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (sizes.train_batch, 3, 64, 64)
    real = torch.rand(shape, generator=gen, device=device).mul_(2).sub_(1)
    real = real.contiguous(memory_format=trainer.memory_format)
    host = torch.Generator().manual_seed(0)
    for _ in range(sizes.warmup + 1):
        trainer.step(real, host, gen)
    sync(device)
    started = time.perf_counter()
    for _ in range(sizes.train_iters):
        trainer.step(real, host, gen)
    sync(device)
    ms = (time.perf_counter() - started) * 1000 / sizes.train_iters
    return {"channels_last": channels_last, "ms_per_iteration": round(ms, 3)}


def training_loop_ms(sizes: Sizes, device: str) -> dict[str, Any]:
    """ms per iteration of ``train_dcgan``'s epoch loop (no checkpoints): the second epoch's
    wall time over its batches, the first one paying for warm-up."""
    n = sizes.loop_batches * sizes.train_batch
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 64, 64, 3), np.uint8)
    config = DCGANConfig(64, 100, sizes.width, sizes.width)
    settings = TrainSettings(
        epochs=2, batch_size=sizes.train_batch, device=device, bn_calibration=0
    )
    result = train_dcgan(images, config, settings)
    seconds = result.history[-1]["seconds"]
    return {
        "batches_per_epoch": sizes.loop_batches,
        "ms_per_iteration": round(seconds * 1000 / sizes.loop_batches, 3),
        "channels_last": settings.use_channels_last,
        "data": "copied per batch" if device == "cpu" else "resident on the device",
    }


# --- (c) worker-side throughput with cross-request batching ---------------------------------------
def batched_throughput(
    bundle: Bundle, size: int, sizes: Sizes, device: str, clients: int
) -> dict[str, Any]:
    """Restorations per second of ``clients`` threads sharing one :class:`CrossRequestBatcher`.

    Each client runs ``per_client`` restorations back to back (different seeds), each inside
    ``participant()``, as the worker's job threads do; all start together at a barrier.
    """
    batcher = CrossRequestBatcher()
    rgb, mask = damaged(size, seed=0)
    start = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def client(index: int) -> None:
        start.wait()
        try:
            for j in range(sizes.per_client):
                request = request_for(sizes, seed=index * 1000 + j)
                with batcher.participant():
                    restore(rgb, mask, bundle, request, device=device, search=batcher)
        except BaseException as exc:  # reported below, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    sync(device)
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    done = clients * sizes.per_client
    stats = batcher.stats
    return {
        "clients": clients,
        "restorations": done,
        "seconds": round(seconds, 3),
        "restorations_per_s": round(done / seconds, 3),
        "batches": stats.batches,
        "largest_batch_requests": stats.largest,
    }


# --- report ---------------------------------------------------------------------------------------
def markdown(summary: dict[str, Any]) -> str:
    """The summary as docs' table: one row per figure, with its target and its device."""
    info = summary["device"]
    where = f"{info['name']} ({info['device']}), torch {info['torch']}"
    lines = [
        "# GPU figures (bench/bench_gpu.py)",
        "",
        f"Measured {summary['date']} on **{where}**"
        + (" -- `--quick` smoke sizes, not comparable to the targets" if summary["quick"] else "")
        + f"; load average at start {summary['load_at_start']}.",
        "",
        "| figure | value | target (one H100) | device |",
        "|---|---|---|---|",
    ]
    for r in summary["restore"]:
        target = "<= 0.15 s" if r["size"] == 64 else "-"
        lines.append(
            f"| restore() {r['size']} px, {r['candidates']} candidates, {r['steps']} steps "
            f"(median of {r['runs']}) | {r['median_s']} s | {target} | {info['name']} |"
        )
    for r in summary["training_step"]:
        layout = "channels_last" if r["channels_last"] else "contiguous"
        lines.append(
            f"| DCGAN step, batch {summary['sizes']['train_batch']}, width "
            f"{summary['sizes']['width']}, 64 px, {layout} | {r['ms_per_iteration']} ms/iteration "
            f"| <= 5 ms | {info['name']} |"
        )
    loop = summary["training_loop"]
    lines.append(
        f"| train_dcgan epoch loop ({loop['batches_per_epoch']} batches, data {loop['data']}) "
        f"| {loop['ms_per_iteration']} ms/iteration | <= 5 ms | {info['name']} |"
    )
    for r in summary["batched"]:
        target = ">= 10/s (service)" if r["clients"] == 32 else "-"
        lines.append(
            f"| worker compute, {r['clients']} concurrent restore() sharing CrossRequestBatcher "
            f"({r['restorations']} in all; most requests in one batch: "
            f"{r['largest_batch_requests']}) | {r['restorations_per_s']} restorations/s "
            f"| {target} | {info['name']} |"
        )
    lines += [
        "",
        "The batched figures are the worker's compute throughput (threads of one process, one "
        "device), not the HTTP service's: no API, broker, Redis or result storage took part.",
        "",
    ]
    return "\n".join(lines)


def run(device: str, sizes: Sizes) -> dict[str, Any]:
    """Every figure, in the order of the issue; bundles trained in a temporary folder."""
    summary: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "device": device_info(device),
        "quick": sizes != Sizes(),
        "sizes": sizes.__dict__ | {"clients": list(sizes.clients), "sizes": list(sizes.sizes)},
        "load_at_start": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {s: tiny_bundle(Path(tmp), s, sizes.width, device) for s in sizes.sizes}
        summary["restore"] = [restore_latency(bundles[s], s, sizes, device) for s in sizes.sizes]
        summary["training_step"] = [
            training_step_ms(sizes, device, channels_last=cl) for cl in (False, True)
        ]
        summary["training_loop"] = training_loop_ms(sizes, device)
        summary["batched"] = [
            batched_throughput(bundles[64], 64, sizes, device, k) for k in sizes.clients
        ]
    summary["load_at_end"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke test")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="also write a Markdown table")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: torch sees no CUDA GPU here")
    summary = run(args.device, QUICK if args.quick else Sizes())
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(summary))


if __name__ == "__main__":
    main()
