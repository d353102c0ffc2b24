"""node/metrics/requests.py: the hand-rolled S3 request families, as Prometheus parses them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.metrics.requests import S3RequestMetrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: S3RequestMetrics) -> Samples:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }


def bucket(found: Samples, operation: str, le: str) -> float:
    labels = tuple(sorted({"operation": operation, "le": le}.items()))
    return found[("lakenode_s3_request_duration_seconds_bucket", labels)]


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    metrics = S3RequestMetrics()
    for seconds in (0.0005, 0.001, 0.0011, 0.5, 301.0):  # 0.001 and 0.5 sit on bounds
        metrics.started()
        metrics.finished("GetObject", 200, seconds, 0, 10)
    found = samples(metrics)
    assert bucket(found, "GetObject", "0.001") == 2  # le means "less or equal"
    assert bucket(found, "GetObject", "0.0025") == 3
    assert bucket(found, "GetObject", "0.25") == 3
    assert bucket(found, "GetObject", "0.5") == 4
    assert bucket(found, "GetObject", "300.0") == 4
    assert bucket(found, "GetObject", "+Inf") == 5
    count = found[("lakenode_s3_request_duration_seconds_count", (("operation", "GetObject"),))]
    total = found[("lakenode_s3_request_duration_seconds_sum", (("operation", "GetObject"),))]
    assert count == 5
    assert abs(total - 301.5026) < 1e-9


def test_counts_bytes_and_in_flight() -> None:
    metrics = S3RequestMetrics()
    metrics.started()
    metrics.started()
    metrics.finished("PutObject", 200, 0.01, 1000, 0)
    metrics.finished("Unknown", 501, 0.001, 0, 250)
    metrics.started()  # still being served
    found = samples(metrics)
    requests = "lakenode_s3_requests_total"
    assert found[(requests, (("operation", "PutObject"), ("status", "200")))] == 1
    assert found[(requests, (("operation", "Unknown"), ("status", "501")))] == 1
    assert found[("lakenode_s3_received_bytes_total", ())] == 1000
    assert found[("lakenode_s3_sent_bytes_total", ())] == 250
    assert found[("lakenode_s3_requests_in_flight", ())] == 1
