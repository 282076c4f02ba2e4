"""The one configuration object.

All settings come from ``RESTAURO_*`` environment variables (or a ``.env`` file) and can be
overridden by CLI flags. Nothing else in the code base reads ``os.environ`` for configuration.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# ``auto`` (a GPU when there is one), ``cpu``, ``cuda`` (the first GPU) or ``cuda:N`` (GPU N):
# one worker per GPU names its GPU this way.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:[0-9]{1,3})?)$")

# How long after the longest a job may run (its hard time limit) Redis redelivers a job whose
# worker was killed, when ``visibility_timeout_s`` is not set: the job's reservation and start
# (decoding the scan, loading a model on a cold worker) come before its time limit starts.
REDELIVERY_MARGIN_S = 300.0


def check_device(name: str) -> str:
    """A device name as Settings and the CLI accept it, or ValueError with what would be."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N (e.g. cuda:1), got {name!r}")
    return name


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RESTAURO_", env_file=".env", extra="ignore")

    # Where bundles live (REGISTRY/<version>/, REGISTRY/current) and where job files go.
    registry: Path = Path("var/registry")
    results_dir: Path = Path("var/results")

    # Queueing. No broker URL means the embedded default: a SQLite broker and result backend under
    # ``state_dir``, so a single machine needs nothing else installed.
    broker_url: str | None = None
    result_backend: str | None = None
    state_dir: Path = Path("var/state")
    # Redis redelivers an unacknowledged job (its worker was killed) after this many seconds.
    # It must exceed the longest job, or a running job is handed to a second worker; None (the
    # default) derives it from the time limits below (``redelivery_timeout_s``), so a killed
    # worker's job comes back ~5 minutes after the longest a job may run, not an hour later.
    visibility_timeout_s: int | None = Field(default=None, gt=0)

    device: str = "auto"  # see DEVICE_PATTERN

    # No job stays "running" forever. After ``job_time_limit_s`` a job is stopped and ends
    # "failed" (error time_limit_exceeded); a job stuck where it cannot be stopped (inside native
    # code) is killed ``job_kill_grace_s`` later with the process running it, which is replaced.
    # Keep both below ``visibility_timeout_s``, or Redis hands a running job to a second worker.
    job_time_limit_s: float = Field(default=900.0, gt=0)
    job_kill_grace_s: float = Field(default=30.0, gt=0)
    # ``restauro serve`` stopping: its worker gets this long to finish the job in flight, then
    # the job is returned to the queue (a cold shutdown) and the worker stops.
    shutdown_grace_s: float = Field(default=5.0, ge=0)

    # A GPU worker restores up to ``batch_jobs`` jobs at once in threads of its one process
    # (Celery's threads pool); the z-searches of those on the same cluster and bundle version
    # share batches (restauro/inpaint/batching.py), a search waiting up to ``batch_gather_s`` for
    # the others in flight. 1 = the solo pool, one job at a time. The CPU default (prefork) does
    # not read these.
    batch_jobs: int = Field(default=8, ge=1)
    batch_gather_s: float = Field(default=0.05, ge=0)

    # Pretrained backbones for the CNN feature extractors (no downloads happen offline).
    vgg16_weights: Path | None = None
    squeezenet_weights: Path | None = None

    # Input limits: a scan of 4000 x 3000 is normal, a decompression bomb is not.
    max_upload_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000

    # Restoration defaults for requests that do not say (None: the engine's own, InpaintParams)
    # and the upper limits a request must stay within (restauro.request.RestoreRequest).
    candidates: int | None = None
    steps: int | None = None
    max_candidates: int = 64
    max_steps: int = 5000

    # HTTP API keys (header ``X-API-Key``); empty means no authentication (localhost use).
    api_keys: list[str] = Field(default_factory=list)

    # --- Webhooks and the API's routing pool (issue 11) ----------------------------------------
    # A request's ``callback_url`` receives the job's JSON when the job ends, signed with
    # HMAC-SHA256 (restauro/webhooks.py). Off until a secret is set; only hosts on the allow-list
    # are called ("*" = any host, "*.example.org" = that domain and its subdomains).
    # As variables: RESTAURO_WEBHOOK_SECRET=..., RESTAURO_WEBHOOK_HOSTS='["hooks.museum.org"]'.
    webhook_secret: str | None = Field(default=None, repr=False)
    webhook_hosts: list[str] = Field(default_factory=list)
    webhook_timeout_s: float = Field(default=10.0, gt=0)  # per attempt, connect + response
    # Retries (1 s, 2 s, 4 s ... capped at webhook_backoff_max_s) stop once this much time has
    # passed since the first attempt; the job view then says the delivery failed.
    webhook_retry_window_s: float = Field(default=600.0, ge=0)
    webhook_backoff_s: float = Field(default=1.0, gt=0)
    webhook_backoff_max_s: float = Field(default=60.0, gt=0)
    webhook_senders: int = Field(default=2, ge=1)  # delivery threads per worker process
    # Every this often a worker's deliverer says it is alive and resumes deliveries whose worker
    # stopped (worker/webhooks.py): overdue by twice this plus the longest attempt.
    webhook_takeover_every_s: float = Field(default=60.0, gt=0)
    # Uploads are decoded and routed (feature extraction) in a pool of this many threads, off
    # the event loop, so status polls and downloads are answered while uploads are routed.
    route_threads: int = Field(default=2, ge=1)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return check_device(value)

    @property
    def job_hard_time_limit_s(self) -> float:
        """When a job that ignored its time limit is killed, process and all."""
        return self.job_time_limit_s + self.job_kill_grace_s

    @property
    def redelivery_timeout_s(self) -> int:
        """Redis' visibility timeout: ``visibility_timeout_s`` if set, else the hard time limit
        plus ``REDELIVERY_MARGIN_S`` (a job can not run longer, so waiting longer only delays the
        job of a worker that was killed)."""
        if self.visibility_timeout_s is not None:
            return self.visibility_timeout_s
        return math.ceil(self.job_hard_time_limit_s + REDELIVERY_MARGIN_S)

    @classmethod
    def from_flags(cls, **flags: object) -> Settings:
        """Environment first, then the command-line flags that were actually given (not None)."""
        return cls(**{key: value for key, value in flags.items() if value is not None})

    def child_env(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` plus every setting given to this process (flag, variable or .env file), so a
        child process (``restauro serve``'s worker) runs with exactly these settings.

        Locations become absolute (a child may start elsewhere); the three folders always go,
        since their defaults are relative to the working directory.
        """
        env = dict(base)
        given = self.model_fields_set | {"registry", "results_dir", "state_dir"}
        for name in sorted(given):
            value = getattr(self, name)
            key = f"RESTAURO_{name.upper()}"
            if value is None:
                env.pop(key, None)
            elif isinstance(value, Path):
                env[key] = str(value.resolve())
            elif isinstance(value, list | dict):
                env[key] = json.dumps(value)  # how pydantic-settings reads complex values
            else:
                env[key] = str(value)
        return env

    @property
    def embedded(self) -> bool:
        """No broker URL: the single-machine default (SQLite files under ``state_dir``)."""
        return not self.broker_url

    @property
    def embedded_broker_file(self) -> Path:
        """The embedded broker's SQLite file (used only when :attr:`embedded`)."""
        return Path(self.state_dir).resolve() / "broker.sqlite"

    def queue_urls(self) -> tuple[str, str]:
        """(broker, result backend) URLs; the embedded default lives in SQLite files."""
        if self.broker_url:
            return self.broker_url, self.result_backend or self.broker_url
        state = Path(self.state_dir).resolve()
        state.mkdir(parents=True, exist_ok=True)
        broker = f"sqla+sqlite:///{self.embedded_broker_file}"
        return broker, self.result_backend or f"db+sqlite:///{state / 'results.sqlite'}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; tests call ``get_settings.cache_clear()``."""
    return Settings()


def resolve_device(name: str) -> str:
    """Turn ``auto`` into ``cuda`` when a GPU is present, else ``cpu``; others pass unchanged.

    This initialises CUDA when it asks: a process that forks workers must not call it (see
    worker/__main__.py, which asks a throwaway child process instead).
    """
    check_device(name)
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
