"""Prometheus metrics of one app: requests, jobs by state, queue depth, restoration seconds.

Each app has its own CollectorRegistry (tests build many apps in one process). Job and queue
figures are read at scrape time from the job files and the broker, so they are true even when
several API processes or workers share the same results folder and broker.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from restauro.jobs import JobStore

SECONDS_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "restauro_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "restauro_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
        )
        self.submitted = Counter(
            "restauro_jobs_submitted",
            "Restoration jobs accepted, by queue",
            ["queue"],
            registry=self.registry,
        )

    def add_collector(self, collector: object) -> None:
        self.registry.register(collector)  # type: ignore[arg-type]


class JobCollector:
    """Jobs by state and the restoration-seconds histogram, from the job files."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        states: Tally[str] = Tally()
        seconds: list[float] = []
        for job_id in self.store.ids():
            try:
                result = self.store.read_result(job_id)
                if result is not None:
                    states["succeeded"] += 1
                    seconds.append(float(result.get("seconds", 0.0)))
                    continue
                state = self.store.read_state(job_id) or {}
                states[state.get("status", "queued")] += 1
            except (OSError, ValueError):
                continue  # deleted or being written while we scan
        gauge = GaugeMetricFamily("restauro_jobs", "Restoration jobs by state", labels=["state"])
        for name in ("queued", "running", "succeeded", "failed"):
            gauge.add_metric([name], states.get(name, 0))
        yield gauge
        buckets = [(str(b), sum(1 for s in seconds if s <= b)) for b in SECONDS_BUCKETS]
        buckets.append(("+Inf", len(seconds)))
        yield HistogramMetricFamily(
            "restauro_restoration_seconds",
            "Seconds a worker spent restoring one job",
            buckets=buckets,
            sum_value=sum(seconds),
        )


class QueueCollector:
    """Messages waiting per queue, asked of the broker at scrape time (skipped if it is down)."""

    def __init__(self, depths: Callable[[], dict[str, int]]) -> None:
        self.depths = depths

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "restauro_queue_depth", "Jobs waiting in each queue", labels=["queue"]
        )
        try:
            for queue, depth in self.depths().items():
                gauge.add_metric([queue], depth)
        except Exception:  # broker down: /metrics must still answer; readyz reports it
            pass
        yield gauge


class RequestMetrics:
    """Counts requests by route template (not raw path: ids would explode the label set)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def wrapped_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, wrapped_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
