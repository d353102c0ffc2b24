"""scrub: re-read every committed record, verify its BLAKE3, find what damage affects.

1. **Walk.** Every record of every segment, up to the segment's committed (durable) end,
   is read sequentially and checked against the BLAKE3 in its header, at most
   ``mb_per_s``. A record that fails, or a stretch without a readable record header, is
   *damage*. Every record is read (not only referenced ones): the walk is sequential and
   needs no catalog, and damage to garbage is worth knowing too.
2. **Affected references.** Each by-location reference (a version, a part, or a chunk
   index entry that a retained conflict or an unacknowledged change needs) that overlaps
   damage is read again and checked against its own hash (a slice of a damaged record may
   be intact). Those that fail are the *corrupt chunks*; their versions and parts are the
   *corrupt objects*, each listed once. Damage nothing references is reported apart: it is
   garbage, which GC removes.
3. **Repair** (optional). Each corrupt chunk is fetched again by hash through ``fetch``
   (peers, see node/admin/ops_jobs.py), checked, appended to the active segment, and one
   :class:`RepairCommit` repoints every reference inside the chunk's range to the new copy
   (storage/ops/remap.py) and appends the version manifests that changed as new records.

The corrupt chunks still unrepaired are kept in ``meta`` (``scrub:damaged``), the counts in
``job:scrub`` (contracts.md), updated about once a second while the walk runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from storage.clock import SYSTEM_CLOCK, Clock
from storage.commit import Outcome
from storage.errors import FormatError
from storage.hlc import Timestamp
from storage.manifest import decode
from storage.ops import jobstate
from storage.ops.jobstate import JobState, Progress, WriteMeta
from storage.ops.liveness import hash_references, read_snapshot
from storage.ops.records import parse_header
from storage.ops.remap import Move, Relocation, relocate, relocate_index
from storage.segments import RECORD_HEADER, SEGMENT_HEADER, RecordKind, segment_path
from storage.store import Store

DAMAGED_META = "scrub:damaged"
STEP_BYTES_MAX = 8 << 20  # verified per thread hop: progress and pacing granularity
READ_PIECE_BYTES = 1 << 20

Fetch = Callable[[bytes], Awaitable[bytes | None]]


@dataclass(frozen=True)
class Damage:
    """Bytes of a segment that failed verification."""

    segment_id: int
    start: int
    end: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "start": self.start,
            "end": self.end,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CorruptChunk:
    segment_id: int
    offset: int
    length: int
    blake3: bytes
    owners: tuple[str, ...]  # versions and parts ("bucket/key version V"), index entries

    def contains(self, other: CorruptChunk) -> bool:
        return (
            self.segment_id == other.segment_id
            and self.offset <= other.offset
            and other.offset + other.length <= self.offset + self.length
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "offset": self.offset,
            "length": self.length,
            "blake3": self.blake3.hex(),
            "owners": list(self.owners),
        }


@dataclass
class ScrubResult:
    checked_bytes: int = 0
    checked_chunks: int = 0  # records verified
    damage: list[Damage] = field(default_factory=list)
    corrupt: list[CorruptChunk] = field(default_factory=list)
    repaired: list[CorruptChunk] = field(default_factory=list)
    repair_failures: dict[str, str] = field(default_factory=dict)  # hash hex -> why

    @property
    def unrepaired(self) -> list[CorruptChunk]:
        return [c for c in self.corrupt if c not in self.repaired]

    @staticmethod
    def objects(chunks: list[CorruptChunk]) -> list[str]:
        """Versions and parts affected, each once (chunk index entries are not objects)."""
        return sorted({o for c in chunks for o in c.owners if not o.startswith("chunk index")})

    def unreferenced_damage(self) -> list[Damage]:
        return [d for d in self.damage if not any(_overlaps(c, d) for c in self.corrupt)]

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": not self.unrepaired,
            "checked_bytes": self.checked_bytes,
            "checked_chunks": self.checked_chunks,
            "corrupt_chunks": [c.to_json() for c in self.corrupt],
            "corrupt_objects": self.objects(self.corrupt),
            "repaired_chunks": [c.to_json() for c in self.repaired],
            "repair_failures": self.repair_failures,
            "unrepaired_objects": self.objects(self.unrepaired),
            "unreferenced_damage": [d.to_json() for d in self.unreferenced_damage()],
        }


def _overlaps(chunk: CorruptChunk, damage: Damage) -> bool:
    return (
        chunk.segment_id == damage.segment_id
        and chunk.offset < damage.end
        and damage.start < chunk.offset + chunk.length
    )


# ---- 1. the walk -------------------------------------------------------------------------------


class SegmentVerifier:
    """Verifies one segment's records in steps, so the caller can pace and report."""

    def __init__(self, path: Path, segment_id: int, extent: int) -> None:
        self.segment_id = segment_id
        self.extent = extent
        self.position = SEGMENT_HEADER.size
        self.damage: list[Damage] = []
        self.records = 0
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()

    @property
    def finished(self) -> bool:
        return self.position >= self.extent

    def step(self, budget: int) -> int:
        """Verify records until ``budget`` bytes are read or the extent is reached; return
        the bytes read."""
        spent = 0
        self._file.seek(self.position)
        while spent < budget and not self.finished:
            raw = self._file.read(RECORD_HEADER.size)
            header = parse_header(raw, self.position, self.extent)
            if header is None:
                self._damage(self.extent, "no readable record header")
                break
            if self._hash_payload(header.length) != header.digest:
                kind = "chunk" if header.kind == RecordKind.CHUNK else "manifest"
                self.damage.append(
                    Damage(self.segment_id, header.offset, header.end, f"{kind} record fails "
                           "its BLAKE3 check")
                )  # fmt: skip
            self.records += 1
            spent += header.size
            self.position = header.end
        return spent

    def _hash_payload(self, length: int) -> bytes:
        """BLAKE3 of the next ``length`` bytes, read a piece at a time (a damaged length
        field may claim up to RECORD_BYTES_MAX)."""
        hasher = blake3.blake3()
        while length > 0:
            piece = self._file.read(min(length, READ_PIECE_BYTES))
            if not piece:
                break
            hasher.update(piece)
            length -= len(piece)
        return hasher.digest()

    def _damage(self, end: int, reason: str) -> None:
        self.damage.append(Damage(self.segment_id, self.position, end, reason))
        self.position = end

    def close(self) -> None:
        self._file.close()


class Pace:
    """Keeps the average read rate at or below ``bytes_per_s`` (None: unlimited)."""

    def __init__(self, bytes_per_s: float | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._rate = bytes_per_s
        self._clock = clock
        self._started = clock.monotonic()
        self._bytes = 0

    @property
    def step_bytes(self) -> int:
        if self._rate is None:
            return STEP_BYTES_MAX
        return max(RECORD_HEADER.size, min(STEP_BYTES_MAX, int(self._rate / 4)))

    async def account(self, count: int) -> None:
        self._bytes += count
        if self._rate is not None:
            ahead = self._bytes / self._rate - (self._clock.monotonic() - self._started)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def walk(
    store: Store, mb_per_s: float | None, progress: Progress, state: JobState
) -> ScrubResult:
    extents = await store.inspect(_committed_extents)
    total = sum(max(0, end - SEGMENT_HEADER.size) for end in extents.values())
    pace = Pace(None if mb_per_s is None else mb_per_s * 1_000_000, store.time_source)
    result = ScrubResult()
    for segment_id, extent in sorted(extents.items()):
        path = segment_path(store.segment_dir, segment_id)
        if not path.exists():
            result.damage.append(Damage(segment_id, 0, extent, "segment file is missing"))
            continue
        verifier = SegmentVerifier(path, segment_id, min(extent, path.stat().st_size))
        if verifier.extent < extent:
            result.damage.append(Damage(segment_id, verifier.extent, extent, "file truncated"))
        try:
            while not verifier.finished:
                spent = await asyncio.to_thread(verifier.step, pace.step_bytes)
                result.checked_bytes += spent
                progress.advance(result.checked_bytes, total, "bytes")
                await state.update(
                    done_ratio=min(1.0, result.checked_bytes / total) if total else 1.0,
                    checked_bytes=result.checked_bytes,
                    checked_chunks=result.checked_chunks + verifier.records,
                )
                await pace.account(spent)
        finally:
            verifier.close()
        result.checked_chunks += verifier.records
        result.damage.extend(verifier.damage)
    return result


def _committed_extents(conn: sqlite3.Connection) -> dict[int, int]:
    rows = conn.execute("SELECT id, durable_end FROM segments").fetchall()
    return {int(segment_id): int(end) for segment_id, end in rows}


# ---- 2. what the damage affects -----------------------------------------------------------------


def affected(
    conn: sqlite3.Connection, damage: list[Damage], segment_dir: Path
) -> list[CorruptChunk]:
    """References overlapping damage whose own bytes fail their hash, with their owners."""
    by_segment: dict[int, list[Damage]] = {}
    for item in damage:
        by_segment.setdefault(item.segment_id, []).append(item)
    owners: dict[tuple[int, int, int, bytes], list[str]] = {}

    def consider(segment_id: int, offset: int, length: int, digest: bytes, owner: str) -> None:
        for item in by_segment.get(segment_id, ()):
            if offset < item.end and item.start < offset + length:
                owners.setdefault((segment_id, offset, length, digest), []).append(owner)
                return

    with read_snapshot(conn):
        for owner, blob in _manifests(conn):
            try:
                chunks = decode(blob).chunks
            except FormatError:
                continue  # fsck reports it
            for chunk in chunks:
                consider(chunk.segment_id, chunk.offset, chunk.length, chunk.blake3, owner)
        # An index entry matters when a change a peer still needs, or a conflict, asks for
        # its hash; otherwise it only remembers garbage.
        needed_by = hash_references(conn, [])
        for digest, segment_id, offset, length in conn.execute(
            "SELECT blake3, segment_id, offset, length FROM chunk_index"
        ):
            if bytes(digest) in needed_by:
                label = f"chunk index {bytes(digest).hex()} (needed by {needed_by[bytes(digest)]})"
                consider(segment_id, offset, length, bytes(digest), label)
    corrupt = []
    for (segment_id, offset, length, digest), names in sorted(owners.items()):
        if not _intact(segment_dir, segment_id, offset, length, digest):
            corrupt.append(CorruptChunk(segment_id, offset, length, digest, tuple(sorted(names))))
    return corrupt


def _manifests(conn: sqlite3.Connection) -> Any:
    yield from (
        (f"{bucket}/{key} version {version_id}", blob)
        for bucket, key, version_id, blob in conn.execute(
            "SELECT bucket, key, version_id, manifest FROM versions"
        )
    )
    yield from (
        (f"{bucket}/{key} upload {upload_id} part {number}", blob)
        for upload_id, number, bucket, key, blob in conn.execute(
            "SELECT p.upload_id, p.part_number, u.bucket, u.key, p.manifest FROM parts p"
            " JOIN uploads u ON u.upload_id = p.upload_id"
        )
    )


def _intact(segment_dir: Path, segment_id: int, offset: int, length: int, digest: bytes) -> bool:
    try:
        fd = os.open(segment_path(segment_dir, segment_id), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    return len(data) == length and blake3.blake3(data).digest() == digest


# ---- the job ----------------------------------------------------------------------------------


async def scrub(
    store: Store,
    mb_per_s: float | None,
    progress: Progress,
    fetch: Fetch | None = None,
) -> ScrubResult:
    """Walk, find what is affected, optionally repair; record the outcome in ``meta``."""
    state = JobState(
        jobstate.SCRUB, store.commit, store.time_source, checked_bytes=0, checked_chunks=0,
        corrupt_chunks=0, corrupt_objects=0,
    )  # fmt: skip
    await state.update(force=True)
    result = await walk(store, mb_per_s, progress, state)
    if result.damage:
        result.corrupt = await store.inspect(affected, result.damage, store.segment_dir)
    for chunk in result.corrupt:
        progress.note(f"corrupt chunk {chunk.blake3.hex()[:16]}: {', '.join(chunk.owners)}")
    if fetch is not None and result.corrupt:
        await repair(store, result, fetch, progress)
    unrepaired = result.unrepaired
    await store.commit(WriteMeta(DAMAGED_META, json.dumps([c.to_json() for c in unrepaired])))
    await state.finish(
        checked_bytes=result.checked_bytes,
        checked_chunks=result.checked_chunks,
        corrupt_chunks=len(unrepaired),
        corrupt_objects=len(result.objects(unrepaired)),
        repaired_chunks=len(result.repaired),
    )
    return result


# ---- 3. repair ---------------------------------------------------------------------------------


async def repair(store: Store, result: ScrubResult, fetch: Fetch, progress: Progress) -> None:
    """Fetch each corrupt chunk again, append it, repoint its references in one commit.

    A chunk inside another corrupt chunk's range follows that one (its bytes are in the
    repaired copy), so it is not fetched on its own.
    """
    outer = [c for c in result.corrupt if not any(o.contains(c) and o != c for o in result.corrupt)]
    async with store.maintenance_lock:
        token = store.inflight.enter(store.active_segment_id)
        try:
            moves = []
            for chunk in outer:
                move = await _refetch(store, chunk, fetch, result)
                if move is not None:
                    moves.append((chunk, move))
            if not moves:
                return
            relocation = Relocation({c.segment_id for c, _ in moves}, [m for _, m in moves])
            await store.commit(RepairCommit(relocation, store))
        finally:
            store.inflight.leave(token)
    for chunk, _move in moves:
        result.repaired.extend(c for c in result.corrupt if chunk.contains(c))
        progress.note(f"repaired chunk {chunk.blake3.hex()[:16]}")


async def _refetch(
    store: Store, chunk: CorruptChunk, fetch: Fetch, result: ScrubResult
) -> Move | None:
    data = await fetch(chunk.blake3)
    if data is None:
        result.repair_failures[chunk.blake3.hex()] = "no peer holds it"
        return None
    if len(data) != chunk.length or blake3.blake3(data).digest() != chunk.blake3:
        result.repair_failures[chunk.blake3.hex()] = "the copy fetched does not match its hash"
        return None
    record = await asyncio.to_thread(store.append_record, RecordKind.CHUNK, data, chunk.blake3)
    return Move(chunk.segment_id, chunk.offset, chunk.length, record.segment_id, record.offset)


@dataclass(frozen=True)
class RepairCommit:
    """Point every reference inside the repaired ranges at the fresh copies."""

    relocation: Relocation
    store: Store

    def touched(self) -> tuple[str, str | None]:
        return "", None  # manifests of any key may change: clear the read cache

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[int]:
        relocate_index(conn, self.relocation)
        moved = relocate(conn, self.relocation, self.store.append_record)
        return Outcome(moved.versions)
