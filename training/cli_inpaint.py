"""``restauro inpaint`` (one scan or a folder) and ``restauro route``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from restauro.config import get_settings
from restauro.errors import InvalidInput, RestauroError

if TYPE_CHECKING:  # the commands import the core lazily: `restauro --help` loads no torch
    from restauro.request import RestoreRequest
    from training import batch
from training.cli_app import (
    DeviceOpt,
    RegistryOpt,
    app,
    compute_device,
    echo_json,
    registry_root,
)


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
        _inpaint_one(items[0], request, remote, registry_root(registry), bundle, device, quiet)
        return
    engine = remote or batch.LocalEngine(
        registry_root(registry), bundle, request, compute_device(device), get_settings().max_pixels
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
                compute_device(device),
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
    echo_json(Registry(registry_root(registry)).load().route(rgb, mask_array).to_dict())
