"""Object lock rows (``version_locks``): read, merge in, and ask what they protect.

Every write of lock state goes through :func:`merge_lock`, whether it comes from an S3 call on
this site or from a peer, so the stored state is always the merge (storage/lock_state.py) of
everything this site has learnt. ``protected_until`` is derived from the state when it is
written, so that GC, lifecycle and deletes can skip protected versions with an indexed query:
the greatest retain-until date, or :data:`HELD` while a legal hold is on.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from storage.lock_state import LockState, loads, merge
from storage.lww import Stamp

HELD: Final = 2**63 - 1  # protected_until while a legal hold is on: never by date alone


def get_lock(conn: sqlite3.Connection, bucket: str, key: str, version_id: str) -> LockState | None:
    row = conn.execute(
        "SELECT state FROM version_locks WHERE bucket = ? AND key = ? AND version_id = ?",
        (bucket, key, version_id),
    ).fetchone()
    return None if row is None else loads(row[0])


def merge_lock(
    conn: sqlite3.Connection,
    bucket: str,
    key: str,
    version_id: str,
    incoming: LockState,
    stamp: Stamp,
) -> LockState:
    """Merge ``incoming`` into the version's stored lock state; return the result."""
    stored = get_lock(conn, bucket, key, version_id)
    merged = incoming if stored is None else merge(stored, incoming)
    conn.execute(
        "INSERT INTO version_locks VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (bucket, key, version_id) DO UPDATE SET state = excluded.state,"
        " protected_until = excluded.protected_until,"
        " hlc = max(hlc, excluded.hlc),"
        " origin = CASE WHEN excluded.hlc > hlc THEN excluded.origin ELSE origin END",
        (bucket, key, version_id, merged.dumps(), protected_until(merged), stamp.hlc, stamp.origin),
    )
    return merged


def protected_until(state: LockState) -> int:
    """Until when (ms) nothing may remove the version; GOVERNANCE counts (bypass is per call)."""
    if state.legal_hold:
        return HELD
    return max(state.compliance_until_ms or 0, state.governance_until_ms or 0)


def is_protected(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str, at_ms: int
) -> bool:
    """Cheap check for background jobs (lifecycle, GC tools): any lock still in force?"""
    row = conn.execute(
        "SELECT 1 FROM version_locks WHERE bucket = ? AND key = ? AND version_id = ?"
        " AND protected_until > ?",
        (bucket, key, version_id, at_ms),
    ).fetchone()
    return row is not None
