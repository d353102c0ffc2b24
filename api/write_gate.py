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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Final

from api.errors import S3Error

WRITE_METHODS: Final = frozenset(("PUT", "POST", "DELETE"))
# What clients are told to wait before retrying a refused write (maintenance lasts minutes,
# but SDKs back off on their own; a few seconds keeps a short maintenance short for them).
RETRY_AFTER_S: Final = 5
MAINTENANCE_MESSAGE: Final = (
    "The node is in maintenance mode: writes are paused, reads continue. Retry later."
)


class WriteGate:
    def __init__(self, retry_after_s: int = RETRY_AFTER_S) -> None:
        self.retry_after_s = retry_after_s
        self._closed = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def admitted(self, refuse: Callable[[], Exception]) -> Iterator[None]:
        """Hold a write slot for the block; raise ``refuse()`` instead while closed."""
        if self._closed:
            raise refuse()
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def s3_write(self) -> AbstractContextManager[None]:
        """A slot for an S3 mutation; SlowDown (503, Retry-After) while closed."""
        return self.admitted(self.slow_down)

    def slow_down(self) -> S3Error:
        return S3Error(
            "SlowDown", MAINTENANCE_MESSAGE, headers={"Retry-After": str(self.retry_after_s)}
        )

    def close_now(self) -> None:
        """Refuse new writes (at start, for a node that was left in maintenance)."""
        self._closed = True

    async def close(self, timeout_s: float) -> None:
        """Refuse new writes and wait until none is in flight. On TimeoutError the gate is
        left closed: the caller decides whether to reopen it."""
        self._closed = True
        await asyncio.wait_for(self._idle.wait(), timeout_s)

    def open(self) -> None:
        self._closed = False
