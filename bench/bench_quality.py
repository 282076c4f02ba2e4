"""Does clustering pay? Train a bundle on real paintings, then evaluate it on held-out ones.

The same as ``restauro train`` followed by ``restauro evaluate`` (training/evaluate.py), with the
training time and the machine's load recorded beside the figures. This is a benchmark, not a
test: at the defaults below it takes tens of minutes on a 2-core CPU.

    .venv/bin/python bench/bench_quality.py --features squeezenet \\
        --weights ../shared/weights/squeezenet1_1_imagenet_caffe.pth --max-images 700 \\
        --validation-fraction 0.15 --clusters 4 --epochs 30 --width 32 --limit 100 \\
        --out var/bench/quality

``--skip-training`` evaluates the registry's current bundle instead.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from training.evaluate import EvalOptions, evaluate, format_summary, write_report
from training.pipeline import TrainOptions, run_training

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared/weights/squeezenet1_1_imagenet_caffe.pth"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared/data/paintings/images")
    parser.add_argument("--registry", type=Path, default=REPO / "var/bench/registry")
    parser.add_argument("--features", default="squeezenet")
    parser.add_argument("--weights", type=Path, default=WEIGHTS, help="CNN backbone weights")
    parser.add_argument("--max-images", type=int, default=700)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--clusters", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--masks", default="centre,strokes")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--perceptual-weights", type=Path, default=WEIGHTS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-training", action="store_true", help="evaluate the current bundle")
    parser.add_argument("--out", type=Path, default=REPO / "var/bench/quality")
    args = parser.parse_args()

    started, load_before = time.perf_counter(), os.getloadavg()
    training: dict = {}
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
                validation_fraction=args.validation_fraction,
                ngf=args.width,
                ndf=args.width,
                device=args.device,
            )
        )
        training = {
            "version": outcome.version,
            "clusters": [c["size"] for c in outcome.manifest["clusters"]],
            "seconds": time.perf_counter() - started,
            "load_before": list(load_before),
            "load_after": list(os.getloadavg()),
        }
        print(f"trained {outcome.version}: clusters {training['clusters']}, "
              f"{training['seconds']:.0f} s on {args.device}")  # fmt: skip
    evaluation = evaluate(
        EvalOptions(
            registry=args.registry,
            images=args.images,
            masks=tuple(args.masks.split(",")),
            limit=args.limit,
            perceptual_weights=args.perceptual_weights,
            device=args.device,
        )
    )
    evaluation.report["training_run"] = training
    write_report(evaluation, args.out)
    (args.out / "evaluation.json").write_text(json.dumps(evaluation.report, indent=2) + "\n")
    print(format_summary(evaluation.report))
    print(f"report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
