"""Maintenance mode on a running node: stop every writer, say so on disk, and undo it.

Enabling, in order: close the write gate (S3 mutations and the replication write endpoints
get 503 from now on) and wait until no write is in flight; cancel the pull tasks; then commit
the ``maintenance`` row through the group committer, which commits only after everything
queued before it. When :meth:`Maintenance.enable` returns, nothing in the node writes, so a
job that must not run beside a live writer (a *quiet* job) may run. Disabling is refused while
such a job runs; otherwise it clears the row, opens the gate and restarts the pulls.

The row survives restarts: a node started on a data dir left in maintenance starts quiesced
(see :meth:`Maintenance.restore`), and ``lakenode maintenance enable`` on a stopped data dir
only writes the row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from api.write_gate import WriteGate
from node.peers import Pullers
from storage.ops import operator_state
from storage.store import Store

log = logging.getLogger("lakenode.node")

DEFAULT_DRAIN_TIMEOUT_S: Final = 60.0


class MaintenanceError(Exception):
    """Maintenance cannot change state now; the message is one line for the operator."""


def quiet_refusal(name: str) -> str:
    return (
        f"{name} must not run beside a live writer: run `lakenode maintenance enable` first, "
        "or stop the node"
    )


class Maintenance:
    def __init__(self, gate: WriteGate, pullers: Pullers) -> None:
        self.gate = gate
        self.pullers = pullers
        self.changed_ms: int | None = None
        # True only once every writer is quiet (the gate closes before that: "entering").
        self._quiesced = False
        self._quiet_jobs = 0
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self._quiesced

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self._quiesced,
            "changed_ms": self.changed_ms,
            "writes_paused": self.gate.closed,
            "in_flight_writes": self.gate.in_flight,
            "quiet_jobs": self._quiet_jobs,
        }

    async def restore(self, store: Store) -> bool:
        """At start: pick the flag up from disk; if set, refuse writes from the first request
        (the caller then starts the pulls paused). Returns the flag."""
        record = await operator_state.maintenance(store)
        self.changed_ms = record.changed_ms
        if record.enabled:
            self.gate.close_now()
            self._quiesced = True
            log.warning("data dir is in maintenance mode: writes refused until disabled")
        return record.enabled

    async def enable(self, store: Store, timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S) -> None:
        async with self._lock:
            if self._quiesced:
                return
            try:
                await self.gate.close(timeout_s)
            except TimeoutError:
                in_flight = self.gate.in_flight
                self.gate.open()
                raise MaintenanceError(
                    f"{in_flight} write(s) still in flight after {timeout_s:g} s: maintenance "
                    "not enabled (try again, or allow longer with --timeout)"
                ) from None
            try:
                await self.pullers.pause()
                record = await operator_state.set_maintenance(store, True)
            except BaseException:
                self.gate.open()
                self.pullers.resume()
                raise
            self._quiesced = True
            self.changed_ms = record.changed_ms
            log.warning("maintenance mode enabled: writes refused, pulls paused")

    async def disable(self, store: Store) -> None:
        async with self._lock:
            if self._quiet_jobs:
                raise MaintenanceError(
                    f"{self._quiet_jobs} job(s) that must not run beside a live writer are "
                    "running: maintenance stays on until they finish"
                )
            # From here no quiet job may start; if persisting fails, we stay in maintenance.
            self._quiesced = False
            try:
                record = await operator_state.set_maintenance(store, False)
            except BaseException:
                self._quiesced = True
                raise
            self.changed_ms = record.changed_ms
            self.gate.open()
            self.pullers.resume()
            log.warning("maintenance mode disabled: writes accepted, pulls resumed")

    def check_quiet(self, name: str) -> None:
        """Raise MaintenanceError unless a quiet job may start now."""
        if not self._quiesced:
            raise MaintenanceError(quiet_refusal(name))

    @contextmanager
    def quiet_job(self, name: str) -> Iterator[None]:
        """Hold maintenance on while a quiet job runs."""
        self.check_quiet(name)
        self._quiet_jobs += 1
        try:
            yield
        finally:
            self._quiet_jobs -= 1
