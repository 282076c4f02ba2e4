"""The restoration task run in-process on a real tiny bundle: files out, idempotent, typed failures;
and the worker entry point's refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from restauro.config import Settings
from restauro.images import read_image
from restauro.jobs import (
    RESULT,
    TASK_NAME,
    JobStore,
    candidate_name,
    cluster_queue,
    new_job_id,
    queue_for,
)
from restauro.request import RestorePlan, RestoreRequest
from tests.conftest import square_mask, synthetic_scan
from worker.celery_app import make_celery


def settings_for(tmp_path: Path, registry: Path) -> Settings:
    return Settings(
        registry=registry, results_dir=tmp_path / "results", state_dir=tmp_path / "state"
    )


def make_job(store: JobStore, registry: Path, cluster: int = 0) -> str:
    """A job as the API stores it: the plan for cluster ``cluster`` of the current bundle."""
    from restauro.registry import Registry

    job_id = new_job_id()
    plan = RestorePlan(
        bundle_version=Registry(registry).current_version(),
        target=f"c{cluster}",
        queue=f"restore.c{cluster}",
        request=RestoreRequest(target=cluster, candidates=2, steps=2, seed=3),
    )
    store.create(job_id, synthetic_scan(), square_mask(), plan, created=0.0)
    return job_id


def test_task_writes_candidates_and_is_idempotent(tmp_path: Path, tiny_registry: Path) -> None:
    settings = settings_for(tmp_path, tiny_registry)
    app = make_celery(settings)
    store = JobStore(settings.results_dir)
    job_id = make_job(store, tiny_registry)

    outcome = app.tasks[TASK_NAME].apply(args=[job_id], task_id=job_id).get()
    # the 2 GAN completions of the loss, then the diffusion baselines (a method per damage)
    assert outcome == {"id": job_id, "status": "succeeded", "candidates": 4}
    result = store.read_result(job_id)
    assert result["target"] == "c0" and result["params"]["seed"] == 3
    assert [c["rank"] for c in result["candidates"]] == [1, 2, 3, 4]
    methods = [c["method"] for c in result["candidates"]]
    assert methods[:2] == ["gan:c0", "gan:c0"] and sorted(methods[2:]) == ["ns", "telea"]
    assert all(isinstance(c["score"], float) for c in result["candidates"])
    ranks = (1, 2, 3, 4)
    first = [store.file(job_id, candidate_name(n)).read_bytes() for n in ranks]
    scan, mask = synthetic_scan(), square_mask()
    for n in ranks:
        candidate = read_image(store.file(job_id, candidate_name(n))).rgb
        assert candidate.shape == scan.shape
        assert np.array_equal(candidate[~mask], scan[~mask])  # untouched outside the hole
        assert not np.array_equal(candidate[mask], scan[mask])  # the hole was restored

    # A redelivered job whose result was never written restores the same pixels again.
    (store.path(job_id) / RESULT).unlink()
    app.tasks[TASK_NAME].apply(args=[job_id], task_id=job_id).get()
    assert [store.file(job_id, candidate_name(n)).read_bytes() for n in ranks] == first
    assert store.read_result(job_id)["attempt"] == 2


def test_unknown_cluster_fails_the_job_with_its_code(tmp_path: Path, tiny_registry: Path) -> None:
    settings = settings_for(tmp_path, tiny_registry)
    store = JobStore(settings.results_dir)
    job_id = make_job(store, tiny_registry, cluster=9)
    outcome = make_celery(settings).tasks[TASK_NAME].apply(args=[job_id], task_id=job_id).get()
    assert outcome["status"] == "failed" and outcome["error"] == "unknown_cluster"
    assert store.read_state(job_id)["error"] == "unknown_cluster"
    assert store.read_result(job_id) is None


def test_deleted_job_is_skipped(tmp_path: Path, tiny_registry: Path) -> None:
    settings = settings_for(tmp_path, tiny_registry)
    store = JobStore(settings.results_dir)
    job_id = make_job(store, tiny_registry)
    store.delete(job_id)
    outcome = make_celery(settings).tasks[TASK_NAME].apply(args=[job_id], task_id=job_id).get()
    assert outcome["status"] == "deleted"
    assert not store.path(job_id).exists()


def test_broker_choice_and_queue_names(tmp_path: Path) -> None:
    embedded = Settings(state_dir=tmp_path / "state")
    broker, backend = embedded.queue_urls()
    assert broker.startswith("sqla+sqlite:///") and backend.startswith("db+sqlite:///")
    assert str((tmp_path / "state").resolve()) in broker
    redis = Settings(broker_url="redis://h:6379/0", visibility_timeout_s=7)
    assert redis.queue_urls() == ("redis://h:6379/0", "redis://h:6379/0")
    conf = make_celery(redis).conf
    assert conf.broker_transport_options["visibility_timeout"] == 7
    # unset: the hard time limit plus a margin, so it follows a raised time limit
    derived = Settings(broker_url="redis://h:6379/0", job_time_limit_s=3000, job_kill_grace_s=30)
    visibility = make_celery(derived).conf.broker_transport_options["visibility_timeout"]
    assert visibility == derived.redelivery_timeout_s > derived.job_hard_time_limit_s
    assert Settings().redelivery_timeout_s < 3600  # a killed worker's job is back within the hour
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert (cluster_queue(3), queue_for("c3"), queue_for("general")) == (
        "restore.c3",
        "restore.c3",
        "restore.general",
    )


@pytest.mark.parametrize("module", ["worker", "service"])
def test_entry_points_refuse_a_missing_bundle(tmp_path: Path, module: str) -> None:
    cmd = [sys.executable, "-m", module, "--registry", str(tmp_path / "empty")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no current bundle")


def test_worker_refuses_unknown_clusters(tmp_path: Path, tiny_registry: Path) -> None:
    cmd = [sys.executable, "-m", "worker", "--registry", str(tiny_registry), "--clusters", "0,5"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown: [5]" in done.stderr


def test_job_threads_asking_at_once_get_one_bundle(tiny_registry: Path) -> None:
    """A threads pool's jobs must get the same networks to share z-search batches."""
    import threading

    from restauro.registry import Registry
    from worker.model_cache import ModelCache

    cache = ModelCache(tiny_registry)
    version = Registry(tiny_registry).current_version()
    start = threading.Barrier(3)
    got: list = []

    def get() -> None:
        start.wait()
        got.append(cache.get(version))

    threads = [threading.Thread(target=get) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(got) == 3 and all(bundle is got[0] for bundle in got)


def test_a_job_delivered_twice_to_one_process_runs_once_at_a_time() -> None:
    import threading
    import time

    from worker.tasks import _running, once_at_a_time

    inside: list[str] = []
    first_in = threading.Event()

    def delivery(name: str, hold: float) -> None:
        with once_at_a_time("job-1"):
            inside.append(f"{name} in")
            first_in.set()
            time.sleep(hold)
            inside.append(f"{name} out")

    first = threading.Thread(target=delivery, args=("first", 0.3))
    first.start()
    first_in.wait(60)
    second = threading.Thread(target=delivery, args=("second", 0))
    second.start()
    first.join(60)
    second.join(60)
    assert inside == ["first in", "first out", "second in", "second out"]
    assert "job-1" not in _running
