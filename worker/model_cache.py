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
from pathlib import Path

from restauro.bundle import Bundle
from restauro.registry import BundleCache


class ModelCache(BundleCache):
    """The most recently used bundle versions of one process (older ones are dropped).

    A Bundle memoizes its own networks per (target, device), so keeping the Bundle keeps them.
    """

    def __init__(self, registry: Path, keep_versions: int = 2) -> None:
        super().__init__(registry, keep_versions)
        self.root = Path(registry)
        self.pid = os.getpid()
        self._loading_lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, version: str) -> Bundle:
        """As the registry's cache, but a version is loaded once even when several job threads
        (a threads pool) ask at once: they must get the same networks to share z-search batches
        (and two copies would only cost memory)."""
        with self._loading_lock:
            lock = self._loading.setdefault(version, threading.Lock())
        with lock:
            return super().get(version)


_cache: ModelCache | None = None


def process_cache(registry: Path) -> ModelCache:
    """This process's cache; a forked child gets its own instead of inheriting the parent's."""
    global _cache
    if _cache is None or _cache.pid != os.getpid() or _cache.root != Path(registry):
        _cache = ModelCache(registry)
    return _cache
