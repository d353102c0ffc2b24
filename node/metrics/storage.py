"""Storage, disk, maintenance, scrub and GC gauges, and build info.

Storage usage (storage/ops/usage.py) reads every manifest, so it is computed in the background,
once at start and then ``USAGE_INTERVAL_S`` after the previous run ended (or ``USAGE_DUTY``
times that run's duration, if longer: a big catalog is not rescanned back to back), never per
scrape. Each run opens its own read-only connection, so it neither waits for nor delays S3
reads on the store's reader connection: in a daemon thread of its own for a small store (a
stopping node does not wait for it), in a child process at nice 19 for a big one
(node/metrics/usage_process.py), so that it holds no GIL the server needs. The rest is cheap
and read at scrape time: the ``job:scrub``, ``job:gc`` and ``maintenance`` rows of ``meta``
(one indexed query on the metrics' own connection) and statvfs of the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.metrics.usage_process import (
    compute_in_child,
    compute_usage,
    read_only_catalog,
    should_isolate,
)
from storage.ops.usage import UsageTotals

log = logging.getLogger("lakenode.metrics")

T = TypeVar("T")
USAGE_INTERVAL_S = 30.0
USAGE_DUTY = 10  # wait at least this many times the last computation's duration
SCRUB_ROW, GC_ROW, MAINTENANCE_ROW = "job:scrub", "job:gc", "maintenance"
_ENABLED = frozenset(("1", "on", "true", "yes", "enabled"))
# (metric suffix, field of the job row, help); a ratio or count as recorded by the job.
SCRUB_FIELDS = (
    ("progress_ratio", "done_ratio", "Progress of the current or last scrub, 0 to 1"),
    ("corrupt_chunks", "corrupt_chunks", "Corrupt chunks found by the current or last scrub"),
    ("corrupt_objects", "corrupt_objects", "Objects with corrupt chunks found by that scrub"),
    ("checked_bytes", "checked_bytes", "Bytes checked by the current or last scrub"),
)
GC_FIELDS = (
    ("progress_ratio", "done_ratio", "Progress of the current or last GC run, 0 to 1"),
    ("reclaimed_bytes", "reclaimed_bytes", "Bytes reclaimed by the current or last GC run"),
    ("segments_rewritten", "segments_rewritten", "Segments rewritten by that GC run"),
)


def read_state_rows(conn: sqlite3.Connection) -> dict[str, str]:
    names = (SCRUB_ROW, GC_ROW, MAINTENANCE_ROW)
    rows = conn.execute("SELECT name, value FROM meta WHERE name IN (?, ?, ?)", names)
    return {str(name): str(value) for name, value in rows}


class CatalogReader:
    """The metrics' own read-only catalog connection, used from worker threads in turn."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._run, function)

    def _run(self, function: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                self._conn = read_only_catalog(self._data_dir)
            return function(self._conn)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def build_version() -> str:
    try:
        return version("lakenode")
    except PackageNotFoundError:
        return "unknown"


def _job_row(rows: Mapping[str, str], name: str) -> dict[str, Any] | None:
    text = rows.get(name)
    if text is None:
        return None
    try:
        row = json.loads(text)
    except ValueError:
        log.warning("meta row %s is not JSON: %.100r", name, text)
        return None
    return row if isinstance(row, dict) else None


def _maintenance_enabled(text: str | None) -> bool:
    """The ``maintenance`` row (storage/ops/operator_state.py: {"enabled": bool, ...})."""
    if text is None:
        return False
    try:
        row = json.loads(text)
    except ValueError:
        return text.strip().lower() in _ENABLED
    if isinstance(row, dict):
        return row.get("enabled") is True
    return str(row).strip().lower() in _ENABLED


class StorageCollector(Collector):
    """Renders the latest usage totals and state rows, and statvfs of the data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.usage: UsageTotals | None = None  # None until the first background run ends
        self.rows: dict[str, str] = {}
        self.version = build_version()

    def describe(self) -> Iterable[Metric]:
        return []  # samples depend on what has been read so far

    def collect(self) -> Iterable[Metric]:
        yield from self._usage()
        yield from self._disk()
        enabled = _maintenance_enabled(self.rows.get(MAINTENANCE_ROW))
        yield _gauge("maintenance_mode", "1 while maintenance mode is on", 1.0 if enabled else 0.0)
        info = GaugeMetricFamily("lakenode_build_info", "Version of lakenode", labels=["version"])
        info.add_metric([self.version], 1.0)
        yield info
        yield from _job_gauges("scrub", _job_row(self.rows, SCRUB_ROW), SCRUB_FIELDS)
        yield from _job_gauges("gc", _job_row(self.rows, GC_ROW), GC_FIELDS)

    def _usage(self) -> Iterable[Metric]:
        usage = self.usage
        if usage is None:
            return
        yield _gauge("storage_live_bytes", "Bytes of chunk records still referenced",
                     usage.live_bytes)  # fmt: skip
        yield _gauge("storage_garbage_bytes", "Segment bytes not referenced (GC can reclaim)",
                     usage.garbage_bytes)  # fmt: skip
        yield _gauge("storage_segments", "Segment files", usage.segments)
        yield _gauge("storage_segment_bytes", "Bytes of all segment files", usage.segment_bytes)
        yield _gauge("storage_objects", "Current visible objects", usage.objects)

    def _disk(self) -> Iterable[Metric]:
        try:
            stats = os.statvfs(self.data_dir)
        except OSError as exc:
            log.warning("statvfs %s failed: %s", self.data_dir, exc)
            return
        yield _gauge("disk_free_bytes", "Bytes available to lakenode on the data dir's filesystem",
                     stats.f_bavail * stats.f_frsize)  # fmt: skip
        yield _gauge("disk_total_bytes", "Size of the data dir's filesystem",
                     stats.f_blocks * stats.f_frsize)  # fmt: skip


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"lakenode_{name}", text, value=value)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _job_gauges(
    job: str, row: dict[str, Any] | None, fields: tuple[tuple[str, str, str], ...]
) -> Iterable[Metric]:
    # Before the first run every gauge reads 0 (a last-finished time of 0 means never), so
    # dashboards and alerts see the series from the start.
    row = row if row is not None else {}
    for suffix, key, text in fields:
        yield _gauge(f"{job}_{suffix}", text, _number(row.get(key)))
    seconds = _number(row.get("finished_ms")) / 1000
    yield _gauge(f"{job}_last_finished_timestamp_seconds",
                 f"When the last {job} run finished (0: never)", seconds)  # fmt: skip


async def refresh_usage_forever(collector: StorageCollector) -> None:
    """Compute usage now, then again and again after a pause (a background task)."""
    while True:
        started = time.monotonic()
        try:
            collector.usage = await measure_usage(collector.data_dir)
        except Exception:
            log.exception("computing storage usage for metrics failed")
        elapsed = time.monotonic() - started
        await asyncio.sleep(max(USAGE_INTERVAL_S, USAGE_DUTY * elapsed))


async def measure_usage(data_dir: Path) -> UsageTotals:
    """In a low-priority child process for a big store, else in a daemon thread
    (node/metrics/usage_process.py says why)."""
    if should_isolate(data_dir):
        return await compute_in_child(data_dir)
    return await in_daemon_thread(compute_usage, data_dir)


async def in_daemon_thread(function: Callable[[Path], T], argument: Path) -> T:
    """``function(argument)`` in a daemon thread: unlike the default executor's threads, one
    that is still running does not hold up the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # the awaiting task may have been cancelled
            outcome()

    def work() -> None:
        try:
            result = function(argument)
        except Exception as exc:
            answer: Callable[[], None] = functools.partial(future.set_exception, exc)
        else:
            answer = functools.partial(future.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, answer)

    threading.Thread(target=work, name="usage-metrics", daemon=True).start()
    return await future
