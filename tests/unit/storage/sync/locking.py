"""Object lock changes on real stores, for the sync and ops tests (no S3 layer needed).

:class:`SetLock` is what issue 11's local lock mutations commit (PutObjectRetention,
PutObjectLegalHold): the new state merged with ``locks.merge_lock`` under the mutation's stamp,
one ``version.lock`` change with the merged state and the version's manifest, and (as
storage/lock_deletes.py asks of every local lock change) ``settle`` afterwards.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage import catalog, digest, lock_deletes, locks
from storage.commit import Outcome
from storage.hlc import Timestamp
from storage.lock_state import LockState
from storage.lww import Stamp
from storage.store import Store

DAY_MS = 24 * 3600 * 1000

Edit = Callable[[LockState, Stamp], LockState]


def compliance(until_ms: int) -> Edit:
    return lambda state, _stamp: state.with_compliance(until_ms)


def governance(until_ms: int | None) -> Edit:
    return lambda state, stamp: state.with_governance(stamp, until_ms)


def hold(state: LockState, stamp: Stamp) -> LockState:
    return state.with_hold(stamp)


def unhold(state: LockState, _stamp: Stamp) -> LockState:
    return state.without_hold()


@dataclass(frozen=True)
class SetLock:
    bucket: str
    key: str
    version_id: str
    edit: Edit

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[LockState]:
        manifest = catalog.get_version(conn, self.bucket, self.key, self.version_id)
        where = (self.bucket, self.key, self.version_id)
        lock_stamp = Stamp(stamp.pack(), stamp.node_id)
        state = self.edit(locks.get_lock(conn, *where) or LockState(), lock_stamp)
        merged = locks.merge_lock(conn, *where, state, lock_stamp)
        catalog.log_change(
            conn,
            stamp,
            "version.lock",
            self.bucket,
            manifest_bytes=manifest.encode(),
            payload={"lock": merged.to_json()},
            key=self.key,
            version_id=self.version_id,
        )
        lock_deletes.settle(conn, *where, None)
        return Outcome(merged)


async def set_lock(store: Store, bucket: str, key: str, version_id: str, edit: Edit) -> LockState:
    return await store.commit(SetLock(bucket, key, version_id, edit))


def _lock_rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT bucket, key, version_id, state, protected_until FROM version_locks"
        " ORDER BY bucket, key, version_id"
    ).fetchall()


async def lock_rows(store: Store) -> list[tuple[Any, ...]]:
    """Every lock row: (bucket, key, version id, state JSON, protected_until)."""
    return await store.query(_lock_rows)


async def get_lock(store: Store, bucket: str, key: str, version_id: str) -> LockState | None:
    return await store.query(locks.get_lock, bucket, key, version_id)


def _site_state(conn: sqlite3.Connection) -> dict[str, Any]:
    versions = conn.execute(
        "SELECT bucket, key, version_id, hlc, origin, kind, is_latest FROM versions"
        " ORDER BY bucket, key, version_id"
    ).fetchall()
    return {"versions": versions, "locks": _lock_rows(conn), "root": digest.node(conn, "")}


async def site_state(store: Store) -> dict[str, Any]:
    """What two converged sites must agree on: versions, lock rows and the Merkle root."""
    return await store.query(_site_state)


def lock_payload(state: LockState) -> dict[str, Any]:
    return {"lock": json.loads(state.dumps())}
