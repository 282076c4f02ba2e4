"""Apps for in-process HTTP tests: settings in a temporary folder, with or without a bundle."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from restauro.config import Settings
from service.main import create_app


def make_settings(tmp_path: Path, registry: Path | None = None, **extra: object) -> Settings:
    return Settings(
        registry=registry or tmp_path / "registry",
        results_dir=tmp_path / "results",
        state_dir=tmp_path / "state",
        **extra,
    )


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    """An app without any bundle: enough for every check that happens before routing."""
    return TestClient(create_app(make_settings(tmp_path)))


@pytest.fixture
def ready_client(tmp_path: Path, tiny_registry: Path) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, tiny_registry)))
