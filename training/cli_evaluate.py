"""``restauro evaluate``: every restoration method on the same paintings, masks and seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from restauro.errors import InvalidInput
from training.cli_app import (
    DeviceOpt,
    RegistryOpt,
    app,
    compute_device,
    registry_root,
)


@app.command()
def evaluate(
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Folder of undamaged paintings (default: the bundle's training folder). In the "
            "training folder only the held-out paintings are used, unless --all-images.",
        ),
    ] = None,
    all_images: Annotated[
        bool, typer.Option("--all-images", help="Use every image of the folder as a test image.")
    ] = False,
    masks: Annotated[
        str, typer.Option(help="Mask kinds, comma-separated: centre,strokes,cracks,blotches.")
    ] = "centre,strokes",
    size: Annotated[
        int | None, typer.Option(help="Test image size in px (default: the bundle's).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many paintings.")] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            help="Methods, comma-separated (default: all registered: cluster, general, oracle, "
            "product, telea, navier_stokes and any variant)."
        ),
    ] = None,
    registry: RegistryOpt = None,
    bundle: Annotated[str | None, typer.Option(help="Bundle version (default: current).")] = None,
    candidates: Annotated[
        int | None, typer.Option(help="Candidates per restoration (default: the product's).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="z-optimization steps (default: the product's).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of masks, latents and samples.")] = 0,
    perceptual_weights: Annotated[
        Path | None,
        typer.Option(help="SqueezeNet 1.1 weights (env RESTAURO_SQUEEZENET_WEIGHTS); none: skip."),
    ] = None,
    diversity_samples: Annotated[
        int, typer.Option(help="Samples per GAN for its diversity score (0: off).")
    ] = 16,
    grid_paintings: Annotated[
        int, typer.Option(help="Paintings shown in the PNG grids, per mask kind.")
    ] = 16,
    out: Annotated[
        Path, typer.Option(help="Output folder: evaluation.json, report.md, PNG grids.")
    ] = Path("evaluation"),
    device: DeviceOpt = None,
    threads: Annotated[
        int | None,
        typer.Option(help="CPU threads for torch (default: torch's; 1 is fastest on a busy CPU)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Score a bundle's restorations against OpenCV on undamaged paintings it never saw."""
    from training.evaluate import EvalOptions, format_summary, write_report
    from training.evaluate import evaluate as run_evaluation
    from training.progress_bars import StageBars

    def names(text: str | None) -> tuple[str, ...] | None:
        return None if text is None else tuple(n.strip() for n in text.split(",") if n.strip())

    if threads is not None:
        if threads < 1:
            raise InvalidInput(f"--threads must be >= 1, got {threads}")
        import torch

        # On an oversubscribed CPU, OpenMP threads spin-wait on each other: measured here under
        # load ~9 on 2 cores, a z-step took 0.88 s with 2 threads and 0.10 s with 1.
        torch.set_num_threads(threads)
    options = EvalOptions(
        registry=registry_root(registry),
        images=images,
        version=bundle,
        all_images=all_images,
        masks=names(masks) or (),
        size=size,
        limit=limit,
        methods=names(methods),
        candidates=candidates,
        steps=steps,
        seed=seed,
        device=compute_device(device),
        perceptual_weights=perceptual_weights,
        diversity_samples=diversity_samples,
        grid_paintings=grid_paintings,
        rows_log=out / "rows.jsonl",
    )
    with StageBars(enabled=not quiet) as bars:
        evaluation = run_evaluation(options, progress=bars)
    write_report(evaluation, out)
    result = evaluation.report
    typer.echo(
        f"bundle {result['bundle_version']}: {result['test_set']['paintings']} paintings "
        f"({result['test_set']['source']}) at {result['size']} px"
    )
    typer.echo(format_summary(result))
    typer.echo(f"report: {out / 'report.md'}, data: {out / 'evaluation.json'}")
