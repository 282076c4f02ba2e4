"""What every command of the operator's CLI shares: the app, its option types, device and
registry resolution.

The commands live in ``cli_train``, ``cli_models``, ``cli_inpaint`` and ``cli_evaluate``;
``training.cli`` wires them together and turns errors into exit codes.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from restauro.config import check_device, get_settings, resolve_device
from restauro.errors import InvalidParameter, RestauroError

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


def registry_root(path: Path | None) -> Path:
    return path if path is not None else get_settings().registry


def compute_device(device: str | None) -> str:
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


def echo_json(data) -> None:
    typer.echo(json.dumps(data, indent=2))
