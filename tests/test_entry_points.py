"""The entry points' flags: one shared set of settings flags for ``python -m service`` and
``python -m worker``, handed on unchanged by ``restauro serve`` / ``restauro worker``, and the
settings a parent passes to its worker child."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from restauro.cli_flags import SETTINGS_FLAGS, settings_from_args
from restauro.config import Settings
from service.__main__ import parse_args as service_args
from service.__main__ import worker_args
from worker.__main__ import choose_pool, pool_concurrency
from worker.__main__ import parse_args as worker_parse

RESTAURO = [sys.executable, "-m", "training.cli"]
REPO = Path(__file__).resolve().parents[1]

GIVEN = {
    "--registry": "reg",
    "--results-dir": "res",
    "--state-dir": "st",
    "--broker-url": "redis://h:6379/3",
    "--device": "cuda:1",
    "--job-time-limit-s": "12.5",
    "--job-kill-grace-s": "3",
    "--shutdown-grace-s": "2",
    "--batch-jobs": "4",
    "--batch-gather-s": "0.2",
}


def flag_list() -> list[str]:
    return [item for pair in GIVEN.items() for item in pair]


def run(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_every_settings_flag_is_a_settings_field_and_both_entry_points_take_it() -> None:
    assert set(SETTINGS_FLAGS) <= set(Settings.model_fields)
    assert {f"--{name.replace('_', '-')}" for name in SETTINGS_FLAGS} == set(GIVEN)
    worker = settings_from_args(worker_parse(flag_list()))
    service = settings_from_args(service_args(flag_list()))
    assert worker == service
    assert worker.device == "cuda:1" and worker.job_time_limit_s == 12.5
    assert worker.job_hard_time_limit_s == 15.5 and worker.registry == Path("reg")
    assert (worker.batch_jobs, worker.batch_gather_s) == (4, 0.2)


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names_one_worker_per_gpu(name: str) -> None:
    assert Settings(device=name).device == name


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", "mps", ""])
def test_unknown_device_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="cuda:N"):
        Settings(device=name)


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_time_limits_must_be_positive(limit: str) -> None:
    with pytest.raises(ValidationError):
        Settings(job_time_limit_s=limit)


def test_child_env_carries_every_given_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = Settings(
        registry=tmp_path / "reg",
        device="cuda:1",
        job_time_limit_s=7,
        api_keys=["museum", "lab"],
        broker_url="redis://h:6379/2",
    )
    env = parent.child_env({"PATH": "/bin"})
    assert env["PATH"] == "/bin" and env["RESTAURO_REGISTRY"] == str((tmp_path / "reg").resolve())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings()
    for name in ("device", "job_time_limit_s", "api_keys", "broker_url"):
        assert getattr(child, name) == getattr(parent, name), name
    assert Path(child.results_dir).is_absolute() and Path(child.state_dir).is_absolute()


def test_pool_defaults_to_batching_threads_on_a_gpu_and_prefork_on_the_cpu() -> None:
    """A GPU worker is one process (nothing forks after CUDA): threads running batch_jobs jobs
    at once (default 8), or solo for one at a time. The CPU keeps prefork."""
    jobs = Settings().batch_jobs
    assert jobs == 8
    assert choose_pool(None, "cuda", jobs) == choose_pool(None, "cuda:1", jobs) == "threads"
    assert choose_pool(None, "cuda:1", 1) == "solo"
    assert choose_pool(None, "cpu", jobs) == "prefork"
    assert choose_pool("solo", "cpu") == "solo"
    assert pool_concurrency("threads", Settings(batch_jobs=3), 1) == 3
    assert pool_concurrency("prefork", Settings(batch_jobs=3), 2) == 2
    assert pool_concurrency("solo", Settings(), 5) == 1


def test_serve_hands_its_worker_flags_on() -> None:
    args = service_args(["--with-worker", "--worker-concurrency", "3", "--worker-pool", "solo"])
    assert worker_args(args) == ["--concurrency", "3", "--pool", "solo"]
    worker_parse(worker_args(args))  # the worker accepts them
    threads = service_args(["--with-worker", "--worker-pool", "threads", "--batch-jobs", "4"])
    worker_parse(worker_args(threads))
    # batch_jobs travels, like every setting, in the worker's environment
    env = settings_from_args(threads).child_env({})
    assert env["RESTAURO_BATCH_JOBS"] == "4"


@pytest.mark.parametrize(("command", "module"), [("serve", "service"), ("worker", "worker")])
def test_restauro_serve_and_worker_pass_every_flag_on(
    command: str, module: str, tmp_path: Path
) -> None:
    """The console commands add nothing and drop nothing: the entry point parses the flags."""
    helped = run([*RESTAURO, command, "--help"], tmp_path)
    assert helped.returncode == 0 and f"python -m {module}" in helped.stdout
    for flag in GIVEN:
        assert flag in helped.stdout, flag

    unknown = run([*RESTAURO, command, "--no-such-flag"], tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "error: unrecognized arguments: --no-such-flag (--help lists the flags)"
    ]


def test_worker_refuses_a_bad_device_in_one_line(tmp_path: Path) -> None:
    done = run([sys.executable, "-m", "worker", "--device", "gpu"], tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cuda:N" in lines[0], lines


def test_a_bad_setting_is_one_invalid_parameter_naming_it() -> None:
    from restauro.cli_flags import settings_from_args
    from restauro.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="job_time_limit_s"):
        settings_from_args(worker_parse(["--job-time-limit-s", "0"]))
