"""How the segment files are used: live and garbage bytes per segment, and totals.

A chunk is live while anything still references it: a ``versions`` manifest (every kind,
noncurrent versions included), a ``parts`` manifest (a multipart upload in progress), a
``conflicts`` manifest (a replication loser kept for review), or a ``changes`` manifest after
the replication horizon (a peer still has to fetch it, see storage/retention.py). A slice
reference (UploadPartCopy) counts the bytes it covers; overlapping references count once.

Live bytes count chunk payloads only: record headers and manifest records are not chunk data
and land in ``garbage_bytes``, which is therefore an upper bound of what GC could reclaim.
(ops-tools owns this module; this is the straightforward version ops-admin needs for
``lakenode status``.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.manifest import Kind, decode
from storage.retention import replication_horizon
from storage.segments import list_segment_ids, segment_path


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


def _referencing_manifests(conn: sqlite3.Connection) -> Iterator[bytes]:
    horizon = replication_horizon(conn)
    yield from (row[0] for row in conn.execute("SELECT manifest FROM versions"))
    yield from (row[0] for row in conn.execute("SELECT manifest FROM parts"))
    yield from (
        row[0] for row in conn.execute("SELECT manifest FROM conflicts WHERE manifest IS NOT NULL")
    )
    yield from (
        row[0]
        for row in conn.execute(
            "SELECT manifest FROM changes WHERE seq > ? AND manifest IS NOT NULL", (horizon,)
        )
    )


def _live_ranges(conn: sqlite3.Connection) -> dict[int, list[tuple[int, int]]]:
    """Per segment, the referenced byte ranges (start, end), unmerged and unsorted."""
    ranges: dict[int, set[tuple[int, int]]] = {}
    for blob in _referencing_manifests(conn):
        for chunk in decode(bytes(blob)).chunks:
            ranges.setdefault(chunk.segment_id, set()).add(
                (chunk.offset, chunk.offset + chunk.length)
            )
    return {segment_id: list(spans) for segment_id, spans in ranges.items()}


def _union_length(spans: list[tuple[int, int]]) -> int:
    total = 0
    reached = -1
    for start, end in sorted(spans):
        if end <= reached:
            continue
        total += end - max(start, reached)
        reached = end
    return total


def segment_usage(conn: sqlite3.Connection, segment_dir: Path) -> list[SegmentUsage]:
    sealed = {int(row[0]) for row in conn.execute("SELECT id FROM segments WHERE sealed = 1")}
    live = _live_ranges(conn)
    usage = []
    for segment_id in list_segment_ids(segment_dir):
        try:
            file_bytes = segment_path(segment_dir, segment_id).stat().st_size
        except FileNotFoundError:
            continue  # removed by GC since it was listed
        usage.append(
            SegmentUsage(
                segment_id=segment_id,
                file_bytes=file_bytes,
                live_bytes=_union_length(live.get(segment_id, [])),
                sealed=segment_id in sealed,
            )
        )
    return usage


def count_objects(conn: sqlite3.Connection) -> int:
    (count,) = conn.execute(
        "SELECT count(*) FROM versions WHERE is_latest = 1 AND kind = ?", (int(Kind.OBJECT),)
    ).fetchone()
    return int(count)


def usage_totals(conn: sqlite3.Connection, segment_dir: Path) -> UsageTotals:
    segments = segment_usage(conn, segment_dir)
    segment_bytes = sum(s.file_bytes for s in segments)
    live_bytes = sum(s.live_bytes for s in segments)
    return UsageTotals(
        segments=len(segments),
        segment_bytes=segment_bytes,
        live_bytes=live_bytes,
        garbage_bytes=max(0, segment_bytes - live_bytes),
        objects=count_objects(conn),
    )
