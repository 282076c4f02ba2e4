"""Shared fixtures: test data, a tiny trained bundle, Redis, synthetic scans, free ports.

The tiny bundle is trained once per session (two clusters, 64 px, one epoch, 8-wide nets) so the
service and worker tests exercise real routing and real generators in seconds.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from restauro.images import encode_png
from tests.data import textured_image, tiny_train_options

IN_CI = os.environ.get("CI", "").lower() == "true"
# Dedicated Redis databases, flushed before and after the tests that use one. Each test session
# takes the first one no other session on this machine holds (a file lock), so two runs at once
# (a developer's and a helper's) never consume each other's jobs from the same queues.
TEST_REDIS_DBS = range(8, 16)


def _missing(reason: str) -> None:
    """Outside CI a missing external resource skips; in CI it fails."""
    if IN_CI:
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry whose current bundle has two clusters of tiny DCGANs (~10-30 s on 2 cores)."""
    import torch

    from training.pipeline import run_training

    torch.set_num_threads(2)
    registry = tmp_path_factory.mktemp("registry")
    run_training(tiny_train_options(registry, max_images=24))
    return registry


def _lock_redis_db() -> tuple[int, object]:
    """A database number of TEST_REDIS_DBS that this session alone uses, and its held lock."""
    import fcntl
    import tempfile

    for db in TEST_REDIS_DBS:
        lock = open(Path(tempfile.gettempdir()) / f"restauro-tests-redis-{db}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return db, lock
    pytest.fail(f"every test Redis database {list(TEST_REDIS_DBS)} is in use by another session")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis on 127.0.0.1:6379, a database of this session's, emptied before and after."""
    import redis

    db, lock = _lock_redis_db()
    url = f"redis://127.0.0.1:6379/{db}"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        lock.close()
        _missing("Redis is not reachable at 127.0.0.1:6379")
    client.flushdb()
    yield url
    client.flushdb()
    lock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    """A Redis URL on a port nobody listens on: the broker-down case."""
    return f"redis://127.0.0.1:{free_port()}/0"


def synthetic_scan(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    return textured_image(height, width, seed)


def square_mask(height: int = 96, width: int = 128) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 3 : height // 3 + 20, width // 3 : width // 3 + 24] = True
    return mask


def png(array: np.ndarray) -> bytes:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    return encode_png(array)


@pytest.fixture
def scan_files() -> dict[str, tuple[str, bytes, str]]:
    """A multipart ``files=`` payload with a scan and its mask."""
    return {
        "image": ("scan.png", png(synthetic_scan()), "image/png"),
        "mask": ("mask.png", png(square_mask()), "image/png"),
    }
