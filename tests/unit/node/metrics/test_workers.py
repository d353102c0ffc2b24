"""Summing the workers' own metrics into the node's (node/metrics/workers.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.metrics.requests import CommitMetrics, S3RequestMetrics
from node.metrics.workers import sum_expositions


def worker_exposition(puts: int, fsync_s: float) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    requests = S3RequestMetrics()
    registry.register(requests)
    commits = CommitMetrics(registry)
    for _ in range(puts):
        requests.started()
        requests.finished("PutObject", 200, 0.002, 100, 0)
    commits.fsynced(fsync_s)
    return generate_latest(registry)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_and_histograms_add_up_across_workers() -> None:
    registry = CollectorRegistry(auto_describe=False)

    class Summed:
        def collect(self):  # type: ignore[no-untyped-def]
            return sum_expositions([worker_exposition(3, 0.001), worker_exposition(4, 0.2)])

    registry.register(Summed())  # type: ignore[arg-type]
    total = samples(generate_latest(registry).decode())
    put = (("operation", "PutObject"), ("status", "200"))
    assert total[("lakenode_s3_requests_total", put)] == 7
    assert total[("lakenode_s3_received_bytes_total", ())] == 700
    assert total[("lakenode_s3_requests_in_flight", ())] == 0
    assert total[("lakenode_fsync_duration_seconds_count", ())] == 2
    assert total[("lakenode_fsync_duration_seconds_bucket", (("le", "0.001"),))] == 1
    assert total[("lakenode_fsync_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    duration = (("le", "+Inf"), ("operation", "PutObject"))
    assert total[("lakenode_s3_request_duration_seconds_bucket", duration)] == 7


def test_no_worker_no_families() -> None:
    assert sum_expositions([]) == []
