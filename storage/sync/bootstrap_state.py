"""A site's current state as synthetic changes, and the durable state of a bootstrap.

Bootstrapping a new site copies a peer's *state*, not its change log (tombstone GC prunes old
log rows, so the log may not start at seq 0). ``snapshot_page`` reads the state in a stable
order, a page at a time, as :class:`~storage.sync.feed.Change` records that carry the
**original** ``(origin, hlc)`` of what they describe:

* per bucket, by name: ``bucket.create`` (its creation stamp, owner in the payload), then its
  documents from ``bucket_config`` (``bucket.cors``, ``.policy``, ``.tagging``,
  ``.versioning``), each with its own stamp; a deleted document is its stamped empty value;
* then per ``(key, version_id)`` of the bucket, in order: a version tombstone
  (``version.delete``), the version row (``object.put``, or ``object.delete`` for a delete
  marker or an unversioned tombstone, with its manifest; tags written with the version ride
  in its payload as they did in the original change), and tags set later (``object.tags``
  with the tags' own stamp, an empty set included), and an ACL set later (``object.acl``
  with its own stamp), and its object lock state (``version.lock`` under the stamp of the last
  lock change merged, with the version's manifest; in the version's payload when that stamp
  is the version's own).

Applied through :func:`storage.sync.apply.apply_changes` these behave like the changes they
stand for: LWW decides, ``(origin, hlc)`` deduplicates (a change also pulled from a log later
is a duplicate), and the target relays them to third sites with their original stamps.

Pages are read at different times while the peer keeps writing. That is correct because the
bootstrapping site then pulls the peer's log from ``snapshot_seq``, the peer's last seq read
*before* the first page: a change at or before it is in the state every page reads (unless a
later change replaced it, which is after it in the log), and every later change is pulled.

A position is ``(bucket, key, version_id)``: the last entry a page covered; ``(bucket, "",
"")`` is the bucket's own entries. The bootstrap record (``meta`` row ``bootstrap``) is
written in the same transaction as each applied page, so a crashed bootstrap resumes after
the last page applied, with the same ``snapshot_seq``; so is the progress ratio that
``lakenode_repl_bootstrap_progress_ratio`` exports (storage/sync/peer_stats.py).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any, Final

from storage import catalog, lock_deletes
from storage.commit import Outcome
from storage.hlc import HybridClock, Timestamp
from storage.lww import Stamp
from storage.manifest import ChunkRef, Kind
from storage.sync.apply import ApplyResult, apply_changes
from storage.sync.feed import Change, carries_tags, set_cursor
from storage.sync.peer_stats import BOOTSTRAP_PREFIX

Position = tuple[str, str, str]

# Manifest and payload bytes a page may gather before it ends (a manifest of a 5 GiB object
# is ~80 KB): keeps an encoded page well under the protocol's page limit.
PAGE_BYTES_MAX: Final = 16 << 20
BOOTSTRAP_META: Final = "bootstrap"
BOOTSTRAP_DONE_META: Final = "bootstrap_done"


# ---- reading a snapshot -----------------------------------------------------------------------


def snapshot_page(
    conn: sqlite3.Connection,
    after: Position | None,
    limit: int,
    max_bytes: int = PAGE_BYTES_MAX,
) -> tuple[list[Change], Position | None]:
    """The entries after ``after`` (None: from the start), about ``limit`` changes; the
    position to continue from, or None when the state has been read to its end.

    A page ends after a whole ``(bucket, key, version_id)`` entry, so it may hold up to three
    changes more than ``limit``. It is read in one transaction (one consistent view).
    """
    assert limit >= 1
    conn.execute("BEGIN")
    try:
        return _read_page(conn, after, limit, max_bytes)
    finally:
        conn.execute("COMMIT")  # read only: just ends the read transaction


def _read_page(
    conn: sqlite3.Connection, after: Position | None, limit: int, max_bytes: int
) -> tuple[list[Change], Position | None]:
    changes: list[Change] = []
    size = 0
    first_bucket = after[0] if after is not None else ""
    buckets = conn.execute(
        "SELECT name, owner, hlc, origin FROM buckets WHERE name >= ? ORDER BY name",
        (first_bucket,),
    ).fetchall()
    for name, owner, hlc, origin in buckets:
        bucket = str(name)
        if after is None or bucket > after[0]:
            changes += _bucket_changes(conn, bucket, str(owner), int(hlc), str(origin))
            if len(changes) >= limit:
                return changes, (bucket, "", "")
            start = ("", "")
        else:
            start = (after[1], after[2])
        for key, version_id in _entries_after(conn, bucket, start, limit - len(changes)):
            entry = _entry_changes(conn, bucket, key, version_id)
            changes += entry
            size += sum(len(c.manifest or b"") + len(json.dumps(c.payload)) for c in entry)
            if len(changes) >= limit or size >= max_bytes:
                return changes, (bucket, key, version_id)
    return changes, None


def _entries_after(
    conn: sqlite3.Connection, bucket: str, start: tuple[str, str], count: int
) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT key, version_id FROM versions WHERE bucket = ?1 AND (key, version_id) > (?2, ?3)"
        " UNION SELECT key, version_id FROM version_tombstones"
        " WHERE bucket = ?1 AND (key, version_id) > (?2, ?3)"
        " UNION SELECT key, version_id FROM object_tags"
        " WHERE bucket = ?1 AND (key, version_id) > (?2, ?3)"
        " UNION SELECT key, version_id FROM object_acls"
        " WHERE bucket = ?1 AND (key, version_id) > (?2, ?3)"
        " UNION SELECT key, version_id FROM version_locks"
        " WHERE bucket = ?1 AND (key, version_id) > (?2, ?3)"
        " ORDER BY 1, 2 LIMIT ?4",
        (bucket, start[0], start[1], max(count, 1)),
    ).fetchall()
    return [(str(key), str(version_id)) for key, version_id in rows]


def _bucket_changes(
    conn: sqlite3.Connection, bucket: str, owner: str, hlc: int, origin: str
) -> list[Change]:
    hlc, origin = _creation_stamp(conn, bucket, hlc, origin)
    changes = [Change(0, hlc, origin, "bucket.create", bucket, payload={"owner": owner})]
    documents = {
        str(name): (str(value), int(doc_hlc), str(doc_origin))
        for name, value, doc_hlc, doc_origin in conn.execute(
            "SELECT name, value, hlc, origin FROM bucket_config WHERE bucket = ?", (bucket,)
        )
    }
    if "versioning" not in documents:
        versioning = _logged_versioning(conn, bucket)
        if versioning is not None:
            documents["versioning"] = versioning
    for name in sorted(documents):
        value, doc_hlc, doc_origin = documents[name]
        payload: dict[str, Any] = {"value": value} if value else {}
        if name == "versioning":
            payload = {"status": value}
        changes.append(Change(0, doc_hlc, doc_origin, f"bucket.{name}", bucket, payload=payload))
    return changes


def _creation_stamp(
    conn: sqlite3.Connection, bucket: str, hlc: int, origin: str
) -> tuple[int, str]:
    """The bucket row's stamp, which is its creation's; data dirs written before versioning
    kept its own stamp had the row's HLC overwritten by it: then the logged creation's."""
    logged = conn.execute(
        "SELECT op FROM changes WHERE origin = ? AND hlc = ?", (origin, hlc)
    ).fetchone()
    if logged is None or logged[0] == "bucket.create":
        return hlc, origin
    row = conn.execute(
        "SELECT hlc, origin FROM changes WHERE bucket = ? AND key IS NULL"
        " AND op = 'bucket.create' ORDER BY seq DESC LIMIT 1",
        (bucket,),
    ).fetchone()
    return (int(row[0]), str(row[1])) if row is not None else (hlc, origin)


def _logged_versioning(conn: sqlite3.Connection, bucket: str) -> tuple[str, int, str] | None:
    """Versioning set locally before its stamp was kept in bucket_config: from the log."""
    row = conn.execute(
        "SELECT payload, hlc, origin FROM changes WHERE bucket = ? AND key IS NULL"
        " AND op = 'bucket.versioning' ORDER BY hlc DESC, origin DESC LIMIT 1",
        (bucket,),
    ).fetchone()
    if row is None:
        return None
    status = str(json.loads(row[0] or "{}").get("status") or "")
    return status, int(row[1]), str(row[2])


def _entry_changes(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str
) -> list[Change]:
    where = (bucket, key, version_id)
    changes: list[Change] = []
    tomb = conn.execute(
        "SELECT hlc, origin FROM version_tombstones WHERE bucket = ? AND key = ?"
        " AND version_id = ?",
        where,
    ).fetchone()
    if tomb is not None:
        delete: dict[str, Any] = {"kind": "UNKNOWN"}
        if lock_deletes.bypassed(conn, Stamp(int(tomb[0]), str(tomb[1]))):
            delete["bypass_governance"] = True  # the lock decides with it (apply_locks.py)
        changes.append(
            Change(0, int(tomb[0]), str(tomb[1]), "version.delete", bucket, key, version_id,
                   payload=delete)
        )  # fmt: skip
    version = conn.execute(
        "SELECT kind, hlc, origin, size, etag, manifest FROM versions WHERE bucket = ?"
        " AND key = ? AND version_id = ?",
        where,
    ).fetchone()
    tags = conn.execute(
        "SELECT tags, hlc, origin FROM object_tags WHERE bucket = ? AND key = ? AND version_id = ?",
        where,
    ).fetchone()
    tag_list = json.loads(tags[0]) if tags is not None else None
    lock = conn.execute(
        "SELECT state, hlc, origin FROM version_locks WHERE bucket = ? AND key = ?"
        " AND version_id = ?",
        where,
    ).fetchone()
    with_version = lock_with_version = False
    if version is not None:
        kind, hlc, origin, size, etag, manifest = version
        stamp = (int(hlc), str(origin))
        # Tags (and a lock) written with the version share its stamp: they ride in its
        # payload, as in the original change (a separate change with the same stamp would be
        # a "duplicate").
        with_version = tags is not None and (int(tags[1]), str(tags[2])) == stamp
        lock_with_version = lock is not None and (int(lock[1]), str(lock[2])) == stamp
        payload: dict[str, Any] = {}
        if with_version and tag_list:
            payload["tags"] = tag_list
        if lock_with_version:
            payload["lock"] = json.loads(lock[0])
        changes.append(
            Change(0, stamp[0], stamp[1],
                   "object.put" if int(kind) == Kind.OBJECT else "object.delete",
                   bucket, key, version_id, int(size), str(etag), bytes(manifest),
                   payload or None)
        )  # fmt: skip
    if lock is not None and not lock_with_version:
        # The merged state under the stamp of the last lock change merged; the version's
        # manifest with it, as a version.lock carries (none once the version is removed).
        carried = (
            bytes(version[5]) if version is not None and int(version[0]) == Kind.OBJECT else None
        )
        changes.append(
            Change(0, int(lock[1]), str(lock[2]), "version.lock", bucket, key, version_id,
                   manifest=carried, payload={"lock": json.loads(lock[0])})
        )  # fmt: skip
    if tags is not None and not with_version:
        changes.append(
            Change(0, int(tags[1]), str(tags[2]), "object.tags", bucket, key, version_id,
                   payload={"tags": tag_list})
        )  # fmt: skip
    acl = conn.execute(
        "SELECT acl, hlc, origin FROM object_acls WHERE bucket = ? AND key = ? AND version_id = ?",
        where,
    ).fetchone()
    if acl is not None:
        changes.append(
            Change(0, int(acl[1]), str(acl[2]), "object.acl", bucket, key, version_id,
                   payload={"acl": str(acl[0])})
        )  # fmt: skip
    return changes


def count_versions(conn: sqlite3.Connection) -> int:
    """How many version rows a snapshot will carry (the bootstrap's progress total)."""
    (count,) = conn.execute("SELECT count(*) FROM versions").fetchone()
    return int(count)


def is_empty(conn: sqlite3.Connection) -> bool:
    """No bucket and no change: a data dir that may be bootstrapped."""
    return (
        conn.execute("SELECT 1 FROM buckets LIMIT 1").fetchone() is None
        and conn.execute("SELECT 1 FROM changes LIMIT 1").fetchone() is None
    )


# ---- the bootstrap record -----------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapRecord:
    """A bootstrap in progress: from which peer, its snapshot seq, how far it got."""

    peer: str
    snapshot_seq: int
    position: str | None  # the peer's opaque position after the last page applied
    pages: int = 0
    objects_done: int = 0
    objects_total: int = 0
    started_ms: int = 0

    @property
    def ratio(self) -> float:
        if self.objects_total <= 0:
            return 0.0
        return min(1.0, self.objects_done / self.objects_total)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BootstrapRecord:
        fields = json.loads(text)
        return cls(
            peer=str(fields["peer"]),
            snapshot_seq=int(fields["snapshot_seq"]),
            position=None if fields.get("position") is None else str(fields["position"]),
            pages=int(fields.get("pages", 0)),
            objects_done=int(fields.get("objects_done", 0)),
            objects_total=int(fields.get("objects_total", 0)),
            started_ms=int(fields.get("started_ms", 0)),
        )


def read_bootstrap(conn: sqlite3.Connection) -> BootstrapRecord | None:
    text = catalog.read_meta(conn, BOOTSTRAP_META)
    return None if text is None else BootstrapRecord.from_json(text)


def read_finished_bootstrap(conn: sqlite3.Connection) -> BootstrapRecord | None:
    text = catalog.read_meta(conn, BOOTSTRAP_DONE_META)
    return None if text is None else BootstrapRecord.from_json(text)


@dataclass(frozen=True)
class ApplySnapshotPage:
    """One snapshot page, applied whole or not at all like a pulled batch, with the bootstrap
    record in the same transaction; the peer's pull cursor does not move."""

    changes: tuple[Change, ...]
    record: BootstrapRecord  # as it is once this page is applied
    max_skew_ms: int
    clock: HybridClock
    received: tuple[ChunkRef, ...] = ()  # chunks appended for this page: indexed with it

    def touched(self) -> tuple[str, str | None]:
        return "", None  # may touch anything: the read cache is cleared

    @property
    def may_set_tags(self) -> bool:
        """Tell the node's other workers to look tags up again (storage/commit.py)."""
        return bool(carries_tags(self.changes))

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[ApplyResult]:
        catalog.index_chunks(conn, self.received)
        result = apply_changes(conn, self.changes, self.max_skew_ms, self.clock)
        catalog.write_meta(conn, BOOTSTRAP_META, self.record.to_json())
        catalog.write_meta(conn, BOOTSTRAP_PREFIX + self.record.peer, str(self.record.ratio))
        return Outcome(result)


@dataclass(frozen=True)
class FinishBootstrap:
    """The whole snapshot is applied: continue from the peer's log at ``snapshot_seq``."""

    record: BootstrapRecord
    clock: HybridClock

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        seq = self.record.snapshot_seq
        set_cursor(conn, self.record.peer, "pull", seq, self.clock.wall_ms())
        conn.execute("DELETE FROM meta WHERE name = ?", (BOOTSTRAP_META,))
        finished = dict(asdict(self.record), finished_ms=self.clock.wall_ms())
        catalog.write_meta(conn, BOOTSTRAP_DONE_META, json.dumps(finished, sort_keys=True))
        catalog.write_meta(conn, BOOTSTRAP_PREFIX + self.record.peer, "1.0")
        return Outcome(None)
