"""Weights and optimizer states on disk as safetensors (never pickles), with their sha256.

Used by bundles (published weights, checked against the manifest on load) and by training
checkpoints (nets and Adam states, so that a resumed run continues exactly).

A pickle runs code when it is loaded, so a tampered bundle or checkpoint could take over the worker
that opens it. safetensors holds only tensors and a small string-to-string header, which is all a
network or an Adam optimizer needs: the optimizer's hyperparameters travel as JSON in that header.

Every write goes to a temporary file first and is renamed into place, so a crash mid-write never
leaves a half-written file under the final name, and returns the file's sha256 so that the bundle
can record it in its manifest and check it on load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from restauro.atomic import atomic_path
from restauro.errors import BundleCorrupt

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_tensors(
    tensors: Mapping[str, torch.Tensor], path: Path | str, metadata: Mapping[str, str] | None = None
) -> str:
    """Write tensors atomically; return the file's sha256.

    Tensors are copied to contiguous CPU memory first: safetensors stores one dense layout, and a
    channels_last or CUDA tensor must not leak its layout or device into the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dense = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(dense, str(tmp), metadata=dict(metadata) if metadata else None)
        digest = sha256_file(tmp)
    return digest


def load_tensors(
    path: Path | str, expected_sha256: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and the header metadata; a missing, corrupt or altered file is BundleCorrupt."""
    path = Path(path)
    if not path.is_file():
        raise BundleCorrupt(f"weights file {path} is missing")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise BundleCorrupt(f"weights file {path} does not match its recorded sha256")
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise BundleCorrupt(
            f"weights file {path} is not a readable safetensors file: {exc}"
        ) from exc
    return tensors, metadata


def save_module(module: nn.Module, path: Path | str) -> str:
    """Save a module's parameters and buffers (batch-norm statistics included); return sha256."""
    return save_tensors(module.state_dict(), path)


def load_module_state(
    path: Path | str, expected_sha256: str | None = None
) -> dict[str, torch.Tensor]:
    """A state dict for ``module.load_state_dict``; checks the sha256 when one is given."""
    tensors, _ = load_tensors(path, expected_sha256)
    return tensors


# --- optimizer states -----------------------------------------------------------------------------
def optimizer_state_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], str]:
    """Flatten ``optimizer.state_dict()`` to ``state.<param>.<key>`` tensors + param groups JSON.

    Non-tensor per-parameter values (rare; Adam keeps only tensors) are kept in the JSON too.
    """
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, object]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    header = json.dumps({"param_groups": state["param_groups"], "scalars": scalars})
    return tensors, header


def save_optimizer(optimizer: torch.optim.Optimizer, path: Path | str) -> str:
    tensors, header = optimizer_state_tensors(optimizer)
    return save_tensors(tensors, path, metadata={"optimizer": header})


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path | str) -> None:
    """Restore an optimizer saved by :func:`save_optimizer` into one built over the same params."""
    tensors, metadata = load_tensors(path)
    if "optimizer" not in metadata:
        raise BundleCorrupt(f"{path} holds no optimizer state")
    header = json.loads(metadata["optimizer"])
    groups = header["param_groups"]
    for group in groups:  # JSON turned tuples into lists; Adam's betas are a tuple
        for key, value in group.items():
            if key != "params" and isinstance(value, list):
                group[key] = tuple(value)
    state: dict[int, dict[str, object]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in header.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": groups})
