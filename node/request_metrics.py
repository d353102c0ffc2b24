"""Metrics counted as things happen: S3 requests (api/observe.py) and commits (storage hooks).

The S3 dispatcher calls :class:`S3RequestMetrics` for every request, so the hot path is kept
small: label children are looked up once per (operation, status) and cached in plain dicts,
and each request costs a few lock-protected additions. Prometheus objects are thread-safe,
which the fsync hook needs (it is called from worker threads).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Small GETs take about a millisecond; big uploads minutes.
REQUEST_SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0,
)  # fmt: skip
FSYNC_SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
)  # fmt: skip
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # storage.commit.BATCH_MUTATIONS_MAX


class S3RequestMetrics:
    """An api.observe.RequestObserver feeding the lakenode_s3_* metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "lakenode_s3_requests",
            "S3 requests by operation and HTTP status",
            ["operation", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "lakenode_s3_request_duration_seconds",
            "S3 request time from arrival to the last body byte sent",
            ["operation"],
            buckets=REQUEST_SECONDS_BUCKETS,
            registry=registry,
        )
        self.received = Counter(
            "lakenode_s3_received_bytes", "S3 request body bytes received", registry=registry
        )
        self.sent = Counter(
            "lakenode_s3_sent_bytes", "S3 response body bytes sent", registry=registry
        )
        self.in_flight = Gauge(
            "lakenode_s3_requests_in_flight", "S3 requests being served", registry=registry
        )
        self._counts: dict[tuple[str, int], Counter] = {}
        self._durations: dict[str, Histogram] = {}

    def started(self) -> None:
        self.in_flight.inc()

    def finished(
        self, operation: str, status: int, seconds: float, bytes_in: int, bytes_out: int
    ) -> None:
        self.in_flight.dec()
        count = self._counts.get((operation, status))
        if count is None:
            count = self._counts[(operation, status)] = self.requests.labels(operation, str(status))
        count.inc()
        duration = self._durations.get(operation)
        if duration is None:
            duration = self._durations[operation] = self.duration.labels(operation)
        duration.observe(seconds)
        if bytes_in:
            self.received.inc(bytes_in)
        if bytes_out:
            self.sent.inc(bytes_out)


class CommitMetrics:
    """A storage.stats_hooks.CommitObserver feeding fsync latency and batch sizes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.fsync = Histogram(
            "lakenode_fsync_duration_seconds",
            "fsync of segment data (group commits and segment rotation)",
            buckets=FSYNC_SECONDS_BUCKETS,
            registry=registry,
        )
        self.batch = Histogram(
            "lakenode_commit_batch_size",
            "Mutations made durable per group commit",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )

    def fsynced(self, seconds: float) -> None:
        self.fsync.observe(seconds)

    def committed(self, mutations: int) -> None:
        self.batch.observe(mutations)
