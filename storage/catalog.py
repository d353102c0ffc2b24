"""Catalog: synchronous SQL over the schema in storage/schema.py.

Read functions run on the read connection; ``apply_*`` functions run inside the group-commit
transaction (storage/commit.py) on the write connection, each one in its own savepoint, and
write the change-log row for their mutation in that same transaction.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from storage import digest
from storage.errors import BucketAlreadyExists, BucketNotEmpty, NoSuchBucket, NoSuchVersion
from storage.hlc import Timestamp
from storage.manifest import ChunkRef, Kind, Manifest, decode

NULL_VERSION = "null"


@dataclass(frozen=True)
class BucketInfo:
    name: str
    owner: str
    created_ms: int
    versioning: str


# ---- meta -------------------------------------------------------------------------------


def read_meta(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def write_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def read_meta_prefixed(conn: sqlite3.Connection, prefix: str) -> dict[str, str]:
    """Every meta row whose name starts with ``prefix``, by the rest of its name."""
    rows = conn.execute(
        "SELECT name, value FROM meta WHERE name >= ? AND name < ?",
        (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)),
    ).fetchall()
    return {str(name)[len(prefix) :]: str(value) for name, value in rows}


# The largest HLC in the log, read at every open. A plain max(hlc) walks the whole
# UNIQUE (origin, hlc) index (70-370 ms at a million rows); this hops from origin to origin on
# that index (a loose index scan SQLite does not do by itself) and takes each origin's max:
# a few index seeks whatever the log's length.
LAST_LOGGED_HLC = """
    WITH RECURSIVE origins(origin) AS (
        SELECT min(origin) FROM changes
        UNION ALL
        SELECT (SELECT min(origin) FROM changes WHERE origin > origins.origin)
        FROM origins WHERE origins.origin IS NOT NULL
    )
    SELECT coalesce(max((SELECT max(hlc) FROM changes WHERE changes.origin = origins.origin)), 0)
    FROM origins
"""


def last_hlc(conn: sqlite3.Connection) -> int:
    """The largest HLC this data dir ever issued or stored."""
    stored = read_meta(conn, "hlc_last")
    (logged,) = conn.execute(LAST_LOGGED_HLC).fetchone()
    return max(int(stored or 0), int(logged))


def segment_states(conn: sqlite3.Connection) -> dict[int, tuple[int, bool]]:
    rows = conn.execute("SELECT id, durable_end, sealed FROM segments").fetchall()
    return {int(r[0]): (int(r[1]), bool(r[2])) for r in rows}


def record_segments(
    conn: sqlite3.Connection, durable: dict[int, int], sealed: Iterable[int]
) -> None:
    conn.executemany(
        "INSERT INTO segments (id, durable_end) VALUES (?, ?) ON CONFLICT (id) DO UPDATE "
        "SET durable_end = max(durable_end, excluded.durable_end)",
        durable.items(),
    )
    conn.executemany(
        "INSERT INTO segments (id, durable_end, sealed) VALUES (?, 0, 1) "
        "ON CONFLICT (id) DO UPDATE SET sealed = 1",
        ((segment_id,) for segment_id in sealed),
    )


# ---- change log ---------------------------------------------------------------------------


def log_change(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    op: str,
    bucket: str,
    manifest: Manifest | None = None,
    manifest_bytes: bytes | None = None,
    payload: Mapping[str, object] | None = None,
    key: str | None = None,
    version_id: str | None = None,
) -> None:
    """Append one change-log row. Key and version come from the manifest when there is one."""
    conn.execute(
        "INSERT INTO changes (hlc, origin, op, bucket, key, version_id, size, etag, manifest,"
        " payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            stamp.pack(),
            stamp.node_id,
            op,
            bucket,
            manifest.key if manifest else key,
            manifest.version_id if manifest else version_id,
            manifest.size if manifest else None,
            manifest.etag if manifest else None,
            manifest_bytes,
            json.dumps(payload, sort_keys=True) if payload is not None else None,
        ),
    )


# ---- buckets ------------------------------------------------------------------------------


def get_bucket(conn: sqlite3.Connection, name: str) -> BucketInfo:
    row = conn.execute(
        "SELECT name, owner, created_ms, versioning FROM buckets WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        raise NoSuchBucket(name)
    return BucketInfo(*row)


def list_buckets(conn: sqlite3.Connection) -> list[BucketInfo]:
    rows = conn.execute(
        "SELECT name, owner, created_ms, versioning FROM buckets ORDER BY name"
    ).fetchall()
    return [BucketInfo(*row) for row in rows]


def apply_create_bucket(
    conn: sqlite3.Connection, stamp: Timestamp, name: str, owner: str
) -> BucketInfo:
    if conn.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone():
        raise BucketAlreadyExists(name)
    created_ms = stamp.wall_ms
    conn.execute(
        "INSERT INTO buckets (name, owner, created_ms, hlc, origin) VALUES (?, ?, ?, ?, ?)",
        (name, owner, created_ms, stamp.pack(), stamp.node_id),
    )
    log_change(conn, stamp, "bucket.create", name, payload={"owner": owner})
    return BucketInfo(name, owner, created_ms, "")


def apply_delete_bucket(conn: sqlite3.Connection, stamp: Timestamp, name: str) -> None:
    get_bucket(conn, name)
    # Delete markers keep a bucket non-empty, as on AWS; tombstones are internal.
    busy = conn.execute(
        "SELECT 1 FROM versions WHERE bucket = ? AND kind != ? LIMIT 1", (name, Kind.TOMBSTONE)
    ).fetchone()
    if busy:
        raise BucketNotEmpty(name)
    for table in ("versions", "object_tags", "object_acls", "bucket_config"):
        conn.execute(f"DELETE FROM {table} WHERE bucket = ?", (name,))
    digest.drop_bucket(conn, name)
    conn.execute("DELETE FROM buckets WHERE name = ?", (name,))
    log_change(conn, stamp, "bucket.delete", name)


# ---- objects -------------------------------------------------------------------------------


def get_latest(conn: sqlite3.Connection, bucket: str, key: str) -> Manifest | None:
    """The latest version of a key (object, delete marker or tombstone), or None."""
    row = conn.execute(
        "SELECT manifest FROM versions WHERE bucket = ? AND key = ? AND is_latest = 1",
        (bucket, key),
    ).fetchone()
    return None if row is None else decode(row[0])


def index_chunks(conn: sqlite3.Connection, chunks: Iterable[ChunkRef]) -> None:
    """Remember where each chunk (by BLAKE3) is held; the first location stays."""
    conn.executemany(
        "INSERT OR IGNORE INTO chunk_index (blake3, segment_id, offset, length)"
        " VALUES (?, ?, ?, ?)",
        ((c.blake3, c.segment_id, c.offset, c.length) for c in chunks),
    )


def chunk_location(conn: sqlite3.Connection, digest: bytes) -> ChunkRef | None:
    """Where this node holds the chunk with this BLAKE3 (the first copy indexed), or None."""
    row = conn.execute(
        "SELECT segment_id, offset, length FROM chunk_index WHERE blake3 = ?", (digest,)
    ).fetchone()
    return None if row is None else ChunkRef(int(row[0]), int(row[1]), int(row[2]), digest)


def insert_version(
    conn: sqlite3.Connection, manifest: Manifest, manifest_bytes: bytes, latest: bool = False
) -> None:
    """Store a version row and index its chunks; not latest unless ``latest`` (the caller
    then has cleared the key's previous latest row; else see promote_latest)."""
    if manifest.chunks:
        index_chunks(conn, manifest.chunks)
    conn.execute(
        "INSERT INTO versions (bucket, key, version_id, kind, hlc, origin, size, etag,"
        " last_modified_ms, is_latest, manifest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            manifest.bucket,
            manifest.key,
            manifest.version_id,
            int(manifest.kind),
            manifest.hlc,
            manifest.origin,
            manifest.size,
            manifest.etag,
            manifest.last_modified_ms,
            int(latest),
            manifest_bytes,
        ),
    )


def delete_version_row(conn: sqlite3.Connection, bucket: str, key: str, version_id: str) -> None:
    for table in ("versions", "object_tags", "object_acls"):
        conn.execute(
            f"DELETE FROM {table} WHERE bucket = ? AND key = ? AND version_id = ?",
            (bucket, key, version_id),
        )


def promote_latest(conn: sqlite3.Connection, bucket: str, key: str) -> None:
    """The version with the greatest (HLC, origin) is the latest: the LWW rule per key."""
    conn.execute(
        "UPDATE versions SET is_latest = 0 WHERE bucket = ? AND key = ? AND is_latest = 1",
        (bucket, key),
    )
    conn.execute(
        "UPDATE versions SET is_latest = 1 WHERE bucket = ? AND key = ? AND version_id = ("
        " SELECT version_id FROM versions WHERE bucket = ? AND key = ?"
        " ORDER BY hlc DESC, origin DESC LIMIT 1)",
        (bucket, key, bucket, key),
    )
    digest.refresh_key(conn, bucket, key)


def apply_put_version(
    conn: sqlite3.Connection, manifest: Manifest, manifest_bytes: bytes, stamp: Timestamp
) -> None:
    """Make a local write the latest version of its key, replacing the null version if any.

    A local stamp is greater than every stamp this node has issued or observed, so the new
    version is the key's latest by the LWW rule without comparing. The caller has read the
    bucket in this transaction (its versioning chose the version id), so it exists.
    """
    if manifest.version_id == NULL_VERSION:
        delete_version_row(conn, manifest.bucket, manifest.key, NULL_VERSION)
    conn.execute(
        "UPDATE versions SET is_latest = 0 WHERE bucket = ? AND key = ? AND is_latest = 1",
        (manifest.bucket, manifest.key),
    )
    insert_version(conn, manifest, manifest_bytes, latest=True)
    op = "object.put" if manifest.kind == Kind.OBJECT else "object.delete"
    log_change(conn, stamp, op, manifest.bucket, manifest, manifest_bytes)
    digest.refresh_key(conn, manifest.bucket, manifest.key)


# ---- versions ------------------------------------------------------------------------------

VERSIONING_STATES = ("", "Enabled", "Suspended")


def new_version_id(stamp: Timestamp) -> str:
    """A unique, opaque version id: the HLC (hex) plus a short hash of the origin node."""
    node_hash = hashlib.blake2s(stamp.node_id.encode(), digest_size=4).hexdigest()
    return f"{stamp.pack():016x}{node_hash}"


def version_id_for_write(bucket: BucketInfo, stamp: Timestamp) -> str:
    """Enabled buckets get a fresh version id; unversioned and suspended ones the null one."""
    return new_version_id(stamp) if bucket.versioning == "Enabled" else NULL_VERSION


def get_version(conn: sqlite3.Connection, bucket: str, key: str, version_id: str) -> Manifest:
    get_bucket(conn, bucket)
    row = conn.execute(
        "SELECT manifest FROM versions WHERE bucket = ? AND key = ? AND version_id = ?"
        " AND kind != ?",
        (bucket, key, version_id, int(Kind.TOMBSTONE)),
    ).fetchone()
    if row is None:
        raise NoSuchVersion(f"{bucket}/{key} version {version_id}")
    return decode(row[0])


def apply_delete_version(
    conn: sqlite3.Connection, stamp: Timestamp, bucket: str, key: str, version_id: str
) -> Manifest | None:
    """Remove one version for good; the newest remaining one becomes latest.

    Deleting a version this node does not hold succeeds (S3 answers 204) and returns None,
    but is still recorded and logged: the version may exist on another site, or be on its
    way here, and the delete must win over it when it arrives.
    """
    get_bucket(conn, bucket)
    row = conn.execute(
        "SELECT manifest FROM versions WHERE bucket = ? AND key = ? AND version_id = ?"
        " AND kind != ?",
        (bucket, key, version_id, int(Kind.TOMBSTONE)),
    ).fetchone()
    removed = decode(row[0]) if row is not None else None
    delete_version_row(conn, bucket, key, version_id)
    record_version_tombstone(conn, bucket, key, version_id, stamp.pack(), stamp.node_id)
    promote_latest(conn, bucket, key)
    log_change(
        conn,
        stamp,
        "version.delete",
        bucket,
        payload={"kind": removed.kind.name if removed else "UNKNOWN"},
        key=key,
        version_id=version_id,
    )
    return removed


def record_version_tombstone(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str, hlc: int, origin: str
) -> None:
    """A version deleted for good stays deleted: a replica of it arriving later is ignored."""
    conn.execute(
        "INSERT INTO version_tombstones (bucket, key, version_id, hlc, origin)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (bucket, key, version_id) DO UPDATE SET"
        # Keep the greater (hlc, origin) stamp whole; SET sees the row's old values.
        " hlc = CASE WHEN (excluded.hlc, excluded.origin) > (hlc, origin)"
        " THEN excluded.hlc ELSE hlc END,"
        " origin = CASE WHEN (excluded.hlc, excluded.origin) > (hlc, origin)"
        " THEN excluded.origin ELSE origin END",
        (bucket, key, version_id, hlc, origin),
    )


def apply_set_versioning(
    conn: sqlite3.Connection, stamp: Timestamp, bucket: str, status: str
) -> None:
    assert status in ("Enabled", "Suspended")
    get_bucket(conn, bucket)
    # The bucket row keeps its creation stamp (as on replicas); the versioning status keeps
    # its own stamp in bucket_config, as a replicated bucket.versioning does, so a snapshot
    # of this site (storage/sync/bootstrap_state.py) can replay both with their original stamps.
    conn.execute("UPDATE buckets SET versioning = ? WHERE name = ?", (status, bucket))
    conn.execute(
        "INSERT INTO bucket_config (bucket, name, value, hlc, origin)"
        " VALUES (?, 'versioning', ?, ?, ?) ON CONFLICT (bucket, name) DO UPDATE SET"
        " value = excluded.value, hlc = excluded.hlc, origin = excluded.origin",
        (bucket, status, stamp.pack(), stamp.node_id),
    )
    log_change(conn, stamp, "bucket.versioning", bucket, payload={"status": status})
