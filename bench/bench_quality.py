"""Does clustering pay? Train a bundle on real paintings, then evaluate it on its held-out split.

Prints the table of `restauro evaluate` (cluster DCGAN vs general DCGAN vs OpenCV Telea / NS,
scores inside the hole) plus training times, and writes the full report as JSON. This is a
benchmark, not a test: at the default settings it takes tens of minutes on a 2-core CPU.

    .venv/bin/python bench/bench_quality.py --images ../shared/data/paintings/images \\
        --max-images 800 --clusters 4 --epochs 30 --width 32 --limit 40 --out var/bench/quality.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from training.evaluate import EvalOptions, evaluate, format_summary
from training.pipeline import TrainOptions, run_training

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared/data/paintings/images")
    parser.add_argument("--registry", type=Path, default=REPO / "var/bench/registry")
    parser.add_argument("--features", default="sift")
    parser.add_argument("--weights", type=Path, help="CNN backbone weights (squeezenet, vgg16)")
    parser.add_argument("--max-images", type=int, default=800)
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-training", action="store_true", help="evaluate the current bundle")
    parser.add_argument("--out", type=Path, default=REPO / "var/bench/quality.json")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    started = time.perf_counter()
    if not args.skip_training:
        outcome = run_training(
            TrainOptions(
                images=args.images,
                registry=args.registry,
                features=args.features,
                weights=args.weights,
                clusters=args.clusters,
                image_size=args.image_size,
                epochs=args.epochs,
                batch_size=args.batch_size,
                max_images=args.max_images,
                ngf=args.width,
                ndf=args.width,
                device=args.device,
            )
        )
        sizes = [c["size"] for c in outcome.manifest["clusters"]]
        print(
            f"trained {outcome.version}: clusters {sizes}, "
            f"{time.perf_counter() - started:.0f} s on {args.device}"
        )
    trained = time.perf_counter()
    result = evaluate(
        EvalOptions(
            images=args.images,
            registry=args.registry,
            limit=args.limit,
            candidates=args.candidates,
            steps=args.steps,
            device=args.device,
        )
    )
    result["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
    }
    result["seconds"] = {"train": trained - started, "evaluate": time.perf_counter() - trained}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(format_summary(result["summary"]))
    print(f"evaluated in {result['seconds']['evaluate']:.0f} s; report: {args.out}")


if __name__ == "__main__":
    main()
