"""Storage usage: per segment, how many bytes are still live (the basis of GC and gauges).

``live_bytes`` of a segment counts every record GC would keep, header included: chunk
records some reference points into (see storage/liveness.py for what references count) and
the manifest records GC keeps. The 16-byte segment header is not live, so an empty sealed
segment has a live ratio of 0. ``garbage_bytes`` is therefore exactly what rewriting every
segment would return.

Cost: one pass over the catalog's manifests (decoding each) and one header walk per
segment (one small read per record, no hashing). Fine for ``gc plan``; for gauges, compute
it every minute or so, not on every scrape.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from storage import catalog, liveness
from storage.liveness import LiveSet, SegmentRefs
from storage.manifest import Kind
from storage.records import HeaderScan
from storage.segments import list_segment_ids, segment_path


@dataclass(frozen=True)
class SegmentUsage:
    segment_id: int
    file_bytes: int  # size of the segment file on disk
    live_bytes: int  # bytes of records still referenced (kept by GC), headers included
    sealed: bool

    @property
    def live_ratio(self) -> float:
        return self.live_bytes / self.file_bytes if self.file_bytes else 0.0


@dataclass(frozen=True)
class UsageTotals:
    segments: int
    segment_bytes: int
    live_bytes: int
    garbage_bytes: int  # segment_bytes - live_bytes (never negative)
    objects: int  # current, visible objects (latest version not a delete marker/tombstone)


@dataclass(frozen=True)
class CatalogFacts:
    """What usage needs from the catalog, read in one snapshot."""

    live: LiveSet
    sealed: dict[int, bool]
    objects: int


def read_facts(conn: sqlite3.Connection) -> CatalogFacts:
    with liveness.read_snapshot(conn):
        live = liveness.collect(conn)
        sealed = {k: v[1] for k, v in catalog.segment_states(conn).items()}
        (objects,) = conn.execute(
            "SELECT count(*) FROM versions WHERE is_latest = 1 AND kind = ?", (int(Kind.OBJECT),)
        ).fetchone()
    return CatalogFacts(live, sealed, int(objects))


def measure(facts: CatalogFacts, segment_dir: Path) -> list[SegmentUsage]:
    """Walk every segment file's records against the live set (no catalog access)."""
    usages = []
    for segment_id in list_segment_ids(segment_dir):
        path = segment_path(segment_dir, segment_id)
        try:
            file_bytes = os.stat(path).st_size
            live_bytes = _live_bytes(path, facts.live, segment_id)
        except FileNotFoundError:
            continue  # retired by GC meanwhile
        usages.append(
            SegmentUsage(segment_id, file_bytes, live_bytes, facts.sealed.get(segment_id, False))
        )
    return usages


def _live_bytes(path: Path, live: LiveSet, segment_id: int) -> int:
    refs = SegmentRefs(live.refs.get(segment_id, []))
    return sum(
        header.size for header in HeaderScan(path) if liveness.record_is_live(header, refs, live)
    )


def totals(usages: list[SegmentUsage], objects: int) -> UsageTotals:
    segment_bytes = sum(u.file_bytes for u in usages)
    live_bytes = sum(u.live_bytes for u in usages)
    return UsageTotals(
        segments=len(usages),
        segment_bytes=segment_bytes,
        live_bytes=live_bytes,
        garbage_bytes=max(0, segment_bytes - live_bytes),
        objects=objects,
    )


def segment_usage(conn: sqlite3.Connection, segment_dir: Path) -> list[SegmentUsage]:
    return measure(read_facts(conn), segment_dir)


def usage_totals(conn: sqlite3.Connection, segment_dir: Path) -> UsageTotals:
    facts = read_facts(conn)
    return totals(measure(facts, segment_dir), facts.objects)
