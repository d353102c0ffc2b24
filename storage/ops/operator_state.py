"""Operator state kept in ``meta`` rows: maintenance mode and the last scrub/gc runs.

* ``maintenance``: ``{"enabled": bool, "changed_ms": int}``. Kept on disk so that a node
  restarted in maintenance stays in it, and so that ``lakenode maintenance enable`` works on a
  stopped data dir (the node starts quiesced).
* ``job:scrub`` and ``job:gc``: written by those jobs (their JSON is the shared contract in the
  ops briefs); read here for ``lakenode status``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from storage import catalog
from storage.commit import Outcome
from storage.hlc import HybridClock, Timestamp
from storage.store import Store

MAINTENANCE_META: Final = "maintenance"
JOB_META_PREFIX: Final = "job:"


@dataclass(frozen=True)
class MaintenanceRecord:
    enabled: bool = False
    changed_ms: int | None = None


def read_maintenance(conn: sqlite3.Connection) -> MaintenanceRecord:
    text = catalog.read_meta(conn, MAINTENANCE_META)
    if text is None:
        return MaintenanceRecord()
    try:
        document = json.loads(text)
        return MaintenanceRecord(bool(document["enabled"]), int(document["changed_ms"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"meta row {MAINTENANCE_META!r} is malformed: {text!r}") from exc


def write_maintenance(conn: sqlite3.Connection, enabled: bool, now_ms: int) -> MaintenanceRecord:
    record = MaintenanceRecord(enabled, now_ms)
    catalog.write_meta(
        conn,
        MAINTENANCE_META,
        json.dumps({"enabled": record.enabled, "changed_ms": record.changed_ms}),
    )
    return record


@dataclass(frozen=True)
class SetMaintenance:
    """The flag as a group-commit mutation: it commits after everything queued before it."""

    enabled: bool
    clock: HybridClock  # its time source dates the change

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[MaintenanceRecord]:
        return Outcome(write_maintenance(conn, self.enabled, self.clock.wall_ms()))


def read_job_state(conn: sqlite3.Connection, job: str) -> dict[str, Any] | None:
    """The ``job:<name>`` row as written by that job; None if it never ran. A row that is not
    a JSON object is shown as ``{"malformed": text}`` rather than hidden or fatal."""
    text = catalog.read_meta(conn, JOB_META_PREFIX + job)
    if text is None:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    return document if isinstance(document, dict) else {"malformed": text[:200]}


async def maintenance(store: Store) -> MaintenanceRecord:
    return await store.query(read_maintenance)


async def set_maintenance(store: Store, enabled: bool) -> MaintenanceRecord:
    """Persist the maintenance flag. It goes through the group committer, so when this
    returns every mutation submitted before it is committed too (a write barrier)."""
    return await store.commit(SetMaintenance(enabled, store.clock))


async def job_state(store: Store, job: str) -> dict[str, Any] | None:
    return await store.query(read_job_state, job)
