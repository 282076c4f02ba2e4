"""The checkpoint folder of a DCGAN run: always one complete checkpoint on disk, never half of one.

A real run takes hours and may be killed at any moment. After every epoch the training loop hands
this module a function that writes its files (nets, Adam states: safetensors, no pickle) and a
JSON state (epoch, config, settings, dataset fingerprint, history); the new checkpoint is written
beside the old one and the folders are swapped, and ``state.json`` is written last, so a folder
without it is incomplete. On resume the state says whether the run may continue: same
architecture, same trajectory settings, same images.

Files in a training folder::

    checkpoint/   the training loop's files + state.json
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from restauro.atomic import write_json_atomic
from restauro.dcgan import DCGANConfig
from restauro.errors import InvalidParameter

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"


def dataset_fingerprint(images: np.ndarray) -> str:
    """sha256 of the training images: resuming on different data would silently mix two runs."""
    digest = hashlib.sha256(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    return digest.hexdigest()


def read_checkpoint_state(workdir: Path) -> dict[str, Any] | None:
    """The JSON state of the last complete checkpoint in ``workdir``, or None if there is none."""
    workdir = Path(workdir)
    _recover_interrupted_swap(workdir)
    path = workdir / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidParameter(f"cannot read training checkpoint {path}: {exc}") from exc


def _recover_interrupted_swap(workdir: Path) -> None:
    """A crash between the two renames of :func:`write_checkpoint` leaves no ``checkpoint/``:
    promote the new folder if it is complete (its state.json is written last), else the old."""
    final = workdir / CHECKPOINT_DIR
    if final.exists():
        return
    for candidate in (workdir / f".{CHECKPOINT_DIR}.new", workdir / f".{CHECKPOINT_DIR}.old"):
        if (candidate / STATE_FILE).is_file():
            os.replace(candidate, final)
            return


def write_checkpoint(
    workdir: Path, save_files: Callable[[Path], None], state: Mapping[str, Any]
) -> None:
    """Write a new checkpoint beside the old one and swap folders, so one is always whole.

    ``save_files(folder)`` writes the nets and optimizer states into ``folder``; ``state`` is
    written last, as state.json.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    final = workdir / CHECKPOINT_DIR
    staging = workdir / f".{CHECKPOINT_DIR}.new"
    previous = workdir / f".{CHECKPOINT_DIR}.old"
    for leftover in (staging, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir()
    save_files(staging)
    write_json_atomic(staging / STATE_FILE, dict(state))
    if final.exists():
        os.replace(final, previous)
    os.replace(staging, final)
    shutil.rmtree(previous, ignore_errors=True)


def check_resumable(
    state: Mapping[str, Any],
    config: DCGANConfig,
    trajectory: Mapping[str, Any],
    defaults: Mapping[str, Any],
    fingerprint: str,
    workdir: Path,
) -> None:
    """Refuse to resume a run with another architecture, other trajectory settings or data.

    ``trajectory`` holds the settings that change what training computes (lr, seed, EMA, ...)
    as they are now; a setting missing from an older checkpoint was run at its ``defaults``
    value (it did not exist yet, so the old code behaved as the default does).
    """
    saved_config = DCGANConfig.from_dict(state["config"])
    if saved_config != config:
        raise InvalidParameter(
            f"cannot resume {workdir}: it was trained with {saved_config.to_dict()}, "
            f"not {config.to_dict()}"
        )
    saved = state["settings"]
    was = {k: saved.get(k, defaults.get(k)) for k in trajectory}
    changed = [k for k, value in trajectory.items() if was[k] != value]
    if changed:
        detail = ", ".join(f"{k}={was[k]} (now {trajectory[k]})" for k in changed)
        raise InvalidParameter(f"cannot resume {workdir} with other settings: it used {detail}")
    if state.get("dataset_sha256") != fingerprint:
        raise InvalidParameter(f"cannot resume {workdir}: the training images are not the same")
