"""``restauro models list | show | promote | rollback``: the bundle registry."""

from __future__ import annotations

from typing import Annotated

import typer

from training.cli_app import (
    RegistryOpt,
    echo_json,
    models_app,
    registry_root,
)


# --- models --------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(registry: RegistryOpt = None) -> None:
    """Published bundle versions; * marks the current one."""
    from restauro.registry import Registry

    reg = Registry(registry_root(registry))
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

    manifest = Registry(registry_root(registry)).manifest(version)
    manifest.pop("files", None)
    for info in manifest.get("models", {}).values():
        info.pop("history", None)
    echo_json(manifest)


@models_app.command("promote")
def models_promote(version: str, registry: RegistryOpt = None) -> None:
    """Make VERSION the current bundle (API and workers pick it up without a restart)."""
    from restauro.registry import Registry

    previous = Registry(registry_root(registry)).promote(version)
    typer.echo(f"current: {version} (was {previous})")


@models_app.command("rollback")
def models_rollback(registry: RegistryOpt = None) -> None:
    """Make the previously current bundle current again."""
    from restauro.registry import Registry

    typer.echo(f"current: {Registry(registry_root(registry)).rollback()}")
