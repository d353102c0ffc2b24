"""Segment GC: rewrite sealed segments whose live ratio fell below a threshold.

For each batch of candidate segments, in this order:

1. copy every live record (storage/ops/liveness.py) into the active segment, checking each
   payload against its BLAKE3 on the way (a damaged live record keeps its segment: scrub);
2. submit :class:`GcCommit` to the group committer. In one transaction it repoints every
   version, part and chunk_index row into the batch to the copies (storage/ops/remap.py),
   appends the version manifests that changed as new records, removes the old segments'
   rows and lists them as retired (storage/retired.py). The committer fsyncs the copies and
   the new manifests before it commits, as for any write;
3. unlinks the old files, fsyncs the directory, clears the retired list.

A crash before step 2 commits leaves the old segments authoritative (the copies are garbage
for the next run); after it, the old files are garbage, deleted by the next open if step 3
did not finish.

Why a mutation rather than pausing the committer: whether a segment may go ("is every
reference into it covered by a copy?") must be decided against every commit before the
decision and none after. As a mutation, the decision runs in the committer's serial order,
inside the transaction that acts on it, while writers keep going during the long copy
phase; only the batch that carries the commit waits for its catalog scan. Data written
meanwhile is safe either way: a reference committed during the copy phase to an uncopied
record keeps its segment ("stuck"), and uploads not committed yet hold in-flight floors
(storage/inflight.py) that keep every segment they may use.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from storage import catalog, retired
from storage.commit import Outcome
from storage.errors import StorageError
from storage.hlc import Timestamp
from storage.inflight import InFlight
from storage.manifest import ChunkRef
from storage.ops import jobstate, remap, usage
from storage.ops.jobstate import JobState, Progress
from storage.ops.liveness import LiveSet, SegmentRefs, record_is_live
from storage.ops.records import HeaderScan, payload_intact, read_payload
from storage.ops.remap import Move, Relocation
from storage.segments import RECORD_HEADER, segment_path
from storage.store import Store
from storage.sync.feed import CHUNKS_RECLAIMED_THROUGH

DEFAULT_THRESHOLD = 0.5
# Live bytes copied per commit (default): bounds the work a crash throws away; each commit
# scans the catalog's manifests once.
BATCH_LIVE_BYTES = 256_000_000


class GcRefused(StorageError):
    """GC cannot run safely or was asked for something impossible."""


@dataclass(frozen=True)
class SegmentPlan:
    segment_id: int
    file_bytes: int
    live_bytes: int  # chunk bytes still referenced (storage/ops/usage.py)
    kept_bytes: int  # what a rewrite keeps: live records with headers, kept manifests
    sealed: bool
    rewrite: bool

    @property
    def live_ratio(self) -> float:
        """GC's ratio: bytes a rewrite keeps over file bytes."""
        return self.kept_bytes / self.file_bytes if self.file_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "file_bytes": self.file_bytes,
            "live_bytes": self.live_bytes,
            "kept_bytes": self.kept_bytes,
            "reclaimable_bytes": self.file_bytes - self.kept_bytes,
            "live_ratio": round(self.live_ratio, 4),
            "sealed": self.sealed,
            "rewrite": self.rewrite,
        }


@dataclass(frozen=True)
class GcPlan:
    threshold: float
    segments: tuple[SegmentPlan, ...]

    @property
    def candidates(self) -> list[SegmentPlan]:
        return [s for s in self.segments if s.rewrite]

    def to_json(self) -> dict[str, Any]:
        file_bytes = sum(s.file_bytes for s in self.segments)
        live_bytes = sum(s.live_bytes for s in self.segments)
        kept_bytes = sum(s.kept_bytes for s in self.segments)
        return {
            "threshold": self.threshold,
            "segments": [s.to_json() for s in self.segments],
            "totals": {
                "segments": len(self.segments),
                "file_bytes": file_bytes,
                "live_bytes": live_bytes,
                "kept_bytes": kept_bytes,
                "garbage_bytes": max(0, file_bytes - live_bytes),
                "live_ratio": round(kept_bytes / file_bytes, 4) if file_bytes else 0.0,
                "rewrite_segments": len(self.candidates),
                "reclaimable_bytes": sum(s.file_bytes - s.kept_bytes for s in self.candidates),
            },
        }


async def make_plan(
    store: Store, threshold: float, only: set[int] | None = None
) -> tuple[GcPlan, LiveSet]:
    """Usage per segment and which to rewrite: sealed, not active, and below the threshold
    (or, with ``only``, exactly those segments, whatever their ratio). Sealed is what rules
    out a segment being appended to: with several workers each appends to an active segment
    of its own, unsealed, and segments above this worker's active one may be sealed."""
    facts = await store.inspect(usage.read_facts)
    usages = await asyncio.to_thread(usage.measure, facts, store.segment_dir)
    active = store.active_segment_id
    if only is not None:
        known = {u.segment_id: u for u in usages}
        for segment_id in sorted(only):
            if segment_id not in known:
                raise GcRefused(f"no segment {segment_id}")
            if not known[segment_id].sealed or segment_id == active:
                raise GcRefused(
                    f"segment {segment_id} is active (not sealed): it cannot be rewritten"
                )
    plan = GcPlan(
        threshold,
        tuple(
            SegmentPlan(
                u.segment_id,
                u.file_bytes,
                u.live_bytes,
                u.kept_bytes,
                u.sealed,
                u.sealed
                and u.segment_id != active
                and (u.segment_id in only if only is not None else u.kept_ratio < threshold),
            )
            for u in usages
        ),
    )
    return plan, facts.live


@dataclass
class GcOutcome:
    plan: GcPlan
    segments_rewritten: int = 0
    reclaimed_bytes: int = 0
    copied_bytes: int = 0
    versions_rewritten: int = 0
    kept: dict[int, str] = field(default_factory=dict)  # candidate -> why it stays

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan.to_json(),
            "segments_rewritten": self.segments_rewritten,
            "reclaimed_bytes": self.reclaimed_bytes,
            "copied_bytes": self.copied_bytes,
            "versions_rewritten": self.versions_rewritten,
            "kept": [{"segment_id": s, "reason": r} for s, r in sorted(self.kept.items())],
        }


async def run(
    store: Store,
    threshold: float,
    progress: Progress,
    only: set[int] | None = None,
    batch_bytes: int = BATCH_LIVE_BYTES,
) -> GcOutcome:
    """Rewrite the plan's candidates, ``batch_bytes`` of live data per commit; see the
    module docstring for the order of steps."""
    async with store.maintenance_lock:
        plan, live = await make_plan(store, threshold, only)
        if live.undecodable:
            raise GcRefused(
                f"{len(live.undecodable)} manifest(s) cannot be decoded (first: "
                f"{live.undecodable[0]}): what they reference is unknown; run fsck"
            )
        state = JobState(
            jobstate.GC, store.commit, store.time_source, reclaimed_bytes=0, segments_rewritten=0
        )
        await state.update(force=True)
        outcome = GcOutcome(plan)
        total = sum(s.file_bytes for s in plan.candidates)
        done = 0
        for batch in _batches(plan.candidates, batch_bytes):
            await _rewrite_batch(store, batch, live, outcome, progress)
            done += sum(s.file_bytes for s in batch)
            progress.advance(done, total, "bytes")
            await state.update(
                done_ratio=done / total if total else 1.0,
                reclaimed_bytes=outcome.reclaimed_bytes,
                segments_rewritten=outcome.segments_rewritten,
            )
        await state.finish(
            reclaimed_bytes=outcome.reclaimed_bytes, segments_rewritten=outcome.segments_rewritten
        )
        return outcome


def _batches(candidates: list[SegmentPlan], batch_bytes: int) -> Iterator[list[SegmentPlan]]:
    batch: list[SegmentPlan] = []
    kept_bytes = 0
    for segment in candidates:
        if batch and kept_bytes + segment.kept_bytes > batch_bytes:
            yield batch
            batch, kept_bytes = [], 0
        batch.append(segment)
        kept_bytes += segment.kept_bytes
    if batch:
        yield batch


async def _rewrite_batch(
    store: Store, batch: list[SegmentPlan], live: LiveSet, outcome: GcOutcome, progress: Progress
) -> None:
    copies: dict[int, list[Move]] = {}
    for segment in batch:
        copied = await asyncio.to_thread(_copy_segment, store, segment.segment_id, live)
        if isinstance(copied, str):
            outcome.kept[segment.segment_id] = copied
            progress.note(f"segment {segment.segment_id} kept: {copied}")
        else:
            copies[segment.segment_id] = copied
    moves = [move for moved in copies.values() for move in moved]
    outcome.copied_bytes += sum(RECORD_HEADER.size + m.length for m in moves)
    if not copies:
        return
    relocation = Relocation(copies, moves)
    try:
        committed = await store.commit(GcCommit(relocation, store, store.inflight, live.horizon))
    except BaseException:
        store.inflight.unretire(set(copies))
        raise
    for segment_id in sorted(set(copies) - committed.retired):
        reason = (
            "in use by an upload in progress"
            if segment_id in committed.held
            else "referenced outside its live records (written to during GC): next run"
        )
        outcome.kept[segment_id] = reason
        progress.note(f"segment {segment_id} kept: {reason}")
    freed = await asyncio.to_thread(retired.delete_files, store.segment_dir, committed.retired)
    store.retire_segments(committed.retired)
    await store.commit(ClearRetired(frozenset(committed.retired)))
    moved_out = sum(
        RECORD_HEADER.size + m.length for s in committed.retired for m in copies.get(s, [])
    )
    outcome.segments_rewritten += len(committed.retired)
    outcome.reclaimed_bytes += freed - moved_out
    outcome.versions_rewritten += committed.versions


def _copy_segment(store: Store, segment_id: int, live: LiveSet) -> list[Move] | str:
    """Copy a segment's live records to the active segment; a reason if it must stay."""
    path = segment_path(store.segment_dir, segment_id)
    refs = SegmentRefs(live.refs.get(segment_id, ()))
    scan = HeaderScan(path)
    moves: list[Move] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        for header in scan:
            if not record_is_live(header, refs, live):
                continue
            payload = read_payload(fd, header)
            if not payload_intact(payload, header):
                return f"live record at offset {header.offset} fails its BLAKE3 check (scrub)"
            record = store.append_record(header.kind, payload, header.digest)
            moves.append(
                Move(segment_id, header.offset, header.length, record.segment_id, record.offset)
            )
    finally:
        os.close(fd)
    if not scan.complete:
        return f"no readable record header at offset {scan.stopped_at} (fsck, scrub)"
    if refs.finish():
        return "referenced bytes lie outside its records (fsck)"
    return moves


@dataclass(frozen=True)
class GcCommitted:
    retired: set[int]
    held: set[int]  # kept for in-flight uploads
    versions: int


@dataclass(frozen=True)
class GcCommit:
    """Repoint the catalog to the copies and retire the segments nothing else needs."""

    relocation: Relocation
    store: Store
    inflight: InFlight
    horizon: int  # the replication horizon the live set was computed with

    def touched(self) -> tuple[str, str | None]:
        return "", None  # manifests of any key may change: clear the read cache

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[GcCommitted]:
        left = remap.relocate_index(conn, self.relocation)
        moved = remap.relocate(conn, self.relocation, self.store.append_record, left.keys())
        unreferenced = set(self.relocation.segments) - moved.stuck
        retiring = self.inflight.retire(unreferenced)
        try:
            _settle_index(conn, left, retiring, moved.elsewhere)
            retired.add_retired(conn, retiring)
            if retiring:
                _reclaimed_through(conn, self.horizon)
        except BaseException:
            self.inflight.unretire(retiring)
            raise
        return Outcome(GcCommitted(retiring, unreferenced - retiring, moved.versions))


def _settle_index(
    conn: sqlite3.Connection,
    left: dict[bytes, int],
    retiring: set[int],
    elsewhere: dict[bytes, ChunkRef],
) -> None:
    """chunk_index rows into retiring segments that no copy covers: point them at another
    referenced copy of the same bytes if there is one (peers fetch by hash), else drop them
    (the bytes are garbage; "missing" makes a pushing peer send them again)."""
    for digest, segment_id in left.items():
        if segment_id not in retiring:
            continue
        found = elsewhere.get(digest)
        if found is None:
            conn.execute("DELETE FROM chunk_index WHERE blake3 = ?", (digest,))
        else:
            conn.execute(
                "UPDATE chunk_index SET segment_id = ?, offset = ?, length = ? WHERE blake3 = ?",
                (found.segment_id, found.offset, found.length, digest),
            )


def _reclaimed_through(conn: sqlite3.Connection, horizon: int) -> None:
    """Chunks only changes at or before ``horizon`` needed may be gone now: a peer asking
    for the log from an older position must bootstrap (feed.changes_after says so)
    instead of stalling on chunks this node no longer holds. Every known peer has
    acknowledged ``horizon``, so only a new site (or one forgotten) is concerned."""
    current = int(catalog.read_meta(conn, CHUNKS_RECLAIMED_THROUGH) or 0)
    if horizon > current:
        catalog.write_meta(conn, CHUNKS_RECLAIMED_THROUGH, str(horizon))


@dataclass(frozen=True)
class ClearRetired:
    segment_ids: frozenset[int]

    def touched(self) -> tuple[str, str | None]:
        return "", ""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        retired.clear_retired(conn, set(self.segment_ids))
        return Outcome(None)
