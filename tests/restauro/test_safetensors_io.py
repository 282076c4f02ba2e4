"""safetensors checkpoints: modules, optimizer states, sha256 checks, no pickle."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restauro.dcgan import DCGANConfig, Generator
from restauro.errors import BundleCorrupt
from restauro.safetensors_io import (
    load_module_state,
    load_optimizer,
    save_module,
    save_optimizer,
    sha256_file,
)

TINY = DCGANConfig(nz=8, ngf=8, ndf=8)


def test_module_round_trip_with_sha256(tmp_path: Path) -> None:
    net = Generator(TINY).to(memory_format=torch.channels_last)
    digest = save_module(net, tmp_path / "g.safetensors")
    assert digest == sha256_file(tmp_path / "g.safetensors")
    state = load_module_state(tmp_path / "g.safetensors", expected_sha256=digest)
    fresh = Generator(TINY)
    fresh.load_state_dict(state)
    ref = net.state_dict()
    assert all(torch.equal(ref[k], v) for k, v in fresh.state_dict().items())  # BN buffers too
    assert [p.name for p in tmp_path.iterdir()] == ["g.safetensors"]  # no temporary left over


def test_altered_missing_or_garbage_files_are_bundle_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "g.safetensors"
    digest = save_module(Generator(TINY), path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleCorrupt, match="sha256"):
        load_module_state(path, expected_sha256=digest)
    with pytest.raises(BundleCorrupt, match="missing"):
        load_module_state(tmp_path / "absent.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(BundleCorrupt):
        load_module_state(tmp_path / "junk.safetensors")


def test_adam_state_round_trip_continues_identically(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optim = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.5, 0.999))
    data = torch.randn(8, 4)

    def step(m: torch.nn.Module, o: torch.optim.Optimizer) -> None:
        o.zero_grad()
        m(data).square().mean().backward()
        o.step()

    for _ in range(3):
        step(model, optim)
    save_module(model, tmp_path / "m.safetensors")
    save_optimizer(optim, tmp_path / "o.safetensors")

    clone = torch.nn.Linear(4, 3)
    clone.load_state_dict(load_module_state(tmp_path / "m.safetensors"))
    clone_optim = torch.optim.Adam(clone.parameters(), lr=1.0)  # hyperparameters come from disk
    load_optimizer(clone_optim, tmp_path / "o.safetensors")
    assert clone_optim.param_groups[0]["betas"] == (0.5, 0.999)
    assert clone_optim.param_groups[0]["lr"] == 1e-2
    step(model, optim)
    step(clone, clone_optim)
    assert torch.equal(model.weight, clone.weight) and torch.equal(model.bias, clone.bias)


def test_a_weights_file_is_not_an_optimizer_state(tmp_path: Path) -> None:
    save_module(torch.nn.Linear(2, 2), tmp_path / "m.safetensors")
    optim = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
    with pytest.raises(BundleCorrupt, match="optimizer"):
        load_optimizer(optim, tmp_path / "m.safetensors")
