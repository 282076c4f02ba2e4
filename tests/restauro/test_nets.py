"""frozen(): borrowed nets come back exactly as they were found."""

from __future__ import annotations

import torch
from torch import nn

from restauro.nets import frozen


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))


def test_frozen_sets_eval_and_no_grad_then_restores_each_module() -> None:
    a, b = _net().train(), _net().eval()
    b[0].weight.requires_grad_(False)  # a mixed state must come back as it was
    with frozen([a, None], b, a):  # nested lists, None and a repeat are all accepted
        for m in (a, b):
            assert not m.training
            assert not any(p.requires_grad for p in m.parameters())
    assert a.training and not b.training
    assert all(p.requires_grad for p in a.parameters())
    assert not b[0].weight.requires_grad and b[0].bias.requires_grad


def test_gradients_flow_through_a_frozen_module_to_its_input() -> None:
    net = _net()
    x = torch.randn(4, 3, requires_grad=True)
    with frozen(net):
        net(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in net.parameters())


def test_state_comes_back_when_the_block_raises() -> None:
    net = _net().train()
    try:
        with frozen(net):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert net.training and all(p.requires_grad for p in net.parameters())
