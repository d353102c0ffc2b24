"""The write gate of maintenance mode: count writes in flight, refuse new ones while closed.

Every S3 mutation (PUT, POST and DELETE on S3 routes: object and part uploads, copies,
multipart create/complete/abort, multi-object delete, bucket and configuration changes; no
POST of ours is a read) holds a slot of the gate from its authorization to its answer, which
comes after its group commit. Closing the gate refuses new mutations at once (503 SlowDown
with Retry-After) while reads go on, and :meth:`WriteGate.close` returns when the last
mutation in flight has answered: from then on nothing the S3 surface does writes.

The gate itself knows nothing of HTTP; :meth:`WriteGate.admitted` takes the error to raise,
so node/ can put the replication endpoints (which must not import api/) behind the same gate
with their own JSON error.

With several worker processes the gate is the node's, not the process's: each worker's gate
also reads the closed flag in the node's shared state and publishes its count of writes in
flight there (storage/workers.py), so closing it in one worker (maintenance runs in the first)
refuses writes in all of them, and :meth:`WriteGate.close` waits for all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Final

from api.errors import S3Error
from storage.workers import SharedState

WRITE_METHODS: Final = frozenset(("PUT", "POST", "DELETE"))
# What clients are told to wait before retrying a refused write (maintenance lasts minutes,
# but SDKs back off on their own; a few seconds keeps a short maintenance short for them).
RETRY_AFTER_S: Final = 5
MAINTENANCE_MESSAGE: Final = (
    "The node is in maintenance mode: writes are paused, reads continue. Retry later."
)
# With several workers: how often close() looks at the other workers' writes in flight, and
# how long it watches them stay at zero. A worker counts a write in, then reads the flag; the
# wait covers a count not yet visible to this process when the flag was already set.
SHARED_POLL_S: Final = 0.005
SHARED_SETTLE_S: Final = 0.02


class WriteGate:
    def __init__(self, retry_after_s: int = RETRY_AFTER_S, shared: SharedState | None = None):
        self.retry_after_s = retry_after_s
        self._closed = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._shared = shared

    @property
    def closed(self) -> bool:
        return self._shared.gate_closed if self._shared is not None else self._closed

    @property
    def in_flight(self) -> int:
        if self._shared is not None:
            return self._shared.writes_in_flight()
        return self._in_flight

    @contextmanager
    def admitted(self, refuse: Callable[[], Exception]) -> Iterator[None]:
        """Hold a write slot for the block; raise ``refuse()`` instead while closed."""
        if self._shared is None and self._closed:
            raise refuse()
        self._count(+1)
        if self._shared is not None and self._shared.gate_closed:
            self._count(-1)  # counted first, then checked: close() cannot miss this write
            raise refuse()
        try:
            yield
        finally:
            self._count(-1)

    def _count(self, change: int) -> None:
        self._in_flight += change
        if self._in_flight == 0:
            self._idle.set()
        else:
            self._idle.clear()
        if self._shared is not None:
            self._shared.set_writes_in_flight(self._in_flight)

    def s3_write(self) -> AbstractContextManager[None]:
        """A slot for an S3 mutation; SlowDown (503, Retry-After) while closed."""
        return self.admitted(self.slow_down)

    def slow_down(self) -> S3Error:
        return S3Error(
            "SlowDown", MAINTENANCE_MESSAGE, headers={"Retry-After": str(self.retry_after_s)}
        )

    def close_now(self) -> None:
        """Refuse new writes (at start, for a node that was left in maintenance)."""
        if self._shared is not None:
            self._shared.set_gate_closed(True)
        else:
            self._closed = True

    async def close(self, timeout_s: float) -> None:
        """Refuse new writes and wait until none is in flight (in any worker). On
        TimeoutError the gate is left closed: the caller decides whether to reopen it."""
        self.close_now()
        await asyncio.wait_for(self._drained(), timeout_s)

    async def _drained(self) -> None:
        await self._idle.wait()
        shared = self._shared
        if shared is None:
            return
        quiet_since: float | None = None
        loop = asyncio.get_running_loop()
        while quiet_since is None or loop.time() - quiet_since < SHARED_SETTLE_S:
            if shared.writes_in_flight():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = loop.time()
            await asyncio.sleep(SHARED_POLL_S)

    def open(self) -> None:
        if self._shared is not None:
            self._shared.set_gate_closed(False)
        else:
            self._closed = False
