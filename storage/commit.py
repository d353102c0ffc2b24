"""Group commit: the durability barrier shared by concurrent writers.

A writer hands a :class:`Mutation` to :meth:`GroupCommitter.submit` and waits; it gets back the
mutation's own result (a ``Mutation[T]`` applies to an ``Outcome[T]``, so ``submit`` returns a
``T``). One flusher task takes every mutation queued so far and, for the whole batch:

1. opens one transaction and, per mutation, a savepoint; stamps it with the next HLC and
   applies it (metadata + change-log row). A mutation that fails its precondition (say
   NoSuchBucket) is rolled back to its savepoint alone and gets its error;
2. appends the batch's manifests and metadata-journal entries (storage/journal.py: one per
   change-log row written, one per multipart-upload step) to the active segment and fsyncs
   every segment written since the last flush (the data chunks were appended by the writers
   before they submitted), so the segments alone can rebuild the catalog;
3. records the durable segment ends and the HLC, and commits (WAL, synchronous=FULL);
4. answers every writer.

So before any writer hears "done", its data and manifest are on disk and its metadata is
committed; many writers share each fsync and each commit. While one batch is being flushed
the next one accumulates, so batches grow with load without any artificial delay.

With several worker processes (storage/workers.py) each has its own committer; a flush then
also holds the node's commit lock from before ``BEGIN IMMEDIATE`` until it has published what
it touched, first moves the HLC past the last stamp any worker committed (``meta`` row
``hlc_last``), and after ``COMMIT`` tells the other workers which cached reads to forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from storage import catalog, journal
from storage.database import Database
from storage.errors import ReadOnly, StorageError
from storage.hlc import HybridClock, Timestamp
from storage.manifest import Manifest
from storage.segments import RecordKind, SegmentWriter
from storage.stats_hooks import NO_COMMIT_OBSERVER, CommitObserver
from storage.workers import SharedState, Touched, digests_of

log = logging.getLogger("lakenode.commit")

BATCH_MUTATIONS_MAX = 256

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Mutation(Protocol[T_co]):
    """A write whose result, once committed, is a ``T_co`` (None for most)."""

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[T_co]:
        """Apply inside the open transaction; raise StorageError to refuse."""
        ...

    def touched(self) -> tuple[str, str | None]:
        """(bucket, key) this mutation changes; key None means bucket-wide."""
        ...


@dataclass(frozen=True)
class Outcome(Generic[T_co]):
    result: T_co  # what submit() returns to the writer
    # A manifest record to append before commit that no change-log row carries (the manifest
    # of every change-log row is appended anyway, see storage/journal.py).
    manifest_bytes: bytes | None = None
    # Journal entries (storage/journal.py) for state the change log does not hold.
    journal: tuple[bytes, ...] = ()
    # A mutation that logs several change rows stamps the extra ones after its own stamp
    # (storage/lock_mutations.py next_stamp); the greatest packed stamp it used, which the
    # clock must then pass so the next mutation's stamp is fresh (None: only its own).
    last_stamp: int | None = None


@dataclass
class _Pending:
    mutation: Mutation[object]
    future: asyncio.Future[Any]  # of the mutation's result type
    outcome: Outcome[object] | Exception | None = None


@dataclass
class CommitStats:
    batches: int = 0
    mutations: int = 0
    last_batch_size: int = 0
    fsync_seconds_total: float = 0.0


@dataclass(frozen=True)
class Publication:
    """A batch's news for the other workers: built from it after it is applied."""

    shared: SharedState
    batch: list[_Pending]

    def touched(self) -> Touched:
        committed = [p.mutation for p in self.batch if isinstance(p.outcome, Outcome)]
        keys, buckets = digests_of(mutation.touched() for mutation in committed)
        return Touched(keys, buckets, any(_may_set_tags(mutation) for mutation in committed))


@dataclass(frozen=True)
class WorkerLink:
    """A committer's ties to the other workers of its node (None with one worker)."""

    shared: SharedState
    forget: Callable[[Touched], None]  # apply what other workers committed to our caches


class GroupCommitter:
    def __init__(
        self,
        database: Database,
        segments: SegmentWriter,
        clock: HybridClock,
        on_commit: Callable[[list[tuple[str, str | None]]], None],
        on_committed_versions: Callable[[list[Manifest]], None] = lambda _versions: None,
        workers: WorkerLink | None = None,
    ) -> None:
        self._workers = workers
        self._on_commit = on_commit
        self._on_committed_versions = on_committed_versions
        self._database = database
        self._segments = segments
        self._clock = clock
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self.stats = CommitStats()
        self.observer: CommitObserver = NO_COMMIT_OBSERVER  # told each batch's size

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for pending in self._queue:
            pending.future.set_exception(ReadOnly("store is closing"))
        self._queue.clear()

    async def submit(self, mutation: Mutation[T]) -> T:
        """Queue a mutation and wait until it is durable; return its result or raise."""
        if self._failed is not None:
            raise ReadOnly(f"writes disabled after a storage failure: {self._failed}")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(mutation, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[:BATCH_MUTATIONS_MAX]
                del self._queue[:BATCH_MUTATIONS_MAX]
                await self._flush(batch)

    async def _flush(self, batch: list[_Pending]) -> None:
        try:
            fsync_seconds, missed = await self._database.run(
                self._write_batch, batch, self._publication(batch)
            )
        except BaseException as exc:
            self._on_commit([("", None)])  # unknown outcome: forget every cached read
            await self._fail_batch(batch, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if missed is not None and self._workers is not None:
            self._workers.forget(missed)
        self._record_stats(len(batch), fsync_seconds)
        # Before any writer hears back, so no acknowledged write can be followed by a stale read.
        self._on_commit([p.mutation.touched() for p in batch if isinstance(p.outcome, Outcome)])
        self._on_committed_versions(_latest_versions(batch))
        for pending in batch:
            if pending.future.done():
                continue
            if isinstance(pending.outcome, Outcome):
                pending.future.set_result(pending.outcome.result)
            else:
                assert pending.outcome is not None
                pending.future.set_exception(pending.outcome)

    def _publication(self, batch: list[_Pending]) -> Publication | None:
        """What the other workers must forget after this batch (None with one worker),
        computed once the batch is applied (it names the mutations that committed)."""
        if self._workers is None:
            return None
        return Publication(self._workers.shared, batch)

    def _write_batch(
        self, conn: sqlite3.Connection, batch: list[_Pending], publication: Publication | None
    ) -> tuple[float, Touched | None]:
        """Steps 1 to 3 in one call on the writer connection's thread (one thread hop per
        batch, not three: at one writer the hops cost as much as the work); returns the
        seconds the segment append and fsync took, and what other workers committed since
        this one last looked. The transaction stays open across the fsync as before, and
        nothing else runs on this connection meanwhile."""
        shared = publication.shared if publication is not None else None
        records = _apply_batch(conn, batch, self._clock, shared)
        started = time.perf_counter()
        for kind, payload in records:
            self._segments.append(kind, payload)
        durable = self._segments.sync()
        sealed = self._segments.take_sealed()
        fsync_seconds = time.perf_counter() - started
        missed = _commit(conn, durable, sealed, self._clock.last, publication)
        return fsync_seconds, missed

    async def _fail_batch(self, batch: list[_Pending], exc: BaseException) -> None:
        # An fsync or commit failure leaves the disk state unknown (a failed fsync may have
        # dropped dirty pages): refuse further writes rather than acknowledge on top of it.
        if isinstance(exc, asyncio.CancelledError):  # the store is closing: not a failure
            log.warning("store closing with a batch of %d in flight: not answered", len(batch))
        else:
            log.critical("group commit failed; refusing further writes: %r", exc)
        self._failed = exc
        shared = self._workers.shared if self._workers is not None else None
        try:
            await self._database.run(_rollback, shared)
        except Exception as rollback_error:
            log.error("rollback after failed commit also failed: %r", rollback_error)
        error = ReadOnly(f"write failed: {exc!r}")
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(error)

    def _record_stats(self, size: int, fsync_seconds: float) -> None:
        self.stats.batches += 1
        self.stats.mutations += size
        self.stats.last_batch_size = size
        self.stats.fsync_seconds_total += fsync_seconds
        self.observer.committed(size)


def _may_set_tags(mutation: object) -> bool:
    """Might this mutation give a bucket its first tags? A mutation says so with a
    ``may_set_tags`` property (replicated batches), else by a ``tags`` field: a PUT, a copy, a
    completed upload, PutObjectTagging (a copy's None copies the source's tags)."""
    explicit = getattr(mutation, "may_set_tags", None)
    if explicit is not None:
        return bool(explicit)
    tags = getattr(mutation, "tags", ())
    return tags is None or len(tags) > 0


def _latest_versions(batch: list[_Pending]) -> list[Manifest]:
    """Versions this batch left latest: for each key, only its last mutation counts, and only
    if that mutation produced a plain latest version (a delete, a part or a bucket-wide change
    leaves nothing to fill in)."""
    latest: dict[tuple[str, str], Manifest | None] = {}
    for pending in batch:
        if not isinstance(pending.outcome, Outcome):
            continue
        bucket, key = pending.mutation.touched()
        if key is None:
            return []
        result = pending.outcome.result
        latest[(bucket, key)] = result if isinstance(result, Manifest) else None
    return [manifest for manifest in latest.values() if manifest is not None]


def _apply_batch(
    conn: sqlite3.Connection,
    batch: list[_Pending],
    clock: HybridClock,
    shared: SharedState | None,
) -> list[journal.Record]:
    """Apply the batch in an open transaction; return the records to append before commit."""
    if shared is not None:
        shared.lock_commits()  # released by _commit or _rollback
    conn.execute("BEGIN IMMEDIATE")
    if shared is not None:  # another worker may have stamped since: never go backwards
        clock.observe(int(catalog.read_meta(conn, "hlc_last") or 0))
    log_end = journal.log_end(conn)
    for pending in batch:
        conn.execute("SAVEPOINT mutation")
        try:
            outcome = pending.mutation.apply(conn, clock.now())
            if outcome.last_stamp is not None:
                clock.observe(outcome.last_stamp)
            pending.outcome = outcome
        except StorageError as refused:
            conn.execute("ROLLBACK TO mutation")
            pending.outcome = refused
        except Exception as bug:
            log.exception("mutation %r failed", pending.mutation)
            conn.execute("ROLLBACK TO mutation")
            pending.outcome = bug
        conn.execute("RELEASE mutation")
    records = journal.change_records(conn, log_end)
    for pending in batch:
        if isinstance(pending.outcome, Outcome):
            if pending.outcome.manifest_bytes is not None:
                records.append((RecordKind.MANIFEST, pending.outcome.manifest_bytes))
            records.extend((RecordKind.JOURNAL, entry) for entry in pending.outcome.journal)
    return records


def _commit(
    conn: sqlite3.Connection,
    durable: dict[int, int],
    sealed: list[int],
    hlc_last: int,
    publication: Publication | None,
) -> Touched | None:
    """Commit; with several workers, publish what the batch touched and release the lock.
    Returns what other workers committed since this one last looked (None: nothing)."""
    catalog.record_segments(conn, durable, sealed)
    catalog.write_meta(conn, "hlc_last", str(hlc_last))
    conn.execute("COMMIT")
    if publication is None:
        return None
    try:
        return publication.shared.publish(publication.touched())
    finally:
        publication.shared.unlock_commits()


def _rollback(conn: sqlite3.Connection, shared: SharedState | None = None) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    finally:
        if shared is not None:
            shared.unlock_commits()
