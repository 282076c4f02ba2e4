"""docker-compose.yml and Dockerfile.gpu, checked statically (Docker cannot run here): valid YAML,
and every command, flag and RESTAURO_* variable they use exists in the CLI and Settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from restauro.config import Settings
from service.__main__ import parse_args as service_args
from worker.__main__ import parse_args as worker_args

REPO = Path(__file__).resolve().parents[1]
PARSERS = {"service": service_args, "worker": worker_args}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_redis_api_and_gpu_worker(compose: dict) -> None:
    services = compose["services"]
    assert set(services) >= {"redis", "api", "worker"}
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert set(compose["volumes"]) >= {"bundles", "results"}
    for name in ("api", "worker"):
        mounts = {m.split(":")[1] for m in services[name]["volumes"]}
        env = services[name]["environment"]
        assert {env["RESTAURO_REGISTRY"], env["RESTAURO_RESULTS_DIR"]} <= mounts
        assert env["RESTAURO_BROKER_URL"].startswith("redis://redis:")
        assert services[name]["build"]["dockerfile"] == "Dockerfile.gpu"


def test_compose_commands_parse_with_our_entry_points(compose: dict) -> None:
    for name in ("api", "worker"):
        command = compose["services"][name]["command"]
        assert command[:2] == ["python", "-m"]
        PARSERS[command[2]](command[3:])  # argparse exits on an unknown flag


def test_environment_names_are_settings_fields(compose: dict) -> None:
    fields = {f"RESTAURO_{name.upper()}" for name in Settings.model_fields}
    used = set()
    for service in compose["services"].values():
        used |= {k for k in service.get("environment", {}) if k.startswith("RESTAURO_")}
    docker_env = re.findall(r"(RESTAURO_[A-Z_]+)=", (REPO / "Dockerfile.gpu").read_text())
    used |= set(docker_env)
    assert used and used <= fields, used - fields


def test_dockerfile_installs_the_packages_and_runs_the_service() -> None:
    text = (REPO / "Dockerfile.gpu").read_text()
    assert text.startswith("#") and re.search(r"^FROM nvidia/cuda:\S+", text, re.M)
    for package in ("restauro", "training", "service", "worker"):
        assert f"COPY {package} {package}" in text
        assert (REPO / package).is_dir()
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd is not None
    args = yaml.safe_load(cmd.group(1))
    assert args[:3] == ["python", "-m", "service"]
    service_args(args[3:])
    for copied in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (REPO / copied).exists(), copied
