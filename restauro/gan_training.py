"""Training one DCGAN: the loop of pytorch/examples ``dcgan/main.py``, resumable and reproducible.

Restauro trains one generator/discriminator pair per cluster of paintings plus a general pair on
everything. A real run takes hours, so it must survive interruptions: after every epoch the nets
and both Adam states are checkpointed (safetensors, no pickle) with the loss history, and
``resume=True`` continues from the last checkpoint as if nothing had happened. To make that exact,
all randomness of an epoch (shuffling, noise) comes from a generator seeded by (seed, epoch), not
from a stream carried across epochs; a run of 2 epochs and a run of 1 epoch resumed for 1 more give
identical weights on the CPU.

Options for small datasets (issue 8: cluster GANs of a few hundred paintings collapse when trained
from scratch), each off by default unless measured to win (docs/results.md):

- ``init``: start G and D from trained weights (the general GAN) and fine-tune them on a cluster;
- ``iterations``: a budget of gradient steps instead of epochs, so that every cluster gets the same
  number of updates whatever its size (rounded to whole epochs, which keeps resuming exact);
- ``ema``: an exponential moving average of G's weights, the generator used for inference;
- ``diffaugment``: DiffAugment on everything D sees (:mod:`restauro.diffaugment`);
- spectral normalisation in D is part of the architecture (``DCGANConfig.spectral_norm``).

The loop lives here; the checkpoint folder (atomic swap, resume checks) is
:mod:`restauro.gan_checkpoints`, the sample grids and loss plots :mod:`restauro.gan_samples`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.diffaugment import DiffAugment, parse_policy
from restauro.errors import DatasetError, InvalidParameter
from restauro.gan_checkpoints import (
    CHECKPOINT_DIR,
    check_resumable,
    dataset_fingerprint,
    read_checkpoint_state,
    write_checkpoint,
)
from restauro.gan_samples import fixed_noise, write_history, write_sample_grid
from restauro.images import to_model_range
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


class GeneratorEMA:
    """An exponential moving average of G's weights (Karras et al.; Yazici et al. 2019).

    G's weights rattle around as D keeps moving the target; their average over the last few
    hundred steps draws cleaner, more varied images, and costs one copy of G. The decay warms up
    as ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so that a short run (or one
    fine-tuned from the general GAN) does not average in its first random-looking steps for long.
    Buffers (batch-norm statistics) are copied from G; the training loop then recalibrates them
    for the averaged weights at every epoch's end.
    """

    FILE = "generator_ema.safetensors"

    def __init__(self, generator: Generator, decay: float) -> None:
        self.decay = decay
        self.model: Generator = copy.deepcopy(generator).requires_grad_(False)

    def decay_at(self, updates: int) -> float:
        return min(self.decay, (1.0 + updates) / (10.0 + updates))

    @torch.no_grad()
    def update(self, generator: Generator, updates: int) -> None:
        weight = 1.0 - self.decay_at(updates)
        for average, param in zip(self.model.parameters(), generator.parameters(), strict=True):
            average.lerp_(param, weight)
        for mine, theirs in zip(self.model.buffers(), generator.buffers(), strict=True):
            mine.copy_(theirs)


def seeded_nets(config: DCGANConfig, seed: int) -> tuple[Generator, Discriminator]:
    """G and D initialised from ``seed`` without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(config), Discriminator(config)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """All randomness of one epoch; independent of earlier epochs so that resuming is exact."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


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

    def step(self, real: torch.Tensor, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """One D step then one G step on a batch of real images (NCHW in [-1, 1], on device).

        All randomness (noise, augmentations) is drawn from ``rng`` before any net runs, in a
        fixed order; without DiffAugment that is the noise alone, as it always was.
        """
        netG, netD, criterion = self.generator, self.discriminator, self.criterion
        b = real.shape[0]
        real_label = torch.ones(b, device=self.device)
        fake_label = torch.zeros(b, device=self.device)
        noise = torch.randn(b, self.config.nz, 1, 1, generator=rng).to(self.device)
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
    init: InitialWeights | None = None,
) -> TrainResult:
    """Train a DCGAN on ``images`` (N x S x S x 3 uint8, S = ``config.image_size``).

    With ``workdir``, write a checkpoint, a sample grid and the history after every epoch.
    ``resume=True`` continues from the checkpoint there (none yet: start from scratch); a
    finished run resumes as a no-op. ``init``: start from these weights (fine-tuning) instead of
    a random init. Progress: ``("train <name>", done_batches, total_batches)``.
    """
    _check_images(images, config)
    workdir = Path(workdir) if workdir is not None else None
    fingerprint = dataset_fingerprint(images)
    init_sha256 = init.fingerprint() if init is not None else None
    trainer = DCGANTrainer(config, settings, init)
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
            check_resumable(
                state, config, settings.trajectory(), TRAJECTORY_DEFAULTS, fingerprint, workdir
            )
            if state.get("init_sha256") != init_sha256:
                raise InvalidParameter(
                    f"cannot resume {workdir}: it started from other initial weights"
                )
            trainer.load(workdir / CHECKPOINT_DIR)
            start_epoch = int(state["epoch"])
            history = list(state["history"])

    batch, n_batches, _ = batches_per_epoch(len(images), settings.batch_size)
    epochs = settings.epochs_for(n_batches)
    total = epochs * n_batches
    trainer.updates = start_epoch * n_batches  # EMA warm-up clock (checkpoints agree)
    stage = f"train {settings.name}"
    noise = fixed_noise(config, settings.seed, settings.sample_count)
    grids: list[Path] = []
    report(progress, stage, min(start_epoch, epochs) * n_batches, total)

    for epoch in range(start_epoch, epochs):
        rng = epoch_generator(settings.seed, epoch)
        order = torch.randperm(len(images), generator=rng).numpy()
        sums: dict[str, torch.Tensor] = {}
        started = time.perf_counter()
        trainer.generator.train()
        trainer.discriminator.train()
        for i in range(n_batches):
            # uint8 until the batch is picked: float copies of a whole collection would take 4x
            real = trainer.to_device(to_model_range(images[order[i * batch : (i + 1) * batch]]))
            for key, value in trainer.step(real, rng).items():
                sums[key] = sums[key] + value if key in sums else value
            report(progress, stage, epoch * n_batches + i + 1, total)
        means = {k: float(v) / n_batches for k, v in sums.items()}  # one read-back per epoch
        seconds = time.perf_counter() - started
        record = {"epoch": epoch + 1, **means}
        record.update(seconds=seconds, images_per_s=n_batches * batch / max(seconds, 1e-9))
        history.append(record)
        if settings.bn_calibration > 0:  # for the generator inpainting will use
            recalibrate_batch_norm(
                trainer.inference_generator,
                settings.bn_calibration,
                batch,
                epoch_generator(settings.seed + 1, epoch),
            )
        if workdir is not None:
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
