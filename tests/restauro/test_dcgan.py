"""The DCGAN's shapes at both supported sizes, and its config as it travels in manifests."""

from __future__ import annotations

import pytest
import torch

from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.errors import InvalidParameter


@pytest.mark.parametrize("size", [64, 128])
def test_generator_and_discriminator_shapes(size: int) -> None:
    config = DCGANConfig(image_size=size, nz=16, ngf=8, ndf=8)
    generator, discriminator = Generator(config), Discriminator(config)
    z = torch.randn(3, 16)
    images = generator(z)
    assert images.shape == (3, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    assert torch.equal(generator.eval()(z), generator(z[:, :, None, None]))  # both z layouts
    logits = discriminator(images)
    assert logits.shape == (3,)


def test_128_px_nets_are_one_block_deeper_than_64() -> None:
    def convs(module: torch.nn.Module) -> int:
        return sum(
            isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d) for m in module.modules()
        )

    small, large = DCGANConfig(64, 16, 8, 8), DCGANConfig(128, 16, 8, 8)
    assert convs(Generator(large)) == convs(Generator(small)) + 1
    assert convs(Discriminator(large)) == convs(Discriminator(small)) + 1


def test_config_round_trip_through_a_dict() -> None:
    config = DCGANConfig(image_size=128, nz=32, ngf=16, ndf=24)
    data = config.to_dict()
    assert data == {
        "image_size": 128,
        "nz": 32,
        "ngf": 16,
        "ndf": 24,
        "nc": 3,
        "spectral_norm": False,
    }
    assert DCGANConfig.from_dict(data) == config
    assert DCGANConfig.from_dict({**data, "unrelated": "ignored"}) == config
    sn = DCGANConfig(image_size=64, nz=8, ngf=8, ndf=8, spectral_norm=True)
    assert DCGANConfig.from_dict(sn.to_dict()) == sn


def test_a_manifest_written_before_spectral_norm_existed_loads_without_it() -> None:
    old = {"image_size": 64, "nz": 16, "ngf": 8, "ndf": 8, "nc": 3}  # no spectral_norm key
    config = DCGANConfig.from_dict(old)
    assert config.spectral_norm is False
    keys = Discriminator(config).state_dict().keys()
    assert keys == Discriminator(DCGANConfig(64, 16, 8, 8)).state_dict().keys()


def test_spectral_norm_replaces_batch_norm_in_d_and_bounds_its_layers() -> None:
    config = DCGANConfig(image_size=64, nz=16, ngf=8, ndf=8, spectral_norm=True)
    d = Discriminator(config)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(hasattr(m, "parametrizations") for m in convs)
    for _ in range(30):  # power iterations run in train-mode forwards
        d(torch.randn(4, 3, 64, 64))
    d.eval()
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert 0.9 < float(sigma) < 1.1
    assert d(torch.randn(2, 3, 64, 64)).shape == (2,)
    # G is the same net with or without spectral norm in D: the z-search is unaffected
    plain = DCGANConfig(image_size=64, nz=16, ngf=8, ndf=8)
    assert Generator(config).state_dict().keys() == Generator(plain).state_dict().keys()


@pytest.mark.parametrize(
    "kwargs", [{"image_size": 96}, {"image_size": 32}, {"nz": 0}, {"ngf": -1}, {"ndf": 0}]
)
def test_invalid_config_is_rejected_with_a_typed_error(kwargs: dict) -> None:
    with pytest.raises(InvalidParameter):
        DCGANConfig(**kwargs)
