"""Which stored bytes are still needed: the live set shared by usage, GC, fsck and scrub.

A chunk record is live while any reference points into it. References come

* **by location** (segment, payload offset, length: a whole chunk record, or a slice of one
  written by UploadPartCopy) from every ``versions`` manifest (current and noncurrent) and
  every ``parts`` manifest (multipart uploads in progress);
* **by hash**, resolved through ``chunk_index`` (BLAKE3 -> where this node holds the bytes),
  from ``conflicts`` manifests (replicated writes that lost, kept for review: their chunk
  lists carry the peer's locations) and from ``changes`` manifests after the replication
  horizon (a peer that has not acknowledged them may still fetch those chunks by hash).

A manifest record (``RecordKind.MANIFEST``) of kind OBJECT is live iff its payload is some
``versions`` row's manifest blob (same BLAKE3): a superseded manifest is garbage. Records of
every other kind (delete markers, tombstones, kinds this build does not know) are always
kept: they are tiny, and they stop rebuild-index from resurrecting a deleted object from an
older manifest that survives in another segment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import blake3

from storage.catalog import chunk_location
from storage.errors import FormatError
from storage.manifest import Kind, decode
from storage.ops.records import RecordHeader
from storage.segments import RecordKind
from storage.sync.retention import replication_horizon

Span = tuple[int, int]  # (payload offset, length) inside one segment


@dataclass
class LiveSet:
    refs: dict[int, list[Span]] = field(default_factory=dict)  # segment id -> sorted spans
    manifests: set[bytes] = field(default_factory=set)  # BLAKE3 of every versions blob
    # Manifests that could not be decoded: their references are unknown, so GC must not run.
    undecodable: list[str] = field(default_factory=list)
    horizon: int = 0  # changes after this seq kept their chunks live


@contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction: every query inside sees the same committed state (WAL).
    Inside a caller's transaction, that one serves."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def collect(conn: sqlite3.Connection) -> LiveSet:
    """Every live reference (call inside :func:`read_snapshot` for a consistent view)."""
    spans: dict[int, set[Span]] = {}
    live = LiveSet()
    for table, column in (("versions", "version_id"), ("parts", "part_number")):
        for name, blob in conn.execute(f"SELECT {column}, manifest FROM {table}"):
            if table == "versions":
                live.manifests.add(blake3.blake3(blob).digest())
            try:
                chunks = decode(blob).chunks
            except FormatError:
                live.undecodable.append(f"{table} {name}")
                continue
            for chunk in chunks:
                spans.setdefault(chunk.segment_id, set()).add((chunk.offset, chunk.length))
    live.horizon = replication_horizon(conn)
    for digest in hash_references(conn, live.undecodable):
        found = chunk_location(conn, digest)
        if found is not None:
            spans.setdefault(found.segment_id, set()).add((found.offset, found.length))
    live.refs = {segment: sorted(found) for segment, found in spans.items()}
    return live


def hash_references(conn: sqlite3.Connection, undecodable: list[str]) -> dict[bytes, str]:
    """BLAKE3 of every chunk a retained conflict or a not yet acknowledged change needs,
    each with the first row that needs it ("conflict ID", "change SEQ")."""
    digests: dict[bytes, str] = {}
    horizon = replication_horizon(conn)
    sources = (
        ("conflict", "SELECT id, manifest FROM conflicts WHERE manifest IS NOT NULL", ()),
        (
            "change",
            "SELECT seq, manifest FROM changes WHERE seq > ? AND manifest IS NOT NULL",
            (horizon,),
        ),
    )
    for label, query, args in sources:
        for row_id, blob in conn.execute(query, args):
            try:
                chunks = decode(blob).chunks
            except FormatError:
                undecodable.append(f"{label} {row_id}")
                continue
            for chunk in chunks:
                digests.setdefault(chunk.blake3, f"{label} {row_id}")
    return digests


class SegmentRefs:
    """Walks one segment's sorted references alongside its records (both in offset order)."""

    def __init__(self, spans: list[Span]) -> None:
        self._spans = spans
        self._next = 0
        self.uncovered: list[Span] = []  # references that lie inside no record

    def claim(self, header: RecordHeader) -> bool:
        """Consume the references inside this record; True if there is one."""
        claimed = False
        spans = self._spans
        while self._next < len(spans) and spans[self._next][0] < header.end:
            offset, length = spans[self._next]
            if offset < header.offset or offset + length > header.end:
                self.uncovered.append(spans[self._next])
            else:
                claimed = True
            self._next += 1
        return claimed

    def finish(self) -> list[Span]:
        """After the last record: every reference not inside a record."""
        self.uncovered.extend(self._spans[self._next :])
        self._next = len(self._spans)
        return self.uncovered


def record_is_live(header: RecordHeader, refs: SegmentRefs, live: LiveSet) -> bool:
    """Whether GC must keep this record (call for every record, in order: refs advance)."""
    referenced = refs.claim(header)
    if header.kind == RecordKind.CHUNK:
        return referenced
    if header.manifest_kind != Kind.OBJECT:
        return True
    return header.digest in live.manifests
