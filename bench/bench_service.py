"""API overhead (decode + route + store + enqueue) and end-to-end restorations per minute.

Runs a real uvicorn API and (for the end-to-end part) one real worker over the real Redis at
127.0.0.1:6379 (database 14, flushed), on a tiny trained bundle; figures go to --out.

    .venv/bin/python bench/bench_service.py [--requests 200] [--jobs 20]

Overhead is the POST /v1/restorations latency with no worker consuming (so restoration cost is
excluded), from closed-loop clients at 1, 10 and 50 concurrency.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import png, square_mask, synthetic_scan  # noqa: E402
from tests.data import tiny_train_options  # noqa: E402
from tests.integration.harness import (  # noqa: E402
    environment,
    start_api,
    start_worker,
    stop,
    wait_for_job,
)

REDIS = "redis://127.0.0.1:6379/14"


def train_tiny(registry: Path) -> None:
    """The tests' tiny bundle: routing and restoration run for real, in seconds."""
    import torch

    from training.pipeline import run_training

    torch.set_num_threads(2)
    run_training(tiny_train_options(registry, max_images=24))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def overhead(base: str, files: dict, concurrency: int, requests: int) -> dict[str, float]:
    data = {"candidates": "1", "steps": "1"}
    latencies: list[float] = []
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        def one(_: int) -> float:
            start = time.perf_counter()
            response = client.post(f"{base}/v1/restorations", files=files, data=data)
            assert response.status_code == 202, response.text
            return time.perf_counter() - start

        for _ in range(min(5, requests)):
            one(0)  # warm-up
        start = time.perf_counter()
        with cf.ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - start
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "rps": requests / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "var/bench/bench-service.md",
        help="figures as markdown (docs/bench-service.md adds how to read them)",
    )
    args = parser.parse_args()

    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    root = Path(tempfile.mkdtemp(prefix="bench-service-"))
    train_tiny(root / "registry")
    env = environment(root / "registry", root, REDIS)
    files = {
        "image": ("scan.png", png(synthetic_scan(256, 256)), "image/png"),
        "mask": ("mask.png", png(square_mask(256, 256)), "image/png"),
    }
    api, base = start_api(env, root / "api.log")
    rows = []
    try:
        for concurrency in (1, 10, 50):
            result = overhead(base, files, concurrency, args.requests)
            rows.append((concurrency, result))
            print(f"concurrency {concurrency}: {result}", flush=True)
        client.flushdb()

        worker = start_worker(env, root / "worker.log")
        data = {"candidates": str(args.candidates), "steps": str(args.steps)}
        try:
            warm = httpx.post(f"{base}/v1/restorations", files=files, data=data).json()["id"]
            wait_for_job(base, warm, 600)  # loads the generators once
            start = time.perf_counter()
            ids = [
                httpx.post(f"{base}/v1/restorations", files=files, data=data).json()["id"]
                for _ in range(args.jobs)
            ]
            for job_id in ids:
                assert wait_for_job(base, job_id, 1200)["status"] == "succeeded"
            per_minute = args.jobs / (time.perf_counter() - start) * 60
        finally:
            stop(worker)
    finally:
        stop(api)
        client.flushdb()
    print(f"end-to-end: {per_minute:.1f} restorations/min", flush=True)

    lines = [
        "# Service benchmark",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        "no GPU (2-core CPU dev machine, shared with other work while measuring).",
        "Command: `.venv/bin/python bench/bench_service.py` "
        f"(--requests {args.requests} --jobs {args.jobs} --steps {args.steps} "
        f"--candidates {args.candidates}).",
        "",
        "## API overhead: POST /v1/restorations (decode + route + store + enqueue), 256x256 scan",
        "",
        "One uvicorn process, real Redis, no worker consuming; closed-loop clients.",
        "",
        "| concurrent clients | p50 ms | p99 ms | requests/s |",
        "|---:|---:|---:|---:|",
        *[f"| {c} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.1f} |" for c, r in rows],
        "",
        "## End to end, one worker (solo pool, CPU)",
        "",
        f"{args.jobs} jobs of {args.candidates} candidates x {args.steps} steps, 64 px tiny "
        f"bundle: **{per_minute:.1f} restorations per minute**.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
