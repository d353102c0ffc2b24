"""SQLite schema and migrations, keyed on PRAGMA user_version.

Tables:
  meta          small key/value facts about this data dir (node id, last HLC issued)
  buckets       one row per bucket
  versions      every stored version of every key, including delete markers and tombstones;
                exactly one row per (bucket, key) has is_latest = 1
  changes       the change log: one row per mutation, in local commit order (seq). seq is the
                replication cursor a peer keeps; (origin, hlc) identifies a change globally
  peer_cursors  how far each peer has been pulled from / pushed to (used by replication)
  segments      per segment file: bytes known durable, and whether it is sealed
  uploads       multipart uploads in progress (not replicated: only their completion is)
  parts         uploaded parts; completion concatenates their chunk lists, copying no data
  bucket_config per-bucket documents (policy, CORS, tagging), LWW-stamped and change-logged
  object_tags   tags of object versions (mutable without a new version, as on S3)
  object_acls   ACLs set on object versions after they were written (PutObjectAcl); the ACL
                a version was written with is in its manifest headers
  chunk_index   BLAKE3 -> where this node holds those bytes (replication fetches by hash)
  conflicts     replicated writes that lost LWW, kept for review for a retention period
  version_tombstones  versions deleted for good, so a late replica of them stays deleted
  key_digests, digest_nodes   Merkle leaves and XOR nodes for `repl validate`
  completed_uploads  multipart uploads completed recently: a repeated CompleteMultipartUpload
                (a client retrying after a lost answer) gets the same answer. Kept a day;
                not rebuilt by rebuild-index (a retry after it gets NoSuchUpload, as before)
  version_locks object lock state per version (retention, legal hold), merged across sites;
                kept after the version is removed, so a late lock can bring it back
  access_keys   keys besides the root key: secret, status, limits; read by the node and by
                `lakenode keys` (which may write while the node runs)
"""

from __future__ import annotations

import sqlite3

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;

    CREATE TABLE buckets (
        name        TEXT PRIMARY KEY,
        owner       TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        hlc         INTEGER NOT NULL,
        origin      TEXT NOT NULL,
        versioning  TEXT NOT NULL DEFAULT ''
    ) STRICT;

    CREATE TABLE versions (
        bucket            TEXT NOT NULL,
        key               TEXT NOT NULL,
        version_id        TEXT NOT NULL,
        kind              INTEGER NOT NULL,   -- storage.manifest.Kind
        hlc               INTEGER NOT NULL,
        origin            TEXT NOT NULL,
        size              INTEGER NOT NULL,
        etag              TEXT NOT NULL,
        last_modified_ms  INTEGER NOT NULL,
        is_latest         INTEGER NOT NULL,
        manifest          BLOB NOT NULL,
        PRIMARY KEY (bucket, key, version_id)
    ) STRICT, WITHOUT ROWID;
    -- Listing walks this partial index in key order.
    CREATE INDEX versions_latest ON versions (bucket, key) WHERE is_latest = 1;

    CREATE TABLE changes (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        hlc         INTEGER NOT NULL,
        origin      TEXT NOT NULL,
        op          TEXT NOT NULL,
        bucket      TEXT NOT NULL,
        key         TEXT,
        version_id  TEXT,
        size        INTEGER,
        etag        TEXT,
        manifest    BLOB,
        payload     TEXT,
        UNIQUE (origin, hlc)
    ) STRICT;
    CREATE INDEX changes_bucket_key ON changes (bucket, key);

    CREATE TABLE peer_cursors (
        peer        TEXT NOT NULL,
        direction   TEXT NOT NULL,   -- 'pull' or 'push'
        seq         INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL,
        PRIMARY KEY (peer, direction)
    ) STRICT;

    CREATE TABLE segments (
        id           INTEGER PRIMARY KEY,
        durable_end  INTEGER NOT NULL,
        sealed       INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    """,
    # 2: versioning and multipart uploads.
    """
    CREATE INDEX versions_by_age ON versions (bucket, key, hlc DESC);

    CREATE TABLE uploads (
        upload_id     TEXT PRIMARY KEY,
        bucket        TEXT NOT NULL,
        key           TEXT NOT NULL,
        initiated_ms  INTEGER NOT NULL,
        owner         TEXT NOT NULL,
        headers       TEXT NOT NULL,   -- JSON [[name, value], ...] for the final object
        checksum      TEXT NOT NULL DEFAULT ''   -- algorithm named at creation, if any
    ) STRICT;
    CREATE INDEX uploads_by_key ON uploads (bucket, key, initiated_ms);

    CREATE TABLE parts (
        upload_id    TEXT NOT NULL REFERENCES uploads (upload_id) ON DELETE CASCADE,
        part_number  INTEGER NOT NULL,
        size         INTEGER NOT NULL,
        etag         TEXT NOT NULL,
        modified_ms  INTEGER NOT NULL,
        manifest     BLOB NOT NULL,   -- the part's chunks, as a manifest
        PRIMARY KEY (upload_id, part_number)
    ) STRICT;
    """,
    # 3: bucket configuration documents, object tags, access keys.
    """
    CREATE TABLE bucket_config (
        bucket  TEXT NOT NULL,
        name    TEXT NOT NULL,   -- 'policy', 'cors', 'tagging'
        value   TEXT NOT NULL,   -- the document as the client sent it (JSON or XML)
        hlc     INTEGER NOT NULL,
        origin  TEXT NOT NULL,
        PRIMARY KEY (bucket, name)
    ) STRICT;

    CREATE TABLE object_tags (
        bucket      TEXT NOT NULL,
        key         TEXT NOT NULL,
        version_id  TEXT NOT NULL,
        tags        TEXT NOT NULL,   -- JSON [[key, value], ...]
        hlc         INTEGER NOT NULL,
        origin      TEXT NOT NULL,
        PRIMARY KEY (bucket, key, version_id)
    ) STRICT;

    CREATE TABLE access_keys (
        access_key   TEXT PRIMARY KEY,
        secret_key   TEXT NOT NULL,
        status       TEXT NOT NULL DEFAULT 'active',   -- 'active' or 'disabled'
        read_only    INTEGER NOT NULL DEFAULT 0,
        buckets      TEXT NOT NULL DEFAULT '[]',        -- JSON list: only these buckets
        policy       TEXT NOT NULL DEFAULT '',          -- identity policy JSON, '' if none
        replication  INTEGER NOT NULL DEFAULT 0,        -- may call /_lakenode/repl/
        created_ms   INTEGER NOT NULL
    ) STRICT;
    """,
    # 4: replication: chunks by hash, losing writes kept for review, permanent version deletes.
    """
    CREATE TABLE chunk_index (
        blake3      BLOB PRIMARY KEY,
        segment_id  INTEGER NOT NULL,
        offset      INTEGER NOT NULL,
        length      INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE conflicts (
        id           INTEGER PRIMARY KEY,
        bucket       TEXT NOT NULL,
        key          TEXT NOT NULL,
        version_id   TEXT NOT NULL,
        hlc          INTEGER NOT NULL,
        origin       TEXT NOT NULL,
        winner_hlc   INTEGER NOT NULL,
        winner_origin TEXT NOT NULL,
        manifest     BLOB,
        recorded_ms  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX conflicts_by_key ON conflicts (bucket, key);

    CREATE TABLE version_tombstones (
        bucket      TEXT NOT NULL,
        key         TEXT NOT NULL,
        version_id  TEXT NOT NULL,
        hlc         INTEGER NOT NULL,
        origin      TEXT NOT NULL,
        PRIMARY KEY (bucket, key, version_id)
    ) STRICT, WITHOUT ROWID;
    """,
    # 5: Merkle digests for validate (storage/digest.py).
    """
    CREATE TABLE key_digests (
        khash   BLOB PRIMARY KEY,   -- BLAKE3(bucket NUL key)
        bucket  TEXT NOT NULL,
        key     TEXT NOT NULL,
        leaf    BLOB NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX key_digests_by_bucket ON key_digests (bucket);

    CREATE TABLE digest_nodes (
        prefix  TEXT PRIMARY KEY,   -- hex digits of khash, '' is the root
        xor     BLOB NOT NULL
    ) STRICT, WITHOUT ROWID;
    """,
    # 6: recently completed multipart uploads, so that a repeated completion is recognised.
    """
    CREATE TABLE completed_uploads (
        upload_id     TEXT PRIMARY KEY,
        bucket        TEXT NOT NULL,
        key           TEXT NOT NULL,
        completed_ms  INTEGER NOT NULL,
        upload        TEXT NOT NULL,   -- JSON: the upload as it was (owner, headers, checksum)
        parts         TEXT NOT NULL,   -- JSON [[number, etag], ...] as the completion listed them
        result        TEXT NOT NULL    -- JSON: the object's etag, version id, checksum headers
    ) STRICT;
    CREATE INDEX completed_uploads_by_age ON completed_uploads (completed_ms);
    """,
    # 7: ACLs set on existing object versions (PutObjectAcl).
    """
    CREATE TABLE object_acls (
        bucket      TEXT NOT NULL,
        key         TEXT NOT NULL,
        version_id  TEXT NOT NULL,
        acl         TEXT NOT NULL,   -- JSON (api/acl.py)
        hlc         INTEGER NOT NULL,
        origin      TEXT NOT NULL,
        PRIMARY KEY (bucket, key, version_id)
    ) STRICT;
    """,
    # 8: object lock state per version (storage/lock_state.py, storage/locks.py).
    """
    CREATE TABLE version_locks (
        bucket            TEXT NOT NULL,
        key               TEXT NOT NULL,
        version_id        TEXT NOT NULL,
        state             TEXT NOT NULL,     -- JSON (storage/lock_state.py LockState)
        protected_until   INTEGER NOT NULL,  -- ms: no removal before; max int while held
        hlc               INTEGER NOT NULL,  -- stamp of the last lock change merged here
        origin            TEXT NOT NULL,
        PRIMARY KEY (bucket, key, version_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX version_locks_by_protection ON version_locks (protected_until);
    """,
)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date; each migration runs in its own transaction."""
    (current,) = conn.execute("PRAGMA user_version").fetchone()
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {current} is newer than this lakenode "
            f"({len(MIGRATIONS)}); refusing to open it"
        )
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
