"""node/console/history.py: the overview's in-memory charts, bounded per series and in count;
the request rates; and node/console/node_facts.py's sum of the request counters."""

from __future__ import annotations

import asyncio

from node.console.history import (
    ERRORS,
    LAG_PREFIX,
    REQUESTS,
    History,
    RequestTotals,
    Sampler,
    sample_interval_s,
)
from node.console.node_facts import sum_requests


class FakeNode:
    """What a sampler reads, set by the test (a plain object, not a mock)."""

    def __init__(self) -> None:
        self.totals = RequestTotals(0, 0)
        self.lags: dict[str, float] = {}
        self.now = 1000.0

    async def read_totals(self) -> RequestTotals:
        return self.totals

    async def read_lags(self) -> dict[str, float]:
        return dict(self.lags)

    def clock(self) -> float:
        return self.now


def sampler_of(node: FakeNode, history: History | None = None) -> Sampler:
    return Sampler(node.read_totals, node.read_lags, 10.0, node.clock, history)


def test_each_series_keeps_at_most_its_bound_newest_last() -> None:
    history = History(points_max=5)
    for n in range(12):
        history.add("a", float(n), float(n))
        if n % 2 == 0:
            history.add("b", float(n), -float(n))
    assert history.points("a") == [(float(n), float(n)) for n in range(7, 12)]
    assert history.points("b") == [(float(n), -float(n)) for n in (2, 4, 6, 8, 10)]
    assert history.points("unknown") == []


def test_the_number_of_series_is_bounded_and_stale_ones_go() -> None:
    history = History(points_max=3, series_max=2)
    history.add("a", 1.0, 1.0)
    history.add("b", 1.0, 1.0)
    history.add("c", 1.0, 1.0)  # a third: not kept
    assert history.names() == ["a", "b"]
    history.add("b", 50.0, 2.0)
    history.drop_older_than(10.0)  # "a" was last fed at 1.0
    assert history.names() == ["b"]
    history.add("c", 51.0, 3.0)  # room again
    assert history.names() == ["b", "c"]


def test_the_sampler_records_rates_per_interval_and_lag_per_peer() -> None:
    node = FakeNode()
    sampler = sampler_of(node)
    node.lags = {"site-1": 0.5, "site-2": 3.0}
    asyncio.run(sampler.sample())  # the first reading: no rate yet
    assert sampler.history.points(REQUESTS) == []
    node.now, node.totals = 1010.0, RequestTotals(100, 5)
    node.lags = {"site-1": 1.5}
    asyncio.run(sampler.sample())
    assert sampler.history.points(REQUESTS) == [(1010.0, 10.0)]
    assert sampler.history.points(ERRORS) == [(1010.0, 0.5)]
    assert sampler.history.points(LAG_PREFIX + "site-1") == [(1000.0, 0.5), (1010.0, 1.5)]
    assert sampler.history.points(LAG_PREFIX + "site-2") == [(1000.0, 3.0)]


def test_counters_that_start_again_leave_a_gap_not_a_negative_rate() -> None:
    node = FakeNode()
    sampler = sampler_of(node)
    node.totals = RequestTotals(500, 10)
    asyncio.run(sampler.sample())
    node.now, node.totals = 1010.0, RequestTotals(20, 0)  # a worker restarted
    asyncio.run(sampler.sample())
    node.now, node.totals = 1020.0, RequestTotals(70, 0)
    asyncio.run(sampler.sample())
    assert sampler.history.points(REQUESTS) == [(1020.0, 5.0)]


def test_an_hour_of_samples_stays_an_hour_and_a_peer_gone_is_dropped() -> None:
    node = FakeNode()
    sampler = sampler_of(node, History(points_max=360))
    node.lags = {"gone": 1.0, "kept": 2.0}
    for step in range(1000):
        node.now = 1000.0 + 10 * step
        node.totals = RequestTotals(step * 10, 0)
        if step == 100:
            node.lags = {"kept": 2.0}
        asyncio.run(sampler.sample())
    history = sampler.history
    assert len(history.points(REQUESTS)) == 360
    assert history.points(REQUESTS)[-1] == (node.now, 1.0)
    assert history.names(LAG_PREFIX) == [LAG_PREFIX + "kept"]
    assert len(history.points(LAG_PREFIX + "kept")) == 360


def test_rates_over_the_last_minute() -> None:
    node = FakeNode()
    sampler = sampler_of(node)
    assert sampler.rates(RequestTotals(5, 0), 1000.0).requests_per_s is None  # no reading yet
    for step in range(10):  # a reading every 10 s, 6 requests a second, 1 error in 10 s
        node.now, node.totals = 1000.0 + 10 * step, RequestTotals(60 * step, step)
        asyncio.run(sampler.sample())
    now = node.now + 5
    rates = sampler.rates(RequestTotals(60 * 9 + 30, 9), now)
    assert rates.window_s == 55.0  # the oldest reading within a minute
    assert rates.requests_per_s == (60 * 9 + 30 - 60 * 4) / 55.0
    assert rates.errors_per_s == 5 / 55.0
    # A reading under a second old is too close: the one before it counts.
    assert sampler.rates(RequestTotals(60 * 9, 9), node.now + 0.5).window_s == 50.5


def test_the_interval_comes_from_the_environment_within_bounds() -> None:
    assert sample_interval_s({}) == 10.0
    assert sample_interval_s({"LAKENODE_CONSOLE_SAMPLE_S": "0.5"}) == 0.5
    assert sample_interval_s({"LAKENODE_CONSOLE_SAMPLE_S": "0"}) == 0.1
    assert sample_interval_s({"LAKENODE_CONSOLE_SAMPLE_S": "nan"}) == 10.0
    assert sample_interval_s({"LAKENODE_CONSOLE_SAMPLE_S": "soon"}) == 10.0


def test_request_counters_are_summed_over_the_workers_expositions() -> None:
    worker = (
        b"# HELP lakenode_s3_requests S3 requests by operation and HTTP status\n"
        b"# TYPE lakenode_s3_requests counter\n"
        b'lakenode_s3_requests_total{operation="GetObject",status="200"} 7.0\n'
        b'lakenode_s3_requests_total{operation="GetObject",status="404"} 2.0\n'
        b'lakenode_s3_requests_total{operation="PutObject",status="503"} 1.0\n'
        b"# TYPE lakenode_s3_sent_bytes counter\n"
        b"lakenode_s3_sent_bytes_total 999.0\n"
    )
    assert sum_requests([worker, worker]) == RequestTotals(20, 2)
    assert sum_requests([]) == RequestTotals(0, 0)
