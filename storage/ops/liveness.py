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
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import overload

import blake3

from storage.catalog import chunk_location
from storage.errors import FormatError
from storage.manifest import Kind, decode
from storage.ops.records import RecordHeader
from storage.segments import RecordKind
from storage.sync.retention import replication_horizon

Span = tuple[int, int]  # (payload offset, length) inside one segment
# The live set holds a reference per stored chunk and a digest per version: as Python tuples
# and bytes in sets that was about 270 bytes an object, 270 MiB at a million objects in the
# node's periodic usage task. Packed in arrays it is 24 bytes an object.
_PREFIX_BYTES = 8


class Spans(Sequence[Span]):
    """One segment's references, sorted by offset, each once, packed in two arrays."""

    __slots__ = ("_lengths", "_offsets")

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        ordered = sorted(set(spans))
        self._offsets = array("Q", [offset for offset, _ in ordered])
        self._lengths = array("Q", [length for _, length in ordered])

    @classmethod
    def from_flat(cls, flat: array[int]) -> Spans:
        """From offset, length, offset, length... (duplicates and any order allowed)."""
        return cls(zip(flat[0::2], flat[1::2], strict=True))

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, index: int) -> Span: ...

    @overload
    def __getitem__(self, index: slice) -> list[Span]: ...

    def __getitem__(self, index: int | slice) -> Span | list[Span]:
        if isinstance(index, slice):
            return list(zip(self._offsets[index], self._lengths[index], strict=True))
        return self._offsets[index], self._lengths[index]

    def __iter__(self) -> Iterator[Span]:
        return zip(self._offsets, self._lengths, strict=True)


class ManifestDigests:
    """BLAKE3 of every versions blob, as sorted 64-bit prefixes. A prefix shared by a dead
    manifest and a live one (odds about n^2 / 2^65) keeps the dead record: never the reverse."""

    def __init__(self, digests: Iterable[bytes] = ()) -> None:
        self._prefixes = array("Q", sorted(_prefix(digest) for digest in digests))

    @classmethod
    def from_prefixes(cls, prefixes: array[int]) -> ManifestDigests:
        found = cls()
        found._prefixes = array("Q", sorted(prefixes))
        return found

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, bytes):
            return False
        prefix = _prefix(digest)
        index = bisect_left(self._prefixes, prefix)
        return index < len(self._prefixes) and self._prefixes[index] == prefix

    def __len__(self) -> int:
        return len(self._prefixes)


def _prefix(digest: bytes) -> int:
    return int.from_bytes(digest[:_PREFIX_BYTES], "big")


@dataclass
class LiveSet:
    refs: dict[int, Spans] = field(default_factory=dict)  # segment id -> sorted spans
    manifests: ManifestDigests = field(default_factory=ManifestDigests)  # of versions blobs
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
    flat: dict[int, array[int]] = {}  # segment id -> offset, length, offset, length...
    prefixes = array("Q")
    live = LiveSet()
    for table, column in (("versions", "version_id"), ("parts", "part_number")):
        for name, blob in conn.execute(f"SELECT {column}, manifest FROM {table}"):
            if table == "versions":
                prefixes.append(_prefix(blake3.blake3(blob).digest()))
            try:
                chunks = decode(blob).chunks
            except FormatError:
                live.undecodable.append(f"{table} {name}")
                continue
            for chunk in chunks:
                flat.setdefault(chunk.segment_id, array("Q")).extend((chunk.offset, chunk.length))
    live.horizon = replication_horizon(conn)
    for digest in hash_references(conn, live.undecodable):
        found = chunk_location(conn, digest)
        if found is not None:
            flat.setdefault(found.segment_id, array("Q")).extend((found.offset, found.length))
    live.manifests = ManifestDigests.from_prefixes(prefixes)
    live.refs = {segment: Spans.from_flat(flat.pop(segment)) for segment in sorted(flat)}
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

    def __init__(self, spans: Sequence[Span]) -> None:
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
