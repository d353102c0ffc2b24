"""Tombstone GC: drop deletes and old log rows once every peer holds them and time has passed.

A tombstone (an unversioned delete, a version deleted for good, a deleted bucket document, a
removed tag set) exists only so that an older write arriving late loses against it. It may go
when no such write can still arrive:

1. every known peer has acknowledged the change that wrote it (its seq is at or before the
   replication horizon, ``storage/sync/retention.py``), so every peer holds the tombstone itself;
2. its HLC is older than the safety window (default 24 h), so a write older than it, still
   travelling through a relay or sitting on a site that was down, has had that long to arrive.

Change-log rows at or before the horizon and older than the window are pruned too (every
peer has them). The position pruned through is kept in ``meta`` (``log_pruned_through``): a
peer asking for changes after an older position can no longer be served from the log and is
told to bootstrap again (``LogPruned``). The last row of the log is never pruned, so the log's
last seq never goes back.

Object lock (storage/sync/apply_locks.py): a version tombstone also records a delete that a
lock refused (it waits, and takes effect if the lock is later lifted) or one whose version a
lock brought back. Such a tombstone is kept while the version row it deleted exists, or while
a lock row may forbid the delete (``protected_until`` after the delete's time, GOVERNANCE
counted as if not bypassed): dropping it would let two sites decide differently. A version
tombstone is purged only once its delete took effect for good. Lock rows (``version_locks``)
are never purged, not even for removed versions: a lock is a few bytes and a late copy of the
version must still meet it. Log rows of ``version.lock`` changes are pruned like any other:
the merged state is in ``version_locks``, and the segments' journal keeps every change for
rebuild-index.

Conflict records (replicated writes that lost, kept for review) are dropped after their own
retention period.

A purge runs in bounded batches, each one transaction through the group committer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Final

from storage import catalog, digest
from storage.commit import Outcome
from storage.hlc import LOGICAL_BITS, Timestamp
from storage.manifest import Kind
from storage.sync.feed import LOG_PRUNED_THROUGH, last_seq
from storage.sync.retention import replication_horizon

LAST_PURGE: Final = "tombstone_gc_last"
BATCH_ROWS: Final = 2_000
DEFAULT_WINDOW_MS: Final = 24 * 3600 * 1000
DEFAULT_CONFLICT_RETENTION_MS: Final = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class PurgeLimits:
    now_ms: int
    window_ms: int = DEFAULT_WINDOW_MS
    conflict_retention_ms: int = DEFAULT_CONFLICT_RETENTION_MS
    # Peers configured on the running node that may have no cursor row yet: they hold
    # nothing, so nothing may be purged until they have caught up.
    extra_peers: frozenset[str] = frozenset()
    batch_rows: int = BATCH_ROWS

    @property
    def cutoff_hlc(self) -> int:
        return max(0, self.now_ms - self.window_ms) << LOGICAL_BITS


@dataclass
class PurgeReport:
    horizon: int = 0
    tombstones: int = 0
    version_tombstones: int = 0
    documents: int = 0
    tag_sets: int = 0
    conflicts: int = 0
    log_rows: int = 0
    log_pruned_through: int = 0
    keys: list[tuple[str, str]] = field(default_factory=list)  # whose latest state changed

    def add(self, other: PurgeReport) -> None:
        self.horizon = other.horizon
        self.tombstones += other.tombstones
        self.version_tombstones += other.version_tombstones
        self.documents += other.documents
        self.tag_sets += other.tag_sets
        self.conflicts += other.conflicts
        self.log_rows += other.log_rows
        self.log_pruned_through = max(self.log_pruned_through, other.log_pruned_through)
        self.keys.extend(other.keys)

    @property
    def purged(self) -> int:
        return (
            self.tombstones
            + self.version_tombstones
            + self.documents
            + self.tag_sets
            + self.conflicts
            + self.log_rows
        )


def log_pruned_through(conn: sqlite3.Connection) -> int:
    value = catalog.read_meta(conn, LOG_PRUNED_THROUGH)
    return int(value) if value else 0


def _acknowledged(origin_hlc_seq: int | None, horizon: int) -> bool:
    """A tombstone's change is held by every peer (a missing row was pruned: held too)."""
    return origin_hlc_seq is None or origin_hlc_seq <= horizon


def _change_seq(conn: sqlite3.Connection, origin: str, hlc: int) -> int | None:
    row = conn.execute(
        "SELECT seq FROM changes WHERE origin = ? AND hlc = ?", (origin, hlc)
    ).fetchone()
    return None if row is None else int(row[0])


def _purgeable(
    conn: sqlite3.Connection, sql: str, params: tuple[object, ...], horizon: int, limit: int
) -> list[tuple[object, ...]]:
    """Rows of ``sql`` (ending with hlc, origin) whose change every peer acknowledged."""
    found = []
    for row in conn.execute(sql, params):
        hlc, origin = int(row[-2]), str(row[-1])
        if _acknowledged(_change_seq(conn, origin, hlc), horizon):
            found.append(tuple(row))
            if len(found) >= limit:
                break
    return found


def _purge_tombstones(
    conn: sqlite3.Connection, limits: PurgeLimits, horizon: int, report: PurgeReport
) -> None:
    rows = _purgeable(
        conn,
        "SELECT bucket, key, version_id, hlc, origin FROM versions WHERE kind = ? AND hlc < ?",
        (int(Kind.TOMBSTONE), limits.cutoff_hlc),
        horizon,
        limits.batch_rows,
    )
    for bucket, key, version_id, _hlc, _origin in rows:
        catalog.delete_version_row(conn, str(bucket), str(key), str(version_id))
        catalog.promote_latest(conn, str(bucket), str(key))  # refreshes the key's digest
        report.keys.append((str(bucket), str(key)))
    report.tombstones += len(rows)
    if rows:  # validate: a peer's tombstone older than this may be gone here, not missing
        cutoff = max(digest.purge_cutoff(conn), limits.cutoff_hlc)
        catalog.write_meta(conn, digest.PURGE_CUTOFF, str(cutoff))


@dataclass(frozen=True)
class _StampedTombstones:
    """A table of stamped deletes: how to find purgeable rows and delete one by its key."""

    counter: str  # the PurgeReport field counting them
    select: str  # key columns..., hlc, origin; one parameter: the cutoff HLC
    delete: str  # parameters: the key columns


_STAMPED_TOMBSTONES: Final = (
    _StampedTombstones(
        "version_tombstones",
        # Kept while it still decides something: the version is present (the lock refused
        # the delete, which waits) or a lock row may forbid the delete (the version waits to
        # come back). See the module docstring.
        "SELECT bucket, key, version_id, hlc, origin FROM version_tombstones t WHERE hlc < ?"
        " AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.bucket = t.bucket"
        " AND v.key = t.key AND v.version_id = t.version_id"
        " AND (v.hlc, v.origin) < (t.hlc, t.origin))"
        " AND NOT EXISTS (SELECT 1 FROM version_locks l WHERE l.bucket = t.bucket"
        " AND l.key = t.key AND l.version_id = t.version_id"
        f" AND l.protected_until > (t.hlc >> {LOGICAL_BITS}))",
        "DELETE FROM version_tombstones WHERE bucket = ? AND key = ? AND version_id = ?",
    ),
    _StampedTombstones(
        "documents",
        "SELECT bucket, name, hlc, origin FROM bucket_config WHERE value = '' AND hlc < ?",
        "DELETE FROM bucket_config WHERE bucket = ? AND name = ? AND value = ''",
    ),
    _StampedTombstones(
        "tag_sets",
        "SELECT bucket, key, version_id, hlc, origin FROM object_tags"
        " WHERE tags = '[]' AND hlc < ?",
        "DELETE FROM object_tags WHERE bucket = ? AND key = ? AND version_id = ? AND tags = '[]'",
    ),
)


def _purge_stamped(
    conn: sqlite3.Connection, limits: PurgeLimits, horizon: int, report: PurgeReport
) -> None:
    """Version tombstones, deleted bucket documents, removed tag sets: rows, not versions."""
    for table in _STAMPED_TOMBSTONES:
        rows = _purgeable(conn, table.select, (limits.cutoff_hlc,), horizon, limits.batch_rows)
        conn.executemany(table.delete, [row[:-2] for row in rows])
        setattr(report, table.counter, getattr(report, table.counter) + len(rows))


def _purge_conflicts(conn: sqlite3.Connection, limits: PurgeLimits, report: PurgeReport) -> None:
    cursor = conn.execute(
        "DELETE FROM conflicts WHERE id IN (SELECT id FROM conflicts WHERE recorded_ms < ?"
        " ORDER BY id LIMIT ?)",
        (limits.now_ms - limits.conflict_retention_ms, limits.batch_rows),
    )
    report.conflicts += cursor.rowcount


def _prune_log(
    conn: sqlite3.Connection, limits: PurgeLimits, horizon: int, report: PurgeReport
) -> None:
    """Delete log rows up to the horizon, stopping before the first one inside the window."""
    pruned = log_pruned_through(conn)
    young = conn.execute(
        "SELECT min(seq) FROM changes WHERE seq > ? AND hlc >= ?", (pruned, limits.cutoff_hlc)
    ).fetchone()[0]
    target = min(horizon, last_seq(conn) - 1)
    if young is not None:
        target = min(target, int(young) - 1)
    batch_end = conn.execute(
        "SELECT max(seq) FROM (SELECT seq FROM changes WHERE seq > ? AND seq <= ?"
        " ORDER BY seq LIMIT ?)",
        (pruned, target, limits.batch_rows),
    ).fetchone()[0]
    if batch_end is None:
        return
    cursor = conn.execute("DELETE FROM changes WHERE seq > ? AND seq <= ?", (pruned, batch_end))
    report.log_rows += cursor.rowcount
    # Fully pruned through the target once the batch reached it: gaps between rows count.
    through = target if batch_end >= target else int(batch_end)
    catalog.write_meta(conn, LOG_PRUNED_THROUGH, str(through))
    report.log_pruned_through = through


def purge_batch(conn: sqlite3.Connection, limits: PurgeLimits) -> PurgeReport:
    """One bounded purge step (one transaction). Call until ``purged`` is 0."""
    report = PurgeReport(horizon=replication_horizon(conn, limits.extra_peers))
    report.log_pruned_through = log_pruned_through(conn)
    _purge_tombstones(conn, limits, report.horizon, report)
    _purge_stamped(conn, limits, report.horizon, report)
    _purge_conflicts(conn, limits, report)
    # The log last: the purges above look up their changes' seqs in it.
    _prune_log(conn, limits, report.horizon, report)
    return report


@dataclass(frozen=True)
class PurgeBatch:
    """A mutation for the group committer: one purge step."""

    limits: PurgeLimits

    def touched(self) -> tuple[str, str | None]:
        return "", ""  # the store invalidates the purged keys itself (report.keys)

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[PurgeReport]:
        return Outcome(purge_batch(conn, self.limits))
