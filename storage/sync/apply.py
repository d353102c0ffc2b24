"""The apply path: a peer's changes applied here with last-writer-wins, whole or not at all.

* ``apply_remote`` (:class:`ApplyRemote`): apply a batch with LWW and advance the peer's pull
  cursor in the same transaction. Raises MissingChunks (nothing applied) if a version's chunks
  are not all present locally, so a replicated version becomes visible only with all its data.
* A change that loses LWW is a conflict, recorded (storage/sync/conflicts.py) and counted in
  :class:`ApplyResult`; every applied change is relogged with its origin and HLC, so it
  relays on to other sites.
* Object lock state does not go by LWW: ``version.lock`` changes and the lock an
  ``object.put`` carries merge (storage/lock_state.py), and a ``version.delete`` is applied
  only while the version's merged lock permits it; a lock arriving for a version removed here
  may bring it back (storage/sync/apply_locks.py, storage/lock_deletes.py).
* After a restore, this node's own changes are pulled back once from each peer
  (``start_repulling_own_changes``, :class:`OwnChangesRepulled`).

What is read of the log is storage/sync/feed.py.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from storage import bucket_config, catalog, conditions, digest, lock_deletes
from storage.clock import SYSTEM_CLOCK
from storage.commit import Outcome
from storage.errors import FormatError, StorageError
from storage.hlc import LOGICAL_BITS, HybridClock, Timestamp
from storage.lock_state import BadLockState
from storage.lww import Stamp, wins
from storage.manifest import ChunkRef, Kind, Manifest, decode
from storage.sync import apply_locks
from storage.sync.feed import Change, carries_tags, set_cursor


@dataclass
class ApplyResult:
    applied: int = 0
    duplicates: int = 0
    conflicts: int = 0
    # Of those, conflicts where the loser or the winner was written under a write condition
    # (If-None-Match/If-Match): checked on its own site only, so LWW overrode it here.
    conditional_conflicts: int = 0
    skew_rejected: int = 0
    rejected: list[Change] = field(default_factory=list)


class MissingChunks(StorageError):
    """A batch references chunks this node does not hold yet; nothing was applied."""

    def __init__(self, digests: set[bytes]) -> None:
        super().__init__(f"{len(digests)} chunk(s) missing")
        self.digests = digests


class ReplicationError(StorageError):
    """A remote change cannot be applied (unknown operation, malformed manifest...)."""


# ---- re-pulling this node's own changes after a restore ----------------------------------------

REPULL_OWN_SINCE = "repull_own_since"
REPULL_OWN_DONE_PREFIX = "repull_own_done:"


def start_repulling_own_changes(conn: sqlite3.Connection, since_ms: int) -> None:
    """After a restore: this node's changes made after the snapshot are gone here but may be
    held by peers, relayed in their logs **after** where our (restored) pull cursors point
    (they reached the peer after the snapshot). So the next pull from each peer asks for
    every origin, ours included, and applies those we lack; then that peer is done."""
    catalog.write_meta(conn, REPULL_OWN_SINCE, str(since_ms))
    for peer in catalog.read_meta_prefixed(conn, REPULL_OWN_DONE_PREFIX):
        conn.execute("DELETE FROM meta WHERE name = ?", (REPULL_OWN_DONE_PREFIX + peer,))


def repull_state(conn: sqlite3.Connection) -> tuple[bool, set[str]]:
    """(whether own changes are to be re-pulled, the peers already done)."""
    if catalog.read_meta(conn, REPULL_OWN_SINCE) is None:
        return False, set()
    return True, set(catalog.read_meta_prefixed(conn, REPULL_OWN_DONE_PREFIX))


@dataclass(frozen=True)
class OwnChangesRepulled:
    """A full pull round from ``peer`` included our own changes: that peer is done."""

    peer: str

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        catalog.write_meta(conn, REPULL_OWN_DONE_PREFIX + self.peer, str(stamp.wall_ms))
        return Outcome(None)


# ---- small mutations -------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexChunks:
    """Make received chunks findable by hash (after their bytes were appended)."""

    chunks: tuple[ChunkRef, ...]

    def touched(self) -> tuple[str, str | None]:
        return "", ""  # no key: nothing to invalidate

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        catalog.index_chunks(conn, self.chunks)
        return Outcome(None)


# ---- applying a batch ------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyRemote:
    """One batch from one peer: applied whole (one savepoint) or not at all."""

    peer: str
    changes: tuple[Change, ...]
    cursor: int
    max_skew_ms: int
    clock: HybridClock
    received: tuple[ChunkRef, ...] = ()  # chunks appended for this batch: indexed with it

    def touched(self) -> tuple[str, str | None]:
        return "", None  # may touch anything: the read cache is cleared

    @property
    def may_set_tags(self) -> bool:
        """Tell the node's other workers to look tags up again (storage/commit.py)."""
        return bool(carries_tags(self.changes))

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[ApplyResult]:
        catalog.index_chunks(conn, self.received)
        result = apply_changes(conn, self.changes, self.max_skew_ms, self.clock)
        set_cursor(conn, self.peer, "pull", self.cursor, self.clock.wall_ms())
        return Outcome(result)


def apply_changes(
    conn: sqlite3.Connection, changes: tuple[Change, ...], max_skew_ms: int, clock: HybridClock
) -> ApplyResult:
    """Apply changes with LWW inside the caller's transaction, relogging each with its stamp.

    A change already in our log (by ``(origin, hlc)``) is a duplicate. That covers this
    node's own changes too: they are never sent back to it, except when it pulls them again
    after a restore (see :func:`repulls_own_changes`), and then those it lost are applied.

    Raises MissingChunks after looking at every change, so the caller's savepoint rolls the
    whole batch back and the caller learns every chunk it lacks at once.
    """
    result = ApplyResult()
    now_ms = clock.wall_ms()
    missing: set[bytes] = set()
    for change in changes:
        if _already_applied(conn, change):
            result.duplicates += 1
            continue
        if (change.hlc >> LOGICAL_BITS) > now_ms + max_skew_ms:
            result.skew_rejected += 1
            result.rejected.append(change)
            continue
        try:
            conflict = apply_and_log(conn, change, now_ms=clock.wall_ms)
        except MissingChunks as lacking:
            missing |= lacking.digests
            continue
        clock.observe(change.hlc)
        result.applied += 1
        result.conflicts += int(conflict)
        result.conditional_conflicts += int(conflict and _conditional_conflict(conn, change))
    if missing:
        raise MissingChunks(missing)  # the savepoint rolls the whole batch back
    return result


def _conditional_conflict(conn: sqlite3.Connection, lost: Change) -> bool:
    """Whether a change that lost LWW, or the version it lost to, was written conditionally."""
    if lost.manifest is not None and conditions.written_conditionally(decode(lost.manifest)):
        return True
    if lost.key is None or lost.version_id is None:
        return False
    row = conn.execute(
        "SELECT manifest FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
        (lost.bucket, lost.key, lost.version_id),
    ).fetchone()
    return row is not None and conditions.written_conditionally(decode(bytes(row[0])))


def _already_applied(conn: sqlite3.Connection, change: Change) -> bool:
    row = conn.execute(
        "SELECT 1 FROM changes WHERE origin = ? AND hlc = ?", (change.origin, change.hlc)
    ).fetchone()
    return row is not None


def apply_and_log(
    conn: sqlite3.Connection,
    change: Change,
    seq: int | None = None,
    *,
    chunks_local: bool = False,
    now_ms: Callable[[], int] = SYSTEM_CLOCK.wall_ms,
) -> bool:
    """Apply one change with LWW and keep it in our log with its origin and HLC (it relays to
    other sites). Returns True when it lost to newer state (a conflict).

    rebuild-index passes ``seq`` (the change goes back where it was in the log) and
    ``chunks_local`` (the manifest names this node's own chunk records, checked intact: kept
    as it is instead of being mapped to the first copy of each chunk by hash). ``now_ms``
    stamps a conflict's record (the store's clock).
    """
    manifest_bytes = change.manifest
    try:
        if change.op in VERSION_OPS:
            manifest = _checked_manifest(change)
            if not chunks_local:
                manifest = _localized(conn, manifest)
            conflict = _apply_version(conn, change, manifest, now_ms)
            manifest_bytes = manifest.encode()
        elif change.op == apply_locks.LOCK_OP:
            locked = _lock_manifest(conn, change, chunks_local)
            conflict = _apply_version_lock(conn, change, locked)
            manifest_bytes = None if locked is None else locked.encode()
        elif change.op == "version.delete":
            conflict = _apply_version_delete(conn, change, now_ms())
        else:
            conflict = _apply_change(conn, change)
    except BadLockState as exc:
        raise ReplicationError(f"bad lock in change {change.origin}/{change.hlc}: {exc}") from exc
    conn.execute(
        "INSERT INTO changes (seq, hlc, origin, op, bucket, key, version_id, size, etag,"
        " manifest, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, change.hlc, change.origin, change.op, change.bucket, change.key,
         change.version_id, change.size, change.etag, manifest_bytes,
         json.dumps(change.payload, sort_keys=True) if change.payload is not None else None),
    )  # fmt: skip
    return conflict


def _stamp(change: Change) -> Stamp:
    return Stamp(change.hlc, change.origin)


def _apply_change(conn: sqlite3.Connection, change: Change) -> bool:
    """Apply one change; return True when it lost to newer local state (a conflict)."""
    handler = _HANDLERS.get(change.op)
    if handler is None:
        raise ReplicationError(f"unknown operation {change.op!r}")
    return handler(conn, change)


def _checked_manifest(change: Change) -> Manifest:
    """The change's manifest, which must describe the change's own version."""
    if change.manifest is None:
        raise ReplicationError(f"{change.op} without a manifest")
    try:
        remote = decode(change.manifest)
    except FormatError as exc:
        raise ReplicationError(f"bad manifest in change {change.origin}/{change.hlc}") from exc
    if (remote.bucket, remote.key, remote.hlc, remote.origin) != (
        change.bucket,
        change.key,
        change.hlc,
        change.origin,
    ):
        raise ReplicationError("manifest does not match its change")
    return remote


def _localized(conn: sqlite3.Connection, remote: Manifest) -> Manifest:
    """The manifest with chunk locations on this node (all must be present)."""
    local: list[ChunkRef] = []
    lacking: set[bytes] = set()
    for chunk in remote.chunks:
        found = catalog.chunk_location(conn, chunk.blake3)
        if found is None or found.length != chunk.length:
            lacking.add(chunk.blake3)
        else:
            local.append(found)
    if lacking:
        raise MissingChunks(lacking)
    return dataclasses.replace(remote, chunks=tuple(local))


def _apply_version(
    conn: sqlite3.Connection, change: Change, manifest: Manifest, now_ms: Callable[[], int]
) -> bool:
    """object.put / object.delete, with the version's manifest on this node."""
    catalog.get_bucket(conn, manifest.bucket)
    incoming = _stamp(change)
    tomb = conn.execute(
        "SELECT hlc, origin FROM version_tombstones WHERE bucket = ? AND key = ?"
        " AND version_id = ?",
        (manifest.bucket, manifest.key, manifest.version_id),
    ).fetchone()
    if change.op == "object.put":
        apply_locks.merge_payload_lock(conn, change, manifest)
    if tomb is not None:
        delete = Stamp(int(tomb[0]), str(tomb[1]))
        # An older version deleted for good stays deleted, unless its lock forbade the delete.
        if not wins(incoming, delete) and lock_deletes.delete_permitted(
            conn, manifest.bucket, manifest.key, manifest.version_id, delete
        ):
            return True
    row = conn.execute(
        "SELECT hlc, origin FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
        (manifest.bucket, manifest.key, manifest.version_id),
    ).fetchone()
    if row is not None:
        stored = Stamp(int(row[0]), str(row[1]))
        if not wins(incoming, stored):
            _record_conflict(conn, manifest, change.manifest, stored, now_ms())
            return True
        catalog.delete_version_row(conn, manifest.bucket, manifest.key, manifest.version_id)
    catalog.insert_version(conn, manifest, manifest.encode())
    catalog.promote_latest(conn, manifest.bucket, manifest.key)
    tags = (change.payload or {}).get("tags")
    if tags:
        bucket_config.write_tags(
            conn,
            Timestamp.unpack(change.hlc, change.origin),
            manifest.bucket,
            manifest.key,
            manifest.version_id,
            tuple(map(tuple, tags)),
        )
    return False


def _record_conflict(
    conn: sqlite3.Connection, loser: Manifest, raw: bytes | None, winner: Stamp, now_ms: int
) -> None:
    conn.execute(
        "INSERT INTO conflicts (bucket, key, version_id, hlc, origin, winner_hlc,"
        " winner_origin, manifest, recorded_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            loser.bucket,
            loser.key,
            loser.version_id,
            loser.hlc,
            loser.origin,
            winner.hlc,
            winner.origin,
            raw,
            now_ms,
        ),
    )


def _lock_manifest(conn: sqlite3.Connection, change: Change, chunks_local: bool) -> Manifest | None:
    """A version.lock's manifest (the locked version's: it can bring the version back here),
    checked and with chunk locations on this node. None: the change carries none (bootstrap
    of a lock on a removed version, rebuild-index after GC dropped the manifest record)."""
    if change.key is None or change.version_id is None:
        raise ReplicationError("version.lock without a key and version id")
    if change.manifest is None:
        return None
    try:
        manifest = decode(change.manifest)
    except FormatError as exc:
        raise ReplicationError(f"bad manifest in change {change.origin}/{change.hlc}") from exc
    problem = apply_locks.check_lock_manifest(change, manifest)
    if problem is not None:
        raise ReplicationError(f"version.lock {change.origin}/{change.hlc}: {problem}")
    return manifest if chunks_local else _localized(conn, manifest)


def _apply_version_lock(
    conn: sqlite3.Connection, change: Change, manifest: Manifest | None
) -> bool:
    """Lock state merges (never a conflict); a version whose delete it forbids comes back."""
    assert change.key is not None and change.version_id is not None
    catalog.get_bucket(conn, change.bucket)
    apply_locks.merge_change_lock(conn, change)
    lock_deletes.settle(conn, change.bucket, change.key, change.version_id, manifest)
    return False


def _apply_version_delete(conn: sqlite3.Connection, change: Change, now_ms: int) -> bool:
    """A version removed for good on a peer: recorded, and applied unless it loses LWW to a
    newer write of the (null) version or the version's merged lock forbids it (then it stays
    recorded, pending: see storage/sync/apply_locks.py)."""
    if change.key is None or change.version_id is None:
        raise ReplicationError("version.delete without a key and version id")
    apply_locks.payload_lock(change.op, change.payload)  # checks the bypass flag
    catalog.get_bucket(conn, change.bucket)
    catalog.record_version_tombstone(
        conn, change.bucket, change.key, change.version_id, change.hlc, change.origin
    )
    row = conn.execute(
        "SELECT hlc, origin FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
        (change.bucket, change.key, change.version_id),
    ).fetchone()
    if row is None:
        return False
    if not wins(_stamp(change), Stamp(int(row[0]), str(row[1]))):
        return True  # a newer write of this (null) version stands
    bypass = (change.payload or {}).get("bypass_governance") is True
    if not lock_deletes.delete_permitted(
        conn, change.bucket, change.key, change.version_id, _stamp(change), bypass
    ):
        apply_locks.record_refused_delete(conn, change, now_ms)
        return True
    catalog.delete_version_row(conn, change.bucket, change.key, change.version_id)
    catalog.promote_latest(conn, change.bucket, change.key)
    return False


def _apply_bucket_create(conn: sqlite3.Connection, change: Change) -> bool:
    exists = conn.execute("SELECT 1 FROM buckets WHERE name = ?", (change.bucket,)).fetchone()
    if exists:
        return False
    owner = str((change.payload or {}).get("owner", ""))
    conn.execute(
        "INSERT INTO buckets (name, owner, created_ms, hlc, origin) VALUES (?, ?, ?, ?, ?)",
        (change.bucket, owner, change.hlc >> LOGICAL_BITS, change.hlc, change.origin),
    )
    return False


def _apply_bucket_delete(conn: sqlite3.Connection, change: Change) -> bool:
    row = conn.execute(
        "SELECT hlc, origin FROM buckets WHERE name = ?", (change.bucket,)
    ).fetchone()
    if row is None:
        return False
    busy = conn.execute(
        "SELECT 1 FROM versions WHERE bucket = ? AND kind != ? LIMIT 1",
        (change.bucket, int(Kind.TOMBSTONE)),
    ).fetchone()
    if busy or not wins(_stamp(change), Stamp(int(row[0]), str(row[1]))):
        return True  # written to (or re-created) meanwhile here: the bucket stays
    for table in ("versions", "object_tags", "object_acls", "bucket_config"):
        conn.execute(f"DELETE FROM {table} WHERE bucket = ?", (change.bucket,))
    digest.drop_bucket(conn, change.bucket)
    conn.execute("DELETE FROM uploads WHERE bucket = ?", (change.bucket,))
    conn.execute("DELETE FROM buckets WHERE name = ?", (change.bucket,))
    return False


def _apply_document(conn: sqlite3.Connection, change: Change) -> bool:
    """bucket.versioning / .policy / .cors / .tagging / .acl / .ownership /
    .public-access-block: LWW per (bucket, document)."""
    name = change.op.split(".", 1)[1]
    catalog.get_bucket(conn, change.bucket)
    row = conn.execute(
        "SELECT hlc, origin FROM bucket_config WHERE bucket = ? AND name = ?",
        (change.bucket, name),
    ).fetchone()
    if row is not None and not wins(_stamp(change), Stamp(int(row[0]), str(row[1]))):
        return True
    payload = change.payload or {}
    value = str(payload.get("status" if name == "versioning" else "value") or "")
    bucket_config.upsert_bucket_document(
        conn, change.bucket, name, value, change.hlc, change.origin
    )
    if name == "versioning":
        conn.execute("UPDATE buckets SET versioning = ? WHERE name = ?", (value, change.bucket))
    return False


def _apply_tags(conn: sqlite3.Connection, change: Change) -> bool:
    assert change.key is not None and change.version_id is not None
    row = conn.execute(
        "SELECT hlc, origin FROM object_tags WHERE bucket = ? AND key = ? AND version_id = ?",
        (change.bucket, change.key, change.version_id),
    ).fetchone()
    if row is not None and not wins(_stamp(change), Stamp(int(row[0]), str(row[1]))):
        return True
    tags = tuple(tuple(pair) for pair in (change.payload or {}).get("tags", []))
    bucket_config.write_tags(
        conn,
        Timestamp.unpack(change.hlc, change.origin),
        change.bucket,
        change.key,
        change.version_id,
        tags,
    )
    return False


def _apply_object_acl(conn: sqlite3.Connection, change: Change) -> bool:
    """object.acl: LWW per version, like a tag set."""
    assert change.key is not None and change.version_id is not None
    row = conn.execute(
        "SELECT hlc, origin FROM object_acls WHERE bucket = ? AND key = ? AND version_id = ?",
        (change.bucket, change.key, change.version_id),
    ).fetchone()
    if row is not None and not wins(_stamp(change), Stamp(int(row[0]), str(row[1]))):
        return True
    bucket_config.write_object_acl(
        conn,
        Timestamp.unpack(change.hlc, change.origin),
        change.bucket,
        change.key,
        change.version_id,
        str((change.payload or {}).get("acl", "")),
    )
    return False


VERSION_OPS = frozenset({"object.put", "object.delete"})
_HANDLERS = {
    "bucket.create": _apply_bucket_create,
    "bucket.delete": _apply_bucket_delete,
    "bucket.versioning": _apply_document,
    "bucket.policy": _apply_document,
    "bucket.cors": _apply_document,
    "bucket.tagging": _apply_document,
    "bucket.acl": _apply_document,
    "bucket.ownership": _apply_document,
    "bucket.public-access-block": _apply_document,
    "bucket.object-lock": _apply_document,
    "bucket.lifecycle": _apply_document,
    "object.tags": _apply_tags,
    "object.acl": _apply_object_acl,
}
