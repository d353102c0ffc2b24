"""Hybrid logical clock: physical milliseconds + a logical counter + the node id.

A timestamp orders mutations across sites. Rules (Kulkarni et al., "Logical Physical Clocks"):

* local event: ``wall = max(last.wall, now)``; the counter is reset to 0 when wall moves
  forward and incremented otherwise, so every stamp is strictly greater than the last one
  even when the system clock steps backwards;
* received stamp ``r``: the clock jumps to ``max(last, r)`` so that later local events are
  ordered after everything this node has seen.

The pair (wall_ms, logical) is packed into one 64-bit integer (48 + 16 bits) so that SQLite
can compare and index it; ties between nodes are broken by node id, giving a total order.
When the counter would overflow within one millisecond, wall_ms is advanced by one: the clock
runs at most a few milliseconds ahead under extreme load instead of failing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from storage.clock import SYSTEM_CLOCK

LOGICAL_BITS = 16
LOGICAL_MAX = (1 << LOGICAL_BITS) - 1


def wall_clock_ms() -> int:
    """The system clock's wall milliseconds (with the test offset: see storage/clock.py)."""
    return SYSTEM_CLOCK.wall_ms()


@dataclass(frozen=True, order=True)
class Timestamp:
    """One HLC stamp. Field order makes the dataclass ordering the HLC total order."""

    wall_ms: int
    logical: int
    node_id: str

    def pack(self) -> int:
        return pack(self.wall_ms, self.logical)

    @classmethod
    def unpack(cls, packed: int, node_id: str) -> Timestamp:
        return cls(packed >> LOGICAL_BITS, packed & LOGICAL_MAX, node_id)

    def __str__(self) -> str:
        return f"{self.wall_ms}.{self.logical:05d}@{self.node_id}"


def pack(wall_ms: int, logical: int) -> int:
    assert 0 <= logical <= LOGICAL_MAX
    assert wall_ms >= 0
    return (wall_ms << LOGICAL_BITS) | logical


class HybridClock:
    """A node's HLC. Thread-safe; ``last`` is what must be persisted to survive restarts."""

    def __init__(
        self, node_id: str, last: int = 0, now_ms: Callable[[], int] = wall_clock_ms
    ) -> None:
        self.node_id = node_id
        self._last = last
        self._now_ms = now_ms
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        """The largest packed stamp issued or observed."""
        return self._last

    def wall_ms(self) -> int:
        """The wall time this clock stamps from (its time source), without the HLC rules."""
        return self._now_ms()

    def now(self) -> Timestamp:
        """Stamp a local event: strictly greater than every stamp issued or observed."""
        with self._lock:
            last_wall, last_logical = self._last >> LOGICAL_BITS, self._last & LOGICAL_MAX
            wall = self._now_ms()
            if wall > last_wall:
                stamp = pack(wall, 0)
            elif last_logical < LOGICAL_MAX:
                stamp = pack(last_wall, last_logical + 1)
            else:
                stamp = pack(last_wall + 1, 0)
            self._last = stamp
            return Timestamp.unpack(stamp, self.node_id)

    def observe(self, packed: int) -> None:
        """Merge a stamp received from elsewhere so later local stamps order after it."""
        with self._lock:
            self._last = max(self._last, packed)
