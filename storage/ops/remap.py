"""Repointing the catalog after stored bytes moved (GC rewrite, scrub --repair).

A :class:`Move` says that a byte range of a segment now also lives elsewhere: for GC a whole
record copied into the active segment, for repair a damaged chunk fetched again from a peer.
Every by-location reference inside a moved range follows it, keeping its position inside the
range (so slices written by UploadPartCopy follow their record). References by hash
(conflicts, the change log) follow through ``chunk_index``, which is repointed too.

Runs inside a mutation's transaction (storage/commit.py), so readers see the old or the new
locations, never a mix. The segments stay the truth for rebuild-index: a version whose
manifest changes is appended again as a manifest record (rebuild takes, for one version, the
usable record written last), a part as a new ``upload.part`` journal entry with its stamp.
"""

from __future__ import annotations

import bisect
import dataclasses
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field

import blake3

from storage import journal
from storage.errors import FormatError
from storage.hlc import Timestamp
from storage.manifest import ChunkRef, decode
from storage.segments import RecordKind

PAGE_ROWS = 500


@dataclass(frozen=True)
class Move:
    segment_id: int
    offset: int
    length: int
    new_segment_id: int
    new_offset: int


class Relocation:
    """Moves out of a set of segments, looked up by old location."""

    def __init__(self, segments: Iterable[int], moves: Iterable[Move]) -> None:
        self.segments = frozenset(segments)
        by_segment: dict[int, list[Move]] = {}
        for move in moves:
            assert move.segment_id in self.segments
            by_segment.setdefault(move.segment_id, []).append(move)
        self._moves = {s: sorted(m, key=lambda m: m.offset) for s, m in by_segment.items()}
        self._starts = {s: [m.offset for m in moves] for s, moves in self._moves.items()}

    def locate(self, chunk: ChunkRef) -> ChunkRef | None:
        """Where a reference into a moved range lives now; None if it is in no moved range."""
        starts = self._starts.get(chunk.segment_id)
        if not starts:
            return None
        index = bisect.bisect_right(starts, chunk.offset) - 1
        if index < 0:
            return None
        move = self._moves[chunk.segment_id][index]
        if chunk.offset + chunk.length > move.offset + move.length:
            return None
        offset = move.new_offset + (chunk.offset - move.offset)
        return ChunkRef(move.new_segment_id, offset, chunk.length, chunk.blake3)


@dataclass
class Relocated:
    versions: int = 0  # version manifests rewritten
    parts: int = 0
    # Segments of the relocation still referenced outside every moved range.
    stuck: set[int] = field(default_factory=set)
    # For each watched hash: a referenced location outside the relocation's segments.
    elsewhere: dict[bytes, ChunkRef] = field(default_factory=dict)


def relocate_index(conn: sqlite3.Connection, relocation: Relocation) -> dict[bytes, int]:
    """Repoint chunk_index rows inside moved ranges; return the other rows of the
    relocation's segments (hash -> segment id)."""
    segments = sorted(relocation.segments)
    rows = []
    for start in range(0, len(segments), PAGE_ROWS):  # within SQLite's parameter limit
        some = segments[start : start + PAGE_ROWS]
        rows += conn.execute(
            "SELECT blake3, segment_id, offset, length FROM chunk_index"
            f" WHERE segment_id IN ({','.join('?' * len(some))})",
            some,
        ).fetchall()
    left: dict[bytes, int] = {}
    for digest, segment_id, offset, length in rows:
        moved = relocation.locate(ChunkRef(segment_id, offset, length, bytes(digest)))
        if moved is None:
            left[bytes(digest)] = int(segment_id)
        else:
            conn.execute(
                "UPDATE chunk_index SET segment_id = ?, offset = ? WHERE blake3 = ?",
                (moved.segment_id, moved.offset, digest),
            )
    return left


def relocate(
    conn: sqlite3.Connection,
    relocation: Relocation,
    append_record: Callable[[RecordKind, bytes, bytes], object],
    watch: Collection[bytes] = frozenset(),
) -> Relocated:
    """Repoint every version and part manifest (a changed version manifest is appended
    with ``append_record``, e.g. Store.append_record); note where watched hashes are
    referenced."""
    result = Relocated()
    for key, blob in _pages(conn, "versions", ("bucket", "key", "version_id")):
        updated = _relocated_blob(blob, relocation, watch, result)
        if updated is not None:
            conn.execute(
                "UPDATE versions SET manifest = ? WHERE bucket = ? AND key = ? AND version_id = ?",
                (updated, *key),
            )
            append_record(RecordKind.MANIFEST, updated, blake3.blake3(updated).digest())
            result.versions += 1
    for key, blob in _pages(conn, "parts", ("upload_id", "part_number")):
        updated = _relocated_blob(blob, relocation, watch, result)
        if updated is not None:
            conn.execute(
                "UPDATE parts SET manifest = ? WHERE upload_id = ? AND part_number = ?",
                (updated, *key),
            )
            entry = _part_entry(str(key[0]), int(str(key[1])), updated)
            append_record(RecordKind.JOURNAL, entry, blake3.blake3(entry).digest())
            result.parts += 1
    return result


def _part_entry(upload_id: str, part_number: int, manifest: bytes) -> bytes:
    """The part's journal entry again, with its stamp: rebuild-index replays a part's
    entries in (stamp, position) order, so this one, written last, wins."""
    part = decode(manifest)
    return journal.part_stored(Timestamp.unpack(part.hlc, part.origin), upload_id,
                               part_number, manifest)  # fmt: skip


def _relocated_blob(
    blob: bytes, relocation: Relocation, watch: Collection[bytes], result: Relocated
) -> bytes | None:
    try:
        manifest = decode(blob)
    except FormatError:
        # Its references are unknown: no segment of this relocation may go.
        result.stuck |= relocation.segments
        return None
    chunks: list[ChunkRef] = []
    for chunk in manifest.chunks:
        final = chunk
        if chunk.segment_id in relocation.segments:
            moved = relocation.locate(chunk)
            if moved is None:
                result.stuck.add(chunk.segment_id)
            else:
                final = moved
        if final.blake3 in watch and final.segment_id not in relocation.segments:
            result.elsewhere.setdefault(final.blake3, final)
        chunks.append(final)
    if chunks == list(manifest.chunks):
        return None
    return dataclasses.replace(manifest, chunks=tuple(chunks)).encode()


def _pages(
    conn: sqlite3.Connection, table: str, key_columns: tuple[str, ...]
) -> Iterator[tuple[tuple[object, ...], bytes]]:
    """Every row's (key, manifest), a page at a time by primary key: updating rows of the
    page just read is safe, and memory stays bounded."""
    columns = ", ".join(key_columns)
    marks = ", ".join("?" * len(key_columns))
    last: tuple[object, ...] | None = None
    while True:
        where = "" if last is None else f"WHERE ({columns}) > ({marks})"
        rows = conn.execute(
            f"SELECT {columns}, manifest FROM {table} {where} ORDER BY {columns} LIMIT ?",
            (*(last or ()), PAGE_ROWS),
        ).fetchall()
        if not rows:
            return
        for row in rows:
            yield tuple(row[:-1]), bytes(row[-1])
        last = tuple(rows[-1][:-1])
