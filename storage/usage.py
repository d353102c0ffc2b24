"""Space accounting: how much of each segment file is still referenced (live) or garbage.

A chunk is live while anything that may still be read or sent refers to it: a ``versions``
manifest (every kind, noncurrent included), a ``parts`` manifest (multipart upload in
flight), a ``conflicts`` manifest (a replication loser kept for review), or a ``changes``
manifest after the replication horizon (a peer still has to fetch it).

This is the straightforward version the metrics need (ops-observe); the GC tools own the
definitive one. Live bytes are counted per chunk record (its header and payload); a chunk
referenced by many versions counts once. Manifest records and segment headers are not chunk
records, so they count as garbage here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.manifest import decode
from storage.retention import replication_horizon
from storage.segments import RECORD_HEADER, list_segment_ids, segment_path


@dataclass(frozen=True)
class SegmentUsage:
    segment_id: int
    file_bytes: int  # size of the segment file on disk
    live_bytes: int  # bytes of chunk records still referenced
    sealed: bool


@dataclass(frozen=True)
class UsageTotals:
    segments: int
    segment_bytes: int
    live_bytes: int
    garbage_bytes: int  # segment_bytes - live_bytes (never negative)
    objects: int  # current, visible objects (latest version not a delete marker/tombstone)


def segment_usage(conn: sqlite3.Connection, segment_dir: Path) -> list[SegmentUsage]:
    live = _live_bytes_by_segment(conn)
    sealed = {int(row[0]) for row in conn.execute("SELECT id FROM segments WHERE sealed = 1")}
    usage = []
    for segment_id in list_segment_ids(segment_dir):
        try:
            size = segment_path(segment_dir, segment_id).stat().st_size
        except FileNotFoundError:
            continue  # removed since it was listed (a GC rewrite finished)
        live_bytes = min(live.get(segment_id, 0), size)
        usage.append(SegmentUsage(segment_id, size, live_bytes, segment_id in sealed))
    return usage


def usage_totals(conn: sqlite3.Connection, segment_dir: Path) -> UsageTotals:
    segments = segment_usage(conn, segment_dir)
    segment_bytes = sum(s.file_bytes for s in segments)
    live_bytes = sum(s.live_bytes for s in segments)
    (objects,) = conn.execute(
        "SELECT count(*) FROM versions WHERE is_latest = 1 AND kind = 0"
    ).fetchone()
    return UsageTotals(
        segments=len(segments),
        segment_bytes=segment_bytes,
        live_bytes=live_bytes,
        garbage_bytes=max(0, segment_bytes - live_bytes),
        objects=int(objects),
    )


def _referencing_manifests(conn: sqlite3.Connection) -> Iterator[bytes]:
    horizon = replication_horizon(conn)
    queries = (
        ("SELECT manifest FROM versions", ()),
        ("SELECT manifest FROM parts", ()),
        ("SELECT manifest FROM conflicts WHERE manifest IS NOT NULL", ()),
        ("SELECT manifest FROM changes WHERE seq > ? AND manifest IS NOT NULL", (horizon,)),
    )
    for sql, parameters in queries:
        for (blob,) in conn.execute(sql, parameters):
            yield bytes(blob)


def _live_bytes_by_segment(conn: sqlite3.Connection) -> dict[int, int]:
    """Bytes of the referenced chunk records per segment, overlapping references merged."""
    spans: dict[int, dict[int, int]] = {}  # segment -> record start -> record end
    for blob in _referencing_manifests(conn):
        for chunk in decode(blob).chunks:
            start = chunk.offset - RECORD_HEADER.size
            by_start = spans.setdefault(chunk.segment_id, {})
            by_start[start] = max(by_start.get(start, 0), chunk.offset + chunk.length)
    return {segment_id: _merged_length(by_start) for segment_id, by_start in spans.items()}


def _merged_length(by_start: dict[int, int]) -> int:
    """Total length of the union of [start, end) spans (slices of a record may overlap it)."""
    total, reached = 0, -1
    for start in sorted(by_start):
        end = by_start[start]
        if end <= reached:
            continue
        total += end - max(start, reached)
        reached = end
    return total
