"""Object lock on the apply path: a peer's lock changes merged, and deletes that race with locks.

The lock state of a version merges as storage/lock_state.py says (protection never
decreases through replication). What this module adds is how lock state and permanent deletes
(``version.delete``) meet on a site that learns of them in any order:

* ``version.lock`` (and the ``"lock"`` of an ``object.put`` payload) is merged with
  :func:`storage.locks.merge_lock`, never compared by LWW.
* A version tombstone is the record of a delete, whether or not it took effect. The delete
  takes effect only while the merged lock state permits it at the delete's own time (its HLC
  wall time, with its ``bypass_governance`` flag): a refused remote delete stays recorded,
  *pending*, and is counted as a conflict.
* After every change that can alter the verdict (a lock arriving, the version arriving, the
  delete arriving), ``settle`` (storage/lock_deletes.py, where the rule itself lives) makes
  the version's presence agree with it: present iff there is no delete, or the merged lock
  forbids it. So a version whose delete raced with a lock comes back from the lock change's
  manifest (resurrection), and a pending delete takes effect once a later change (a legal
  hold lifted, GOVERNANCE shortened with bypass) permits it. The outcome depends only on the
  set of changes a site holds, not on their order: two sites that hold the same changes hold
  the same versions.

docs/replication.md ("Object lock") states the rule for operators.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from storage import locks
from storage.lock_state import BadLockState, LockState, from_json
from storage.lww import Stamp
from storage.manifest import Kind, Manifest
from storage.sync.feed import Change

LOCK_OP = "version.lock"
_LOCK_PAYLOAD_FIELDS = frozenset({"lock"})


def payload_lock(op: str, payload: dict[str, Any] | None) -> LockState | None:
    """The lock state a change carries, strictly checked (BadLockState if malformed).

    ``version.lock`` must carry exactly ``{"lock": state}``; an ``object.put`` may carry a
    ``"lock"`` beside its tags; a ``version.delete``'s ``bypass_governance`` must be a boolean.
    Called on every page received (replication/protocol.py) and again when applying.
    """
    if op == LOCK_OP:
        if payload is None or set(payload) != _LOCK_PAYLOAD_FIELDS:
            raise BadLockState('version.lock payload must be {"lock": state}')
        return _bounded(from_json(payload["lock"]))
    bypass = (payload or {}).get("bypass_governance", False)
    if op == "version.delete" and not isinstance(bypass, bool):
        raise BadLockState("bypass_governance must be a boolean")
    if op == "object.put" and payload is not None and "lock" in payload:
        return _bounded(from_json(payload["lock"]))
    return None


_INT_MAX = (1 << 63) - 1  # SQLite INTEGER


def _bounded(state: LockState) -> LockState:
    """Every number in [0, 2^63): dates and stamps a catalog row can hold."""
    numbers = [state.compliance_until_ms, *state.hold_set.values(), *state.hold_seen.values()]
    if state.governance is not None:
        numbers += [state.governance[0].hlc, state.governance[1]]
    if any(n is not None and not 0 <= n <= _INT_MAX for n in numbers):
        raise BadLockState("lock dates and stamps must be integers in [0, 2^63)")
    return state


def merge_payload_lock(conn: sqlite3.Connection, change: Change, manifest: Manifest) -> None:
    """An ``object.put`` written with lock settings: its state merged into the version's."""
    state = payload_lock(change.op, change.payload)
    if state is not None:
        stamp = Stamp(change.hlc, change.origin)
        locks.merge_lock(conn, manifest.bucket, manifest.key, manifest.version_id, state, stamp)


def merge_change_lock(conn: sqlite3.Connection, change: Change) -> LockState:
    """A ``version.lock``: its state merged into the version's; returns the merged state."""
    assert change.key is not None and change.version_id is not None
    state = payload_lock(change.op, change.payload)
    assert state is not None
    stamp = Stamp(change.hlc, change.origin)
    return locks.merge_lock(conn, change.bucket, change.key, change.version_id, state, stamp)


# ---- deletes against locks (the rule itself: storage/lock_deletes.py) -----------------------


def lock_stamp(conn: sqlite3.Connection, bucket: str, key: str, version_id: str) -> Stamp:
    row = conn.execute(
        "SELECT hlc, origin FROM version_locks WHERE bucket = ? AND key = ? AND version_id = ?",
        (bucket, key, version_id),
    ).fetchone()
    return Stamp(int(row[0]), str(row[1])) if row is not None else Stamp(0, "")


def record_refused_delete(conn: sqlite3.Connection, change: Change, now_ms: int) -> None:
    """A remote delete the lock forbids: kept for review like a losing write (no manifest);
    the winner named is the lock's last change."""
    assert change.key is not None and change.version_id is not None
    winner = lock_stamp(conn, change.bucket, change.key, change.version_id)
    conn.execute(
        "INSERT INTO conflicts (bucket, key, version_id, hlc, origin, winner_hlc,"
        " winner_origin, manifest, recorded_ms) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
        (change.bucket, change.key, change.version_id, change.hlc, change.origin,
         winner.hlc, winner.origin, now_ms),
    )  # fmt: skip


def check_lock_manifest(change: Change, manifest: Manifest) -> str | None:
    """Why a ``version.lock``'s manifest does not describe the change's version, or None."""
    if (manifest.bucket, manifest.key, manifest.version_id) != (
        change.bucket,
        change.key,
        change.version_id,
    ):
        return "manifest does not name the locked version"
    if manifest.kind != Kind.OBJECT:
        return "a lock on a delete marker"
    return None
