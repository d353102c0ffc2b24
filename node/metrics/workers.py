"""The node's own counts with several workers: each worker's S3 and commit metrics, summed.

Each worker counts its requests, fsyncs and commit batches in its own memory
(node/metrics/requests.py). The first worker renders ``/_lakenode/metrics`` for the node: it
asks every other worker for the Prometheus text of those counts over the internal channel
(node/internal.py) and adds up the samples that have the same name and labels. Counters and
histograms sum to the node's figures; the one gauge among them, requests in flight, too.
Two more families describe the process model itself: ``lakenode_workers`` (worker processes
configured) and ``lakenode_worker_restarts_total`` (workers the supervisor restarted after
they died).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from storage.workers import SharedState


def sum_expositions(texts: Iterable[bytes]) -> list[Metric]:
    """Families of every text, with the samples of equal name and labels added up."""
    families: dict[str, Metric] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text.decode()):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                sums[family.name] = {}
            totals = sums[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                totals[key] = totals.get(key, 0.0) + sample.value
    for name, family in families.items():
        for (sample_name, labels), value in sums[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(families.values())


class WorkersCollector(Collector):
    """Yields the summed local metrics of the latest scrape, and the process-model figures."""

    def __init__(self, workers: int, shared: SharedState) -> None:
        self.workers = workers
        self._shared = shared
        self.texts: list[bytes] = []  # set before each render

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        yield from sum_expositions(self.texts)
        yield GaugeMetricFamily(
            "lakenode_workers", "Worker processes serving S3 (--workers)", value=self.workers
        )
        yield CounterMetricFamily(
            "lakenode_worker_restarts",
            "Workers the supervisor restarted after they died",
            value=self._shared.restarts,
        )


# Tasks a node runs once, whatever its worker count (node/app.py names them so); pulls are
# named "pull:<peer url>", one per peer.
ONCE_PER_NODE_TASKS = ("admin", "lifecycle", "repl-counters", "tombstone-gc", "usage-metrics")


class BackgroundTasks(Collector):
    """``lakenode_background_tasks{task}``: instances of each once-per-node task running in
    this process (summed over the workers: the node's; 1 each, pulls 1 per peer)."""

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        counts = dict.fromkeys((*ONCE_PER_NODE_TASKS, "pull"), 0)
        for task in asyncio.all_tasks():
            name = task.get_name().split(":", 1)[0]
            if name in counts and not task.done():
                counts[name] += 1
        family = GaugeMetricFamily(
            "lakenode_background_tasks",
            "Instances of each once-per-node background task running (pull: one per peer)",
            labels=["task"],
        )
        for name, count in sorted(counts.items()):
            family.add_metric([name], count)
        yield family
