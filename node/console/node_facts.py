"""What the overview and Replication pages read of the running node (in its primary worker).

node/app.py builds one :class:`NodeView` when the console is on and starts its sampler with
the node's other background tasks. Every figure comes from where ``lakenode repl status`` and
``/_lakenode/metrics`` take theirs, so the three agree:

* peers: node/metrics/replication.py (``full_reports``: the records on disk plus a live probe
  of each configured peer), and its ``peer_state`` for the state word ("in sync" on exactly the
  rule of ``repl status``);
* storage used: the usage the metrics compute in the background (never measured per view);
  free space: statvfs of the data dir, as the ``lakenode_disk_*`` gauges;
* request and error rates: the S3 request counters of every worker (the primary asks the
  others as the metrics route does), differenced by the sampler (node/console/history.py).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from prometheus_client.parser import text_string_to_metric_families

from node.admin.maintenance import Maintenance
from node.console import figures
from node.console.history import (
    ERRORS,
    LAG_PREFIX,
    REQUESTS,
    RequestTotals,
    Sampler,
    sample_interval_s,
)
from node.console.validate_now import Validator
from node.internal import local_metrics_of
from node.metrics.registry import NodeMetrics
from node.metrics.replication import PeerReport, full_reports, local_reports, peer_state
from node.peers import Pullers
from storage.sync.site import SyncSite

log = logging.getLogger("lakenode.console")

REQUESTS_SAMPLE: Final = "lakenode_s3_requests_total"
# Concurrent views (several tabs, the 5 s refresh) share one probe of the peers.
REPORTS_TTL_S: Final = 2.0


@dataclass
class NodeSources:
    """The running node's parts the console reads (filled in by node/app.py)."""

    data_dir: Path
    address: str
    site: Callable[[], SyncSite | None]  # None until the lifespan opens the store
    pullers: Pullers
    peer_verify: ssl.SSLContext | bool
    maintenance: Maintenance
    metrics: NodeMetrics
    started_monotonic: float
    other_workers: range  # the workers whose request counters are summed with this one's


def sum_requests(texts: Sequence[bytes]) -> RequestTotals:
    """All S3 requests and the 5xx answers, summed over Prometheus expositions."""
    requests = errors = 0.0
    for text in texts:
        for family in text_string_to_metric_families(text.decode("utf-8", errors="replace")):
            for sample in family.samples:
                if sample.name != REQUESTS_SAMPLE:
                    continue
                requests += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    errors += sample.value
    return RequestTotals(int(requests), int(errors))


class NodeView:
    """The figures of the overview and Replication pages, and the chart history."""

    def __init__(self, sources: NodeSources, interval_s: float | None = None) -> None:
        self.sources = sources
        self.sampler = Sampler(self.request_totals, self.lags, interval_s or sample_interval_s())
        self.validator = Validator()
        self._reports: list[PeerReport] | None = None
        self._reports_at = 0.0
        self._reports_lock = asyncio.Lock()

    def site(self) -> SyncSite | None:
        return self.sources.site()

    async def request_totals(self) -> RequestTotals:
        sources = self.sources
        texts = [sources.metrics.local_exposition()]
        if sources.other_workers:
            texts += await local_metrics_of(sources.data_dir, sources.other_workers)
        return sum_requests(texts)

    async def lags(self) -> dict[str, float]:
        """Each peer's lag as the metrics see it (from disk: no peer is asked)."""
        site = self.site()
        if site is None:
            return {}
        reports = await local_reports(site, self.sources.pullers.states)
        return {report.peer: report.lag_s for report in reports if report.lag_s is not None}

    async def peer_reports(self) -> list[PeerReport]:
        """Every peer's report as `repl status` makes it: from disk, each configured peer
        probed live (a probe waits at most node/metrics/replication.py PROBE_TIMEOUT_S)."""
        async with self._reports_lock:
            if self._reports is not None and time.monotonic() - self._reports_at < REPORTS_TTL_S:
                return self._reports
            site = self.site()
            if site is None:
                return []
            pullers = self.sources.pullers
            await pullers.flush_counters(site)
            if pullers.sign is None:
                reports = await local_reports(site, [])
            else:
                reports = await full_reports(
                    site, pullers.states, pullers.sign, self.sources.peer_verify
                )
            self._reports, self._reports_at = reports, time.monotonic()
            return reports

    def forget_reports(self) -> None:
        """After a validate: the next view reads its record."""
        self._reports = None

    async def peer_rows(self) -> list[dict[str, Any]]:
        """Each peer as `repl status --json` shows it, with its state word and its figures
        in words (the same words on the page and in the script's updates)."""
        rows = []
        for report in await self.peer_reports():
            row = report.to_json()
            row["state"] = peer_state(row)
            row["shown"] = figures.peer_figures(row, time.time())
            rows.append(row)
        return rows

    def node_facts(self) -> dict[str, Any]:
        sources = self.sources
        site = self.site()
        usage = sources.metrics.storage.usage
        free: int | None = None
        total: int | None = None
        try:
            disk = shutil.disk_usage(sources.data_dir)
            free, total = disk.free, disk.total
        except OSError as exc:
            log.warning("disk usage of %s: %s", sources.data_dir, exc)
        return {
            "node_id": site.node_id if site is not None else "",
            "address": sources.address,
            "version": sources.metrics.storage.version,
            "uptime_s": time.monotonic() - sources.started_monotonic,
            "maintenance": sources.maintenance.describe(),
            "storage": {
                "live_bytes": None if usage is None else usage.live_bytes,
                "segment_bytes": None if usage is None else usage.segment_bytes,
                "objects": None if usage is None else usage.objects,
                "free_bytes": free,
                "total_bytes": total,
            },
        }

    async def overview(self) -> dict[str, Any]:
        """The overview's figures and its charts' series (``GET api/overview``)."""
        now = time.time()
        node = self.node_facts()
        rates = self.sampler.rates(await self.request_totals(), now)
        requests = {
            "per_s": rates.requests_per_s,
            "errors_per_s": rates.errors_per_s,
            "window_s": rates.window_s,
        }
        history = self.sampler.history
        return {
            "now_ms": int(now * 1000),
            "sample_s": self.sampler.interval_s,
            "node": node,
            "requests": requests,
            "shown": figures.node_figures(node, requests),
            "peers": await self.peer_rows(),
            "series": {
                "requests": _points(history.points(REQUESTS)),
                "errors": _points(history.points(ERRORS)),
                "lag": {
                    name.removeprefix(LAG_PREFIX): _points(history.points(name))
                    for name in history.names(LAG_PREFIX)
                },
            },
        }


def _points(points: Sequence[tuple[float, float]]) -> list[list[float]]:
    """[[time in ms, value], ...], rounded: the page polls this every few seconds."""
    return [[int(at * 1000), round(value, 3)] for at, value in points]
