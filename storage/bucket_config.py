"""Bucket configuration documents (policy, CORS, tagging, ACL, ownership controls, public
access block), object tags and object ACLs set after the version was written.

All are small documents stored as the client sent them (validated by the API first),
stamped with the HLC of the change and written to the change log, so replication can apply
them with last-writer-wins like any other mutation.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from storage.catalog import get_bucket, get_version, log_change
from storage.commit import Outcome
from storage.errors import NoSuchConfiguration, NoSuchKey
from storage.hlc import Timestamp
from storage.manifest import Kind, Manifest, decode

BUCKET_DOCUMENTS = (
    "policy",
    "cors",
    "tagging",
    "acl",
    "ownership",
    "public-access-block",
    "object-lock",  # the ObjectLockConfiguration (storage/lock_state.py: per-version state)
    "lifecycle",
)
Tags = tuple[tuple[str, str], ...]


def upsert_bucket_document(
    conn: sqlite3.Connection, bucket: str, name: str, value: str, hlc: int, origin: str
) -> None:
    conn.execute(
        "INSERT INTO bucket_config (bucket, name, value, hlc, origin) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value, hlc = excluded.hlc,"
        " origin = excluded.origin",
        (bucket, name, value, hlc, origin),
    )


def get_bucket_document(conn: sqlite3.Connection, bucket: str, name: str) -> str:
    assert name in BUCKET_DOCUMENTS
    get_bucket(conn, bucket)
    row = conn.execute(
        "SELECT value FROM bucket_config WHERE bucket = ? AND name = ?", (bucket, name)
    ).fetchone()
    if row is None or row[0] == "":
        raise NoSuchConfiguration(f"{bucket} has no {name}")
    return str(row[0])


def tagged_buckets(conn: sqlite3.Connection) -> list[str]:
    """Buckets with at least one tagged object version (read once when the store opens)."""
    return [str(row[0]) for row in conn.execute("SELECT DISTINCT bucket FROM object_tags")]


def _resolve_version(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str | None
) -> str:
    """The version id a tagging call applies to (the latest object when none is given)."""
    return _object_version(conn, bucket, key, version_id).version_id


def _object_version(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str | None
) -> Manifest:
    """The object version an ACL call applies to (the latest object when none is given)."""
    if version_id is not None:
        manifest = get_version(conn, bucket, key, version_id)
    else:
        get_bucket(conn, bucket)
        row = conn.execute(
            "SELECT manifest FROM versions WHERE bucket = ? AND key = ? AND is_latest = 1",
            (bucket, key),
        ).fetchone()
        if row is None:
            raise NoSuchKey(key)
        manifest = decode(row[0])
    if manifest.kind != Kind.OBJECT:
        raise NoSuchKey(key)
    return manifest


def get_object_acl(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str | None
) -> tuple[Manifest, str | None]:
    """An object version and the ACL document set on it after it was written (None: the
    version keeps the ACL it was written with, which is in its manifest headers)."""
    manifest = _object_version(conn, bucket, key, version_id)
    row = conn.execute(
        "SELECT acl FROM object_acls WHERE bucket = ? AND key = ? AND version_id = ?",
        (bucket, key, manifest.version_id),
    ).fetchone()
    return manifest, None if row is None else str(row[0])


def get_tags(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str | None
) -> tuple[str, Tags]:
    """(version id, tags) of an object version; no tags is an empty tuple."""
    resolved = _resolve_version(conn, bucket, key, version_id)
    row = conn.execute(
        "SELECT tags FROM object_tags WHERE bucket = ? AND key = ? AND version_id = ?",
        (bucket, key, resolved),
    ).fetchone()
    tags: Tags = () if row is None else tuple((str(k), str(v)) for k, v in json.loads(row[0]))
    return resolved, tags


@dataclass(frozen=True)
class PutBucketDocument:
    bucket: str
    name: str
    value: str | None  # None deletes the document

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, None

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        assert self.name in BUCKET_DOCUMENTS
        get_bucket(conn, self.bucket)
        # A deleted document stays as a stamped empty value, so an older replicated one
        # cannot come back (readers treat "" as absent).
        upsert_bucket_document(
            conn, self.bucket, self.name, self.value or "", stamp.pack(), stamp.node_id
        )
        log_change(
            conn,
            stamp,
            f"bucket.{self.name}",
            self.bucket,
            payload={"value": self.value} if self.value is not None else {},
        )
        return Outcome(None)


@dataclass(frozen=True)
class PutObjectTags:
    bucket: str
    key: str
    version_id: str | None
    tags: Tags | None  # None deletes the tag set

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[str]:
        resolved = _resolve_version(conn, self.bucket, self.key, self.version_id)
        apply_tags(conn, stamp, self.bucket, self.key, resolved, self.tags)
        return Outcome(resolved)


def apply_tags(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    bucket: str,
    key: str,
    version_id: str,
    tags: Tags | None,
) -> None:
    """Set (or with None remove) a version's tags, and log the change."""
    write_tags(conn, stamp, bucket, key, version_id, tags)
    log_change(
        conn,
        stamp,
        "object.tags",
        bucket,
        payload={"tags": list(tags or ())},
        key=key,
        version_id=version_id,
    )


def write_tags(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    bucket: str,
    key: str,
    version_id: str,
    tags: Tags | None,
) -> None:
    """Set (or with None remove) a version's tags without a change-log row: for a write that
    creates the version and logs the tags in its own change (one stamp, one change row)."""
    # Removing tags keeps a stamped empty set, so an older replicated tag set cannot win.
    conn.execute(
        "INSERT INTO object_tags (bucket, key, version_id, tags, hlc, origin)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, key, version_id) DO UPDATE SET"
        " tags = excluded.tags, hlc = excluded.hlc, origin = excluded.origin",
        (bucket, key, version_id, json.dumps(list(tags or ())), stamp.pack(), stamp.node_id),
    )


@dataclass(frozen=True)
class PutObjectAcl:
    """PutObjectAcl on an existing version: LWW-stamped and logged as ``object.acl``."""

    bucket: str
    key: str
    version_id: str | None
    acl: str  # the ACL document (api/acl.py's JSON form)

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[str]:
        manifest = _object_version(conn, self.bucket, self.key, self.version_id)
        write_object_acl(conn, stamp, self.bucket, self.key, manifest.version_id, self.acl)
        log_change(
            conn,
            stamp,
            "object.acl",
            self.bucket,
            payload={"acl": self.acl},
            key=self.key,
            version_id=manifest.version_id,
        )
        return Outcome(manifest.version_id)


def write_object_acl(
    conn: sqlite3.Connection, stamp: Timestamp, bucket: str, key: str, version_id: str, acl: str
) -> None:
    """Set a version's ACL (replacing the one it was written with) without logging it."""
    conn.execute(
        "INSERT INTO object_acls (bucket, key, version_id, acl, hlc, origin)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bucket, key, version_id) DO UPDATE SET"
        " acl = excluded.acl, hlc = excluded.hlc, origin = excluded.origin",
        (bucket, key, version_id, acl, stamp.pack(), stamp.node_id),
    )
