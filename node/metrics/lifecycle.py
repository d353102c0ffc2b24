"""Lifecycle worker metrics (``lakenode_lifecycle_*``), read from its ``meta`` row at scrape time.

The counters are bumped in the transaction of the action they count
(storage/ops/lifecycle_actions.py), so they survive restarts and never count an action twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage.ops.lifecycle_actions import read_state

PREFIX = "lakenode_lifecycle_"
# (counter in the row and metric name, help)
COUNTERS = (
    ("objects_expired", "Current object versions expired (a delete marker or tombstone added)"),
    ("versions_expired", "Noncurrent versions and expired delete markers removed for good"),
    ("delete_markers_removed", "Of those, expired object delete markers"),
    ("uploads_aborted", "Incomplete multipart uploads aborted"),
    ("locked_skipped", "Versions a rule would have expired that an object lock protects"),
    ("errors", "Lifecycle actions or passes that failed"),
)


def read_lifecycle_row(conn: sqlite3.Connection) -> dict[str, Any]:
    return read_state(conn)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


class LifecycleCollector(Collector):
    """Renders the row read by the latest refresh (collect() cannot await the store)."""

    def __init__(self) -> None:
        self.row: dict[str, Any] = {}

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        for name, text in COUNTERS:
            yield CounterMetricFamily(PREFIX + name, text, value=_number(self.row.get(name)))
        yield GaugeMetricFamily(
            PREFIX + "last_pass_timestamp_seconds",
            "When the last complete lifecycle pass finished (0: never)",
            value=_number(self.row.get("last_pass_finished_ms")) / 1000,
        )
        yield GaugeMetricFamily(
            PREFIX + "pass_unfinished",
            "1 while a pass is under way or was left unfinished (it resumes from its cursor)",
            value=1.0 if self.row.get("cursor") else 0.0,
        )
