"""Retrain every cluster GAN of a base bundle with data-efficient options; keep its routing.

Issue 8's training options (init from the general GAN, an iterations budget, spectral norm in D,
an EMA generator, DiffAugment) change how the cluster GANs are trained, not which paintings they
see. To compare them fairly, every variant starts from a copy of one base bundle and retrains
each of its clusters with ``restauro train --only-cluster c`` (the same paintings, the same
clusters, the same validation split, the same general GAN), into its own registry. The variants
are then evaluated with ``bench/eval_variants.py --methods cluster`` and compared painting by
painting with ``bench/compare_evaluations.py`` (same paintings, masks and seeds).

    .venv/bin/python bench/bench_gan_options.py --base var/eval-registry \\
        --out var/gan-options/init --init-from-general [--epochs 30 | --iterations 270] \\
        [--ema 0.999] [--spectral-norm] [--diffaugment color,translation,cutout]

Each cluster is a separate training run (logged with its seconds and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import torch

from restauro.registry import Registry
from training.pipeline import TrainOptions, run_training

# Settings of the base run that decide which paintings a cluster trains on: copied, never changed.
SAME_AS_BASE = (
    "images",
    "features",
    "clusters",
    "image_size",
    "batch_size",
    "max_images",
    "seed",
    "weights",
    "vocabulary",
    "pca",
    "min_cluster_fraction",
    "validation_fraction",
    "ngf",
    "ndf",
    "nz",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="registry of the base bundle")
    parser.add_argument("--bundle", help="base version (default: its current)")
    parser.add_argument("--out", type=Path, required=True, help="the variant's own registry")
    parser.add_argument("--epochs", type=int, help="default: the base run's")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--init-from-general", action="store_true")
    parser.add_argument("--spectral-norm", action="store_true")
    parser.add_argument("--ema", type=float, default=0.0)
    parser.add_argument("--diffaugment", default="")
    parser.add_argument("--clusters", help="comma-separated ids (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    base = Registry(args.base)
    version = args.bundle or base.current_version()
    manifest = base.manifest(version)
    variant = Registry(args.out)
    if version not in variant.versions():
        shutil.copytree(base.path_of(version), args.out / version)
        variant.promote(version)
    trained = manifest["training"]
    same = {k: trained[k] for k in SAME_AS_BASE if k in trained}
    same["images"] = Path(same["images"])
    if same.get("weights"):
        same["weights"] = Path(same["weights"])
    clusters = (
        [int(c) for c in args.clusters.split(",")]
        if args.clusters
        else [c["id"] for c in manifest["clusters"]]
    )
    log = []
    for cluster in clusters:
        load = os.getloadavg()
        started = time.perf_counter()
        outcome = run_training(
            TrainOptions(
                registry=args.out,
                epochs=args.epochs or trained["epochs"],
                iterations=args.iterations,
                init_from_general=args.init_from_general,
                spectral_norm=args.spectral_norm,
                ema=args.ema,
                diffaugment=args.diffaugment,
                only_cluster=cluster,
                device="cpu",
                **same,
            )
        )
        info = outcome.manifest["models"][f"c{cluster}"]
        entry = {
            "cluster": cluster,
            "version": outcome.version,
            "size": info["size"],
            "epochs": info["epochs"],
            "steps": info["steps"],
            "seconds": time.perf_counter() - started,
            "load_before": load,
            "load_after": os.getloadavg(),
        }
        log.append(entry)
        print(json.dumps(entry), flush=True)
    (args.out / "variant.json").write_text(
        json.dumps(
            {
                "base": str(args.base),
                "base_version": version,
                "args": vars(args) | {"base": str(args.base), "out": str(args.out)},
                "runs": log,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
