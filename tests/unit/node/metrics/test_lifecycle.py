"""node/metrics/lifecycle.py: the lifecycle row as the worker writes it, and before any pass."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.metrics.lifecycle import LifecycleCollector


def rendered(collector: LifecycleCollector) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_every_series_exists_before_the_first_pass() -> None:
    values = rendered(LifecycleCollector())
    for name in ("objects_expired", "versions_expired", "uploads_aborted", "errors"):
        assert values[f"lakenode_lifecycle_{name}_total"] == 0.0
    assert values["lakenode_lifecycle_last_pass_timestamp_seconds"] == 0.0
    assert values["lakenode_lifecycle_pass_unfinished"] == 0.0


def test_the_row_is_rendered_and_garbage_reads_as_zero() -> None:
    collector = LifecycleCollector()
    collector.row = {
        "objects_expired": 7,
        "versions_expired": 3,
        "uploads_aborted": "many",  # not a number: 0, never an error
        "last_pass_finished_ms": 1_500,
        "cursor": {"bucket": "b", "key": "k", "started_ms": 1},
    }
    values = rendered(collector)
    assert values["lakenode_lifecycle_objects_expired_total"] == 7.0
    assert values["lakenode_lifecycle_versions_expired_total"] == 3.0
    assert values["lakenode_lifecycle_uploads_aborted_total"] == 0.0
    assert values["lakenode_lifecycle_last_pass_timestamp_seconds"] == 1.5
    assert values["lakenode_lifecycle_pass_unfinished"] == 1.0
