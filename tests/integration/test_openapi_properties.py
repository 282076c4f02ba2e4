"""A property-based run against the API's own OpenAPI schema (schemathesis): whatever a client
sends to any operation, the answer is never a 5xx, and its content type and body are what the
schema documents (issue 12).

The API is the real one: uvicorn in its own process, a real bundle, the real Redis broker (jobs
it accepts just wait in their queues; no worker runs). schemathesis runs as its command line,
deterministically, with few examples per operation to stay lean; bench/bench_openapi.py runs
the same checks with many more (docs/bench-openapi.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.integration.harness import environment, start_api, stop
from tests.integration.processes import SCHEMATHESIS, schemathesis_run

pytestmark = pytest.mark.integration


def test_no_server_error_and_every_answer_matches_the_schema(
    tiny_registry: Path, redis_url: str, tmp_path: Path
) -> None:
    if not SCHEMATHESIS.is_file():
        pytest.fail("schemathesis is a dev dependency: pip install -e '.[dev]'")
    api, base = start_api(environment(tiny_registry, tmp_path, redis_url), tmp_path / "api.log")
    try:
        done = schemathesis_run(base, examples=5, workdir=tmp_path)
    finally:
        stop(api)
        redis.Redis.from_url(redis_url).flushdb()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failure" not in done.stdout.split("SUMMARY")[-1]
