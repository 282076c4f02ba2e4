"""A property-based run against the API's OpenAPI schema, with many examples per operation.

schemathesis generates requests for every operation (valid and invalid path parameters, query
strings, multipart uploads) and checks each answer: no 5xx, and the body and content type the
schema documents. The API is real: uvicorn, a tiny trained bundle, the real Redis at
127.0.0.1:6379 (database 14, flushed; no worker runs, accepted jobs just queue).

    .venv/bin/python bench/bench_openapi.py [--examples 100]

The suite runs the same checks with 5 examples per operation
(tests/integration/test_openapi_properties.py). Results: docs/bench-openapi.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.data import tiny_train_options  # noqa: E402
from tests.integration.harness import environment, start_api, stop  # noqa: E402
from tests.integration.processes import schemathesis_run  # noqa: E402

REDIS = "redis://127.0.0.1:6379/14"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="per operation")
    parser.add_argument("--out", type=Path, default=REPO / "var/bench/openapi.txt")
    args = parser.parse_args()

    import torch

    from training.pipeline import run_training

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.set_num_threads(2)
        run_training(tiny_train_options(root / "registry", max_images=24))
        client = redis.Redis.from_url(REDIS)
        client.flushdb()
        api, base = start_api(environment(root / "registry", root, REDIS), root / "api.log")
        started = time.monotonic()
        try:
            done = schemathesis_run(base, args.examples, root)
        finally:
            stop(api)
            client.flushdb()
        seconds = time.monotonic() - started
    summary = done.stdout[done.stdout.rfind("SUMMARY") :]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    report = (
        f"schemathesis, {args.examples} examples per operation, {seconds:.0f} s on {machine}\n"
        f"exit status {done.returncode}\n{summary}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    if done.returncode != 0:
        print(done.stdout[-8000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
