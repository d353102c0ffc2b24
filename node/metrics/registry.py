"""Prometheus metrics at ``/_lakenode/metrics``: one registry for the whole node.

A dedicated :class:`CollectorRegistry` (never the process-global default) holds:

* S3 requests, fsync latency and group-commit batch sizes, counted as they happen
  (node/metrics/requests.py, fed through api/observe.py and storage/stats_hooks.py);
* storage usage, disk space, maintenance mode, scrub and GC progress, build info
  (node/metrics/storage.py: usage in the background, the rest read at scrape time);
* replication per peer, computed from disk (below);
* the lifecycle worker's counters and last pass (node/metrics/lifecycle.py, its ``meta`` row).

For replication, each scrape first reads the catalog (node/metrics/replication.py: backlog, lag and
last success from the change log and the cursors; counters from ``meta``), then renders;
nothing is counted only in memory, so every value is the same after a restart:

=================================================  =============================================
``lakenode_repl_lag_seconds``                       age of the oldest change of our log the peer
                                                    has not acknowledged (0 when none)
``lakenode_repl_backlog_ops`` / ``_bytes``          those changes: count, sum of object sizes
``lakenode_repl_last_success_timestamp_seconds``    last successful round, else the last time a
                                                    cursor with the peer moved (on disk)
``lakenode_repl_apply_errors_total{reason}``        failed rounds by reason (``meta``, flushed)
``lakenode_repl_conflicts_total``                   changes that lost LWW (``meta``, counted in
                                                    the transaction that applied them)
``lakenode_repl_conditional_conflicts_total``       of those, the ones where the loser or the
                                                    winner was a conditional write (If-None-Match
                                                    / If-Match hold per site only)
``lakenode_repl_clock_offset_seconds``              peer clock minus ours, last round trip
``lakenode_repl_skew_rejections_total``             as conflicts
``lakenode_repl_link_up``                           the last attempt reached the peer
``lakenode_repl_bytes_sent_total`` / ``_received``  replication request/answer bodies (``meta``)
``lakenode_repl_validate_mismatches``               differences found by the last validate
``lakenode_repl_bootstrap_progress_ratio``          as recorded by the bootstrap job
=================================================  =============================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.metrics.lifecycle import LifecycleCollector, read_lifecycle_row
from node.metrics.replication import PeerReport, local_reports
from node.metrics.requests import CommitMetrics, S3RequestMetrics
from node.metrics.storage import CatalogReader, StorageCollector, read_state_rows
from node.metrics.workers import BackgroundTasks, WorkersCollector
from replication.puller import PeerState
from storage.sync.site import SyncSite

PREFIX = "lakenode_repl_"


class ReplicationCollector(Collector):
    """Renders the reports of the latest refresh (collect() cannot await the store)."""

    def __init__(self) -> None:
        self.reports: list[PeerReport] = []

    def describe(self) -> Iterable[Metric]:
        return []  # no samples at registration: they are only known after a refresh

    def collect(self) -> Iterable[Metric]:
        def gauge(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, text, labels=["peer"])

        def counter(name: str, text: str, labels: Sequence[str] = ("peer",)) -> CounterMetricFamily:
            return CounterMetricFamily(PREFIX + name, text, labels=list(labels))

        lag = gauge("lag_seconds", "Age of the oldest change of this node's log not yet "
                    "acknowledged by the peer (0 when none)")  # fmt: skip
        ops = gauge("backlog_ops", "Changes of this node's log not yet acknowledged by the peer")
        size = gauge("backlog_bytes", "Object bytes of those changes")
        success = gauge(
            "last_success_timestamp_seconds", "Last successful replication exchange with the peer"
        )
        errors = counter(
            "apply_errors", "Failed replication rounds by reason", labels=("peer", "reason")
        )
        conflicts = counter("conflicts", "Replicated changes that lost last-writer-wins")
        conditional = counter(
            "conditional_conflicts",
            "Of the conflicts, those where the loser or the winner was a conditional write",
        )
        offset = gauge("clock_offset_seconds", "Peer wall clock minus this node's, estimated")
        skew = counter("skew_rejections", "Changes refused for being stamped too far ahead")
        link = gauge("link_up", "1 if the last attempt reached the peer, else 0")
        sent = counter("bytes_sent", "Replication request bodies sent to the peer")
        received = counter("bytes_received", "Replication answer bodies received from the peer")
        mismatches = gauge("validate_mismatches", "Differences found by the last repl validate")
        progress = gauge("bootstrap_progress_ratio", "Bootstrap from the peer: done / total")
        for report in self.reports:
            peer = [report.peer]
            if report.backlog_ops is not None:
                ops.add_metric(peer, report.backlog_ops)
                size.add_metric(peer, report.backlog_bytes or 0)
                lag.add_metric(peer, report.lag_s or 0.0)
            if report.last_success_ms is not None:
                success.add_metric(peer, report.last_success_ms / 1000)
            if report.clock_offset_s is not None:
                offset.add_metric(peer, report.clock_offset_s)
            if report.url is not None:  # a configured peer: its link is tried
                link.add_metric(peer, 1.0 if report.link_up else 0.0)
            counts = report.counters
            for reason, count in sorted(counts.apply_errors.items()):
                errors.add_metric([report.peer, reason], count)
            conflicts.add_metric(peer, counts.conflicts)
            conditional.add_metric(peer, counts.conditional_conflicts)
            skew.add_metric(peer, counts.skew_rejections)
            sent.add_metric(peer, counts.bytes_sent)
            received.add_metric(peer, counts.bytes_received)
            if report.last_validate is not None:
                mismatches.add_metric(peer, report.last_validate.differences)
            if report.bootstrap_progress is not None:
                progress.add_metric(peer, report.bootstrap_progress)
        yield from (lag, ops, size, success, errors, conflicts, offset, skew, link, sent)
        yield from (received, mismatches, progress, conditional)


class _Registered(Collector):
    """Another registry's collectors, as one collector (this process's own counts)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


class NodeMetrics:
    """The node's registry; ``render`` refreshes from disk and returns the exposition text.

    What this process counts alone (S3 requests, fsyncs, commit batches) is in ``local``;
    with several workers the node's figures are those of every worker summed
    (node/metrics/workers.py), else ``local``'s as they are."""

    def __init__(self, data_dir: Path, workers: WorkersCollector | None = None) -> None:
        # No *_created series: they double the series count and nothing here needs them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.local = CollectorRegistry(auto_describe=False)
        self.requests = S3RequestMetrics()
        self.local.register(self.requests)
        self.commits = CommitMetrics(self.local)
        self.local.register(BackgroundTasks())
        self.workers = workers
        self.registry = CollectorRegistry(auto_describe=False)
        self.storage = StorageCollector(data_dir)
        self.replication = ReplicationCollector()
        self.registry.register(workers if workers is not None else _Registered(self.local))
        self.registry.register(self.storage)
        self.registry.register(self.replication)
        self.lifecycle = LifecycleCollector()
        self.registry.register(self.lifecycle)
        self._catalog = CatalogReader(data_dir)
        self._lock = asyncio.Lock()

    def local_exposition(self) -> bytes:
        """What this process counts alone, as Prometheus text (for the primary worker)."""
        return generate_latest(self.local)

    async def render(
        self, site: SyncSite, states: Sequence[PeerState], others: Sequence[bytes] = ()
    ) -> bytes:
        """The node's metrics; ``others``: the local expositions of the other workers."""
        async with self._lock:  # concurrent scrapes: one refresh and render at a time
            if self.workers is not None:
                self.workers.texts = [self.local_exposition(), *others]
            self.storage.rows = await self._catalog.run(read_state_rows)
            self.replication.reports = await local_reports(site, states)
            self.lifecycle.row = await self._catalog.run(read_lifecycle_row)
            return generate_latest(self.registry)

    def close(self) -> None:
        self._catalog.close()
