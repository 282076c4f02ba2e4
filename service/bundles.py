"""The API's view of the registry: the current bundle, re-read cheaply on every request.

``REGISTRY/current`` is one small file, so reading it per request costs a few microseconds and a
bundle promoted with ``restauro models promote`` is used by the next request, without restarts.
Loaded bundles are cached per version (they are immutable), so routing never reloads features.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from restauro.registry import Registry
from service.errors import NoActiveBundle


class BundleCache:
    def __init__(self, registry: Path, keep_versions: int = 2) -> None:
        self.root = Path(registry)
        self.registry = Registry(self.root)
        self.keep_versions = keep_versions
        self._bundles: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def current_version(self) -> str | None:
        return self.registry.current_version()

    def current(self) -> Any:
        version = self.current_version()
        if version is None:
            raise NoActiveBundle(
                f"no model bundle is active in {self.root}: train and promote one first"
            )
        return self.get(version)

    def get(self, version: str) -> Any:
        """A bundle by version; bad names and unknown versions raise the registry's errors."""
        with self._lock:
            if version in self._bundles:
                self._bundles.move_to_end(version)
                return self._bundles[version]
        bundle = self.registry.load(version)  # outside the lock: loading takes a while
        with self._lock:
            self._bundles[version] = bundle
            while len(self._bundles) > self.keep_versions:
                self._bundles.popitem(last=False)
        return bundle
