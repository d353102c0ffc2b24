"""rebuild-index, step 1: stage the segments' records in temporary tables, and look them up.

Every intact chunk record, manifest and journal entry of every segment goes into a
temporary table of the new catalog's connection (``rb_*``; memory stays bounded by one
record), in segment order, so that the replay (storage/ops/rebuild_replay.py) can take the
change entries in log order and check each manifest's chunks against the intact chunk
records. :class:`RebuildStats` gathers what the report (storage/ops/rebuild.py) tells.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from storage import journal
from storage.errors import FormatError
from storage.hlc import LOGICAL_BITS
from storage.manifest import Kind, Manifest, decode
from storage.ops.jobstate import Progress
from storage.segments import Record, RecordKind, SegmentScan, list_segment_ids, segment_path

REPORTED_SKIPS_MAX: Final = 100


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


STAGING_TABLES = """
CREATE TEMP TABLE rb_chunks (
    segment_id INTEGER, offset INTEGER, length INTEGER, blake3 BLOB,
    PRIMARY KEY (segment_id, offset)) WITHOUT ROWID;
CREATE TEMP TABLE rb_manifests (
    hlc INTEGER, origin TEXT, position INTEGER, bytes BLOB, bucket TEXT, key TEXT,
    version_id TEXT, PRIMARY KEY (hlc, origin, position));
CREATE TEMP TABLE rb_changes (seq INTEGER PRIMARY KEY, position INTEGER, entry TEXT);
CREATE TEMP TABLE rb_journaled (hlc INTEGER, origin TEXT, PRIMARY KEY (hlc, origin));
CREATE TEMP TABLE rb_uploads (hlc INTEGER, origin TEXT, position INTEGER, entry TEXT);
-- Entries whose bytes are gone: a skip only if nothing later replaced them (settled at the end).
CREATE TEMP TABLE rb_missing (what TEXT, reason TEXT, bucket TEXT, key TEXT, version_id TEXT,
                              hlc INTEGER, origin TEXT, upload_id TEXT);
CREATE INDEX temp.rb_uploads_order ON rb_uploads (hlc, origin, position);
CREATE INDEX temp.rb_manifests_by_version ON rb_manifests (bucket, key, version_id);
"""


def scan_segments(
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
                "INSERT INTO rb_manifests VALUES (?, ?, ?, ?, ?, ?, ?)",
                (manifest.hlc, manifest.origin, position, payload, manifest.bucket,
                 manifest.key, manifest.version_id),
            )  # fmt: skip
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


def chunks_intact(conn: sqlite3.Connection, manifest: Manifest) -> bool:
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


def usable_manifest(conn: sqlite3.Connection, hlc: int, origin: str) -> Manifest | None:
    """The manifest written for a change whose chunks are all intact (the latest copy)."""
    for (blob,) in conn.execute(
        "SELECT bytes FROM rb_manifests WHERE hlc = ? AND origin = ? ORDER BY position DESC",
        (hlc, origin),
    ).fetchall():
        manifest = decode(bytes(blob))
        if chunks_intact(conn, manifest):
            return manifest
    return None


def any_manifest(conn: sqlite3.Connection, hlc: int, origin: str) -> Manifest | None:
    """Any manifest written with this stamp, intact chunks or not (to name its version)."""
    row = conn.execute(
        "SELECT bytes FROM rb_manifests WHERE hlc = ? AND origin = ? ORDER BY position DESC",
        (hlc, origin),
    ).fetchone()
    return None if row is None else decode(bytes(row[0]))


def locked_version_manifest(
    conn: sqlite3.Connection, version: tuple[str, str, str], lock_hlc: int
) -> Manifest | None:
    """The manifest of a locked version, for replaying its ``version.lock``: the newest
    intact copy of a version written before the lock. A lock change carries the version's
    manifest, whose stamp is the version's, not the change's, so it is found by the version
    it names (GC may have moved it since, or dropped it once the version was gone)."""
    for (blob,) in conn.execute(
        "SELECT bytes FROM rb_manifests WHERE bucket = ? AND key = ? AND version_id = ?"
        " AND hlc <= ? ORDER BY hlc DESC, position DESC",
        (*version, lock_hlc),
    ).fetchall():
        manifest = decode(bytes(blob))
        if manifest.kind == Kind.OBJECT and chunks_intact(conn, manifest):
            return manifest
    return None
