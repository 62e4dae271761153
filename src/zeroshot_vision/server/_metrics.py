"""The server's Prometheus metrics (``GET /metrics``).

Each app gets its own registry, so several servers in one process (tests) never share
counters, and nothing is registered at import time.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from zeroshot_vision.server._batching import BatchObserver

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format's media type."""

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics(BatchObserver):
    """Requests, latencies, batch sizes and queue depth, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "zsv_requests",
            "HTTP requests answered, by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zsv_request_seconds",
            "Time to answer an HTTP request, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "zsv_batch_size",
            "Items (texts or images) per forward pass of the model",
            ["kind"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "zsv_batch_seconds",
            "Time of one forward pass of the model",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "zsv_queue_depth",
            "Requests waiting for (or in) the model",
            registry=self.registry,
        )

    def batch(self, kind: str, size: int, seconds: float) -> None:
        """Record one forward pass."""
        self.batch_size.labels(kind).observe(size)
        self.batch_seconds.labels(kind).observe(seconds)

    def depth(self, waiting: int) -> None:
        """Record the number of requests admitted to the model."""
        self.queue_depth.set(waiting)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        """Everything, in the Prometheus text format."""
        return generate_latest(self.registry)
