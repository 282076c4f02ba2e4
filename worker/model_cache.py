"""Bundles and generators kept in memory, one cache per worker child process.

A worker process restores many jobs with the same few generators, so loading weights per job would
dominate. The cache is filled lazily by the first job that needs a (bundle version, target): it is
created after the fork, so the parent of a prefork pool never touches CUDA. Jobs name the bundle
version they were routed with, so a newly promoted bundle is simply a new key: jobs in flight keep
finishing on the old one, and new jobs load the new one without any restart.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

from restauro.bundle import Bundle
from restauro.registry import Registry


class ModelCache:
    """The most recently used bundle versions of one process (older ones are dropped).

    A Bundle memoizes its own networks per (target, device), so keeping the Bundle keeps them.
    """

    def __init__(self, registry: Path, keep_versions: int = 2) -> None:
        self.root = Path(registry)
        self.registry = Registry(self.root)
        self.keep_versions = keep_versions
        self._bundles: OrderedDict[str, Bundle] = OrderedDict()
        self._lock = threading.Lock()
        self.pid = os.getpid()

    def bundle(self, version: str) -> Bundle:
        with self._lock:
            if version in self._bundles:
                self._bundles.move_to_end(version)
                return self._bundles[version]
            bundle = self.registry.load(version)
            self._bundles[version] = bundle
            while len(self._bundles) > self.keep_versions:
                self._bundles.popitem(last=False)
            return bundle


_cache: ModelCache | None = None


def process_cache(registry: Path) -> ModelCache:
    """This process's cache; a forked child gets its own instead of inheriting the parent's."""
    global _cache
    if _cache is None or _cache.pid != os.getpid() or _cache.root != Path(registry):
        _cache = ModelCache(registry)
    return _cache
