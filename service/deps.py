"""Typed dependencies: settings, job store, bundle cache, queue and the API-key check.

Long-lived objects are built by ``create_app`` and kept on ``app.state``; handlers receive them
through these aliases, so tests pass their own settings to ``create_app(settings)`` and nothing is
created at import time.

The dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
and four thread hops per request cost a status poll more than everything else it does. Settings
come from ``app.state`` too, not from a ``dependency_overrides`` entry, which FastAPI analyses
again on every request.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from restauro.config import Settings
from restauro.jobs import JobStore
from service.bundles import BundleCache
from service.errors import Unauthorized
from service.metrics import Metrics
from service.queue import JobQueue


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(_settings)]


async def _store(request: Request) -> JobStore:
    return request.app.state.store


async def _bundles(request: Request) -> BundleCache:
    return request.app.state.bundles


async def _queue(request: Request) -> JobQueue:
    return request.app.state.queue


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


StoreDep = Annotated[JobStore, Depends(_store)]
BundlesDep = Annotated[BundleCache, Depends(_bundles)]
QueueDep = Annotated[JobQueue, Depends(_queue)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


async def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="required when keys are set")] = None,
) -> None:
    """Museum systems authenticate with X-API-Key when keys are configured (off by default)."""
    if not settings.api_keys:
        return
    if x_api_key is None or not any(
        secrets.compare_digest(x_api_key.encode(), key.encode()) for key in settings.api_keys
    ):
        raise Unauthorized("missing or unknown X-API-Key")
