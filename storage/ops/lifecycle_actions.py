"""The lifecycle worker's SQL: what it reads of a bucket, its actions as mutations, its state row.

Every action is decided again *inside* the commit transaction (:class:`ExpireByRule`): the
key's versions are re-read and the rules re-planned at the commit's own stamp, so a version
overwritten, deleted, promoted back to current or locked since the pass read it is left alone.
The action itself is the normal mutation (DeleteObject: a delete marker or a tombstone;
DeleteVersion: the version removed for good, refused there too when locked), so it is
change-logged and replicates like any client delete.

The ``lifecycle`` row of ``meta`` holds the worker's counters (bumped in the transaction of the
action they count, so they are exact across crashes), the last pass and the cursor of an
unfinished pass, which the next pass resumes from.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from storage import catalog, locks, uploads
from storage.commit import Outcome
from storage.errors import NoSuchBucket, NoSuchUpload
from storage.hlc import Timestamp
from storage.lifecycle import (
    Action,
    ActionKind,
    Lifecycle,
    Tags,
    VersionFacts,
    VersionKind,
    plan_key,
)
from storage.manifest import Kind
from storage.mutations import AbortUpload, DeleteObject, DeleteVersion

STATE_ROW: Final = "lifecycle"
COUNTERS: Final = (
    "objects_expired",  # current versions expired (delete marker or tombstone)
    "versions_expired",  # noncurrent versions and expired delete markers removed for good
    "delete_markers_removed",  # of those, expired object delete markers
    "uploads_aborted",
    "locked_skipped",  # versions a rule would expire that an object lock protects
    "errors",
)
_KINDS = {
    Kind.OBJECT: VersionKind.OBJECT,
    Kind.DELETE_MARKER: VersionKind.DELETE_MARKER,
    Kind.TOMBSTONE: VersionKind.TOMBSTONE,
}


# ---- reads ------------------------------------------------------------------------------------


def lifecycle_buckets(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(bucket, stored lifecycle document) of every bucket that has one, by name."""
    rows = conn.execute(
        "SELECT c.bucket, c.value FROM bucket_config c JOIN buckets b ON b.name = c.bucket"
        " WHERE c.name = 'lifecycle' AND c.value != '' ORDER BY c.bucket"
    )
    return [(str(bucket), str(value)) for bucket, value in rows]


def key_page(conn: sqlite3.Connection, bucket: str, after: str, limit: int) -> list[str]:
    """Up to ``limit`` keys of ``bucket`` after ``after``, in key order (the pass's walk)."""
    rows = conn.execute(
        "SELECT DISTINCT key FROM versions WHERE bucket = ? AND key > ? ORDER BY key LIMIT ?",
        (bucket, after, limit),
    )
    return [str(row[0]) for row in rows]


def key_versions(conn: sqlite3.Connection, bucket: str, key: str) -> list[VersionFacts]:
    """Every version of a key, the current one first, then newest to oldest, with its tags and
    how long an object lock protects it (the pass skips those without a commit)."""
    rows = conn.execute(
        "SELECT v.version_id, v.kind, v.size, v.last_modified_ms, v.origin, t.tags,"
        " coalesce(l.protected_until, 0)"
        " FROM versions v LEFT JOIN object_tags t ON t.bucket = v.bucket AND t.key = v.key"
        " AND t.version_id = v.version_id LEFT JOIN version_locks l ON l.bucket = v.bucket"
        " AND l.key = v.key AND l.version_id = v.version_id WHERE v.bucket = ? AND v.key = ?"
        " ORDER BY v.is_latest DESC, v.hlc DESC, v.origin DESC",
        (bucket, key),
    )
    return [
        VersionFacts(
            str(version_id),
            _KINDS[Kind(kind)],
            int(size),
            int(modified),
            str(origin),
            _tags(tags),
            int(protected),
        )
        for version_id, kind, size, modified, origin, tags, protected in rows
    ]


def page_versions(
    conn: sqlite3.Connection, bucket: str, after: str, limit: int
) -> list[tuple[str, list[VersionFacts]]]:
    """The next page of keys after ``after`` with their versions: one short read per page."""
    return [(key, key_versions(conn, bucket, key)) for key in key_page(conn, bucket, after, limit)]


def _tags(text: str | None) -> Tags:
    if not text:
        return ()
    return tuple((str(name), str(value)) for name, value in json.loads(text))


def stale_upload_rows(conn: sqlite3.Connection, bucket: str) -> list[tuple[str, str, int]]:
    """(key, upload id, initiated ms) of the bucket's uploads in progress, oldest first."""
    rows = conn.execute(
        "SELECT key, upload_id, initiated_ms FROM uploads WHERE bucket = ?"
        " ORDER BY initiated_ms, upload_id",
        (bucket,),
    )
    return [(str(key), str(upload_id), int(initiated)) for key, upload_id, initiated in rows]


# ---- the state row ----------------------------------------------------------------------------


def read_state(conn: sqlite3.Connection) -> dict[str, Any]:
    """The ``lifecycle`` row (counters, last pass, cursor); {} before the first pass."""
    text = catalog.read_meta(conn, STATE_ROW)
    if text is None:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _update_state(conn: sqlite3.Connection, **changes: Any) -> None:
    state = read_state(conn)
    state.update(changes)
    catalog.write_meta(conn, STATE_ROW, json.dumps(state, sort_keys=True))


def _bump(conn: sqlite3.Connection, counter: str, by: int = 1) -> None:
    state = read_state(conn)
    _update_state(conn, **{counter: int(state.get(counter, 0)) + by})


@dataclass(frozen=True)
class UpdateState:
    """Pass bookkeeping (cursor, pass times, errors) merged into the ``lifecycle`` row."""

    changes: tuple[tuple[str, Any], ...]
    add_errors: int = 0
    add_locked: int = 0

    def touched(self) -> tuple[str, str | None]:
        return "", ""  # no object: nothing cached to invalidate

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        _update_state(conn, **dict(self.changes))
        if self.add_errors:
            _bump(conn, "errors", self.add_errors)
        if self.add_locked:
            _bump(conn, "locked_skipped", self.add_locked)
        return Outcome(None)


# ---- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpireByRule:
    """One planned lifecycle action, carried out only if the rules still call for it now."""

    bucket: str
    key: str
    action: Action
    lifecycle: Lifecycle
    day_ms: int

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[bool]:
        try:
            catalog.get_bucket(conn, self.bucket)
        except NoSuchBucket:
            return Outcome(False)
        versions = key_versions(conn, self.bucket, self.key)
        planned = plan_key(self.lifecycle, self.key, versions, stamp.wall_ms, self.day_ms)
        if not any(_same(self.action, other) for other in planned):
            return Outcome(False)  # overwritten, deleted or promoted since the pass read it
        if self.action.kind == ActionKind.EXPIRE_CURRENT:
            # AWS adds the delete marker even over a locked version: a lock forbids removing
            # the version, and a marker removes nothing.
            done = DeleteObject(self.bucket, self.key).apply(conn, stamp)
            _bump(conn, "objects_expired")
            return Outcome(True, done.manifest_bytes, done.journal)
        if locks.is_protected(conn, self.bucket, self.key, self.action.version_id, stamp.wall_ms):
            _bump(conn, "locked_skipped")
            return Outcome(False)
        done = DeleteVersion(self.bucket, self.key, self.action.version_id).apply(conn, stamp)
        _bump(conn, "versions_expired")
        if self.action.kind == ActionKind.REMOVE_MARKER:
            _bump(conn, "delete_markers_removed")
        return Outcome(True, done.manifest_bytes, done.journal)


def _same(one: Action, other: Action) -> bool:
    return one.kind == other.kind and one.version_id == other.version_id


@dataclass(frozen=True)
class AbortByRule:
    """An upload in progress aborted by an AbortIncompleteMultipartUpload rule: the normal
    abort (AbortMultipartUpload's mutation), counted in the same transaction. One completed
    or aborted meanwhile is left alone."""

    bucket: str
    key: str
    upload_id: str

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[bool]:
        try:
            upload = uploads.get_upload(conn, self.bucket, self.key, self.upload_id)
        except (NoSuchUpload, NoSuchBucket):
            return Outcome(False)
        done = AbortUpload(upload).apply(conn, stamp)
        _bump(conn, "uploads_aborted")
        return Outcome(True, done.manifest_bytes, done.journal)
