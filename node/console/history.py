"""The overview's charts: figures sampled every few seconds, kept in memory for an hour.

A :class:`Sampler` runs in the node's primary worker (the one every console request reaches,
node/internal.py). Every ``interval_s`` it reads the node's S3 request counters (totals since
each worker started) and each peer's replication lag, and appends to a :class:`History`:

* ``requests`` and ``errors``: requests and 5xx answers per second since the previous sample;
* ``lag:<peer>``: that peer's lag in seconds.

Nothing goes to disk: a restart starts the charts afresh. Memory is bounded: each series holds
``points_max`` points (360: an hour at 10 s), there are at most ``series_max`` series, and a
series not fed for ``points_max`` intervals (a peer gone) is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

log = logging.getLogger("lakenode.console")

SAMPLE_ENV: Final = "LAKENODE_CONSOLE_SAMPLE_S"  # tests sample faster
SAMPLE_S_DEFAULT: Final = 10.0
POINTS_MAX: Final = 360  # an hour at the default interval
SERIES_MAX: Final = 64
RATE_WINDOW_S: Final = 60.0
REQUESTS, ERRORS, LAG_PREFIX = "requests", "errors", "lag:"

Point = tuple[float, float]  # (unix time in seconds, value)


def sample_interval_s(environ: dict[str, str] | None = None) -> float:
    """The sampling interval: LAKENODE_CONSOLE_SAMPLE_S if it is a number in [0.1, 3600]."""
    text = (os.environ if environ is None else environ).get(SAMPLE_ENV, "")
    try:
        value = float(text) if text else SAMPLE_S_DEFAULT
    except ValueError:
        log.warning("%s=%r is not a number: sampling every %s s", SAMPLE_ENV, text,
                    SAMPLE_S_DEFAULT)  # fmt: skip
        return SAMPLE_S_DEFAULT
    return min(max(value, 0.1), 3600.0) if math.isfinite(value) else SAMPLE_S_DEFAULT


@dataclass(frozen=True)
class RequestTotals:
    """S3 requests counted since the workers started: all of them, and the 5xx answers."""

    requests: int
    errors: int


@dataclass(frozen=True)
class Rates:
    """Per second over the window (None until two readings exist)."""

    requests_per_s: float | None
    errors_per_s: float | None
    window_s: float


class History:
    """Named series of (time, value), each bounded, the number of series bounded too."""

    def __init__(self, points_max: int = POINTS_MAX, series_max: int = SERIES_MAX) -> None:
        self.points_max = points_max
        self.series_max = series_max
        self._series: dict[str, deque[Point]] = {}

    def add(self, name: str, at: float, value: float) -> None:
        points = self._series.get(name)
        if points is None:
            if len(self._series) >= self.series_max:
                log.warning("console history: %d series already, %r not kept",
                            self.series_max, name)  # fmt: skip
                return
            points = self._series[name] = deque(maxlen=self.points_max)
        points.append((at, value))

    def drop_older_than(self, cutoff: float) -> None:
        """Forget the series whose newest point is older than ``cutoff`` (a peer gone)."""
        for name in [n for n, points in self._series.items() if points[-1][0] < cutoff]:
            del self._series[name]

    def points(self, name: str) -> list[Point]:
        return list(self._series.get(name, ()))

    def names(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self._series if name.startswith(prefix))


class Sampler:
    """Feeds a History from the node every ``interval_s``; also keeps the request totals of
    the last minute, for the rates the overview shows now."""

    def __init__(
        self,
        read_totals: Callable[[], Awaitable[RequestTotals]],
        read_lags: Callable[[], Awaitable[dict[str, float]]],
        interval_s: float = SAMPLE_S_DEFAULT,
        clock: Callable[[], float] = time.time,
        history: History | None = None,
    ) -> None:
        self.read_totals = read_totals
        self.read_lags = read_lags
        self.interval_s = interval_s
        self.clock = clock
        self.history = history or History()
        # Readings of the last RATE_WINDOW_S (and one before), oldest first.
        self._totals: deque[tuple[float, RequestTotals]] = deque(
            maxlen=math.ceil(RATE_WINDOW_S / interval_s) + 2
        )

    async def sample(self) -> None:
        """One sample of every series."""
        now = self.clock()
        totals = await self.read_totals()
        if self._totals:
            since, before = self._totals[-1]
            rates = _rates(before, totals, now - since)
            if rates is not None:  # else a worker restarted: its counters began again
                self.history.add(REQUESTS, now, rates[0])
                self.history.add(ERRORS, now, rates[1])
        self._totals.append((now, totals))
        for peer, lag in (await self.read_lags()).items():
            self.history.add(LAG_PREFIX + peer, now, lag)
        self.history.drop_older_than(now - self.interval_s * self.history.points_max)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:  # the charts miss a point; the node goes on
                log.exception("console sampler: a sample failed")
            await asyncio.sleep(self.interval_s)

    def rates(self, totals: RequestTotals, now: float) -> Rates:
        """Request and error rates from the reading a minute ago (else the newest older one)
        to ``totals``, read at ``now``; readings under a second old are too close to tell."""
        usable = [(at, seen) for at, seen in self._totals if now - at >= 1.0]
        within = [(at, seen) for at, seen in usable if now - at <= RATE_WINDOW_S]
        chosen = within[0] if within else usable[-1] if usable else None
        if chosen is not None:
            found = _rates(chosen[1], totals, now - chosen[0])
            if found is not None:
                return Rates(found[0], found[1], now - chosen[0])
        return Rates(None, None, RATE_WINDOW_S)


def _rates(
    before: RequestTotals, after: RequestTotals, seconds: float
) -> tuple[float, float] | None:
    if seconds <= 0 or after.requests < before.requests or after.errors < before.errors:
        return None
    return (after.requests - before.requests) / seconds, (after.errors - before.errors) / seconds
