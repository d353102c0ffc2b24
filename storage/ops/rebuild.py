"""rebuild-index: recreate ``meta.db`` from the segments (and the access-key journal).

Every commit makes its manifests and journal entries durable in the segments before the
catalog (storage/commit.py, storage/journal.py), so the segments hold every committed fact.
The rebuild, on a stopped data dir:

1. scans every segment (a torn or damaged tail ends that segment's scan, as at recovery),
   staging chunk records, manifests and journal entries in temporary tables (memory stays
   bounded by one record);
2. replays the change entries **in their original log order** (``seq``), each through the
   replication apply path (storage/sync/apply.py: LWW by ``(hlc, origin)``, version tombstones,
   latest flags, tags, bucket documents, digests) and logs it again **at its original seq**
   with its original stamp, so the change log and the peers' cursors into it stay valid.
   A manifest is used only if every chunk it names lies in an intact chunk record;
3. replays manifests no change entry accounts for (written before the journal existed) by
   LWW, then multipart uploads, then the access keys (storage/key_journal.py);
4. records segments, the HLC and the log's continuation point, and swaps the new catalog in
   (the old files, if any, are kept as ``meta.db.broken-<time>``).

What cannot be rebuilt (peer cursors, replication counters, job records, conflicts'
original times) is listed in docs/ops.md.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from storage import catalog, journal, key_journal
from storage.clock import SYSTEM_CLOCK, Clock
from storage.errors import FormatError, StorageError
from storage.hlc import LOGICAL_BITS, pack
from storage.manifest import Kind, Manifest, decode
from storage.ops.jobstate import Progress
from storage.schema import migrate
from storage.segments import (
    Record,
    RecordKind,
    SegmentScan,
    fsync_directory,
    list_segment_ids,
    segment_path,
)
from storage.store import DataDirLocked, lock_data_dir, resolve_node_id
from storage.sync.apply import apply_and_log
from storage.sync.feed import Change, continue_log_above, last_seq

CATALOG: Final = "meta.db"
SQLITE_SUFFIXES: Final = ("", "-wal", "-shm", "-journal")
REPORTED_SKIPS_MAX: Final = 100
PAGE: Final = 1000
# Exit codes: rebuilt completely / rebuilt, but something was skipped or a segment is damaged.
COMPLETE: Final = 0
INCOMPLETE: Final = 4


class RebuildRefused(StorageError):
    """rebuild-index will not run on this data dir (nothing was changed)."""


@dataclass
class RebuildStats:
    segments: int = 0
    segment_bytes: int = 0
    records: dict[str, int] = field(default_factory=lambda: {k.name.lower(): 0 for k in RecordKind})
    changes: int = 0
    duplicates: int = 0
    unjournaled_versions: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    damaged_segments: list[dict[str, int]] = field(default_factory=list)
    torn_tail_bytes: int = 0
    max_hlc: int = 0
    last_change_ms: int = 0
    key_lines_skipped: list[int] = field(default_factory=list)
    superseded: int = 0  # entries whose bytes GC reclaimed after something replaced them

    def skip(self, what: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < REPORTED_SKIPS_MAX:
            self.skipped.append({"what": what, "reason": reason})

    def saw_stamp(self, hlc: int) -> None:
        self.max_hlc = max(self.max_hlc, hlc)


def rebuild_index(
    data_dir: Path,
    progress: Progress,
    force: bool = False,
    node_id: str | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """Rebuild ``DATA/meta.db`` from the segments; the report (JSON-able, with exit_code).
    Raises RebuildRefused when it will not run."""
    if not (data_dir / "segments").is_dir():
        raise RebuildRefused(f"no lakenode data in {data_dir} (no segments directory)")
    try:
        lock = lock_data_dir(data_dir)
    except DataDirLocked as exc:
        raise RebuildRefused(f"a node is running on {data_dir}: stop it first") from exc
    try:
        node = _node_id(data_dir, node_id)
        problem = catalog_problem(data_dir / CATALOG)
        if problem is None and not force:
            raise RebuildRefused(
                f"{data_dir / CATALOG} is healthy: pass --force to rebuild it anyway"
                " (the current files are kept as meta.db.broken-<time>)"
            )
        if problem not in (None, "missing"):
            progress.note(f"{CATALOG} is damaged ({problem}): rebuilding it")
        stats = RebuildStats()
        temporary = data_dir / f"{CATALOG}.rebuild"
        counts = _build(temporary, data_dir, stats, progress, clock)
        moved = _swap_in(temporary, data_dir, clock)
    finally:
        os.close(lock)
    complete = not (stats.skipped_count or stats.damaged_segments or stats.key_lines_skipped)
    return {
        "exit_code": COMPLETE if complete else INCOMPLETE,
        "data_dir": str(data_dir),
        "node_id": node,
        "moved_aside": moved,
        "segments": stats.segments,
        "segment_bytes": stats.segment_bytes,
        "records": stats.records,
        "changes": stats.changes,
        "duplicate_entries": stats.duplicates,
        "unjournaled_versions": stats.unjournaled_versions,
        **counts,
        "superseded_entries": stats.superseded,
        "skipped_count": stats.skipped_count,
        "skipped": stats.skipped,
        "damaged_segments": stats.damaged_segments,
        "torn_tail_bytes": stats.torn_tail_bytes,
        "key_journal_lines_skipped": stats.key_lines_skipped,
    }


def _node_id(data_dir: Path, requested: str | None) -> str:
    if not (data_dir / "node_id").exists() and requested is None:
        raise RebuildRefused(
            f"{data_dir / 'node_id'} is missing: pass --node-id with this node's id"
            " (the origin of its writes), or peers will see a different node"
        )
    try:
        return resolve_node_id(data_dir, requested)
    except (ValueError, StorageError) as exc:
        raise RebuildRefused(str(exc)) from exc


def catalog_problem(path: Path) -> str | None:
    """None when the catalog opens, passes quick_check and has a known schema; else why not."""
    if not path.exists():
        return "missing"
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            (check,) = conn.execute("PRAGMA quick_check").fetchone()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            conn.execute("SELECT count(*) FROM changes").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return f"{type(exc).__name__}: {exc}"
    if check != "ok":
        return f"quick_check: {check}"
    if version == 0:
        return "empty (no schema)"
    return None


# ---- building the new catalog --------------------------------------------------------------

_STAGING = """
CREATE TEMP TABLE rb_chunks (
    segment_id INTEGER, offset INTEGER, length INTEGER, blake3 BLOB,
    PRIMARY KEY (segment_id, offset)) WITHOUT ROWID;
CREATE TEMP TABLE rb_manifests (
    hlc INTEGER, origin TEXT, position INTEGER, bytes BLOB, PRIMARY KEY (hlc, origin, position));
CREATE TEMP TABLE rb_changes (seq INTEGER PRIMARY KEY, position INTEGER, entry TEXT);
CREATE TEMP TABLE rb_journaled (hlc INTEGER, origin TEXT, PRIMARY KEY (hlc, origin));
CREATE TEMP TABLE rb_uploads (hlc INTEGER, origin TEXT, position INTEGER, entry TEXT);
-- Entries whose bytes are gone: a skip only if nothing later replaced them (settled at the end).
CREATE TEMP TABLE rb_missing (what TEXT, reason TEXT, bucket TEXT, key TEXT, version_id TEXT,
                              hlc INTEGER, origin TEXT, upload_id TEXT);
CREATE INDEX temp.rb_uploads_order ON rb_uploads (hlc, origin, position);
"""


def _build(
    path: Path, data_dir: Path, stats: RebuildStats, progress: Progress, clock: Clock
) -> dict[str, int]:
    for suffix in SQLITE_SUFFIXES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        # Nothing here is durable until the file is fsynced and renamed into place.
        conn.execute("PRAGMA synchronous=OFF")
        migrate(conn)
        conn.executescript(_STAGING)
        conn.execute("BEGIN IMMEDIATE")
        segments, unreadable = _scan_segments(conn, data_dir / "segments", stats, progress)
        _replay_changes(conn, stats, progress, clock)
        _replay_unjournaled(conn, stats, clock)
        _replay_uploads(conn, stats)
        _settle_missing(conn, stats)
        keys = _replay_keys(conn, data_dir, stats)
        _finish(conn, segments, unreadable, stats, clock)
        counts = _counts(conn)
        counts["keys"] = keys
        conn.execute("COMMIT")
    finally:
        conn.close()
    with open(path, "rb+") as file:
        os.fsync(file.fileno())
    return counts


def _scan_segments(
    conn: sqlite3.Connection, directory: Path, stats: RebuildStats, progress: Progress
) -> tuple[dict[int, int], set[int]]:
    """Stage every intact record; return {segment id: end of its intact records} and the
    segments whose header cannot be read."""
    ids = list_segment_ids(directory)
    total = sum(segment_path(directory, i).stat().st_size for i in ids)
    progress.note(f"scanning {len(ids)} segment(s), {total} bytes")
    ends: dict[int, int] = {}
    unreadable: set[int] = set()
    done = 0
    for segment_id in ids:
        path = segment_path(directory, segment_id)
        size = path.stat().st_size
        scan = SegmentScan(path)
        try:
            for record, payload in scan:
                _stage(conn, record, payload, stats)
        except FormatError as exc:
            stats.skip(f"segment {segment_id:016x}", str(exc))
            unreadable.add(segment_id)
        ends[segment_id] = scan.valid_end
        if scan.valid_end < size:
            if segment_id == ids[-1]:
                stats.torn_tail_bytes = size - scan.valid_end  # a crash while appending
            else:
                stats.damaged_segments.append(
                    {"segment": segment_id, "valid_end": scan.valid_end, "size": size}
                )
        stats.segments += 1
        stats.segment_bytes += size
        done += size
        progress.advance(done, total, "bytes")
    return ends, unreadable


def _stage(
    conn: sqlite3.Connection, record: Record, payload: bytes | None, stats: RebuildStats
) -> None:
    kind = record.kind
    stats.records[kind.name.lower()] += 1
    position = (record.segment_id << 40) | record.offset  # segment order, then offset order
    if kind == RecordKind.CHUNK:
        conn.execute(
            "INSERT OR REPLACE INTO rb_chunks VALUES (?, ?, ?, ?)",
            (record.segment_id, record.offset, record.length, record.blake3),
        )
        return
    assert payload is not None
    where = f"segment {record.segment_id:016x} offset {record.offset}"
    try:
        if kind == RecordKind.MANIFEST:
            manifest = decode(payload)
            stats.saw_stamp(manifest.hlc)
            conn.execute(
                "INSERT INTO rb_manifests VALUES (?, ?, ?, ?)",
                (manifest.hlc, manifest.origin, position, payload),
            )
        else:
            _stage_entry(conn, journal.decode(payload), position, stats)
    except FormatError as exc:
        stats.skip(where, f"unreadable {kind.name.lower()} record: {exc}")


def _stage_entry(
    conn: sqlite3.Connection, entry: dict[str, Any], position: int, stats: RebuildStats
) -> None:
    stats.saw_stamp(entry["hlc"])
    text = json.dumps(entry)
    if entry["t"] == journal.CHANGE:
        # A seq given twice: the batch of the earlier record never committed (the node
        # crashed before COMMIT and reused the seq); the later record is the committed one.
        conn.execute(
            "INSERT INTO rb_changes VALUES (?, ?, ?) ON CONFLICT (seq) DO UPDATE SET"
            " position = excluded.position, entry = excluded.entry"
            " WHERE excluded.position > position",
            (entry["seq"], position, text),
        )
        conn.execute(
            "INSERT OR IGNORE INTO rb_journaled VALUES (?, ?)", (entry["hlc"], entry["origin"])
        )
        stats.last_change_ms = max(stats.last_change_ms, entry["hlc"] >> LOGICAL_BITS)
    else:
        conn.execute(
            "INSERT INTO rb_uploads VALUES (?, ?, ?, ?)",
            (entry["hlc"], entry["origin"], position, text),
        )


def _chunks_intact(conn: sqlite3.Connection, manifest: Manifest) -> bool:
    """Every chunk lies in an intact chunk record (a whole record: with its BLAKE3)."""
    for chunk in manifest.chunks:
        row = conn.execute(
            "SELECT offset, length, blake3 FROM rb_chunks WHERE segment_id = ? AND offset <= ?"
            " ORDER BY offset DESC LIMIT 1",
            (chunk.segment_id, chunk.offset),
        ).fetchone()
        if row is None or chunk.offset + chunk.length > row[0] + row[1]:
            return False
        if (chunk.offset, chunk.length) == (row[0], row[1]) and bytes(row[2]) != chunk.blake3:
            return False
    return True


def _usable_manifest(conn: sqlite3.Connection, hlc: int, origin: str) -> Manifest | None:
    """The manifest written for a change whose chunks are all intact (the latest copy)."""
    for (blob,) in conn.execute(
        "SELECT bytes FROM rb_manifests WHERE hlc = ? AND origin = ? ORDER BY position DESC",
        (hlc, origin),
    ).fetchall():
        manifest = decode(bytes(blob))
        if _chunks_intact(conn, manifest):
            return manifest
    return None


def _any_manifest(conn: sqlite3.Connection, hlc: int, origin: str) -> Manifest | None:
    """Any manifest written with this stamp, intact chunks or not (to name its version)."""
    row = conn.execute(
        "SELECT bytes FROM rb_manifests WHERE hlc = ? AND origin = ? ORDER BY position DESC",
        (hlc, origin),
    ).fetchone()
    return None if row is None else decode(bytes(row[0]))


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


def _replay_changes(
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
        if entry["manifest"]:
            found = _usable_manifest(conn, entry["hlc"], entry["origin"])
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


def _replay_unjournaled(conn: sqlite3.Connection, stats: RebuildStats, clock: Clock) -> None:
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
        manifest = _usable_manifest(conn, hlc, origin)
        if manifest is None:
            any_copy = _any_manifest(conn, hlc, origin)
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


def _settle_missing(conn: sqlite3.Connection, stats: RebuildStats) -> None:
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


def _replay_uploads(conn: sqlite3.Connection, stats: RebuildStats) -> None:
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
    if not _chunks_intact(conn, manifest):
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


def _replay_keys(conn: sqlite3.Connection, data_dir: Path, stats: RebuildStats) -> int:
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


def _finish(
    conn: sqlite3.Connection,
    ends: dict[int, int],
    unreadable: set[int],
    stats: RebuildStats,
    clock: Clock,
) -> None:
    # Only the last segment can have been open when the node stopped: the node's recovery
    # scans it (and cuts a torn tail) at start; every other one is sealed as it is, and so
    # is one whose header cannot be read (left for fsck, not for recovery to trip over).
    last = max(ends, default=None)
    conn.executemany(
        "INSERT INTO segments (id, durable_end, sealed) VALUES (?, ?, ?)",
        (
            (segment_id, end, int(segment_id != last or segment_id in unreadable))
            for segment_id, end in ends.items()
        ),
    )
    now_ms = clock.wall_ms()
    # Never reissue a stamp a peer may hold from before the loss: at least every stamp seen.
    catalog.write_meta(conn, "hlc_last", str(max(stats.max_hlc, pack(now_ms, 0))))
    continue_log_above(conn, stats.last_change_ms or now_ms, now_ms)
    # Both maintained by the replay itself (index_chunks, digest.refresh_key).
    catalog.write_meta(conn, "chunk_index_complete", "1")
    catalog.write_meta(conn, "digests_complete", "1")
    catalog.write_meta(conn, "rebuilt_ms", str(now_ms))


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    def count(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0])

    return {
        "buckets": count("SELECT count(*) FROM buckets"),
        "versions": count("SELECT count(*) FROM versions"),
        "objects": count(
            f"SELECT count(*) FROM versions WHERE is_latest = 1 AND kind = {int(Kind.OBJECT)}"
        ),
        "bucket_documents": count("SELECT count(*) FROM bucket_config"),
        "tagged_versions": count("SELECT count(*) FROM object_tags"),
        "version_tombstones": count("SELECT count(*) FROM version_tombstones"),
        "uploads": count("SELECT count(*) FROM uploads"),
        "last_seq": last_seq(conn),
    }


# ---- swapping the new catalog in --------------------------------------------------------------


def _swap_in(temporary: Path, data_dir: Path, clock: Clock) -> str | None:
    """Move the old catalog files aside (kept, never deleted), rename the new one in."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(clock.wall_s()))
    aside = f"{CATALOG}.broken-{stamp}"
    moved = None
    for suffix in SQLITE_SUFFIXES:
        old = data_dir / f"{CATALOG}{suffix}"
        if old.exists():
            os.replace(old, data_dir / f"{aside}{suffix}")
            moved = str(data_dir / aside)
    os.replace(temporary, data_dir / CATALOG)
    fsync_directory(data_dir)
    return moved
