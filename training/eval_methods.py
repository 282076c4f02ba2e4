"""The evaluation's methods: what restores a damaged test painting, registered by name.

A GAN method names whose networks restore (the routed cluster, the general DCGAN or the oracle
cluster) and ``InpaintParams`` overrides; a classical one is a function. A new restoration variant
is one line (:func:`gan_variant`), so that one evaluation compares it with the others on the same
paintings, masks and seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from restauro.errors import InvalidParameter
from restauro.inpaint import InpaintParams
from restauro.metrics import ns_baseline, telea_baseline

ROUTED, GENERAL_TARGET, ORACLE = "routed", "general", "oracle"
GAN_TARGETS = (ROUTED, GENERAL_TARGET, ORACLE)


# --- the method registry -------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """One way of restoring a damaged painting.

    A GAN method names whose networks restore (``target``: the routed cluster, the general DCGAN,
    or the oracle cluster) and how: ``overrides`` of the evaluation's ``InpaintParams`` (the
    paper's engine, the GAN on every hole, so that cluster vs general compares GANs), or
    ``product_engine``: whatever engine ``restore()`` uses by default, i.e. what a user gets. A
    classical method is a function ``(damaged rgb, mask) -> restored rgb``.
    """

    name: str
    description: str
    target: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    classical: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    product_engine: bool = False

    @property
    def is_gan(self) -> bool:
        return self.target is not None


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (a name may be registered once)."""
    if method.name in METHODS:
        raise InvalidParameter(f"evaluation method {method.name!r} is already registered")
    if (method.target is None) == (method.classical is None):
        raise InvalidParameter(f"method {method.name!r} needs exactly one of target / classical")
    if method.target is not None and method.target not in GAN_TARGETS:
        raise InvalidParameter(f"method {method.name!r}: target must be one of {GAN_TARGETS}")
    try:  # unknown or out-of-range parameters fail at registration, not after an hour of work
        replace(InpaintParams(), **dict(method.overrides))
    except TypeError as exc:
        raise InvalidParameter(f"method {method.name!r}: {exc}") from exc
    METHODS[method.name] = method
    return method


def gan_variant(name: str, target: str = ROUTED, description: str = "", **overrides: Any) -> Method:
    """Register a GAN restoration variant: a name, whose networks, and InpaintParams overrides."""
    text = description or f"{target} GAN with {overrides}"
    return register(Method(name, text, target=target, overrides=overrides))


gan_variant("cluster", ROUTED, "the GAN of the cluster the painting is routed to")
gan_variant("general", GENERAL_TARGET, "the general DCGAN trained on every painting")
gan_variant(
    "oracle", ORACLE, "best cluster per painting against the original: upper bound on routing"
)
register(
    Method(
        "product",
        "restore() with its default engine and routing: what a user of the service gets",
        target=ROUTED,
        product_engine=True,
    )
)
register(Method("telea", "OpenCV fast-marching inpainting (Telea 2004)", classical=telea_baseline))
register(Method("navier_stokes", "OpenCV Navier-Stokes (Bertalmio 2001)", classical=ns_baseline))


def resolve_methods(names: Sequence[str] | None) -> list[Method]:
    """The registered methods of these names (all, in registration order, for None)."""
    if names is None:
        return list(METHODS.values())
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise InvalidParameter(f"unknown methods {unknown}; registered: {', '.join(METHODS)}")
    return [METHODS[n] for n in dict.fromkeys(names)]
