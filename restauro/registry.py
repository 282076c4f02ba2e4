"""The registry of bundles: publish atomically, list, promote, roll back.

``REGISTRY/<version>/`` holds immutable bundles; ``REGISTRY/current`` is a one-line text file
naming the active version, replaced atomically (write + rename) on promote and rollback, so a
reader always sees either the old or the new version, never half of one. ``REGISTRY/history.jsonl``
records every promotion, which is what rollback walks back along.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from restauro.atomic import write_text_atomic
from restauro.bundle import MANIFEST, Bundle, BundleWriter
from restauro.errors import BundleExists, BundleNotFound, InvalidParameter

CURRENT = "current"
HISTORY = "history.jsonl"
STAGING_PREFIX = ".staging-"
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_version() -> str:
    """Sortable by time, unique across machines: ``20261122-143005-3fa9c1``."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def check_version_name(version: str) -> str:
    if not VERSION_PATTERN.match(version) or version in (CURRENT,):
        raise InvalidParameter(f"invalid bundle version name {version!r}")
    return version


class Registry:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # --- reading ------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Published versions, oldest first (names sort by creation time)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
        )

    def current_version(self) -> str | None:
        try:
            version = (self.root / CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        return version or None

    def path_of(self, version: str) -> Path:
        path = self.root / check_version_name(version)
        if not (path / MANIFEST).is_file():
            raise BundleNotFound(f"no bundle version {version!r} in registry {self.root}")
        return path

    def manifest(self, version: str | None = None) -> dict:
        version = version or self._require_current()
        return json.loads((self.path_of(version) / MANIFEST).read_text())

    def load(self, version: str | None = None, verify: bool = True) -> Bundle:
        """A verified bundle; ``None`` means the current one."""
        return Bundle(self.path_of(version or self._require_current()), verify=verify)

    def _require_current(self) -> str:
        version = self.current_version()
        if version is None:
            raise BundleNotFound(
                f"registry {self.root} has no current bundle: train one with "
                "`restauro train` or promote one with `restauro models promote VERSION`"
            )
        return version

    # --- writing ------------------------------------------------------------------------------
    @contextmanager
    def publishing(self, version: str | None = None) -> Iterator[BundleWriter]:
        """Stage a bundle; rename it into place only if the block completes.

        A failed or interrupted run leaves no bundle behind, only (at worst, on a hard kill) a
        hidden staging folder that the next publish sweeps away.
        """
        version = check_version_name(version or new_version())
        if (self.root / version).exists():
            raise BundleExists(f"bundle version {version} already exists; bundles are immutable")
        self.root.mkdir(parents=True, exist_ok=True)
        self._sweep_staging()
        staging = self.root / f"{STAGING_PREFIX}{version}-{os.getpid()}"
        writer = BundleWriter(staging, version)
        try:
            yield writer
            if not (staging / MANIFEST).is_file():
                raise RuntimeError("bundle staged without a manifest: call BundleWriter.finish()")
            os.rename(staging, self.root / version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _sweep_staging(self) -> None:
        for p in self.root.glob(f"{STAGING_PREFIX}*"):
            pid = p.name.rsplit("-", 1)[-1]
            if not (pid.isdigit() and _alive(int(pid))):
                shutil.rmtree(p, ignore_errors=True)

    def promote(self, version: str) -> str | None:
        """Make ``version`` current; return the version it replaced."""
        self.path_of(version)
        previous = self.current_version()
        write_text_atomic(self.root / CURRENT, version + "\n")
        entry = {"at": datetime.now(UTC).isoformat(), "version": version, "previous": previous}
        with (self.root / HISTORY).open("a") as f:
            f.write(json.dumps(entry) + "\n")
        return previous

    def history(self) -> list[dict]:
        try:
            lines = (self.root / HISTORY).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def _stack(self) -> list[str]:
        """Replay the history: a promotion pushes a version, a rollback pops one."""
        stack: list[str] = []
        for entry in self.history():
            if entry.get("rollback"):
                stack.pop()
            else:
                stack.append(entry["version"])
        return stack

    def rollback(self) -> str:
        """Go back to the version that was current before the current one; return it."""
        stack = self._stack()
        if len(stack) < 2:
            raise BundleNotFound("nothing to roll back to: no earlier version was ever current")
        current, previous = stack[-1], stack[-2]
        self.path_of(previous)
        write_text_atomic(self.root / CURRENT, previous + "\n")
        entry = {
            "at": datetime.now(UTC).isoformat(),
            "version": previous,
            "previous": current,
            "rollback": True,
        }
        with (self.root / HISTORY).open("a") as f:
            f.write(json.dumps(entry) + "\n")
        return previous


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BundleCache:
    """Loaded bundles of the most recently used versions, for long-lived processes.

    Bundles are immutable, so a version loaded once never needs reloading; a promotion is simply a
    new key. The API routes with the current version's bundle, a worker restores with the version
    its job was routed with, and both share this one cache logic.
    """

    def __init__(self, registry: Registry | Path | str, keep_versions: int = 2) -> None:
        self.registry = registry if isinstance(registry, Registry) else Registry(registry)
        self.keep_versions = keep_versions
        self._bundles: OrderedDict[str, Bundle] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: str) -> Bundle:
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
