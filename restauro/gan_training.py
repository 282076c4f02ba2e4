"""Training one DCGAN: the loop of pytorch/examples ``dcgan/main.py``, resumable and reproducible.

Restauro trains one generator/discriminator pair per cluster of paintings plus a general pair on
everything. A real run takes hours, so it must survive interruptions: after every epoch the nets
and both Adam states are checkpointed (safetensors, no pickle) with the loss history, and
``resume=True`` continues from the last checkpoint as if nothing had happened. To make that exact,
all randomness of an epoch (shuffling, noise) comes from a generator seeded by (seed, epoch), not
from a stream carried across epochs; a run of 2 epochs and a run of 1 epoch resumed for 1 more give
identical weights on the CPU.

Files in ``workdir``::

    checkpoint/       generator, discriminator, optim_g, optim_d (.safetensors) + state.json
    samples/epoch_NNN.png   the generator on a fixed batch of noise, to watch progress
    history.json      per-epoch losses, D outputs and speed
    loss.png          the loss curves
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from restauro.atomic import write_json_atomic
from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.errors import DatasetError, InvalidParameter
from restauro.images import from_model_range, to_model_range, write_png
from restauro.progress import Progress, report
from restauro.safetensors_io import load_module_state, load_optimizer, save_module, save_optimizer

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
HISTORY_FILE = "history.json"
LOSS_PLOT = "loss.png"
SAMPLES_DIR = "samples"

# Settings that change the trajectory of training: a resumed run must use the same ones.
_TRAJECTORY_SETTINGS = ("batch_size", "lr", "beta1", "seed")


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 25
    batch_size: int = 64
    lr: float = 2e-4  # Radford et al.
    beta1: float = 0.5  # Radford et al.: 0.9 made training oscillate
    seed: int = 0
    device: str = "cpu"
    name: str = "dcgan"  # shown in progress stages: "train <name>"
    sample_count: int = 64  # images in each epoch's sample grid (a square number reads best)
    channels_last: bool | None = None  # None: on for the CPU, where it is 10-30% faster
    bn_calibration: int = 256  # G samples to refresh G's batch-norm statistics per epoch; 0 = off

    def __post_init__(self) -> None:
        checks = {
            "epochs must be >= 1": self.epochs >= 1,
            "batch_size must be >= 1": self.batch_size >= 1,
            "lr must be > 0": math.isfinite(self.lr) and self.lr > 0,
            "beta1 must be in [0, 1)": 0 <= self.beta1 < 1,
            "sample_count must be >= 1": self.sample_count >= 1,
            "bn_calibration must be >= 0": self.bn_calibration >= 0,
        }
        for message, ok in checks.items():
            if not ok:
                raise InvalidParameter(f"training settings: {message}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def use_channels_last(self) -> bool:
        if self.channels_last is not None:
            return self.channels_last
        return torch.device(self.device).type == "cpu"


@dataclass
class TrainResult:
    generator: Generator
    discriminator: Discriminator
    history: list[dict[str, float]]
    config: DCGANConfig
    settings: TrainSettings
    epochs_done: int
    workdir: Path | None = None
    resumed_from_epoch: int = 0  # 0 = trained from scratch
    sample_grids: list[Path] = field(default_factory=list)


def seeded_nets(config: DCGANConfig, seed: int) -> tuple[Generator, Discriminator]:
    """G and D initialised from ``seed`` without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(config), Discriminator(config)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """All randomness of one epoch; independent of earlier epochs so that resuming is exact."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def fixed_noise(config: DCGANConfig, seed: int, count: int) -> torch.Tensor:
    """The noise behind every sample grid of a run: the same z's, epoch after epoch."""
    return torch.randn(
        count, config.nz, 1, 1, generator=torch.Generator().manual_seed(seed * 1_000_003 + 999_983)
    )


class DCGANTrainer:
    """G, D, their Adam optimizers and one training step; :func:`train_dcgan` adds the epochs.

    Exposed on its own so that benchmarks and tests can run a few steps without a dataset loop.
    """

    def __init__(self, config: DCGANConfig, settings: TrainSettings) -> None:
        self.config = config
        self.settings = settings
        self.device = torch.device(settings.device)
        self.memory_format = (
            torch.channels_last if settings.use_channels_last else torch.contiguous_format
        )
        generator, discriminator = seeded_nets(config, settings.seed)
        self.generator = generator.to(self.device, memory_format=self.memory_format)
        self.discriminator = discriminator.to(self.device, memory_format=self.memory_format)
        betas = (settings.beta1, 0.999)
        self.optim_g = torch.optim.Adam(self.generator.parameters(), lr=settings.lr, betas=betas)
        self.optim_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=settings.lr, betas=betas
        )
        self.criterion = nn.BCEWithLogitsLoss()

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def step(self, real: torch.Tensor, rng: torch.Generator) -> dict[str, float]:
        """One D step then one G step on a batch of real images (NCHW in [-1, 1], on device)."""
        netG, netD, criterion = self.generator, self.discriminator, self.criterion
        b = real.shape[0]
        real_label = torch.ones(b, device=self.device)
        fake_label = torch.zeros(b, device=self.device)

        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad(set_to_none=True)
        out_real = netD(real)
        err_d_real = criterion(out_real, real_label)
        err_d_real.backward()
        noise = torch.randn(b, self.config.nz, 1, 1, generator=rng).to(self.device)
        fake = netG(noise)
        out_fake = netD(fake.detach())
        err_d_fake = criterion(out_fake, fake_label)
        err_d_fake.backward()
        self.optim_d.step()

        # (2) Update G network: maximize log(D(G(z)))  (the non-saturating loss)
        netG.zero_grad(set_to_none=True)
        netD.requires_grad_(False)  # D's weight gradients would be thrown away: skip them
        try:
            out_gen = netD(fake)
            err_g = criterion(out_gen, real_label)
            err_g.backward()
        finally:
            netD.requires_grad_(True)
        self.optim_g.step()

        with torch.no_grad():
            return {
                "loss_d": float(err_d_real + err_d_fake),
                "loss_g": float(err_g),
                "d_x": float(torch.sigmoid(out_real).mean()),
                "d_g_z1": float(torch.sigmoid(out_fake).mean()),  # before D's update
                "d_g_z2": float(torch.sigmoid(out_gen).mean()),  # after D's update
            }

    # --- checkpoints ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        save_module(self.generator, folder / "generator.safetensors")
        save_module(self.discriminator, folder / "discriminator.safetensors")
        save_optimizer(self.optim_g, folder / "optim_g.safetensors")
        save_optimizer(self.optim_d, folder / "optim_d.safetensors")

    def load(self, folder: Path) -> None:
        self.generator.load_state_dict(load_module_state(folder / "generator.safetensors"))
        self.discriminator.load_state_dict(load_module_state(folder / "discriminator.safetensors"))
        load_optimizer(self.optim_g, folder / "optim_g.safetensors")
        load_optimizer(self.optim_d, folder / "optim_d.safetensors")


def batches_per_epoch(n_images: int, batch_size: int) -> tuple[int, int, bool]:
    """(batch size, batches per epoch, drop_last) for a dataset of ``n_images``.

    The ragged last batch is dropped (its few images would give batch norm noisy statistics),
    unless the dataset is smaller than one batch: then the whole dataset is the one batch.
    """
    if n_images >= batch_size:
        return batch_size, n_images // batch_size, True
    return n_images, 1, False


def train_dcgan(
    images: np.ndarray,
    config: DCGANConfig,
    settings: TrainSettings,
    workdir: Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a DCGAN on ``images`` (N x S x S x 3 uint8, S = ``config.image_size``).

    With ``workdir``, write a checkpoint, a sample grid and the history after every epoch.
    ``resume=True`` continues from the checkpoint there (none yet: start from scratch); a
    finished run resumes as a no-op. Progress: ``("train <name>", done_batches, total_batches)``.
    """
    _check_images(images, config)
    workdir = Path(workdir) if workdir is not None else None
    fingerprint = dataset_fingerprint(images)
    trainer = DCGANTrainer(config, settings)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if workdir is not None:
        state = read_checkpoint_state(workdir)
        if state is not None and not resume:
            raise InvalidParameter(
                f"{workdir} already holds a training run (epoch {state['epoch']}); "
                "resume it or use an empty working folder"
            )
        if state is not None:
            _check_resumable(state, config, settings, fingerprint, workdir)
            trainer.load(workdir / CHECKPOINT_DIR)
            start_epoch = int(state["epoch"])
            history = list(state["history"])

    batch, n_batches, _ = batches_per_epoch(len(images), settings.batch_size)
    total = settings.epochs * n_batches
    stage = f"train {settings.name}"
    noise = fixed_noise(config, settings.seed, settings.sample_count)
    grids: list[Path] = []
    report(progress, stage, min(start_epoch, settings.epochs) * n_batches, total)

    for epoch in range(start_epoch, settings.epochs):
        rng = epoch_generator(settings.seed, epoch)
        order = torch.randperm(len(images), generator=rng).numpy()
        sums: dict[str, float] = {}
        started = time.perf_counter()
        trainer.generator.train()
        trainer.discriminator.train()
        for i in range(n_batches):
            # uint8 until the batch is picked: float copies of a whole collection would take 4x
            real = trainer.to_device(to_model_range(images[order[i * batch : (i + 1) * batch]]))
            for key, value in trainer.step(real, rng).items():
                sums[key] = sums.get(key, 0.0) + value
            report(progress, stage, epoch * n_batches + i + 1, total)
        seconds = time.perf_counter() - started
        record = {"epoch": epoch + 1, **{k: v / n_batches for k, v in sums.items()}}
        record.update(seconds=seconds, images_per_s=n_batches * batch / max(seconds, 1e-9))
        history.append(record)
        if settings.bn_calibration > 0:
            recalibrate_batch_norm(
                trainer.generator,
                settings.bn_calibration,
                batch,
                epoch_generator(settings.seed + 1, epoch),
            )
        if workdir is not None:
            grids.append(
                write_png(
                    workdir / SAMPLES_DIR / f"epoch_{epoch + 1:03d}.png",
                    sample_grid(trainer.generator, noise),
                )
            )
            _write_checkpoint(workdir, trainer, epoch + 1, history, settings, fingerprint)

    trainer.generator.eval()
    trainer.discriminator.eval()
    return TrainResult(
        generator=trainer.generator,
        discriminator=trainer.discriminator,
        history=history,
        config=config,
        settings=settings,
        epochs_done=max(start_epoch, settings.epochs),
        workdir=workdir,
        resumed_from_epoch=start_epoch,
        sample_grids=grids,
    )


@torch.no_grad()
def recalibrate_batch_norm(
    generator: Generator, samples: int, batch_size: int, rng: torch.Generator
) -> None:
    """Recompute G's batch-norm running statistics for its current weights.

    Inpainting runs G in eval mode, on running statistics that training accumulated with momentum
    from weights that kept changing: they lag behind, and early in training an eval-mode G can
    render nearly flat grey where the train-mode G renders paintings. An exact average over fresh
    samples at the final weights (as ``torch.optim.swa_utils.update_bn`` does) removes the lag.
    Training itself never reads these statistics, so this does not change its trajectory.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = generator.training
    momenta = [m.momentum for m in norms]
    device = next(generator.parameters()).device
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    generator.train()
    try:
        done = 0
        while done < samples:
            n = min(batch_size, samples - done)
            generator(torch.randn(n, generator.config.nz, 1, 1, generator=rng).to(device))
            done += n
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        generator.train(was_training)


# --- sample grids and curves ----------------------------------------------------------------------
@torch.no_grad()
def sample_grid(generator: Generator, noise: torch.Tensor, padding: int = 2) -> np.ndarray:
    """The generator's images for ``noise`` tiled in a square-ish RGB grid (uint8).

    The generator runs in eval mode (batch-norm running statistics), as the inpainting engine
    uses it, and without updating those statistics; its mode is restored afterwards.
    """
    was_training = generator.training
    generator.eval()
    try:
        device = next(generator.parameters()).device
        tiles = from_model_range(generator(noise.to(device)))
    finally:
        generator.train(was_training)
    n, size = len(tiles), tiles.shape[1]
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    step = size + padding
    grid = np.zeros((rows * step + padding, cols * step + padding, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        top, left = padding + r * step, padding + c * step
        grid[top : top + size, left : left + size] = tile
    return grid


def loss_curve(history: list[dict[str, float]], width: int = 640, height: int = 360) -> np.ndarray:
    """A plain RGB plot of loss_d (red) and loss_g (blue) per epoch, drawn with OpenCV."""
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    margin = 40
    series = {"loss_d": (220, 40, 40), "loss_g": (40, 80, 220)}
    values = [h[k] for h in history for k in series if k in h]
    if not values:
        return img
    top = max(values) * 1.05 or 1.0
    x0, x1, y0, y1 = margin, width - 10, height - margin, 10
    cv2.rectangle(img, (x0, y1), (x1, y0), (0, 0, 0), 1)
    span = max(len(history) - 1, 1)
    for key, colour in series.items():
        pts = [
            (x0 + round((x1 - x0) * i / span), y0 - round((y0 - y1) * h[key] / top))
            for i, h in enumerate(history)
        ]
        cv2.polylines(img, [np.array(pts, np.int32).reshape(-1, 1, 2)], False, colour, 2)
        for p in pts:
            cv2.circle(img, p, 3, colour, -1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "loss_d", (x0 + 8, y1 + 18), font, 0.5, series["loss_d"], 1)
    cv2.putText(img, "loss_g", (x0 + 80, y1 + 18), font, 0.5, series["loss_g"], 1)
    cv2.putText(img, f"{top:.2f}", (2, y1 + 10), font, 0.4, (0, 0, 0), 1)
    cv2.putText(img, "0", (20, y0), font, 0.4, (0, 0, 0), 1)
    cv2.putText(img, f"epoch {len(history)}", (x1 - 90, height - 12), font, 0.5, (0, 0, 0), 1)
    return img


# --- checkpoint files -----------------------------------------------------------------------------
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
    """A crash between the two renames of :func:`_write_checkpoint` leaves no ``checkpoint/``:
    promote the new folder if it is complete (its state.json is written last), else the old."""
    final = workdir / CHECKPOINT_DIR
    if final.exists():
        return
    for candidate in (workdir / f".{CHECKPOINT_DIR}.new", workdir / f".{CHECKPOINT_DIR}.old"):
        if (candidate / STATE_FILE).is_file():
            os.replace(candidate, final)
            return


def _write_checkpoint(
    workdir: Path,
    trainer: DCGANTrainer,
    epoch: int,
    history: list[dict[str, float]],
    settings: TrainSettings,
    fingerprint: str,
) -> None:
    """Write the new checkpoint beside the old one and swap folders, so one is always whole.

    state.json is written last inside the new folder: a folder without it is incomplete.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    final = workdir / CHECKPOINT_DIR
    staging = workdir / f".{CHECKPOINT_DIR}.new"
    previous = workdir / f".{CHECKPOINT_DIR}.old"
    for leftover in (staging, previous):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir()
    trainer.save(staging)
    state = {
        "epoch": epoch,
        "config": trainer.config.to_dict(),
        "settings": settings.to_dict(),
        "dataset_sha256": fingerprint,
        "history": history,
    }
    write_json_atomic(staging / STATE_FILE, state)
    if final.exists():
        os.replace(final, previous)
    os.replace(staging, final)
    shutil.rmtree(previous, ignore_errors=True)
    write_json_atomic(workdir / HISTORY_FILE, history)
    write_png(workdir / LOSS_PLOT, loss_curve(history))


def _check_resumable(
    state: dict[str, Any],
    config: DCGANConfig,
    settings: TrainSettings,
    fingerprint: str,
    workdir: Path,
) -> None:
    saved_config = DCGANConfig.from_dict(state["config"])
    if saved_config != config:
        raise InvalidParameter(
            f"cannot resume {workdir}: it was trained with {saved_config.to_dict()}, "
            f"not {config.to_dict()}"
        )
    saved = state["settings"]
    changed = [k for k in _TRAJECTORY_SETTINGS if saved.get(k) != getattr(settings, k)]
    if changed:
        detail = ", ".join(f"{k}={saved.get(k)} (now {getattr(settings, k)})" for k in changed)
        raise InvalidParameter(f"cannot resume {workdir} with other settings: it used {detail}")
    if state.get("dataset_sha256") != fingerprint:
        raise InvalidParameter(f"cannot resume {workdir}: the training images are not the same")


def _check_images(images: np.ndarray, config: DCGANConfig) -> None:
    size = config.image_size
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise DatasetError("training images must be a uint8 numpy array N x S x S x 3")
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise DatasetError(
            f"training images must be N x {size} x {size} x 3 for this DCGAN, got {images.shape}"
        )
    if len(images) == 0:
        raise DatasetError("no training images")
