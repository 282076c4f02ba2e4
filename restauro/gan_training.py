"""Training one DCGAN: the loop of pytorch/examples ``dcgan/main.py``, resumable and reproducible.

Restauro trains one generator/discriminator pair per cluster of paintings plus a general pair on
everything. A real run takes hours, so it must survive interruptions: every ``checkpoint_every``
epochs (1 by default, and always after the last) the nets and both Adam states are checkpointed
(safetensors, no pickle) with the loss history, and ``resume=True`` continues from the last
checkpoint as if nothing had happened. To make that exact, all randomness of an epoch (shuffling,
noise) comes from a generator seeded by (seed, epoch), not from a stream carried across epochs; a
run of 2 epochs and a run of 1 epoch resumed for 1 more give identical weights on the CPU. For the
same reason no random state needs to be checkpointed, on the CPU or on a GPU: epochs reseed.

Where the work runs (issue 9): on the CPU every batch is converted from the uint8 images when it
is picked and the noise is drawn from the epoch's CPU generator, the arithmetic and random stream
of every earlier version (same seed, same bits). On a GPU that per-step host work is what bounds a
small DCGAN, so the whole dataset is converted once and kept on the device
(:class:`TrainingBatches`), and the shuffling and the noise are drawn there from a device generator
seeded from the same (seed, epoch): no host copy and no synchronisation inside an epoch. A GPU
run is reproducible on the same GPU and software, not bit-equal to a CPU run.

Options for small datasets (issue 8: cluster GANs of a few hundred paintings collapse when trained
from scratch), each off by default unless measured to win (docs/results.md):

- ``init``: start G and D from trained weights (the general GAN) and fine-tune them on a cluster;
- ``iterations``: a budget of gradient steps instead of epochs, so that every cluster gets the same
  number of updates whatever its size (rounded to whole epochs, which keeps resuming exact);
- ``ema``: an exponential moving average of G's weights, the generator used for inference;
- ``diffaugment``: DiffAugment on everything D sees (:mod:`restauro.diffaugment`);
- spectral normalisation in D is part of the architecture (``DCGANConfig.spectral_norm``).

The loop lives here; beside it, the batches and each epoch's random stream
(:mod:`restauro.gan_batches`), the moving average of G (:mod:`restauro.gan_ema`), the checkpoint
folder (atomic swap, resume checks: :mod:`restauro.gan_checkpoints`), the sample grids and loss
plots (:mod:`restauro.gan_samples`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.diffaugment import DiffAugment, parse_policy
from restauro.errors import DatasetError, InvalidParameter
from restauro.gan_batches import (
    TrainingBatches,
    batches_per_epoch,
    epoch_generator,
)
from restauro.gan_checkpoints import (
    CHECKPOINT_DIR,
    check_resumable,
    dataset_fingerprint,
    read_checkpoint_state,
    write_checkpoint,
)
from restauro.gan_ema import GeneratorEMA, recalibrate_batch_norm
from restauro.gan_samples import fixed_noise, write_history, write_sample_grid
from restauro.progress import Progress, report
from restauro.safetensors_io import (
    load_module_state,
    load_optimizer,
    load_tensors,
    save_module,
    save_optimizer,
    save_tensors,
)

# Settings that change the trajectory of training: a resumed run must use the same ones.
_TRAJECTORY_SETTINGS = ("batch_size", "lr", "beta1", "seed", "ema", "diffaugment")


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 25
    iterations: int | None = None  # gradient steps (rounded to whole epochs); overrides epochs
    batch_size: int = 64
    lr: float = 2e-4  # Radford et al.
    beta1: float = 0.5  # Radford et al.: 0.9 made training oscillate
    seed: int = 0
    device: str = "cpu"
    name: str = "dcgan"  # shown in progress stages: "train <name>"
    sample_count: int = 64  # images in each epoch's sample grid (a square number reads best)
    channels_last: bool | None = None  # None: on for the CPU, where it is 10-30% faster
    bn_calibration: int = 256  # G samples to refresh G's batch-norm statistics per epoch; 0 = off
    ema: float = 0.0  # decay of the moving average of G's weights used for inference; 0 = off
    diffaugment: str = ""  # DiffAugment policy on D's inputs, e.g. "color,translation,cutout"
    checkpoint_every: int = 1  # epochs between checkpoints (+ sample grid, history); last always

    def __post_init__(self) -> None:
        checks = {
            "epochs must be >= 1": self.epochs >= 1,
            "iterations must be >= 1": self.iterations is None or self.iterations >= 1,
            "batch_size must be >= 1": self.batch_size >= 1,
            "lr must be > 0": math.isfinite(self.lr) and self.lr > 0,
            "beta1 must be in [0, 1)": 0 <= self.beta1 < 1,
            "sample_count must be >= 1": self.sample_count >= 1,
            "bn_calibration must be >= 0": self.bn_calibration >= 0,
            "ema must be in [0, 1)": math.isfinite(self.ema) and 0 <= self.ema < 1,
            "checkpoint_every must be >= 1": self.checkpoint_every >= 1,
        }
        for message, ok in checks.items():
            if not ok:
                raise InvalidParameter(f"training settings: {message}")
        parse_policy(self.diffaugment)

    def epochs_for(self, n_batches: int) -> int:
        """Epochs to run at ``n_batches`` per epoch: ``epochs``, or the iterations budget rounded
        to whole epochs (so a cluster of 500 and one of 1,000 paintings get ~equal steps)."""
        if self.iterations is None:
            return self.epochs
        return max(1, round(self.iterations / n_batches))

    def checkpoints_after(self, epochs_done: int, epochs: int) -> bool:
        """Whether the epoch that brings the run to ``epochs_done`` (of ``epochs``) is saved.

        Writing a checkpoint, a sample grid and the loss plot costs a few tenths of a second per
        model, as much as a whole epoch of a small cluster on a GPU; the last epoch is always
        saved, so a finished run is complete whatever ``checkpoint_every`` is. Not a trajectory
        setting: epochs reseed, so a resumed run may save at other epochs and still be exact.
        """
        return epochs_done % self.checkpoint_every == 0 or epochs_done >= epochs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def trajectory(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        return {k: getattr(self, k) for k in _TRAJECTORY_SETTINGS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def use_channels_last(self) -> bool:
        if self.channels_last is not None:
            return self.channels_last
        return torch.device(self.device).type == "cpu"


# What a checkpoint written before a setting existed ran with: that setting's default.
TRAJECTORY_DEFAULTS = {f.name: f.default for f in fields(TrainSettings)}


@dataclass
class TrainResult:
    generator: Generator  # the trained G (the one D played against)
    discriminator: Discriminator
    history: list[dict[str, float]]
    config: DCGANConfig
    settings: TrainSettings
    epochs_done: int
    workdir: Path | None = None
    resumed_from_epoch: int = 0  # 0 = trained from scratch
    sample_grids: list[Path] = field(default_factory=list)
    generator_ema: Generator | None = None  # the moving average of G, when settings.ema > 0
    steps: int = 0  # gradient steps of G (and of D) in the whole run

    @property
    def inference_generator(self) -> Generator:
        """What a bundle ships and inpainting searches: the EMA generator when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator


@dataclass(frozen=True)
class InitialWeights:
    """Trained weights a run starts from instead of a random init (fine-tuning a cluster GAN from
    the general one). Its fingerprint goes into the checkpoint: a resumed run must start from the
    same weights."""

    generator: Mapping[str, torch.Tensor]
    discriminator: Mapping[str, torch.Tensor]

    @classmethod
    def from_nets(cls, generator: nn.Module, discriminator: nn.Module) -> InitialWeights:
        def detached(module: nn.Module) -> dict[str, torch.Tensor]:
            state = module.state_dict()
            return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}

        return cls(detached(generator), detached(discriminator))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for part in (self.generator, self.discriminator):
            for name in sorted(part):
                tensor = part[name].detach().cpu().contiguous()
                digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()


def seeded_nets(config: DCGANConfig, seed: int) -> tuple[Generator, Discriminator]:
    """G and D initialised from ``seed`` without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(config), Discriminator(config)


class DCGANTrainer:
    """G, D, their Adam optimizers and one training step; :func:`train_dcgan` adds the epochs.

    Exposed on its own so that benchmarks and tests can run a few steps without a dataset loop.
    """

    def __init__(
        self, config: DCGANConfig, settings: TrainSettings, init: InitialWeights | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        self.device = torch.device(settings.device)
        self.memory_format = (
            torch.channels_last if settings.use_channels_last else torch.contiguous_format
        )
        generator, discriminator = seeded_nets(config, settings.seed)
        if init is not None:
            _load_initial(generator, discriminator, init, config)
        self.generator = generator.to(self.device, memory_format=self.memory_format)
        self.discriminator = discriminator.to(self.device, memory_format=self.memory_format)
        betas = (settings.beta1, 0.999)
        self.optim_g = torch.optim.Adam(self.generator.parameters(), lr=settings.lr, betas=betas)
        self.optim_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=settings.lr, betas=betas
        )
        self.criterion = nn.BCEWithLogitsLoss()
        self.augment = DiffAugment(settings.diffaugment, config.image_size)
        self.ema = GeneratorEMA(self.generator, settings.ema) if settings.ema > 0 else None
        self.updates = 0  # G steps so far (the EMA's warm-up clock); set on resume

    @property
    def inference_generator(self) -> Generator:
        return self.ema.model if self.ema is not None else self.generator

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def draw_noise(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """``n`` latent vectors drawn on ``rng``'s device (a CPU generator: the historic stream),
        then moved to the training device (a no-op when they were drawn there)."""
        z = torch.randn(n, self.config.nz, 1, 1, generator=rng, device=rng.device)
        return z.to(self.device)

    def step(
        self, real: torch.Tensor, rng: torch.Generator, noise_rng: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """One D step then one G step on a batch of real images (NCHW in [-1, 1], on device).

        All randomness (noise, augmentations) is drawn from ``rng`` before any net runs, in a
        fixed order; without DiffAugment that is the noise alone, as it always was. ``noise_rng``
        (a generator on the training device) draws the noise instead, where it is to be used;
        the augmentations' few numbers stay on ``rng`` (CPU), whose tensors their code expects.
        """
        netG, netD, criterion = self.generator, self.discriminator, self.criterion
        b = real.shape[0]
        real_label = torch.ones(b, device=self.device)
        fake_label = torch.zeros(b, device=self.device)
        noise = self.draw_noise(b, noise_rng if noise_rng is not None else rng)
        augment = self.augment
        draws = [augment.sample(b, rng) for _ in range(3)] if augment else []

        def seen_by_d(images: torch.Tensor, k: int) -> torch.Tensor:
            return augment.apply(images, draws[k]) if draws else images

        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        netD.zero_grad(set_to_none=True)
        out_real = netD(seen_by_d(real, 0))
        err_d_real = criterion(out_real, real_label)
        err_d_real.backward()
        fake = netG(noise)
        out_fake = netD(seen_by_d(fake.detach(), 1))
        err_d_fake = criterion(out_fake, fake_label)
        err_d_fake.backward()
        self.optim_d.step()

        # (2) Update G network: maximize log(D(G(z)))  (the non-saturating loss)
        netG.zero_grad(set_to_none=True)
        netD.requires_grad_(False)  # D's weight gradients would be thrown away: skip them
        try:
            out_gen = netD(seen_by_d(fake, 2))  # G's gradient flows through the augmentation
            err_g = criterion(out_gen, real_label)
            err_g.backward()
        finally:
            netD.requires_grad_(True)
        self.optim_g.step()
        if self.ema is not None:
            self.ema.update(netG, self.updates)
        self.updates += 1

        # 0-dim tensors on the device, not floats: reading a number back makes the host wait for
        # the GPU, five times a step; the epoch loop sums them on the device and reads once.
        with torch.no_grad():
            return {
                "loss_d": (err_d_real + err_d_fake).detach(),
                "loss_g": err_g.detach(),
                "d_x": torch.sigmoid(out_real).mean(),
                "d_g_z1": torch.sigmoid(out_fake).mean(),  # before D's update
                "d_g_z2": torch.sigmoid(out_gen).mean(),  # after D's update
            }

    # --- checkpoints ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        save_module(self.generator, folder / "generator.safetensors")
        save_module(self.discriminator, folder / "discriminator.safetensors")
        save_optimizer(self.optim_g, folder / "optim_g.safetensors")
        save_optimizer(self.optim_d, folder / "optim_d.safetensors")
        if self.ema is not None:
            meta = {"updates": str(self.updates)}
            save_tensors(self.ema.model.state_dict(), folder / GeneratorEMA.FILE, meta)

    def load(self, folder: Path) -> None:
        self.generator.load_state_dict(load_module_state(folder / "generator.safetensors"))
        self.discriminator.load_state_dict(load_module_state(folder / "discriminator.safetensors"))
        load_optimizer(self.optim_g, folder / "optim_g.safetensors")
        load_optimizer(self.optim_d, folder / "optim_d.safetensors")
        if self.ema is not None:
            tensors, meta = load_tensors(folder / GeneratorEMA.FILE)
            self.ema.model.load_state_dict(tensors)
            self.updates = int(meta["updates"])


def train_dcgan(
    images: np.ndarray,
    config: DCGANConfig,
    settings: TrainSettings,
    workdir: Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    init: InitialWeights | None = None,
) -> TrainResult:
    """Train a DCGAN on ``images`` (N x S x S x 3 uint8, S = ``config.image_size``).

    With ``workdir``, write a checkpoint, a sample grid and the history every
    ``settings.checkpoint_every`` epochs and after the last. ``resume=True`` continues from the
    checkpoint there (none yet: start from scratch; epochs after it are trained again, to the
    same bits on the CPU); a finished run resumes as a no-op. ``init``: start from these weights
    (fine-tuning) instead of a random init. Progress: ``("train <name>", done_batches,
    total_batches)``.
    """
    _check_images(images, config)
    workdir = Path(workdir) if workdir is not None else None
    fingerprint = dataset_fingerprint(images)
    init_sha256 = init.fingerprint() if init is not None else None
    trainer = DCGANTrainer(config, settings, init)
    start_epoch, history = 0, []
    if workdir is not None:
        start_epoch, history = _resume_point(trainer, workdir, resume, fingerprint, init_sha256)

    batch, n_batches, _ = batches_per_epoch(len(images), settings.batch_size)
    epochs = settings.epochs_for(n_batches)
    total = epochs * n_batches
    trainer.updates = start_epoch * n_batches  # EMA warm-up clock (checkpoints agree)
    stage = f"train {settings.name}"
    noise = fixed_noise(config, settings.seed, settings.sample_count)
    batches = TrainingBatches(images, trainer)
    grids: list[Path] = []
    report(progress, stage, min(start_epoch, epochs) * n_batches, total)

    for epoch in range(start_epoch, epochs):

        def step_done(i: int, epoch: int = epoch) -> None:
            report(progress, stage, epoch * n_batches + i + 1, total)

        history.append(_train_epoch(trainer, batches, epoch, batch, n_batches, step_done))
        if settings.bn_calibration > 0:  # for the generator inpainting will use
            recalibrate_batch_norm(
                trainer.inference_generator,
                settings.bn_calibration,
                batch,
                epoch_generator(settings.seed + 1, epoch),
            )
        if workdir is not None and settings.checkpoints_after(epoch + 1, epochs):
            grids.append(write_sample_grid(workdir, epoch + 1, trainer.inference_generator, noise))
            state = {
                "epoch": epoch + 1,
                "config": config.to_dict(),
                "settings": settings.to_dict(),
                "dataset_sha256": fingerprint,
                "init_sha256": init_sha256,
                "history": history,
            }
            write_checkpoint(workdir, trainer.save, state)
            write_history(workdir, history)

    trainer.generator.eval()
    trainer.discriminator.eval()
    trainer.inference_generator.eval()
    done = max(start_epoch, epochs)
    return TrainResult(
        generator=trainer.generator,
        discriminator=trainer.discriminator,
        history=history,
        config=config,
        settings=settings,
        epochs_done=done,
        workdir=workdir,
        resumed_from_epoch=start_epoch,
        sample_grids=grids,
        generator_ema=trainer.ema.model if trainer.ema is not None else None,
        steps=done * n_batches,
    )


def _resume_point(
    trainer: DCGANTrainer,
    workdir: Path,
    resume: bool,
    fingerprint: str,
    init_sha256: str | None,
) -> tuple[int, list[dict[str, float]]]:
    """(epochs done, history) of the run in ``workdir``, its checkpoint loaded into ``trainer``;
    (0, []) for an empty folder. Refuses to overwrite a run, or to resume one trained otherwise."""
    state = read_checkpoint_state(workdir)
    if state is None:
        return 0, []
    if not resume:
        raise InvalidParameter(
            f"{workdir} already holds a training run (epoch {state['epoch']}); "
            "resume it or use an empty working folder"
        )
    settings = trainer.settings
    check_resumable(
        state, trainer.config, settings.trajectory(), TRAJECTORY_DEFAULTS, fingerprint, workdir
    )
    if state.get("init_sha256") != init_sha256:
        raise InvalidParameter(f"cannot resume {workdir}: it started from other initial weights")
    trainer.load(workdir / CHECKPOINT_DIR)
    return int(state["epoch"]), list(state["history"])


def _train_epoch(
    trainer: DCGANTrainer,
    batches: TrainingBatches,
    epoch: int,
    batch: int,
    n_batches: int,
    step_done: Callable[[int], None],
) -> dict[str, float]:
    """One epoch of steps; its history record (mean losses, D outputs, speed).

    The statistics stay 0-dim tensors summed on the device and are read back once, at the end:
    each read inside the loop would make the host wait for the GPU.
    """
    host_rng, device_rng = batches.epoch_rngs(trainer.settings.seed, epoch)
    order = batches.order(device_rng)
    sums: dict[str, torch.Tensor] = {}
    started = time.perf_counter()
    trainer.generator.train()
    trainer.discriminator.train()
    for i in range(n_batches):
        real = batches.batch(order, i, batch)
        for key, value in trainer.step(real, host_rng, device_rng).items():
            sums[key] = sums[key] + value if key in sums else value
        step_done(i)
    means = {k: float(v) / n_batches for k, v in sums.items()}  # one read-back per epoch
    seconds = time.perf_counter() - started
    record = {"epoch": epoch + 1, **means}
    record.update(seconds=seconds, images_per_s=n_batches * batch / max(seconds, 1e-9))
    return record


def _load_initial(
    generator: Generator, discriminator: Discriminator, init: InitialWeights, config: DCGANConfig
) -> None:
    try:
        generator.load_state_dict(dict(init.generator))
        discriminator.load_state_dict(dict(init.discriminator))
    except RuntimeError as exc:
        raise InvalidParameter(
            f"the initial weights do not fit the DCGAN {config.to_dict()}: same width, latent "
            f"size, resolution and spectral norm are needed ({str(exc).splitlines()[0]})"
        ) from exc


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
