"""node/metrics/storage.py: job rows as the tools write them (or garble them), daemon threads."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.metrics.storage import StorageCollector, in_daemon_thread


def rendered(collector: StorageCollector) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_unreadable_rows_read_as_zero_and_raise_no_error(tmp_path: Path) -> None:
    collector = StorageCollector(tmp_path)
    collector.rows = {
        "job:scrub": "{not json",
        "job:gc": json.dumps({"done_ratio": True, "reclaimed_bytes": "12", "finished_ms": None}),
        "maintenance": "off",
    }
    samples = rendered(collector)
    jobs = {
        name: v for name, v in samples.items() if name.startswith(("lakenode_scrub", "lakenode_gc"))
    }
    assert jobs and set(jobs.values()) == {0}
    assert samples["lakenode_maintenance_mode"] == 0
    assert "lakenode_storage_live_bytes" not in samples  # usage not computed yet


@pytest.mark.parametrize(
    ("text", "expected"),
    [('{"enabled": true, "changed_ms": 1}', 1), ('{"enabled": false, "changed_ms": 1}', 0),
     ("1", 1), ("ON", 1), ("0", 0), ("", 0)],
)  # fmt: skip
def test_maintenance_row(tmp_path: Path, text: str, expected: int) -> None:
    collector = StorageCollector(tmp_path)
    collector.rows = {"maintenance": text}
    assert rendered(collector)["lakenode_maintenance_mode"] == expected


def test_daemon_thread_returns_and_raises(tmp_path: Path) -> None:
    def where(path: Path) -> tuple[str, bool]:
        current = threading.current_thread()
        return f"{path.name}", current.daemon

    assert asyncio.run(in_daemon_thread(where, tmp_path)) == (tmp_path.name, True)

    def fails(_path: Path) -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(in_daemon_thread(fails, tmp_path))
