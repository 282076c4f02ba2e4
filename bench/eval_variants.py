"""``restauro evaluate`` with restoration variants registered on the command line.

The evaluation's method registry (``training.evaluate``) takes a variant as a name, whose
networks, and ``InpaintParams`` overrides; this wrapper registers them from flags so that one run
scores e.g. the plain z-search and generator fine-tuning on the same paintings, masks and seeds:

    .venv/bin/python bench/eval_variants.py --registry var/eval-registry --limit 40 \\
        --variant "cluster+ft100=routed:finetune_steps=100,finetune_lr=5e-5" \\
        --methods cluster,cluster+ft100 --out var/eval/ft

Writes what ``restauro evaluate`` writes (evaluation.json, report.md, grids) under ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from training.evaluate import EvalOptions, evaluate, format_summary, gan_variant, write_report


def _value(text: str) -> object:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def register_variant(spec: str) -> str:
    """``NAME=TARGET:key=value,key=value`` -> a registered GAN variant; returns its name."""
    name, _, rest = spec.partition("=")
    target, _, pairs = rest.partition(":")
    overrides = {
        k.strip(): _value(v.strip())
        for k, v in (p.split("=", 1) for p in pairs.split(",") if p.strip())
    }
    gan_variant(name.strip(), target.strip(), f"{target} GAN with {overrides}", **overrides)
    return name.strip()


def log_progress(stage: str, done: int, total: int) -> None:
    """One line per evaluated painting x mask (not per z-step): a log to watch, not a bar."""
    if stage == "evaluate":
        print(f"{time.strftime('%H:%M:%S')} {stage} {done}/{total}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, required=True)
    parser.add_argument("--bundle")
    parser.add_argument("--images", type=Path)
    parser.add_argument("--variant", action="append", default=[], help="NAME=TARGET:k=v,...")
    parser.add_argument("--methods", required=True, help="comma-separated method names")
    parser.add_argument("--masks", default="centre,strokes")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--candidates", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=Path, help="SqueezeNet 1.1 weights (perceptual)")
    parser.add_argument("--diversity-samples", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for spec in args.variant:
        register_variant(spec)
    evaluation = evaluate(
        EvalOptions(
            registry=args.registry,
            images=args.images,
            version=args.bundle,
            masks=tuple(m for m in args.masks.split(",") if m),
            limit=args.limit,
            methods=tuple(m for m in args.methods.split(",") if m),
            candidates=args.candidates,
            steps=args.steps,
            seed=args.seed,
            perceptual_weights=args.weights,
            diversity_samples=args.diversity_samples,
        ),
        progress=log_progress,
    )
    write_report(evaluation, args.out)
    print(format_summary(evaluation.report))
    print(f"report: {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
