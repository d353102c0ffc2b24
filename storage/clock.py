"""The one source of time for storage/ and replication/: injected, so tests can control it.

``Clock`` is what every time-dependent piece reads: ``wall_ms``/``wall_s`` (wall clock, for
stamps, expiry windows, skew checks and file names) and ``monotonic`` (intervals and rates).
A ``Store`` holds one (``StoreConfig.time_source``, the system clock by default) and hands it to the
HLC and to whatever needs the time; replication reads it from the store. ``ManualClock`` is the
test double: time stands still until the test moves it, a first step toward a seeded,
deterministic simulation of several sites.

``set_wall_clock_offset_ms`` is a test hook: it shifts this process's system wall clock (not
its monotonic clock), to test the clock-skew guard with real processes. node/ sets it from
LAKENODE_CLOCK_OFFSET_MS at start; never used in production.
"""

from __future__ import annotations

import time
from typing import Protocol

_wall_offset_ms = 0


def set_wall_clock_offset_ms(offset_ms: int) -> None:
    global _wall_offset_ms
    _wall_offset_ms = offset_ms


class Clock(Protocol):
    def wall_ms(self) -> int:
        """Milliseconds since the epoch."""
        ...

    def wall_s(self) -> float:
        """Seconds since the epoch (for ``time.gmtime`` and the like)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps back; only differences mean anything."""
        ...


class SystemClock:
    """The machine's clocks, the wall clock shifted by the test offset (zero in production)."""

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000 + _wall_offset_ms

    def wall_s(self) -> float:
        return time.time() + _wall_offset_ms / 1000

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that moves only when told to: ``advance`` (both clocks) or ``set_wall_ms``
    (the wall clock alone, as a step by NTP)."""

    def __init__(self, wall_ms: int = 1_700_000_000_000, monotonic: float = 0.0) -> None:
        self._wall_ms = wall_ms
        self._monotonic = monotonic

    def wall_ms(self) -> int:
        return self._wall_ms

    def wall_s(self) -> float:
        return self._wall_ms / 1000

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self._wall_ms += round(seconds * 1000)
        self._monotonic += seconds

    def set_wall_ms(self, wall_ms: int) -> None:
        """Step the wall clock (either way, as NTP may); monotonic time does not move."""
        self._wall_ms = wall_ms
