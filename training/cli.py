"""The operator's command line: ``restauro train | models | inpaint | route | serve | worker``.

A thin adapter: parse flags (defaults from ``restauro.config.Settings``), call the core, print.
Every :class:`~restauro.errors.RestauroError` becomes one line on stderr and a non-zero exit
(2 for a bad input or parameter, 1 otherwise); a traceback means a bug in Restauro.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from restauro.config import check_device, get_settings, resolve_device
from restauro.errors import InvalidInput, InvalidParameter, RestauroError

if TYPE_CHECKING:  # the commands import the core lazily: `restauro --help` loads no torch
    from restauro.request import RestoreRequest
    from training import batch

app = typer.Typer(
    help="Restauro: restore damaged scans of paintings with cluster-specialised DCGANs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="List, inspect, promote and roll back model bundles.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


class FeatureKind(StrEnum):
    vgg16 = "vgg16"
    squeezenet = "squeezenet"
    sift = "sift"
    surf = "surf"


RegistryOpt = Annotated[
    Path | None, typer.Option("--registry", help="Bundle registry [env RESTAURO_REGISTRY].")
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N [env RESTAURO_DEVICE].")
]


def _registry(path: Path | None) -> Path:
    return path if path is not None else get_settings().registry


def _device(device: str | None) -> str:
    """The device to compute on; a name the machine cannot honour is one clear error."""
    name = device if device is not None else get_settings().device
    try:
        check_device(name)
    except ValueError as exc:
        raise InvalidParameter(f"--device: {exc}") from None
    resolved = resolve_device(name)
    if resolved.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(resolved.partition(":")[2] or 0)
        if index >= count:
            raise RestauroError(
                f"--device {resolved} was asked for, but this machine has {count} CUDA GPU(s)"
            )
    return resolved


def _echo_json(data) -> None:
    typer.echo(json.dumps(data, indent=2))


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
        registry=_registry(registry),
        features=features.value,
        clusters=k,
        image_size=image_size,
        epochs=epochs,
        checkpoint_every=checkpoint_every,
        batch_size=batch_size,
        max_images=max_images,
        device=_device(device),
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


# --- models --------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(registry: RegistryOpt = None) -> None:
    """Published bundle versions; * marks the current one."""
    from restauro.registry import Registry

    reg = Registry(_registry(registry))
    current = reg.current_version()
    versions = reg.versions()
    if not versions:
        typer.echo(f"no bundles in {reg.root}")
        return
    for version in versions:
        m = reg.manifest(version)
        sizes = "/".join(str(c["size"]) for c in m["clusters"])
        mark = "*" if version == current else " "
        typer.echo(
            f"{mark} {version}  {m['features']['kind']:<10} K={len(m['clusters'])} "
            f"sizes={sizes} {m['image_size']}px  created {m['created'][:19]}"
        )


@models_app.command("show")
def models_show(
    version: Annotated[str | None, typer.Argument()] = None, registry: RegistryOpt = None
) -> None:
    """The manifest of a bundle (default: current), without the per-file hashes."""
    from restauro.registry import Registry

    manifest = Registry(_registry(registry)).manifest(version)
    manifest.pop("files", None)
    for info in manifest.get("models", {}).values():
        info.pop("history", None)
    _echo_json(manifest)


@models_app.command("promote")
def models_promote(version: str, registry: RegistryOpt = None) -> None:
    """Make VERSION the current bundle (API and workers pick it up without a restart)."""
    from restauro.registry import Registry

    previous = Registry(_registry(registry)).promote(version)
    typer.echo(f"current: {version} (was {previous})")


@models_app.command("rollback")
def models_rollback(registry: RegistryOpt = None) -> None:
    """Make the previously current bundle current again."""
    from restauro.registry import Registry

    typer.echo(f"current: {Registry(_registry(registry)).rollback()}")


# --- inpaint / route -----------------------------------------------------------------------------
def _read_inputs(image: Path, mask: Path | None):
    from training import batch

    mask_bytes = batch.read_file(mask, "mask") if mask is not None else None
    return batch.read_inputs(batch.read_file(image, "image"), mask_bytes, get_settings().max_pixels)


@app.command()
def inpaint(
    image: Annotated[
        Path,
        typer.Argument(
            help="Damaged scan (RGBA: transparent = missing), or a folder of scans to restore."
        ),
    ],
    mask: Annotated[Path | None, typer.Option(help="Mask of one scan, nonzero = missing.")] = None,
    masks: Annotated[
        Path | None,
        typer.Option(
            help="For a folder: masks matched by name (a.jpg <- a.png); a scan without one "
            "uses its alpha channel."
        ),
    ] = None,
    via: Annotated[
        str | None,
        typer.Option(help="Restore through the Restauro service at this URL instead of here."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="RESTAURO_API_KEY", help="X-API-Key for --via, if keys are on."),
    ] = None,
    parallel: Annotated[int, typer.Option(help="Jobs in flight at once with --via.")] = 4,
    registry: RegistryOpt = None,
    bundle: Annotated[str | None, typer.Option(help="Bundle version (default: current).")] = None,
    cluster: Annotated[
        int | None, typer.Option(help="Use this cluster instead of routing.")
    ] = None,
    general: Annotated[bool, typer.Option("--general", help="Use the general DCGAN.")] = False,
    candidates: Annotated[int | None, typer.Option(help="Number of ranked completions.")] = None,
    steps: Annotated[int | None, typer.Option(help="z-optimization steps (upper bound).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same result.")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("restored"),
    device: DeviceOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Restore a damaged scan, or every scan of a folder.

    One scan: OUT/restored_1.png ... (best first) and OUT/result.json. A folder: the same in
    OUT/<scan name>/ for each scan, one progress bar, a summary table and OUT/report.json; scans
    already restored from the same bytes are skipped, so an interrupted batch resumes. Exit
    status 1 if any scan failed (each failure is one line; the others go on).
    """
    from restauro.request import RestoreRequest
    from training import batch

    request = RestoreRequest.from_settings(
        get_settings(),
        cluster=cluster,
        general=general,
        candidates=candidates,
        steps=steps,
        seed=seed,
    )
    folder = image.is_dir()
    if folder and mask is not None:
        raise InvalidInput("--mask is for one scan; for a folder of scans use --masks DIR")
    if not folder and masks is not None:
        raise InvalidInput("--masks is for a folder of scans; for one scan use --mask FILE")
    if via is not None and bundle is not None:
        raise InvalidInput("--bundle cannot be used with --via: the service uses its current one")
    batch.check_parallel(parallel)
    items = batch.plan_folder(image, masks, out) if folder else [batch.Item(image, mask, out)]

    remote = None
    if via is not None:
        remote = batch.RemoteEngine(via, request, api_key=api_key, parallel=parallel)
        remote.check()  # an unreachable service or a refused key: one error line, not N
    if not folder:
        _inpaint_one(items[0], request, remote, _registry(registry), bundle, device, quiet)
        return
    engine = remote or batch.LocalEngine(
        _registry(registry), bundle, request, _device(device), get_settings().max_pixels
    )
    _inpaint_folder(items, engine, out, quiet)


def _inpaint_one(
    item: batch.Item,
    request: RestoreRequest,
    remote: batch.RemoteEngine | None,
    registry: Path,
    bundle: str | None,
    device: str | None,
    quiet: bool,
) -> None:
    """One scan, restored here (with per-stage progress bars) or through the service."""
    from training import batch
    from training.progress_bars import StageBars

    if remote is not None:
        outcomes: list[batch.Outcome] = []
        remote.run([item], outcomes.append)
        (outcome,) = outcomes
        if outcome.status == "failed":
            raise RestauroError(outcome.detail or "the restoration failed")
        result = outcome.result or {}
    else:
        with StageBars(enabled=not quiet) as bars:
            engine = batch.LocalEngine(
                registry,
                bundle,
                request,
                _device(device),
                get_settings().max_pixels,
                progress=bars,
            )
            result = engine.restore(item)
    for warning in result.get("warnings", []):
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(
        f"{len(result['candidates'])} restorations by {result['target']} "
        f"(bundle {result['bundle_version']}) written to {item.out}/"
    )


def _inpaint_folder(
    items: list[batch.Item],
    engine: batch.LocalEngine | batch.RemoteEngine,
    out: Path,
    quiet: bool,
) -> None:
    """A folder: one bar for the batch, a line per failure, a table and report.json at the end."""
    from tqdm import tqdm

    from training import batch

    bar = tqdm(
        total=len(items),
        unit="scan",
        desc="restoring",
        disable=quiet or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
    counts = {"restored": 0, "skipped": 0, "failed": 0}

    def on_outcome(outcome: batch.Outcome) -> None:
        counts[outcome.status] += 1
        if outcome.status == "failed":
            tqdm.write(f"error: {outcome.item.name}: {outcome.detail}", file=sys.stderr)
        bar.set_postfix(counts, refresh=False)
        bar.update(1)

    with bar:
        report = batch.run_batch(items, engine, on_outcome)
    path = batch.write_report(out, report)
    for line in batch.format_table(report):
        typer.echo(line)
    typer.echo(f"report: {path}")
    if report.counts["failed"]:
        raise typer.Exit(code=1)


@app.command()
def route(
    image: Annotated[Path, typer.Argument(help="Damaged scan (RGBA: transparent = missing).")],
    mask: Annotated[Path | None, typer.Option(help="Mask image, nonzero = missing.")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Which cluster a damaged scan would be restored by, with the distance to every centroid."""
    from restauro.registry import Registry

    rgb, mask_array = _read_inputs(image, mask)
    _echo_json(Registry(_registry(registry)).load().route(rgb, mask_array).to_dict())


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
        registry=_registry(registry),
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
        device=_device(device),
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


# --- serve / worker ------------------------------------------------------------------------------
# Both hand every argument on unchanged: the entry points own their flags (one definition, in
# restauro/cli_flags.py and the two __main__ modules), so no flag is ever dropped on the way.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=PASS_THROUGH, add_help_option=False)
def serve(ctx: typer.Context) -> None:
    """Run the HTTP API and a worker on this machine (no Redis unless RESTAURO_BROKER_URL).

    Every flag of `python -m service` applies (--help lists them): --registry, --host, --port,
    --device, --job-time-limit-s, --worker-concurrency, ...
    """
    _exec_module("service", ["--with-worker", *ctx.args])


@app.command(context_settings=PASS_THROUGH, add_help_option=False)
def worker(ctx: typer.Context) -> None:
    """Run a Celery worker consuming the given clusters' queues (one per GPU: --device cuda:N).

    Every flag of `python -m worker` applies (--help lists them): --clusters, --general,
    --registry, --device, --pool, --concurrency, --job-time-limit-s, ...
    """
    _exec_module("worker", list(ctx.args))


def _exec_module(module: str, args: list[str]) -> None:
    """Replace this process by ``python -m module``: the adapters stay apart, signals go through."""
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def main() -> None:
    """Console-script entry: Restauro's typed errors become one line each and an exit code.

    Usage errors (a missing or malformed flag) are reported by the CLI framework itself, exit 2.
    """
    try:
        app()
    except RestauroError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        sys.exit(2 if isinstance(exc, InvalidInput) else 1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
