"""Progress rows of long jobs (``job:scrub``, ``job:gc`` in ``meta``), for metrics and status
(read by storage/ops/operator_state.py), and :class:`Progress`, the one protocol through which every
long job (storage tools, node/ jobs) reports how far it is.

Written through the group committer as the job goes (at most about once a second) and at
the end, so the node's gauges follow a job run by the CLI or through the admin channel.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from storage import catalog
from storage.clock import Clock
from storage.commit import Outcome
from storage.hlc import Timestamp

SCRUB = "job:scrub"
GC = "job:gc"
WRITE_INTERVAL_S = 1.0


class Progress(Protocol):
    """Where a long job reports how far it is (the one definition; node/ imports it)."""

    def advance(self, done: int, total: int | None, unit: str) -> None:
        """``done`` of ``total`` (None: unknown) ``unit``s (e.g. "bytes", "objects")."""

    def note(self, message: str) -> None:
        """A line for the operator (a finding, a phase change)."""


@dataclass(frozen=True)
class WriteMeta:
    name: str
    document: str  # JSON

    def touched(self) -> tuple[str, str | None]:
        return "", ""  # no object: nothing cached to invalidate

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        catalog.write_meta(conn, self.name, self.document)
        return Outcome(None)


class JobState:
    """A job's row: started now, updated as it goes, finished at the end."""

    def __init__(
        self,
        name: str,
        commit: Callable[[WriteMeta], Awaitable[None]],
        clock: Clock,
        **fields: Any,
    ) -> None:
        self.name = name
        self._commit = commit
        self._clock = clock
        self.document: dict[str, Any] = {
            "started_ms": clock.wall_ms(),
            "finished_ms": None,
            "done_ratio": 0.0,
            **fields,
        }
        self._written_at = 0.0

    async def update(self, *, force: bool = False, **fields: Any) -> None:
        self.document.update(fields)
        now = self._clock.monotonic()
        if force or now - self._written_at >= WRITE_INTERVAL_S:
            self._written_at = now
            await self._commit(WriteMeta(self.name, json.dumps(self.document)))

    async def finish(self, **fields: Any) -> None:
        await self.update(force=True, finished_ms=self._clock.wall_ms(), done_ratio=1.0, **fields)
