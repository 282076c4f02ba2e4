"""Helpers for networks that several parts of Restauro share (training, encoders, inpainting).

A bundle's nets are loaded once per worker and shared by every restoration (and, in tests and
benchmarks, by a training loop): whoever borrows them for a while must hand them back exactly as
found. :func:`frozen` is that contract, in one place for the z-search, the encoder's training and
the generator fine-tuning at restoration time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen(*modules: nn.Module | Iterable[nn.Module | None] | None) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration; each module's state comes back.

    Accepts modules, ``None`` (skipped: an optional encoder) or iterables of them, so both
    ``frozen(generator)`` and ``frozen([generator, discriminator, encoder])`` read naturally.
    Gradients still flow *through* a frozen module to its inputs (z, or a generator upstream);
    only its own weights get none, and batch norm reads its running statistics without
    updating them.
    """
    saved: list[tuple[nn.Module, bool, list[bool]]] = []
    for module in dict.fromkeys(_flatten(modules)):  # a module named twice is saved once
        saved.append((module, module.training, [p.requires_grad for p in module.parameters()]))
        module.eval()
        module.requires_grad_(False)
    try:
        yield
    finally:
        for module, training, flags in saved:
            module.train(training)
            for param, flag in zip(module.parameters(), flags, strict=True):
                param.requires_grad_(flag)


def _flatten(items: Iterable[object]) -> Iterator[nn.Module]:
    for item in items:
        if item is None:
            continue
        if isinstance(item, nn.Module):
            yield item
        else:
            yield from _flatten(item)  # type: ignore[arg-type]
