"""Data appended or referenced but not committed yet, which GC must leave where it is.

An upload streams its chunks into the active segment long before its commit, a received
chunk waits for the apply that indexes it, and UploadPartCopy references a source's chunks
it read from a manifest resolved earlier. None of that is in the catalog while it is in
flight, so GC cannot see it there. Each such operation holds a *floor*: the lowest segment
id it may need. GC retires no segment at or above the lowest floor, checked inside its
commit (the committer runs mutations one at a time, so everything committed before it is in
the catalog it scans, and everything still in flight holds a floor).

Appends only ever go to the active segment, whose id only grows, so a writer's floor is the
active segment id when it starts. With several workers, each publishes its lowest floor in
the node's shared state (storage/workers.py) and GC, in whichever worker runs it, honours all.
The set of segments GC retired is kept here too, under the same lock, so that UploadPartCopy
can tell whether the manifest it was handed is stale.
"""

from __future__ import annotations

import itertools
import threading

from storage.workers import SharedState


class InFlight:
    """Floors of in-flight operations and segments retired by GC. Thread-safe."""

    def __init__(self, shared: SharedState | None = None) -> None:
        self._lock = threading.Lock()
        self._floors: dict[int, int] = {}
        self._tokens = itertools.count(1)
        self._retired: set[int] = set()
        self._shared = shared

    def _publish(self) -> None:
        """Under the lock: tell the other workers our lowest floor."""
        if self._shared is not None:
            self._shared.set_floor(min(self._floors.values(), default=None))

    def enter(self, floor: int) -> int:
        """Hold segments >= ``floor``; return a token for :meth:`leave`."""
        with self._lock:
            token = next(self._tokens)
            self._floors[token] = floor
            self._publish()
            return token

    def enter_unless_retired(self, segment_ids: set[int]) -> int | None:
        """Hold segments >= min(segment_ids), unless one of them is retired (then None)."""
        with self._lock:
            if segment_ids & self._retired:
                return None
            token = next(self._tokens)
            self._floors[token] = min(segment_ids, default=0)
            self._publish()
            return token

    def leave(self, token: int) -> None:
        with self._lock:
            if self._floors.pop(token, None) is not None:
                self._publish()

    def retire(self, candidates: set[int]) -> set[int]:
        """Mark as retired the candidates below every floor, this worker's and the others';
        return them (GC's commit)."""
        with self._lock:
            floors = list(self._floors.values())
            if self._shared is not None:
                floors += self._shared.other_floors()
            floor = min(floors, default=None)
            allowed = {s for s in candidates if floor is None or s < floor}
            self._retired |= allowed
            return allowed

    def unretire(self, segment_ids: set[int]) -> None:
        """GC's commit failed after :meth:`retire`: those segments stay."""
        with self._lock:
            self._retired -= segment_ids
