"""Permanent deletes against object locks: is a version's delete permitted, and settling it.

A version tombstone (``version_tombstones``) records a delete of one version for good. Where
deletes and locks are made on different sites, a delete can reach a site that knows a lock
forbidding it, and a lock can reach a site that already applied the delete. The rule that
makes every site agree, whatever the order: **a version is present iff it has no delete, or
its merged lock state forbids that delete at the delete's own time** (its HLC wall time, with
the delete's ``bypass_governance`` flag). :func:`settle` enforces it for one version after any
change of its inputs: the apply path (storage/sync/apply.py, storage/sync/apply_locks.py)
after a lock, a delete or the version arrives, and a local lock change after merging (a hold
lifted may let a waiting delete take effect).

In the write path because a local lock mutation (storage/mutations.py) must settle too, and
the write path does not import storage/sync/.
"""

from __future__ import annotations

import json
import sqlite3

from storage import catalog, locks
from storage.hlc import LOGICAL_BITS
from storage.lww import Stamp, wins
from storage.manifest import Kind, Manifest


def version_tombstone(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str
) -> Stamp | None:
    row = conn.execute(
        "SELECT hlc, origin FROM version_tombstones WHERE bucket = ? AND key = ?"
        " AND version_id = ?",
        (bucket, key, version_id),
    ).fetchone()
    return None if row is None else Stamp(int(row[0]), str(row[1]))


def bypassed(conn: sqlite3.Connection, delete: Stamp) -> bool:
    """Whether the delete was made with x-amz-bypass-governance-retention, from its change.

    Once tombstone GC pruned the change row the flag is unknown: taken as not bypassed, the
    answer that protects the version (such a delete is older than the safety window, and every
    peer held it, so a lock can hardly still be on its way)."""
    row = conn.execute(
        "SELECT payload FROM changes WHERE origin = ? AND hlc = ? AND op = 'version.delete'",
        (delete.origin, delete.hlc),
    ).fetchone()
    if row is None or not row[0]:
        return False
    return json.loads(row[0]).get("bypass_governance") is True


def delete_permitted(
    conn: sqlite3.Connection,
    bucket: str,
    key: str,
    version_id: str,
    delete: Stamp,
    bypass: bool | None = None,
) -> bool:
    """Does the version's merged lock state permit a delete made at ``delete``'s wall time?

    ``bypass`` None: read the delete's flag from its change row."""
    state = locks.get_lock(conn, bucket, key, version_id)
    if state is None:
        return True
    if bypass is None:
        bypass = bypassed(conn, delete)
    return state.may_delete(delete.hlc >> LOGICAL_BITS, bypass_governance=bypass)


def settle(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str, manifest: Manifest | None
) -> str | None:
    """Make the version's presence agree with its delete and its merged lock state.

    Returns "removed" (a pending delete took effect), "restored" (a removed version came back
    from ``manifest``) or None (nothing to do)."""
    delete = version_tombstone(conn, bucket, key, version_id)
    if delete is None:
        return None
    permitted = delete_permitted(conn, bucket, key, version_id, delete)
    row = conn.execute(
        "SELECT hlc, origin FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
        (bucket, key, version_id),
    ).fetchone()
    if row is not None:
        if permitted and wins(delete, Stamp(int(row[0]), str(row[1]))):
            catalog.delete_version_row(conn, bucket, key, version_id)
            catalog.promote_latest(conn, bucket, key)
            return "removed"
        return None
    if permitted or manifest is None or manifest.kind != Kind.OBJECT:
        return None
    catalog.insert_version(conn, manifest, manifest.encode())
    catalog.promote_latest(conn, bucket, key)  # refreshes the key's digest
    return "restored"
