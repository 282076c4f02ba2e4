"""`restauro inpaint DIR --via URL`: the CLI submits a folder to the real service (uvicorn API,
a worker process, Redis) over HTTP and collects the results; a broken file is reported by the
API's own error, the others are restored, and a rerun submits nothing twice. (The CLI runs in
the test's process: a CLI process of its own would add a torch import per run, nothing else.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import redis

from restauro.images import read_image
from tests.conftest import free_port
from tests.integration.harness import environment, start_api, start_worker, stop
from tests.training.conftest import cli  # noqa: F401 - the fixture
from tests.training.test_batch import make_folder
from tests.training.test_cli import one_error_line

pytestmark = pytest.mark.integration


def test_folder_via_the_service(
    cli,  # noqa: F811
    tiny_registry: Path,
    redis_url: str,
    tmp_path: Path,
) -> None:
    env = environment(tiny_registry, tmp_path, redis_url, RESTAURO_API_KEYS='["batch-key"]')
    api, base = start_api(env, tmp_path / "api.log")
    worker = start_worker(env, tmp_path / "worker.log")
    scans, masks, expected = make_folder(tmp_path, n=2)
    out = tmp_path / "out"
    args = ["inpaint", scans, "--masks", masks, "--out", out, "--via", base]
    args += ["--candidates", "1", "--steps", "2", "--cluster", "0", "-q"]
    try:
        code, _, err = cli(*args, "--api-key", "wrong")
        assert code == 1 and "X-API-Key" in one_error_line(err) and not out.exists()

        code, _, err = cli(*args, "--api-key", "batch-key")
        assert code == 1, err
        line = one_error_line(err)
        assert line.startswith("error: broken.png: ") and "HTTP 400" in line
        report = json.loads((out / "report.json").read_text())
        assert report["counts"] == {"restored": 3, "skipped": 0, "failed": 1}
        assert report["engine"].startswith(f"service {base}")
        for stem, (scan, mask) in expected.items():
            restored = read_image(out / stem / "restored_1.png").rgb
            assert np.array_equal(restored[~mask], scan[~mask])
            result = json.loads((out / stem / "result.json").read_text())
            assert result["status"] == "succeeded" and result["target"] == "c0"

        code, _, err = cli(*args, "--api-key", "batch-key")
        assert code == 1 and one_error_line(err).startswith("error: broken.png: ")
        report = json.loads((out / "report.json").read_text())
        assert report["counts"] == {"restored": 0, "skipped": 3, "failed": 1}
    finally:
        stop(worker)
        stop(api)
        redis.Redis.from_url(redis_url).flushdb()

    gone = f"http://127.0.0.1:{free_port()}"
    code, _, err = cli("inpaint", scans, "--out", tmp_path / "o2", "--via", gone)
    assert code == 1 and one_error_line(err).startswith("error: cannot reach")
