"""API overhead (decode + route + store + enqueue), status polls while uploads are routed, and
end-to-end restorations per minute.

Runs a real uvicorn API and (for the end-to-end part) one real worker over the real Redis at
127.0.0.1:6379 (database 14, flushed), on a tiny trained bundle; figures go to --out.

    .venv/bin/python bench/bench_service.py [--requests 200] [--jobs 20] [--poll-seconds 20]

Overhead is the POST /v1/restorations latency with no worker consuming (so restoration cost is
excluded), from closed-loop clients at 1, 10 and 50 concurrency. Responsiveness is the
GET /v1/restorations/{id} latency seen by 50 concurrent pollers (one asyncio process of their
own, so the uploaders' threads do not delay their clocks), idle and while 10 or 50 closed-loop
clients upload scans that the API routes.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import threading
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): a cost per request that does
    not depend on how busy the rest of the machine is, unlike a latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    """The machine's load averages (1, 5, 15 min) as uptime prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _poll(
    base: str, job_id: str, clients: int, seconds: float, interval: float, out: mp.Queue
) -> None:
    """In its own process: ``clients`` coroutines each GET the job's status every ``interval``
    seconds (as the restoration page and `wait_for_job` poll), recording every latency.

    Each coroutine keeps one HTTP/1.1 connection and speaks the protocol itself (a request line,
    a Content-Length body): a full client library costs more CPU per request than the API's
    handler, and on a busy machine the clock would then measure the client's own queue.
    """
    host, port = base.removeprefix("http://").split(":")
    request = (
        f"GET /v1/restorations/{job_id} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n"
    ).encode()

    async def main() -> list[float]:
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def one(n: int) -> None:
            reader, writer = await asyncio.open_connection(host, int(port))
            await asyncio.sleep(interval * n / clients)  # spread the clients over a period
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head[:100]
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                took = time.perf_counter() - start
                latencies.append(took)
                await asyncio.sleep(max(0.0, interval - took))
            writer.close()

        await asyncio.gather(*(one(n) for n in range(clients)))
        return latencies

    out.put(asyncio.run(main()))


def polls_under_load(
    base: str,
    files: dict,
    job_id: str,
    uploaders: int,
    pollers: int,
    seconds: float,
    interval: float,
) -> dict[str, float]:
    """GET latency of ``pollers`` while ``uploaders`` closed-loop clients POST scans."""
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    args = (base, job_id, pollers, seconds, interval, results)
    poller = ctx.Process(target=_poll, args=args)
    stop = threading.Event()
    posted = [0]

    def upload() -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                response = client.post(
                    f"{base}/v1/restorations", files=files, data={"candidates": "1", "steps": "1"}
                )
                assert response.status_code == 202, response.text
                posted[0] += 1

    threads = [threading.Thread(target=upload, daemon=True) for _ in range(uploaders)]
    for t in threads:
        t.start()
    if uploaders:
        time.sleep(1.0)  # the uploads are in full swing before the clock starts
    start_posted = posted[0]
    poller.start()
    latencies = results.get(timeout=seconds + 120)
    poller.join()
    routed = (posted[0] - start_posted) / seconds
    stop.set()
    for t in threads:
        t.join(timeout=120)
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "polls_per_s": len(latencies) / seconds,
        "uploads_per_s": routed,
    }


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
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--poll-seconds", type=float, default=20.0)
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="each poller's period (0: closed loop)"
    )
    parser.add_argument("--route-threads", type=int, help="RESTAURO_ROUTE_THREADS (default 2)")
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
    if args.route_threads:
        env["RESTAURO_ROUTE_THREADS"] = str(args.route_threads)
    load_start = load()
    files = {
        "image": ("scan.png", png(synthetic_scan(256, 256)), "image/png"),
        "mask": ("mask.png", png(square_mask(256, 256)), "image/png"),
    }
    api, base = start_api(env, root / "api.log")
    rows = []
    try:
        for concurrency in (1, 10, 50):
            cpu = cpu_seconds(api.pid)
            result = overhead(base, files, concurrency, args.requests)
            # warm-up requests included (min(5, requests) of them)
            result["cpu_ms"] = 1000 * (cpu_seconds(api.pid) - cpu) / (args.requests + 5)
            rows.append((concurrency, result, load()))
            print(f"concurrency {concurrency}: {result} (load {rows[-1][2]})", flush=True)
        client.flushdb()

        # A queued job to poll (no worker runs yet, so its status stays queued).
        target = httpx.post(f"{base}/v1/restorations", files=files, data={"steps": "1"}).json()
        polls = []
        for uploaders in (0, 10, 50):
            cpu = cpu_seconds(api.pid)
            result = polls_under_load(
                base,
                files,
                target["id"],
                uploaders,
                args.pollers,
                args.poll_seconds,
                args.poll_interval,
            )
            if uploaders == 0:  # with uploads running, the CPU is mostly routing's
                polls_done = result["polls_per_s"] * args.poll_seconds
                result["cpu_ms"] = 1000 * (cpu_seconds(api.pid) - cpu) / polls_done
            polls.append((uploaders, result, load()))
            print(f"GET with {uploaders} uploaders: {result} (load {polls[-1][2]})", flush=True)
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
        "no GPU (the 2-core CPU dev machine; the load averages say how busy it was).",
        f"Load average at the start: {load_start} (1, 5, 15 min); measured "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "Command: `.venv/bin/python bench/bench_service.py` "
        f"(--requests {args.requests} --jobs {args.jobs} --steps {args.steps} "
        f"--candidates {args.candidates} --pollers {args.pollers} "
        f"--poll-seconds {args.poll_seconds:g} --poll-interval {args.poll_interval:g}); "
        "routing threads: "
        f"{env.get('RESTAURO_ROUTE_THREADS', '2 (default)')}.",
        "",
        "## API overhead: POST /v1/restorations (decode + route + store + enqueue), 256x256 scan",
        "",
        "One uvicorn process, real Redis, no worker consuming; closed-loop clients.",
        "",
        "| concurrent clients | p50 ms | p99 ms | requests/s | API CPU ms / request | load after |",
        "|---:|---:|---:|---:|---:|---|",
        *[
            f"| {c} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.1f} | "
            f"{r['cpu_ms']:.1f} | {ld} |"
            for c, r, ld in rows
        ],
        "",
        f"## Status polls while uploads are routed: GET /v1/restorations/{{id}}, "
        f"{args.pollers} pollers",
        "",
        f"{args.pollers} concurrent pollers (asyncio, raw HTTP/1.1, a process of their own), "
        "each polling "
        f"every {args.poll_interval:g} s (the page's rhythm) for {args.poll_seconds:g} s, while "
        "N closed-loop clients upload 256x256 scans that the API decodes and routes.",
        "",
        "| uploading clients | GET p50 ms | GET p99 ms | polls/s | uploads routed/s | load after |",
        "|---:|---:|---:|---:|---:|---|",
        *[
            f"| {u} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['polls_per_s']:.0f} | "
            f"{r['uploads_per_s']:.1f} | {ld} |"
            for u, r, ld in polls
        ],
        "",
        f"API CPU per status poll (no uploads): {polls[0][1]['cpu_ms']:.2f} ms.",
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
