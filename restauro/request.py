"""One restoration request, typed and checked once, and the plan that follows from it.

Every adapter turns its input into a :class:`RestoreRequest`: the HTTP form
(``service/routers/restorations.py``), the CLI flags (``restauro inpaint``) and the evaluation.
:meth:`RestoreRequest.from_settings` applies the deployment's defaults and limits, so the API and
the CLI accept and refuse the same values with the same messages.

:func:`restauro.restore.plan` then decides, in one place, which networks restore the painting
(routing it when the request says ``auto``) and which queue carries the job; the result is a
:class:`RestorePlan`, stored with a job (``job.json``) and followed by the worker without being
decided again.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from restauro.bundle import GENERAL, Route, Target
from restauro.errors import InvalidParameter
from restauro.inpaint.params import InpaintParams
from restauro.webhooks import check_callback_url, check_url_shape

if TYPE_CHECKING:
    from restauro.config import Settings

AUTO = "auto"  # route the painting to its nearest cluster
MAX_SEED = 2**31 - 1


def check_range(name: str, value: object, low: int, high: int | None = None) -> int:
    """An integer within [low, high] (high None: no upper bound), or a clear InvalidParameter."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidParameter(f"{name} must be {bounds}, got {value}")
    return value


@dataclass(frozen=True)
class RestoreRequest:
    """What a caller asks for: which networks, how many completions, how long a search, which seed.

    ``target`` is ``"auto"`` (route by the painting's visible pixels), ``"general"`` (the general
    DCGAN, the paper's baseline) or a cluster id. ``callback_url``: where to POST the job's JSON
    when it ends (restauro/webhooks.py); it travels with the job, not with the search.
    Construction checks the values' own bounds; :meth:`from_settings` also applies a deployment's
    defaults and upper limits (and its webhook allow-list).
    """

    target: Target = AUTO
    candidates: int = InpaintParams.candidates
    steps: int = InpaintParams.steps
    seed: int = 0
    callback_url: str | None = None

    def __post_init__(self) -> None:
        if self.target not in (AUTO, GENERAL):
            check_range("cluster", self.target, 0)
        check_range("candidates", self.candidates, 1)
        check_range("steps", self.steps, 1)
        check_range("seed", self.seed, 0, MAX_SEED)
        if self.callback_url is not None:
            check_url_shape(self.callback_url)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        cluster: int | None = None,
        general: bool = False,
        candidates: int | None = None,
        steps: int | None = None,
        seed: int | None = None,
        callback_url: str | None = None,
    ) -> RestoreRequest:
        """A request from user input; None = the deployment's default (a random seed for seed).

        A ``callback_url`` must pass the deployment's webhook rules (a secret is set, the host
        is allowed): refused here, before anything is uploaded or routed.
        """
        if general and cluster is not None:
            raise InvalidParameter("choose a cluster or the general DCGAN, not both")
        if candidates is None:
            candidates = settings.candidates or InpaintParams.candidates
        if steps is None:
            steps = settings.steps or InpaintParams.steps
        check_range("candidates", candidates, 1, settings.max_candidates)
        check_range("steps", steps, 1, settings.max_steps)
        target: Target = GENERAL if general else (AUTO if cluster is None else cluster)
        seed = secrets.randbelow(MAX_SEED + 1) if seed is None else seed
        if callback_url is not None:
            callback_url = check_callback_url(
                callback_url, settings.webhook_hosts, settings.webhook_secret
            )
        return cls(
            target=target,
            candidates=candidates,
            steps=steps,
            seed=seed,
            callback_url=callback_url,
        )

    def params(self) -> dict[str, Any]:
        """The search parameters as stored in ``job.json`` and shown by the API."""
        return {"candidates": self.candidates, "steps": self.steps, "seed": self.seed}

    def inpaint_params(self, base: InpaintParams | None = None) -> InpaintParams:
        """The engine's parameters: ``base`` (expert knobs; default the engine's) with this
        request's candidates, steps and seed.

        ``steps`` is the request's optimisation budget, so generator fine-tuning (when ``base``
        has it) keeps its share of it: a request for fewer z-steps than ``base`` gets
        proportionally fewer fine-tuning steps (a 3-step preview does not pay for 100 steps of
        fine-tuning); more z-steps leave fine-tuning as it is.
        """
        base = base or InpaintParams()
        params = replace(base, **self.params())
        if base.finetune_steps and params.steps < base.steps:
            share = math.ceil(base.finetune_steps * params.steps / base.steps)
            params = replace(params, finetune_steps=max(1, share))
        return params


@dataclass(frozen=True)
class RestorePlan:
    """Where one request goes, decided once: the bundle version, its networks, the queue.

    ``request.target`` is resolved (a cluster id or ``"general"``, never ``"auto"``); ``route``
    holds the routing distances when the painting was routed.
    """

    bundle_version: str
    target: str  # "c3" or "general": the networks' folder and queue suffix
    queue: str
    request: RestoreRequest
    route: Route | None = None

    def __post_init__(self) -> None:
        if self.request.target == AUTO:
            raise InvalidParameter("a plan needs a resolved target, not 'auto'")

    @property
    def cluster(self) -> int | None:
        """The cluster id, or None for the general DCGAN."""
        target = self.request.target
        return None if target == GENERAL else int(target)

    def to_dict(self) -> dict[str, Any]:
        """The plan's part of ``job.json`` (and of the API's job view)."""
        return {
            "bundle_version": self.bundle_version,
            "target": self.target,
            "cluster": self.cluster,
            "queue": self.queue,
            "route": self.route.to_dict() if self.route is not None else None,
            "params": self.request.params(),
            "callback_url": self.request.callback_url,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestorePlan:
        cluster = data.get("cluster")
        target: Target = GENERAL if cluster is None else int(cluster)
        request = RestoreRequest(
            target=target, callback_url=data.get("callback_url"), **data["params"]
        )
        route = data.get("route")
        return cls(
            bundle_version=data["bundle_version"],
            target=data["target"],
            queue=data["queue"],
            request=request,
            route=Route.from_dict(route) if route is not None else None,
        )
