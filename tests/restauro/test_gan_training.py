"""The DCGAN training loop: it learns, it is reproducible, and it resumes exactly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from restauro.dcgan import DCGANConfig
from restauro.errors import DatasetError, InvalidParameter
from restauro.gan_batches import TrainingBatches, batches_per_epoch
from restauro.gan_checkpoints import read_checkpoint_state
from restauro.gan_samples import fixed_noise
from restauro.gan_training import (
    DCGANTrainer,
    InitialWeights,
    TrainSettings,
    seeded_nets,
    train_dcgan,
)
from restauro.images import read_image, to_model_range

TINY = DCGANConfig(image_size=64, nz=16, ngf=8, ndf=8)
RED = np.array([200.0, 60.0, 40.0])  # the colour of the learnable toy distribution


@pytest.fixture(autouse=True)
def _one_thread():
    """Two cores are shared by everyone; one thread also keeps CPU results bit-reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reddish_images(n: int, seed: int = 0) -> np.ndarray:
    """Flat reddish squares with a little per-image and per-pixel noise: easy to learn."""
    rng = np.random.default_rng(seed)
    per_image = rng.normal(0, 12, (n, 1, 1, 3))
    per_pixel = rng.normal(0, 4, (n, 64, 64, 3))
    return np.clip(RED + per_image + per_pixel, 0, 255).astype(np.uint8)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def mean_colour_distance(generator: torch.nn.Module, config: DCGANConfig) -> float:
    """Distance of G's mean colour (eval mode, as inpainting uses G) to the data's colour."""
    z = fixed_noise(config, seed=123, count=32)
    with torch.no_grad():
        generator.eval()
        mean_colour = (generator(z).mean(dim=(0, 2, 3)) + 1) * 127.5
        generator.train()
    return float(np.linalg.norm(mean_colour.numpy() - RED))


def test_training_moves_samples_toward_the_data() -> None:
    """A toy problem with a wide margin: flat red squares, whose colour G learns first.

    Ten epochs roughly halve the distance of G's mean colour to the data's (0.46-0.57 of the
    start over seeds 0-2 on one and two threads), so "closer than before" holds with room to
    spare on any CPU. D's loss is deliberately not checked: in an adversarial game it need not
    fall, and its value after a few epochs is a property of one float trajectory (issue 12).
    """
    config = DCGANConfig(image_size=64, nz=16, ngf=16, ndf=16)
    settings = TrainSettings(epochs=10, batch_size=16, lr=1e-3, seed=0)
    distance_0 = mean_colour_distance(seeded_nets(config, 0)[0], config)

    result = train_dcgan(reddish_images(64), config, settings)
    assert not result.generator.training  # handed back ready for inference

    distance_1 = mean_colour_distance(result.generator, config)
    assert distance_1 < distance_0, (distance_0, distance_1)
    assert [h["epoch"] for h in result.history] == list(range(1, 11))
    assert all(np.isfinite(h["loss_d"]) and np.isfinite(h["loss_g"]) for h in result.history)


def test_one_step_reaches_and_changes_every_weight_of_g_and_d() -> None:
    """Gradients flow to every parameter of both nets, the step moves them, losses are finite,
    and D is trainable again afterwards (the G step freezes it only for its own backward)."""
    trainer = DCGANTrainer(TINY, TrainSettings(batch_size=16))
    nets = {"G": trainer.generator, "D": trainer.discriminator}
    before = {
        (name, key): p.detach().clone()
        for name, net in nets.items()
        for key, p in net.named_parameters()
    }
    real = trainer.to_device(to_model_range(reddish_images(16)))
    stats = {k: float(v) for k, v in trainer.step(real, torch.Generator().manual_seed(0)).items()}

    assert all(np.isfinite(v) for v in stats.values()), stats
    assert all(0 < stats[k] < 1 for k in ("d_x", "d_g_z1", "d_g_z2")), stats
    for name, net in nets.items():
        for key, p in net.named_parameters():
            assert p.requires_grad, (name, key)
            assert p.grad is not None and torch.isfinite(p.grad).all(), (name, key)
            assert not torch.equal(p.detach(), before[name, key]), (name, key)


def test_same_seed_gives_identical_weights_and_another_seed_does_not() -> None:
    images = reddish_images(32)
    runs = [
        train_dcgan(images, TINY, TrainSettings(epochs=2, batch_size=16, seed=seed))
        for seed in (7, 7, 8)
    ]
    assert_same_weights(runs[0].generator, runs[1].generator)
    assert_same_weights(runs[0].discriminator, runs[1].discriminator)
    a, c = runs[0].generator.state_dict(), runs[2].generator.state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_one_epoch_plus_resume_equals_two_epochs_bit_for_bit(tmp_path: Path) -> None:
    """Exact, not approximately equal: each epoch's randomness is seeded by (seed, epoch), the
    Adam states are restored, and on one CPU thread the same float operations run in order."""
    images = reddish_images(40)
    straight = train_dcgan(
        images, TINY, TrainSettings(epochs=2, batch_size=16), workdir=tmp_path / "straight"
    )
    train_dcgan(images, TINY, TrainSettings(epochs=1, batch_size=16), workdir=tmp_path / "split")
    resumed = train_dcgan(
        images,
        TINY,
        TrainSettings(epochs=2, batch_size=16),
        workdir=tmp_path / "split",
        resume=True,
    )
    assert resumed.resumed_from_epoch == 1
    assert_same_weights(straight.generator, resumed.generator)
    assert_same_weights(straight.discriminator, resumed.discriminator)
    losses = [(h["loss_d"], h["loss_g"], h["d_x"]) for h in straight.history]
    assert [(h["loss_d"], h["loss_g"], h["d_x"]) for h in resumed.history] == losses


def test_workdir_holds_checkpoint_samples_history_and_curve(tmp_path: Path) -> None:
    settings = TrainSettings(epochs=2, batch_size=16, sample_count=9)
    result = train_dcgan(reddish_images(32), TINY, settings, workdir=tmp_path)

    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    expected = {"loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "seconds", "images_per_s"}
    assert expected <= history[0].keys()
    grid = read_image(tmp_path / "samples" / "epoch_002.png").rgb
    assert grid.shape == (3 * 66 + 2, 3 * 66 + 2, 3)  # 3 x 3 tiles of 64 px, 2 px padding
    assert (tmp_path / "samples" / "epoch_001.png").is_file()
    assert read_image(tmp_path / "loss.png").rgb.shape == (360, 640, 3)
    assert result.sample_grids == [tmp_path / "samples" / f"epoch_00{i}.png" for i in (1, 2)]
    state = read_checkpoint_state(tmp_path)
    assert state is not None and state["epoch"] == 2
    assert DCGANConfig.from_dict(state["config"]) == TINY
    assert TrainSettings.from_dict(state["settings"]) == settings
    names = {p.name for p in (tmp_path / "checkpoint").iterdir()}
    assert names == {
        "generator.safetensors",
        "discriminator.safetensors",
        "optim_g.safetensors",
        "optim_d.safetensors",
        "state.json",
    }
    assert not any(p.suffix == ".pt" or p.suffix == ".pth" for p in tmp_path.rglob("*"))


def test_resuming_a_finished_run_is_a_no_op(tmp_path: Path) -> None:
    images = reddish_images(32)
    settings = TrainSettings(epochs=2, batch_size=16)
    first = train_dcgan(images, TINY, settings, workdir=tmp_path)
    calls: list[tuple[str, int, int]] = []
    again = train_dcgan(
        images, TINY, settings, workdir=tmp_path, resume=True, progress=lambda *c: calls.append(c)
    )
    assert again.history == first.history
    assert again.epochs_done == 2 and again.resumed_from_epoch == 2
    assert_same_weights(first.generator, again.generator)
    assert calls == [("train dcgan", 4, 4)]  # reported as complete, no batch trained


def test_resume_refuses_another_config_settings_or_dataset(tmp_path: Path) -> None:
    images = reddish_images(32)
    settings = TrainSettings(epochs=1, batch_size=16)
    train_dcgan(images, TINY, settings, workdir=tmp_path)
    more = TrainSettings(epochs=2, batch_size=16)
    wider = DCGANConfig(image_size=64, nz=16, ngf=16, ndf=8)
    with pytest.raises(InvalidParameter, match="ngf"):
        train_dcgan(images, wider, more, workdir=tmp_path, resume=True)
    with pytest.raises(InvalidParameter, match="batch_size"):
        train_dcgan(
            images, TINY, TrainSettings(epochs=2, batch_size=8), workdir=tmp_path, resume=True
        )
    with pytest.raises(InvalidParameter, match="images"):
        train_dcgan(reddish_images(32, seed=5), TINY, more, workdir=tmp_path, resume=True)
    with pytest.raises(InvalidParameter, match="resume"):  # never silently overwrite a run
        train_dcgan(images, TINY, more, workdir=tmp_path)


def test_resume_survives_a_crash_between_the_checkpoint_renames(tmp_path: Path) -> None:
    images = reddish_images(16)
    train_dcgan(images, TINY, TrainSettings(epochs=1, batch_size=16), workdir=tmp_path)
    (tmp_path / "checkpoint").rename(tmp_path / ".checkpoint.old")  # as if killed mid-swap
    resumed = train_dcgan(
        images, TINY, TrainSettings(epochs=2, batch_size=16), workdir=tmp_path, resume=True
    )
    assert resumed.resumed_from_epoch == 1
    assert not (tmp_path / ".checkpoint.old").exists()


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path: Path) -> None:
    images = reddish_images(16)
    settings = TrainSettings(epochs=1, batch_size=16)
    fresh = train_dcgan(images, TINY, settings)
    resumed = train_dcgan(images, TINY, settings, workdir=tmp_path, resume=True)
    assert resumed.resumed_from_epoch == 0
    assert_same_weights(fresh.generator, resumed.generator)


@pytest.mark.parametrize(
    ("n", "batch", "expected"),
    [
        (5, 64, (5, 1, False)),
        (64, 64, (64, 1, True)),
        (70, 64, (64, 1, True)),
        (130, 64, (64, 2, True)),
    ],
)
def test_batches_per_epoch_keeps_at_least_one_batch(n: int, batch: int, expected: tuple) -> None:
    assert batches_per_epoch(n, batch) == expected


def test_a_dataset_smaller_than_one_batch_still_trains_and_reports_progress() -> None:
    calls: list[tuple[str, int, int]] = []
    settings = TrainSettings(epochs=3, batch_size=64, name="c2")
    result = train_dcgan(reddish_images(5), TINY, settings, progress=lambda *c: calls.append(c))
    assert len(result.history) == 3
    assert calls == [("train c2", i, 3) for i in range(4)]  # 0 first, then one per batch


def test_invalid_training_data_and_settings_are_typed_errors() -> None:
    with pytest.raises(DatasetError):
        train_dcgan(np.zeros((0, 64, 64, 3), np.uint8), TINY, TrainSettings(epochs=1))
    with pytest.raises(DatasetError, match="64 x 64"):
        train_dcgan(np.zeros((4, 128, 128, 3), np.uint8), TINY, TrainSettings(epochs=1))
    with pytest.raises(DatasetError, match="uint8"):
        train_dcgan(np.zeros((4, 64, 64, 3), np.float32), TINY, TrainSettings(epochs=1))
    with pytest.raises(InvalidParameter):
        TrainSettings(epochs=0)
    with pytest.raises(InvalidParameter):
        TrainSettings(lr=float("nan"))


def test_channels_last_changes_layout_not_results() -> None:
    """The CPU speed-up must not change the maths: same losses and D outputs on the first step.

    Only the first step is compared: later, Adam divides tiny gradients by their own magnitude,
    so float rounding differences between layouts grow into visible weight differences.
    """
    images = to_model_range(reddish_images(16))
    stats = []
    for channels_last in (False, True):
        trainer = DCGANTrainer(TINY, TrainSettings(batch_size=16, channels_last=channels_last))
        real = trainer.to_device(images)
        assert real.is_contiguous(memory_format=torch.channels_last) == channels_last
        step = trainer.step(real, torch.Generator().manual_seed(0))
        stats.append({k: float(v) for k, v in step.items()})
    for key, value in stats[0].items():
        assert stats[1][key] == pytest.approx(value, rel=1e-4), key


# --- options for small datasets (issue 8) ---------------------------------------------------------
def _one_plus_one_equals_two(tmp_path: Path, settings: TrainSettings, **kwargs) -> tuple:
    images = reddish_images(40)
    straight = train_dcgan(images, TINY, settings, workdir=tmp_path / "straight", **kwargs)
    first = replace(settings, epochs=1)
    train_dcgan(images, TINY, first, workdir=tmp_path / "split", **kwargs)
    resumed = train_dcgan(images, TINY, settings, workdir=tmp_path / "split", resume=True, **kwargs)
    assert resumed.resumed_from_epoch == 1
    return straight, resumed


def test_ema_and_diffaugment_resume_bit_for_bit(tmp_path: Path) -> None:
    settings = TrainSettings(
        epochs=2, batch_size=16, ema=0.99, diffaugment="color,translation,cutout"
    )
    straight, resumed = _one_plus_one_equals_two(tmp_path, settings)
    assert straight.generator_ema is not None and resumed.generator_ema is not None
    assert_same_weights(straight.generator_ema, resumed.generator_ema)
    assert_same_weights(straight.generator, resumed.generator)
    assert_same_weights(straight.discriminator, resumed.discriminator)
    assert (tmp_path / "split/checkpoint/generator_ema.safetensors").is_file()


def test_the_ema_generator_is_an_average_that_inference_uses() -> None:
    result = train_dcgan(reddish_images(32), TINY, TrainSettings(epochs=2, batch_size=16, ema=0.9))
    ema, raw = result.generator_ema, result.generator
    assert ema is not None and result.inference_generator is ema and not ema.training
    assert not any(p.requires_grad for p in ema.parameters())
    differs = [
        not torch.equal(a, b) for a, b in zip(ema.parameters(), raw.parameters(), strict=True)
    ]
    assert all(differs)
    assert all(torch.isfinite(p).all() for p in ema.parameters())
    plain = train_dcgan(reddish_images(32), TINY, TrainSettings(epochs=2, batch_size=16))
    assert plain.generator_ema is None and plain.inference_generator is plain.generator


def test_ema_off_and_no_augmentation_train_exactly_as_before() -> None:
    """The options draw no random numbers when off: the default trajectory is unchanged."""
    images = reddish_images(32)
    a = train_dcgan(images, TINY, TrainSettings(epochs=1, batch_size=16))
    b = train_dcgan(images, TINY, TrainSettings(epochs=1, batch_size=16, ema=0.0, diffaugment=""))
    assert_same_weights(a.generator, b.generator)
    with_aug = train_dcgan(
        images, TINY, TrainSettings(epochs=1, batch_size=16, diffaugment="color")
    )
    sa, sb = a.generator.state_dict(), with_aug.generator.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)


def test_fine_tuning_starts_from_the_given_weights_and_resumes_only_from_them(
    tmp_path: Path,
) -> None:
    images = reddish_images(32)
    general = train_dcgan(images, TINY, TrainSettings(epochs=1, batch_size=16, seed=3))
    init = InitialWeights.from_nets(general.generator, general.discriminator)
    trainer = DCGANTrainer(TINY, TrainSettings(seed=0), init)
    assert_same_weights(trainer.generator, general.generator)  # not seed 0's random init
    assert_same_weights(trainer.discriminator, general.discriminator)

    straight, resumed = _one_plus_one_equals_two(
        tmp_path, TrainSettings(epochs=2, batch_size=16), init=init
    )
    assert_same_weights(straight.generator, resumed.generator)
    other = InitialWeights.from_nets(*seeded_nets(TINY, 9))
    with pytest.raises(InvalidParameter, match="initial weights"):
        train_dcgan(
            reddish_images(40),
            TINY,
            TrainSettings(epochs=3, batch_size=16),
            workdir=tmp_path / "split",
            resume=True,
            init=other,
        )
    wider = DCGANConfig(image_size=64, nz=16, ngf=16, ndf=8)
    with pytest.raises(InvalidParameter, match="initial weights do not fit"):
        DCGANTrainer(wider, TrainSettings(), init)


def test_spectral_norm_d_trains_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    config = DCGANConfig(image_size=64, nz=16, ngf=8, ndf=8, spectral_norm=True)
    images = reddish_images(40)
    settings = TrainSettings(epochs=2, batch_size=16)
    straight = train_dcgan(images, config, settings, workdir=tmp_path / "a")
    train_dcgan(images, config, replace(settings, epochs=1), workdir=tmp_path / "b")
    resumed = train_dcgan(images, config, settings, workdir=tmp_path / "b", resume=True)
    assert_same_weights(straight.discriminator, resumed.discriminator)  # u, v vectors included
    assert all(np.isfinite(h["loss_d"]) for h in straight.history)


@pytest.mark.parametrize(("small", "large"), [(100, 1000), (500, 1000), (64, 2722)])
def test_an_iterations_budget_gives_clusters_of_any_size_about_equal_steps(
    small: int, large: int
) -> None:
    settings = TrainSettings(iterations=300, batch_size=64)
    steps = []
    for n in (small, large):
        _, per_epoch, _ = batches_per_epoch(n, 64)
        steps.append(settings.epochs_for(per_epoch) * per_epoch)
        assert abs(steps[-1] - 300) <= per_epoch / 2 + 1e-9 or steps[-1] == per_epoch
    result = train_dcgan(reddish_images(48), TINY, TrainSettings(iterations=7, batch_size=16))
    assert result.steps == 6 and result.epochs_done == 2  # 3 batches an epoch: 7 -> 2 epochs


def test_a_checkpoint_from_before_the_options_existed_still_resumes(tmp_path: Path) -> None:
    images = reddish_images(16)
    train_dcgan(images, TINY, TrainSettings(epochs=1, batch_size=16), workdir=tmp_path)
    path = tmp_path / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    for key in ("ema", "diffaugment", "iterations"):
        del state["settings"][key]
    del state["init_sha256"]
    path.write_text(json.dumps(state))
    resumed = train_dcgan(
        images, TINY, TrainSettings(epochs=2, batch_size=16), workdir=tmp_path, resume=True
    )
    assert resumed.resumed_from_epoch == 1
    with pytest.raises(InvalidParameter, match="ema"):
        train_dcgan(
            images,
            TINY,
            TrainSettings(epochs=3, batch_size=16, ema=0.9),
            workdir=tmp_path,
            resume=True,
        )


def test_invalid_options_are_typed_errors() -> None:
    for bad in ({"ema": 1.0}, {"ema": -0.1}, {"iterations": 0}, {"diffaugment": "rotate"}):
        with pytest.raises(InvalidParameter):
            TrainSettings(**bad)


# --- throughput (issue 9): checkpoints every N epochs, the dataset on the device ------------------
class _Interrupted(Exception):
    """Stands for a kill in the middle of a run."""


def _interrupt_at(step: int):
    def progress(stage: str, done: int, total: int) -> None:
        if done == step:
            raise _Interrupted

    return progress


def test_checkpoint_every_n_epochs_saves_those_and_the_last(tmp_path: Path) -> None:
    settings = TrainSettings(epochs=3, batch_size=16, sample_count=4, checkpoint_every=2)
    result = train_dcgan(reddish_images(32), TINY, settings, workdir=tmp_path)
    assert [p.name for p in result.sample_grids] == ["epoch_002.png", "epoch_003.png"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_002.png",
        "epoch_003.png",
    ]
    state = read_checkpoint_state(tmp_path)
    assert state is not None and state["epoch"] == 3 and len(state["history"]) == 3
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())] == [1, 2, 3]


def test_an_interrupted_run_with_checkpoint_every_resumes_bit_for_bit(tmp_path: Path) -> None:
    """Killed in epoch 4 of 4 with checkpoints every 2: epochs 3 and 4 are trained again from the
    epoch-2 checkpoint, to the same bits as a run that was never interrupted."""
    images = reddish_images(32)  # 2 batches of 16 per epoch
    settings = TrainSettings(epochs=4, batch_size=16, checkpoint_every=2)
    straight = train_dcgan(images, TINY, settings, workdir=tmp_path / "straight")
    with pytest.raises(_Interrupted):
        train_dcgan(images, TINY, settings, workdir=tmp_path / "split", progress=_interrupt_at(7))
    state = read_checkpoint_state(tmp_path / "split")
    assert state is not None and state["epoch"] == 2  # epoch 3 ended, but was not saved
    resumed = train_dcgan(images, TINY, settings, workdir=tmp_path / "split", resume=True)
    assert resumed.resumed_from_epoch == 2
    assert_same_weights(straight.generator, resumed.generator)
    assert_same_weights(straight.discriminator, resumed.discriminator)
    losses = [(h["epoch"], h["loss_d"], h["loss_g"], h["d_x"]) for h in straight.history]
    assert [(h["epoch"], h["loss_d"], h["loss_g"], h["d_x"]) for h in resumed.history] == losses


def test_checkpoint_every_is_not_a_trajectory_setting(tmp_path: Path) -> None:
    """A run saved every epoch may be resumed saving every 5: the weights do not depend on it."""
    images = reddish_images(32)
    train_dcgan(images, TINY, TrainSettings(epochs=1, batch_size=16), workdir=tmp_path)
    later = TrainSettings(epochs=2, batch_size=16, checkpoint_every=5)
    resumed = train_dcgan(images, TINY, later, workdir=tmp_path, resume=True)
    straight = train_dcgan(images, TINY, TrainSettings(epochs=2, batch_size=16))
    assert resumed.resumed_from_epoch == 1
    assert_same_weights(straight.generator, resumed.generator)
    with pytest.raises(InvalidParameter, match="checkpoint_every"):
        TrainSettings(checkpoint_every=0)


def test_device_resident_batches_equal_per_batch_copies() -> None:
    """The GPU path (whole dataset converted once, batches indexed there) picks the same images
    with the same values as the per-batch conversion; checked on the CPU, where both run."""
    images = reddish_images(40)
    trainer = DCGANTrainer(TINY, TrainSettings(batch_size=16))
    copied = TrainingBatches(images, trainer, resident=False)
    kept = TrainingBatches(images, trainer, resident=True)
    assert copied.resident is None and kept.resident is not None
    host, noise_rng = kept.epoch_rngs(seed=0, epoch=3)
    assert host is noise_rng  # the CPU keeps its single historic stream
    order = kept.order(torch.Generator().manual_seed(5))
    assert torch.equal(order, copied.order(torch.Generator().manual_seed(5)))
    for i in range(2):
        a, b = copied.batch(order, i, 16), kept.batch(order, i, 16)
        assert torch.equal(a, b)
        assert a.is_contiguous(memory_format=trainer.memory_format)
        assert b.is_contiguous(memory_format=trainer.memory_format)
    assert not TrainingBatches(images, trainer).resident  # automatic: per batch on the CPU
