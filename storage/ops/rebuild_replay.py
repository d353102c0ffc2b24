"""rebuild-index, steps 2 and 3: replay the staged records into the new catalog.

The change entries in their original log order (``seq``), each through the replication
apply path and logged again at its original seq; then the manifests no change entry
accounts for, the multipart uploads still in progress and the access keys. An entry whose
manifest or chunks are gone is a loss only if nothing later replaced it (settled last).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from storage import catalog, journal, key_journal
from storage.clock import Clock
from storage.errors import FormatError, StorageError
from storage.manifest import Kind, decode
from storage.ops.jobstate import Progress
from storage.ops.rebuild_staging import (
    RebuildStats,
    any_manifest,
    chunks_intact,
    locked_version_manifest,
    usable_manifest,
)
from storage.sync.apply import apply_and_log
from storage.sync.apply_locks import LOCK_OP
from storage.sync.feed import Change

PAGE: Final = 1000


def _replay(
    conn: sqlite3.Connection,
    change: Change,
    seq: int | None,
    stats: RebuildStats,
    clock: Clock,
) -> None:
    """Apply and log one change in its own savepoint; a refusal is reported, not fatal."""
    what = f"{change.op} {change.bucket}/{change.key or ''} ({change.origin}, {change.hlc})"
    logged = conn.execute(
        "SELECT 1 FROM changes WHERE origin = ? AND hlc = ?", (change.origin, change.hlc)
    ).fetchone()
    if logged is not None:
        stats.duplicates += 1  # the same change applied twice (an uncommitted first try)
        return
    conn.execute("SAVEPOINT replay")
    try:
        # Manifests were checked against the intact chunk records: kept as they are.
        apply_and_log(conn, change, seq, chunks_local=True, now_ms=clock.wall_ms)
    except StorageError as exc:
        conn.execute("ROLLBACK TO replay")
        stats.skip(what, f"{type(exc).__name__}: {exc}")
    else:
        stats.changes += 1
    conn.execute("RELEASE replay")


def _pages(
    conn: sqlite3.Connection, query: str, start: tuple[Any, ...]
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``query`` a page at a time, so that memory stays bounded and replaying (which
    writes on the same connection) never runs under an open cursor. The query takes the
    key of the last row seen (its first ``len(start)`` columns, ``start`` at first) and a
    page size."""
    last = start
    while True:
        rows = conn.execute(query, (*last, PAGE)).fetchall()
        if not rows:
            return
        yield from rows
        last = tuple(rows[-1][: len(start)])


def replay_changes(
    conn: sqlite3.Connection, stats: RebuildStats, progress: Progress, clock: Clock
) -> None:
    (total,) = conn.execute("SELECT count(*) FROM rb_changes").fetchone()
    progress.note(f"replaying {total} change(s) in log order")
    done = 0
    for seq, text in _pages(
        conn, "SELECT seq, entry FROM rb_changes WHERE seq > ? ORDER BY seq LIMIT ?", (-1,)
    ):
        entry = json.loads(text)
        manifest: bytes | None = None
        if entry["manifest"] and entry["op"] == LOCK_OP:
            # The lock is replayed even without its manifest (GC may have dropped it once the
            # version was gone): only bringing a version back needs it.
            version = (entry["bucket"], entry["key"], entry["version_id"])
            found = locked_version_manifest(conn, version, entry["hlc"])
            manifest = None if found is None else found.encode()
        elif entry["manifest"]:
            found = usable_manifest(conn, entry["hlc"], entry["origin"])
            if found is None:
                what = f"{entry['op']} {entry['bucket']}/{entry['key']} {entry['version_id']}"
                _missing(
                    conn, what, "its manifest or some of its chunks are missing or damaged",
                    (entry["bucket"], entry["key"], entry["version_id"]),
                    entry["hlc"], entry["origin"],
                )  # fmt: skip
                continue
            manifest = found.encode()
        change = Change(
            seq, entry["hlc"], entry["origin"], entry["op"], entry["bucket"], entry["key"],
            entry["version_id"], entry["size"], entry["etag"], manifest, entry["payload"],
        )  # fmt: skip
        _replay(conn, change, seq, stats, clock)
        done += 1
        if done % PAGE == 0:
            progress.advance(done, total, "changes")


def replay_unjournaled(conn: sqlite3.Connection, stats: RebuildStats, clock: Clock) -> None:
    """Manifests no change entry accounts for (written before the journal existed), by LWW
    in stamp order; logged after the journaled changes. A manifest whose change entry was
    superseded (its batch never committed) is not among them."""
    for hlc, origin in _pages(
        conn,
        "SELECT DISTINCT m.hlc, m.origin FROM rb_manifests m LEFT JOIN rb_journaled j"
        " ON j.hlc = m.hlc AND j.origin = m.origin WHERE j.hlc IS NULL"
        " AND (m.hlc, m.origin) > (?, ?) ORDER BY m.hlc, m.origin LIMIT ?",
        (-1, ""),
    ):
        manifest = usable_manifest(conn, hlc, origin)
        if manifest is None:
            any_copy = any_manifest(conn, hlc, origin)
            version = (any_copy.bucket, any_copy.key, any_copy.version_id) if any_copy else None
            what, reason = f"version ({origin}, {hlc})", "some of its chunks are missing or damaged"
            _missing(conn, what, reason, version, hlc, origin)
            continue
        stats.unjournaled_versions += 1
        op = "object.put" if manifest.kind == Kind.OBJECT else "object.delete"
        change = Change(
            0, hlc, origin, op, manifest.bucket, manifest.key, manifest.version_id,
            manifest.size, manifest.etag, manifest.encode(),
        )  # fmt: skip
        _replay(conn, change, None, stats, clock)


def _missing(
    conn: sqlite3.Connection,
    what: str,
    reason: str,
    version: tuple[str, str, str] | None,
    hlc: int,
    origin: str,
    *,
    upload_id: str | None = None,
) -> None:
    bucket, key, version_id = version or (None, None, None)
    conn.execute(
        "INSERT INTO rb_missing VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (what, reason, bucket, key, version_id, hlc, origin, upload_id),
    )


def settle_missing(conn: sqlite3.Connection, stats: RebuildStats) -> None:
    """An entry whose chunks are gone is a loss only if nothing later replaced it.

    Chunk GC reclaims the bytes of versions that were overwritten, deleted or deleted for
    good, and of parts of uploads since completed or aborted; their entries stay in the
    journal. They are superseded, not lost: a newer version, tombstone or version tombstone
    of the same (bucket, key, version id) stands, the bucket is gone, or the upload is.
    """
    rows = conn.execute(
        "SELECT what, reason, bucket, key, version_id, hlc, origin, upload_id FROM rb_missing"
    ).fetchall()
    for what, reason, bucket, key, version_id, hlc, origin, upload_id in rows:
        if _superseded(conn, bucket, key, version_id, hlc, origin, upload_id):
            stats.superseded += 1
        else:
            stats.skip(what, reason)


def _superseded(
    conn: sqlite3.Connection,
    bucket: str | None,
    key: str | None,
    version_id: str | None,
    hlc: int,
    origin: str,
    upload_id: str | None,
) -> bool:
    if upload_id is not None:  # a part (its number in ``hlc``): the upload ended, or a later
        # entry for the same part (GC wrote it again where it moved the chunks) replayed
        upload = conn.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (upload_id,))
        if upload.fetchone() is None:
            return True
        part = conn.execute(
            "SELECT 1 FROM parts WHERE upload_id = ? AND part_number = ?", (upload_id, hlc)
        )
        return part.fetchone() is not None
    if bucket is None:
        return False  # not even a manifest names it: nothing to compare with
    if conn.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone() is None:
        return True
    for table in ("versions", "version_tombstones"):
        newer = conn.execute(
            f"SELECT 1 FROM {table} WHERE bucket = ? AND key = ? AND version_id = ?"
            " AND (hlc, origin) > (?, ?)",
            (bucket, key, version_id, hlc, origin),
        ).fetchone()
        if newer is not None:
            return True
    return False


def replay_uploads(conn: sqlite3.Connection, stats: RebuildStats) -> None:
    """Multipart uploads still in progress, in stamp order (create, parts, then done)."""
    for _hlc, _origin, _position, text in _pages(
        conn,
        "SELECT hlc, origin, position, entry FROM rb_uploads"
        " WHERE (hlc, origin, position) > (?, ?, ?) ORDER BY hlc, origin, position LIMIT ?",
        (-1, "", -1),
    ):
        entry = json.loads(text)
        if entry["t"] == journal.UPLOAD_CREATE:
            _replay_upload_create(conn, entry)
        elif entry["t"] == journal.UPLOAD_PART:
            _replay_part(conn, journal.part_entry(entry), stats)
        else:
            conn.execute("DELETE FROM uploads WHERE upload_id = ?", (entry["upload_id"],))


def _replay_upload_create(conn: sqlite3.Connection, entry: dict[str, Any]) -> None:
    # Only into the bucket it was created in: one that existed before it, not a later one
    # of the same name (an upload in a deleted bucket went with it).
    bucket = conn.execute(
        "SELECT 1 FROM buckets WHERE name = ? AND (hlc, origin) < (?, ?)",
        (entry["bucket"], entry["hlc"], entry["origin"]),
    ).fetchone()
    if bucket is None:
        return
    conn.execute(
        "INSERT OR IGNORE INTO uploads (upload_id, bucket, key, initiated_ms, owner, headers,"
        " checksum) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (entry["upload_id"], entry["bucket"], entry["key"], entry["initiated_ms"],
         entry["owner"], json.dumps(entry["headers"]), entry["checksum"]),
    )  # fmt: skip


def _replay_part(conn: sqlite3.Connection, part: journal.PartEntry, stats: RebuildStats) -> None:
    exists = conn.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (part.upload_id,)).fetchone()
    if exists is None:
        return
    try:
        manifest = decode(part.manifest)
    except FormatError as exc:
        stats.skip(f"upload {part.upload_id} part {part.part_number}", str(exc))
        return
    if not chunks_intact(conn, manifest):
        what = f"upload {part.upload_id} part {part.part_number}"
        reason = "some of its chunks are missing or damaged"
        _missing(conn, what, reason, None, part.part_number, "", upload_id=part.upload_id)
        return
    conn.execute(
        "INSERT INTO parts (upload_id, part_number, size, etag, modified_ms, manifest)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (upload_id, part_number) DO UPDATE SET"
        " size = excluded.size, etag = excluded.etag, modified_ms = excluded.modified_ms,"
        " manifest = excluded.manifest",
        (part.upload_id, part.part_number, manifest.size, manifest.etag,
         manifest.last_modified_ms, part.manifest),
    )  # fmt: skip


def replay_keys(conn: sqlite3.Connection, data_dir: Path, stats: RebuildStats) -> int:
    replayed = key_journal.replay(key_journal.journal_path(data_dir))
    stats.key_lines_skipped = replayed.bad_lines
    columns = key_journal.KEY_COLUMNS
    conn.executemany(
        f"INSERT INTO access_keys ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        ([row[name] for name in columns] for row in replayed.keys.values()),
    )
    # Any value differs from what a running node last saw: it reloads its keys.
    catalog.write_meta(conn, "keys_generation", str(replayed.lines + 1))
    return len(replayed.keys)
