"""The API's view of the registry: the current bundle, re-read cheaply on every request.

``REGISTRY/current`` is one small file, so reading it per request costs a few microseconds and a
bundle promoted with ``restauro models promote`` is used by the next request, without restarts.
Loaded bundles are cached per version (they are immutable), so routing never reloads features.
"""

from __future__ import annotations

from pathlib import Path

from restauro.bundle import Bundle
from restauro.registry import BundleCache as VersionCache
from service.errors import NoActiveBundle


class BundleCache(VersionCache):
    """The registry's per-version cache, plus "the current bundle" as the API means it."""

    def __init__(self, registry: Path, keep_versions: int = 2) -> None:
        super().__init__(registry, keep_versions)
        self.root = Path(registry)

    def current_version(self) -> str | None:
        return self.registry.current_version()

    def current(self) -> Bundle:
        version = self.current_version()
        if version is None:
            raise NoActiveBundle(
                f"no model bundle is active in {self.root}: train and promote one first"
            )
        return self.get(version)
