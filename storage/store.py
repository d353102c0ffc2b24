"""Store: the storage facade used by the S3 API (replication uses it through storage/sync/site.py).

Buckets, objects, verified reads, listing, bucket documents and tags; its parts live beside
it: opening and recovering the data dir (storage/data_dir.py), streaming a body in
(storage/object_writer.py), multipart uploads (storage/multipart.py, ``store.multipart``).
Writes become visible only through the group-commit barrier (storage/commit.py). Reads verify
every chunk's BLAKE3 before handing out a single byte of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from storage import bucket_config, catalog, keys, listing
from storage.cache import LatestCache
from storage.catalog import BucketInfo
from storage.chunker import CHUNK_BYTES
from storage.clock import SYSTEM_CLOCK, Clock
from storage.commit import GroupCommitter, Mutation, WorkerLink
from storage.conditions import WriteCondition
from storage.data_dir import open_data_dir
from storage.database import Database
from storage.errors import CorruptData, NoSuchBucket, NoSuchKey
from storage.hlc import HybridClock
from storage.inflight import InFlight
from storage.listing import ListPage, VersionPage
from storage.lock_mutations import CreateLockedBucket, LockRequest
from storage.manifest import ChunkRef, Kind, Manifest, chunk_spans, decode
from storage.multipart import Multipart
from storage.mutations import (
    CopyObject,
    CreateBucket,
    DeleteBucket,
    DeleteObject,
    DeleteResult,
    DeleteVersion,
    SetVersioning,
)
from storage.object_locks import ObjectLocks
from storage.object_writer import INLINE_BYTES_MAX, ObjectWriter
from storage.segments import (
    DEFAULT_SEGMENT_BYTES_MAX,
    Record,
    RecordKind,
    SegmentReader,
    SegmentWriter,
)
from storage.stats_hooks import CommitObserver
from storage.worker_view import WorkerView
from storage.workers import SharedState

log = logging.getLogger("lakenode.store")

# A segment GC retired stays open this long for reads that resolved it just before.
RETIRED_FD_GRACE_S = 30.0
# With several workers, how often a worker looks for segment files another one's GC removed.
UNLINKED_SWEEP_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class StoreConfig:
    data_dir: Path
    node_id: str | None = None
    segment_bytes_max: int = DEFAULT_SEGMENT_BYTES_MAX
    chunk_bytes: int = CHUNK_BYTES
    # Every time read by the store and what it drives (HLC, expiry, replication): tests pass
    # a storage.clock.ManualClock.
    time_source: Clock = SYSTEM_CLOCK
    # None: the only process on the data dir (it locks and recovers it). A number: one of
    # several workers of a node whose supervisor holds the lock and has recovered the data
    # dir; they share DATA/run (storage/workers.py).
    worker: int | None = None
    # In a worker: recover the data dir before opening it (the primary, at the node's start,
    # while no other worker has it open).
    worker_recovers: bool = False


def _worker_note(config: StoreConfig) -> str:
    """What the open log line says of a worker: which one, and whether it recovered."""
    if config.worker is None:
        return ""
    return f", worker {config.worker}" + (
        " (recovered the data dir)" if config.worker_recovers else ""
    )


class DeleteMarker(NoSuchKey):
    """The version asked for (or the latest) is a delete marker."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest.key)
        self.manifest = manifest


__all__ = ["DeleteMarker", "DeleteResult", "Store", "StoreConfig"]


class Store:
    def __init__(
        self,
        config: StoreConfig,
        node_id: str,
        writer_db: Database,
        reader_db: Database,
        segments: SegmentWriter,
        clock: HybridClock,
        shared: SharedState | None = None,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.clock = clock
        self.time_source = config.time_source  # the wall and monotonic clock; ``clock`` is the HLC
        self._writer_db = writer_db
        self._reader_db = reader_db
        self._segments = segments
        self._reader = SegmentReader(config.data_dir / "segments")
        self._latest = LatestCache(by_digest=shared is not None)
        self.workers = WorkerView(
            self._latest, shared, lambda: self._reader_db.run(bucket_config.tagged_buckets)
        )
        self._lock: int | None = None
        self.inflight = InFlight(shared)
        # One maintenance job that moves data (gc run/rewrite, scrub --repair) at a time.
        self.maintenance_lock = asyncio.Lock()
        self._retired_fds: list[int] = []
        self._sweeper: asyncio.Task[None] | None = None  # with several workers
        self.committer = GroupCommitter(
            writer_db,
            segments,
            clock,
            self._committed,
            self._latest.fill_committed,
            None if shared is None else WorkerLink(shared, self.workers.forget),
        )
        self.multipart = Multipart(self)
        self.object_locks = ObjectLocks(self)

    # ---- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(cls, config: StoreConfig) -> Store:
        opened = await open_data_dir(config)
        writer_db = opened.writer_db
        store = cls(
            config,
            opened.node_id,
            writer_db,
            opened.reader_db,
            opened.segments,
            opened.clock,
            opened.shared,
        )
        store._lock = opened.lock
        store.workers.tagged.update(await writer_db.run(bucket_config.tagged_buckets))
        store.committer.start()
        if opened.shared is not None:
            store._sweeper = asyncio.create_task(store._sweep_unlinked(), name="fd-sweep")
        log.info(
            "store open: node %s, data dir %s, segment %d%s",
            opened.node_id,
            config.data_dir,
            opened.next_segment_id,
            _worker_note(config),
        )
        return store

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.committer.stop()
        await asyncio.to_thread(self._segments.close)
        self._reader.close()
        self._close_retired_fds()
        await self._reader_db.close()
        await self._writer_db.close()
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    def observe_commits(self, observer: CommitObserver) -> None:
        """Report fsync latencies and group-commit batch sizes to ``observer`` (metrics)."""
        self._segments.observer = observer
        self.committer.observer = observer

    async def _commit(self, mutation: Mutation[T]) -> T:
        return await self.committer.submit(mutation)

    def _committed(self, touched: list[tuple[str, str | None]]) -> None:
        self._latest.invalidate(touched)
        self.workers.committed_here(touched)

    # ---- buckets ----------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner: str, object_lock: bool = False) -> BucketInfo:
        """A new bucket; with ``object_lock``, versioned and lock-enabled in the same commit."""
        if object_lock:
            created = await self._commit(CreateLockedBucket(name, owner))
            await self.object_locks.enabled(name)  # remembered: it stays enabled
            return created
        return await self._commit(CreateBucket(name, owner))

    async def delete_bucket(self, name: str) -> None:
        await self._commit(DeleteBucket(name))

    async def get_bucket(self, name: str) -> BucketInfo:
        return await self._reader_db.run(catalog.get_bucket, name)

    async def list_buckets(self) -> list[BucketInfo]:
        return await self._reader_db.run(catalog.list_buckets)

    async def set_versioning(self, bucket: str, status: str) -> None:
        await self._commit(SetVersioning(bucket, status))

    # ---- objects ----------------------------------------------------------------------------

    async def begin_object(self, bucket: str, key: str, size_max: int) -> ObjectWriter:
        """Check the bucket exists (before any body is read) and return a writer."""
        await self.get_bucket(bucket)
        return ObjectWriter(self, bucket, key, size_max)

    async def head_object(self, bucket: str, key: str, version_id: str | None = None) -> Manifest:
        """The latest (or the given) version; raise NoSuchBucket/NoSuchKey/NoSuchVersion,
        or DeleteMarker when it is a delete marker."""
        manifest: Manifest | None
        if version_id is not None:
            manifest = await self._reader_db.run(catalog.get_version, bucket, key, version_id)
        else:
            manifest = await self._latest_manifest(bucket, key)
        if manifest is None or manifest.kind == Kind.TOMBSTONE:
            raise NoSuchKey(key)
        if manifest.kind == Kind.DELETE_MARKER:
            raise DeleteMarker(manifest)
        return manifest

    async def observe_condition(
        self, bucket: str, key: str, condition: WriteCondition
    ) -> WriteCondition:
        """``condition`` with the key's state now recorded, checked against it: a write whose
        condition already fails is refused before its body is read (PreconditionFailed,
        NoSuchKey). The check that counts is the one inside the commit transaction."""
        latest = await self._latest_manifest(bucket, key)
        observed = condition.observing(latest)
        observed.check(latest)
        return observed

    async def _latest_manifest(self, bucket: str, key: str) -> Manifest | None:
        self.workers.catch_up()
        manifest = self._latest.get(bucket, key)
        if manifest is None:
            epoch = self._latest.epoch
            manifest = await self._reader_db.run(_lookup_latest, bucket, key)
            self.workers.catch_up()  # a commit elsewhere during the read: epoch moves
            if manifest is not None:
                self._latest.fill(manifest, epoch)
        return manifest

    async def delete_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        condition: WriteCondition | None = None,
        bypass_governance: bool = False,
    ) -> DeleteResult:
        """A delete marker (no ``version_id``), or that version removed unless its lock
        forbids it (ObjectLocked; ``bypass_governance`` lifts GOVERNANCE retention only)."""
        mutation: Mutation[DeleteResult] = (
            DeleteObject(bucket, key, condition)
            if version_id is None
            else DeleteVersion(bucket, key, version_id, condition, bypass_governance)
        )
        return await self._commit(mutation)

    async def copy_object(
        self,
        source: Manifest,
        bucket: str,
        key: str,
        headers: tuple[tuple[str, str], ...] | None,
        tags: bucket_config.Tags | None = None,
        condition: WriteCondition | None = None,
        lock: LockRequest | None = None,
    ) -> Manifest:
        """A new version of bucket/key sharing ``source``'s chunks (headers/tags None: keep);
        ``condition`` applies to the destination key, ``lock`` is the copy's own."""
        if tags or (tags is None and self.may_have_tags(source.bucket)):
            self.workers.tagged.add(bucket)
        return await self._commit(
            CopyObject(
                source.bucket,
                source.key,
                source.version_id,
                bucket,
                key,
                headers,
                tags,
                condition,
                lock,
            )
        )

    async def list_objects(
        self, bucket: str, prefix: str, delimiter: str, marker: str, max_keys: int
    ) -> ListPage:
        return await self._reader_db.run(
            listing.list_latest, bucket, prefix, delimiter, marker, max_keys
        )

    async def list_versions(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        version_marker: str,
        max_keys: int,
    ) -> VersionPage:
        return await self._reader_db.run(
            listing.list_versions,
            bucket,
            prefix,
            delimiter,
            key_marker,
            version_marker,
            max_keys,
        )

    async def read(self, manifest: Manifest, start: int, end: int) -> AsyncGenerator[bytes, None]:
        """Yield bytes [start, end] (inclusive) of a version, each chunk verified first.

        The next chunk is read and verified in a thread while the current one is being sent.
        A chunk that fails verification raises CorruptData: no byte of it is yielded.
        """
        assert 0 <= start <= end < manifest.size
        loop = asyncio.get_running_loop()
        spans = chunk_spans(manifest.chunks, start, end)
        prefetch: asyncio.Future[bytes] | None = None
        for index, (chunk, low, high) in enumerate(spans):
            try:
                if prefetch is not None:
                    data = await prefetch
                elif chunk.length <= INLINE_BYTES_MAX:
                    data = self._reader.read_chunk(chunk)
                else:
                    data = await loop.run_in_executor(None, self._reader.read_chunk, chunk)
            except CorruptData as unreadable:
                data = await self._read_moved(chunk, unreadable)
            prefetch = None
            if index + 1 < len(spans):
                prefetch = loop.run_in_executor(None, self._reader.read_chunk, spans[index + 1][0])
            yield data[low:high] if (low, high) != (0, chunk.length) else data

    async def locate(self, chunk: ChunkRef) -> ChunkRef:
        """Where this node holds a chunk's bytes now (GC moves them; the index follows)."""
        found = await self._reader_db.run(catalog.chunk_location, chunk.blake3)
        if found is None or found.length != chunk.length:
            raise CorruptData(f"chunk {chunk.blake3.hex()} is no longer stored")
        return found

    async def _read_moved(self, chunk: ChunkRef, unreadable: CorruptData) -> bytes:
        """A chunk unreadable where its manifest says: GC or scrub --repair may have moved
        it after that manifest was resolved, or this node may hold a good copy elsewhere."""
        try:
            found = await self.locate(chunk)
        except CorruptData:
            raise unreadable from None
        if found == chunk:
            raise unreadable
        return await asyncio.to_thread(self._reader.read_chunk, found)

    def read_chunk_at(self, chunk: ChunkRef) -> bytes:
        """A chunk's verified bytes, read where ``chunk`` says (blocking: run it in a thread
        unless the chunk is small); CorruptData if they fail their BLAKE3."""
        return self._reader.read_chunk(chunk)

    # ---- bucket documents, tags, keys --------------------------------------------------------

    async def get_bucket_document(self, bucket: str, name: str) -> str:
        """A bucket's policy, CORS or tagging document; NoSuchConfiguration if none."""
        return await self._reader_db.run(bucket_config.get_bucket_document, bucket, name)

    async def put_bucket_document(self, bucket: str, name: str, value: str | None) -> None:
        """Set (or with None delete) a bucket's policy, CORS or tagging document."""
        await self._commit(bucket_config.PutBucketDocument(bucket, name, value))

    async def get_tags(
        self, bucket: str, key: str, version_id: str | None
    ) -> tuple[str, bucket_config.Tags]:
        return await self._reader_db.run(bucket_config.get_tags, bucket, key, version_id)

    async def put_tags(
        self, bucket: str, key: str, version_id: str | None, tags: bucket_config.Tags | None
    ) -> str:
        """Replace (None: remove) a version's tags; return the version id they apply to."""
        if tags:
            self.workers.tagged.add(bucket)
        return await self._commit(bucket_config.PutObjectTags(bucket, key, version_id, tags))

    async def get_object_acl(
        self, bucket: str, key: str, version_id: str | None
    ) -> tuple[Manifest, str | None]:
        """An object version and the ACL set on it after it was written (None if none)."""
        return await self._reader_db.run(bucket_config.get_object_acl, bucket, key, version_id)

    async def put_object_acl(self, bucket: str, key: str, version_id: str | None, acl: str) -> str:
        """Replace a version's ACL; return the version id it applies to."""
        return await self._commit(bucket_config.PutObjectAcl(bucket, key, version_id, acl))

    def may_have_tags(self, bucket: str) -> bool:
        """False only if no version in ``bucket`` has tags: lets the GET hot path skip the
        tag lookup. Buckets are added before any tag write commits, never removed (other
        workers' tag writes: storage/worker_view.py)."""
        return self.workers.may_have_tags(bucket)

    def mark_tagged(self, bucket: str) -> None:
        """A write that sets tags in ``bucket`` is about to commit (see may_have_tags)."""
        self.workers.tagged.add(bucket)

    @property
    def bucket_epoch(self) -> int:
        """Moves on every bucket-wide change committed by any worker of this node: caches of
        bucket-level state compare it with the value they were filled at."""
        self.workers.catch_up()
        return self.workers.bucket_epoch

    async def keys_generation(self) -> int:
        return await self._reader_db.run(keys.keys_generation)

    async def list_keys(self) -> list[keys.AccessKey]:
        return await self._reader_db.run(keys.list_keys)

    async def change_keys(self, change: Callable[..., T], *args: Any) -> T:
        """Run a storage/keys.py change (``change(conn, *args)``, its own transaction) on the
        writer connection's thread, between group-commit batches: the node's one SQLite
        writer, and never the event loop's thread."""
        return await self._writer_db.run(change, *args)

    # ---- primitives for the replication side (storage/sync/site.py) -------------------------

    async def read_chunk(self, chunk: ChunkRef) -> bytes:
        """A chunk's verified bytes (where GC or scrub --repair moved it, if it moved)."""
        try:
            return await asyncio.to_thread(self._reader.read_chunk, chunk)
        except CorruptData as unreadable:
            return await self._read_moved(chunk, unreadable)

    def invalidate_latest(self, touched: Iterable[tuple[str, str]]) -> None:
        """Forget the cached latest versions of these (bucket, key)s (a purge changed them)."""
        self._latest.invalidate(touched)

    # ---- for the store's parts (multipart.py, object_writer.py) and operator tools (ops/) ----

    @property
    def segment_dir(self) -> Path:
        return self.config.data_dir / "segments"

    @property
    def active_segment_id(self) -> int:
        return self._segments.active_segment_id

    async def query(self, function: Callable[..., T], *args: Any) -> T:
        """Run a short read-only ``function(conn, *args)`` on the node's reader connection."""
        return await self._reader_db.run(function, *args)

    async def inspect(self, function: Callable[..., T], *args: Any) -> T:
        """Run a long read-only ``function(conn, *args)`` on a connection of its own, so
        that it does not hold up the node's reads (liveness.read_snapshot inside gives it
        one consistent view, whatever commits meanwhile)."""
        database = await Database.open(self.config.data_dir / "meta.db", read_only=True)
        try:
            return await database.run(function, *args)
        finally:
            await database.close()

    async def commit(self, mutation: Mutation[T]) -> T:
        """Apply a mutation through the group committer (the one writer)."""
        return await self._commit(mutation)

    def append_record(self, kind: RecordKind, payload: bytes, digest: bytes) -> Record:
        """Append a record to the active segment (from a thread). It becomes durable and
        referenced only when a mutation submitted afterwards commits: hold an in-flight
        floor (``self.inflight``) until then."""
        return self._segments.append(kind, payload, digest)

    def retire_segments(self, segment_ids: set[int]) -> None:
        """Reads stop using segments GC retired. Their open descriptors are closed after
        a grace period: a read that resolved one just before may still be using it."""
        fds = self._reader.forget(segment_ids)
        if fds:
            self._retired_fds.extend(fds)
            asyncio.get_running_loop().call_later(RETIRED_FD_GRACE_S, self._close_fds, fds)

    async def _sweep_unlinked(self) -> None:
        """With several workers: let go of segment files another worker's GC removed, so
        their space is freed (this worker's own GC does it at once: retire_segments)."""
        while True:
            await asyncio.sleep(UNLINKED_SWEEP_S)
            fds = self._reader.forget_unlinked()
            if fds:
                self._retired_fds.extend(fds)
                asyncio.get_running_loop().call_later(RETIRED_FD_GRACE_S, self._close_fds, fds)

    def _close_fds(self, fds: list[int]) -> None:
        for fd in fds:
            if fd in self._retired_fds:
                self._retired_fds.remove(fd)
                os.close(fd)

    def _close_retired_fds(self) -> None:
        self._close_fds(list(self._retired_fds))


# ---- helpers ----------------------------------------------------------------------------------


def _lookup_latest(conn: sqlite3.Connection, bucket: str, key: str) -> Manifest | None:
    """The bucket check and the latest version in one query (this is the GET hot path)."""
    row = conn.execute(
        "SELECT v.manifest FROM buckets b LEFT JOIN versions v ON v.bucket = b.name"
        " AND v.key = ? AND v.is_latest = 1 WHERE b.name = ?",
        (key, bucket),
    ).fetchone()
    if row is None:
        raise NoSuchBucket(bucket)
    return None if row[0] is None else decode(row[0])
