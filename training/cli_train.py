"""``restauro train``: a folder of paintings to a published bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from restauro.config import get_settings
from restauro.errors import InvalidInput
from training.cli_app import (
    DeviceOpt,
    FeatureKind,
    RegistryOpt,
    app,
    compute_device,
    registry_root,
)


# --- train ---------------------------------------------------------------------------------------
@app.command()
def train(
    images: Annotated[
        Path, typer.Option("--images", help="Folder of paintings (searched recursively).")
    ],
    registry: RegistryOpt = None,
    features: Annotated[
        FeatureKind, typer.Option(help="Feature kind used to cluster and route.")
    ] = FeatureKind.sift,
    clusters: Annotated[
        str, typer.Option(help="Number of clusters K, or 'auto' (silhouette).")
    ] = "4",
    image_size: Annotated[int, typer.Option(help="DCGAN resolution: 64 or 128.")] = 64,
    epochs: Annotated[int, typer.Option(help="Training epochs per DCGAN.")] = 5,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            help="Checkpoint, sample grid and history every N epochs (and after the last); "
            "--resume continues from the last checkpoint."
        ),
    ] = 1,
    batch_size: Annotated[int, typer.Option(help="DCGAN batch size.")] = 64,
    max_images: Annotated[int | None, typer.Option(help="Use at most this many paintings.")] = None,
    device: DeviceOpt = None,
    seed: Annotated[int, typer.Option(help="Seed for sampling, clustering and training.")] = 0,
    weights: Annotated[
        Path | None, typer.Option(help="CNN backbone weights file (vgg16/squeezenet).")
    ] = None,
    vocabulary: Annotated[
        int, typer.Option(help="Bag-of-words vocabulary size (sift/surf).")
    ] = 256,
    pca: Annotated[int | None, typer.Option(help="PCA components before K-means.")] = None,
    width: Annotated[int, typer.Option(help="DCGAN width (ngf = ndf).")] = 64,
    iterations: Annotated[
        int | None,
        typer.Option(help="Gradient steps per DCGAN, whatever its data size (overrides --epochs)."),
    ] = None,
    init_from_general: Annotated[
        bool,
        typer.Option(
            help=(
                "Train the general DCGAN first and fine-tune every cluster's from it "
                "(--no-init-from-general: train them from scratch; docs/results.md Run 3)."
            )
        ),
    ] = True,
    crops: Annotated[
        int,
        typer.Option(help="Random zoomed-in squares per painting, besides its centre (0 = none)."),
    ] = 0,
    crop_zoom: Annotated[float, typer.Option(help="The crops zoom in 1 to this many times.")] = 4.0,
    spectral_norm: Annotated[
        bool, typer.Option(help="Spectral normalisation in the discriminators.")
    ] = False,
    ema: Annotated[
        float,
        typer.Option(
            help=(
                "Decay of the EMA of G's weights shipped for inference (0 = off; "
                "docs/results.md Run 4)."
            )
        ),
    ] = 0.995,
    diffaugment: Annotated[
        str, typer.Option(help="DiffAugment on D's inputs, e.g. color,translation,cutout.")
    ] = "",
    encoder: Annotated[bool, typer.Option(help="Also train a z-encoder per cluster.")] = False,
    encoder_epochs: Annotated[int, typer.Option(help="Encoder training epochs.")] = 5,
    only_cluster: Annotated[
        int | None, typer.Option(help="Retrain only this cluster of the current bundle.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Resume the interrupted run with these settings.")
    ] = False,
    promote: Annotated[bool, typer.Option(help="Make the new bundle current.")] = True,
    validation_fraction: Annotated[float, typer.Option(help="Share of paintings held out.")] = 0.1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a bundle: ingest -> features -> K-means -> one DCGAN per cluster + a general one."""
    from training.pipeline import TrainOptions, run_training
    from training.progress_bars import StageBars

    if clusters == "auto":
        k = None
    elif clusters.isdigit():
        k = int(clusters)
    else:
        raise InvalidInput(f"--clusters must be a number or 'auto', got {clusters!r}")
    if weights is None:
        settings = get_settings()
        weights = {"vgg16": settings.vgg16_weights, "squeezenet": settings.squeezenet_weights}.get(
            features.value
        )
    options = TrainOptions(
        images=images,
        registry=registry_root(registry),
        features=features.value,
        clusters=k,
        image_size=image_size,
        epochs=epochs,
        checkpoint_every=checkpoint_every,
        batch_size=batch_size,
        max_images=max_images,
        device=compute_device(device),
        seed=seed,
        weights=weights,
        vocabulary=vocabulary,
        pca=pca,
        ngf=width,
        ndf=width,
        iterations=iterations,
        init_from_general=init_from_general,
        crops=crops,
        crop_zoom=crop_zoom,
        spectral_norm=spectral_norm,
        ema=ema,
        diffaugment=diffaugment,
        encoder=encoder,
        encoder_epochs=encoder_epochs,
        only_cluster=only_cluster,
        resume=resume,
        promote=promote,
        validation_fraction=validation_fraction,
    )
    with StageBars(enabled=not quiet) as bars:
        outcome = run_training(options, progress=bars)
    summary = outcome.dataset.summary()
    typer.echo(
        f"ingested {summary['accepted']} paintings "
        f"({summary['rejected']} rejected, {summary['duplicates']} duplicates)"
    )
    for r in outcome.dataset.rejected[:20]:
        typer.echo(f"  rejected {r.path}: {r.reason}")
    sizes = ", ".join(f"c{c['id']}={c['size']}" for c in outcome.manifest["clusters"])
    typer.echo(f"clusters: {sizes}")
    restarted = [n for n, m in outcome.manifest["models"].items() if m.get("restarted")]
    if restarted:
        typer.echo(
            f"trained again from the start: {', '.join(restarted)} (the general GAN they are "
            "fine-tuned from trained further in this run)"
        )
    state = "promoted to current" if outcome.promoted else "not promoted"
    typer.echo(f"bundle {outcome.version} published in {options.registry} ({state})")
