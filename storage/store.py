"""Store: the storage facade used by the S3 API (replication uses it through storage/sync/site.py).

Writes stream through :class:`ObjectWriter` (chunk -> BLAKE3 -> append to the active segment,
pipelined so that receiving the next chunk overlaps hashing and writing the previous one) and
become visible only through the group-commit barrier (storage/commit.py). Reads verify every
chunk's BLAKE3 before handing out a single byte of it.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import re
import secrets
import sqlite3
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import blake3

from storage import (
    bucket_config,
    catalog,
    completions,
    digest,
    key_journal,
    keys,
    listing,
    retired,
    uploads,
)
from storage.cache import LatestCache
from storage.catalog import BucketInfo
from storage.chunker import CHUNK_BYTES, Chunker
from storage.clock import SYSTEM_CLOCK, Clock
from storage.commit import GroupCommitter, Mutation
from storage.completions import CompletedUpload
from storage.conditions import WriteCondition
from storage.database import Database
from storage.errors import (
    CorruptData,
    EntityTooLarge,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    StorageError,
)
from storage.hlc import HybridClock
from storage.inflight import InFlight
from storage.listing import ListPage, VersionPage
from storage.manifest import ChunkRef, Kind, Manifest, decode
from storage.mutations import (
    AbortUpload,
    CompleteUpload,
    CopyObject,
    CreateBucket,
    CreateUpload,
    DeleteBucket,
    DeleteObject,
    DeleteResult,
    DeleteVersion,
    PutObject,
    PutPart,
    SetVersioning,
)
from storage.ops import operator_state, usage
from storage.segments import (
    DEFAULT_SEGMENT_BYTES_MAX,
    Record,
    RecordKind,
    SegmentReader,
    SegmentWriter,
    list_segment_ids,
    recover_segment,
    segment_path,
)
from storage.stats_hooks import CommitObserver
from storage.uploads import PartInfo, UploadInfo, UploadPage

log = logging.getLogger("lakenode.store")

NODE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Chunks up to this size are hashed, written and read on the event loop: a thread hop costs
# more than the work itself.
INLINE_BYTES_MAX = 64 * 1024
# A segment GC retired stays open this long for reads that resolved it just before.
RETIRED_FD_GRACE_S = 30.0

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


class DataDirLocked(StorageError):
    """Another process (a running node) has this data dir open."""


class NodeIdMismatch(StorageError):
    """The data dir was created by another node id."""


class DeleteMarker(NoSuchKey):
    """The version asked for (or the latest) is a delete marker."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(manifest.key)
        self.manifest = manifest


__all__ = ["DeleteMarker", "DeleteResult", "ObjectWriter", "Store", "StoreConfig"]


def resolve_node_id(data_dir: Path, requested: str | None) -> str:
    """Return the data dir's node id, creating it on first use; refuse a different one."""
    path = data_dir / "node_id"
    if requested is not None and not NODE_ID_PATTERN.match(requested):
        raise ValueError(f"invalid node id {requested!r}: use 1-64 of [A-Za-z0-9._-]")
    if path.exists():
        stored = path.read_text().strip()
        if requested is not None and requested != stored:
            raise NodeIdMismatch(
                f"data dir {data_dir} belongs to node id {stored!r}, not {requested!r}"
            )
        return stored
    node_id = requested or f"node-{secrets.token_hex(6)}"
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as file:
        file.write(node_id + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    _fsync_dir(data_dir)
    return node_id


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    def __init__(
        self,
        config: StoreConfig,
        node_id: str,
        writer_db: Database,
        reader_db: Database,
        segments: SegmentWriter,
        clock: HybridClock,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.clock = clock
        self.time_source = config.time_source  # the wall and monotonic clock; ``clock`` is the HLC
        self._writer_db = writer_db
        self._reader_db = reader_db
        self._segments = segments
        self._reader = SegmentReader(config.data_dir / "segments")
        self._latest = LatestCache()
        self._lock: int | None = None
        self.inflight = InFlight()
        # One maintenance job that moves data (gc run/rewrite, scrub --repair) at a time.
        self.maintenance_lock = asyncio.Lock()
        self._retired_fds: list[int] = []
        # Buckets that hold (or held) object tags: a superset, only ever grown, so that
        # GET/HEAD look tags up only where there can be some (see may_have_tags).
        self._tagged_buckets: set[str] = set()
        self.committer = GroupCommitter(
            writer_db, segments, clock, self._latest.invalidate, self._latest.fill_committed
        )

    # ---- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(cls, config: StoreConfig) -> Store:
        segment_dir = config.data_dir / "segments"
        segment_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_data_dir(config.data_dir)
        node_id = resolve_node_id(config.data_dir, config.node_id)
        writer_db = await Database.open(config.data_dir / "meta.db")
        reader_db = await Database.open(config.data_dir / "meta.db", read_only=True)
        await writer_db.run(retired.finish_at_open, segment_dir)
        states = await writer_db.run(catalog.segment_states)
        next_id = await asyncio.to_thread(_recover_segments, segment_dir, states)
        await writer_db.run(_mark_recovered, list_segment_ids(segment_dir))
        segments = SegmentWriter(segment_dir, next_id, config.segment_bytes_max)
        clock = HybridClock(
            node_id, last=await writer_db.run(catalog.last_hlc), now_ms=config.time_source.wall_ms
        )
        await writer_db.run(_backfill_chunk_index)
        await writer_db.run(key_journal.ensure_baseline, config.data_dir)
        store = cls(config, node_id, writer_db, reader_db, segments, clock)
        store._lock = lock
        store._tagged_buckets.update(await writer_db.run(_tagged_buckets))
        store.committer.start()
        log.info("store open: node %s, data dir %s, segment %d", node_id, config.data_dir, next_id)
        return store

    async def close(self) -> None:
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

    # ---- buckets ----------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner: str) -> BucketInfo:
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
        manifest = self._latest.get(bucket, key)
        if manifest is None:
            epoch = self._latest.epoch
            manifest = await self._reader_db.run(_lookup_latest, bucket, key)
            if manifest is not None:
                self._latest.fill(manifest, epoch)
        return manifest

    async def delete_object(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        condition: WriteCondition | None = None,
    ) -> DeleteResult:
        mutation: Mutation[DeleteResult] = (
            DeleteObject(bucket, key, condition)
            if version_id is None
            else DeleteVersion(bucket, key, version_id, condition)
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
    ) -> Manifest:
        """A new version of bucket/key sharing ``source``'s chunks (headers/tags None: keep);
        ``condition`` applies to the destination key."""
        if tags or (tags is None and self.may_have_tags(source.bucket)):
            self._tagged_buckets.add(bucket)
        return await self._commit(
            CopyObject(
                source.bucket, source.key, source.version_id, bucket, key, headers, tags, condition
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
        spans = _chunk_spans(manifest.chunks, start, end)
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
            self._tagged_buckets.add(bucket)
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
        tag lookup. Buckets are added before any tag write commits, never removed."""
        return bucket in self._tagged_buckets

    async def keys_generation(self) -> int:
        return await self._reader_db.run(keys.keys_generation)

    async def list_keys(self) -> list[keys.AccessKey]:
        return await self._reader_db.run(keys.list_keys)

    # ---- primitives for the replication side (storage/sync/site.py) -------------------------

    async def query(self, function: Callable[..., T], *args: Any) -> T:
        """Run a short read ``function(conn, *args)`` on the node's reader connection."""
        return await self._reader_db.run(function, *args)

    async def read_chunk(self, chunk: ChunkRef) -> bytes:
        """A chunk's verified bytes (where GC or scrub --repair moved it, if it moved)."""
        try:
            return await asyncio.to_thread(self._reader.read_chunk, chunk)
        except CorruptData as unreadable:
            return await self._read_moved(chunk, unreadable)

    def invalidate_latest(self, touched: Iterable[tuple[str, str]]) -> None:
        """Forget the cached latest versions of these (bucket, key)s (a purge changed them)."""
        self._latest.invalidate(touched)

    def mark_tagged(self, bucket: str) -> None:
        """A tag write in ``bucket`` is about to commit (see may_have_tags)."""
        self._tagged_buckets.add(bucket)

    # ---- operator state (storage/ops/operator_state.py, storage/ops/usage.py) --------------------

    async def maintenance(self) -> operator_state.MaintenanceRecord:
        return await self._reader_db.run(operator_state.read_maintenance)

    async def set_maintenance(self, enabled: bool) -> operator_state.MaintenanceRecord:
        """Persist the maintenance flag. It goes through the group committer, so when this
        returns every mutation submitted before it is committed too (a write barrier)."""
        return await self._commit(operator_state.SetMaintenance(enabled, self.clock))

    async def job_state(self, job: str) -> dict[str, Any] | None:
        return await self._reader_db.run(operator_state.read_job_state, job)

    # ---- maintenance: usage, fsck, scrub, gc (storage/ops/usage.py, fsck.py, scrub.py, gc.py) ----

    @property
    def segment_dir(self) -> Path:
        return self.config.data_dir / "segments"

    @property
    def active_segment_id(self) -> int:
        return self._segments.active_segment_id

    async def usage(self) -> usage.UsageTotals:
        """Segments, live and garbage bytes, objects. The catalog pass runs on the reader
        connection, the walk over the segment files in a thread."""
        facts = await self._reader_db.run(usage.read_facts)
        usages = await asyncio.to_thread(usage.measure, facts, self.segment_dir)
        return usage.totals(usages, facts.objects)

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
        """Apply a maintenance mutation through the group committer (the one writer)."""
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

    def _close_fds(self, fds: list[int]) -> None:
        for fd in fds:
            if fd in self._retired_fds:
                self._retired_fds.remove(fd)
                os.close(fd)

    def _close_retired_fds(self) -> None:
        self._close_fds(list(self._retired_fds))

    # ---- multipart uploads ------------------------------------------------------------------

    async def create_upload(
        self,
        bucket: str,
        key: str,
        headers: tuple[tuple[str, str], ...],
        owner: str,
        checksum: str = "",
    ) -> UploadInfo:
        template = UploadInfo(uploads.new_upload_id(), bucket, key, 0, owner, headers, checksum)
        return await self._commit(CreateUpload(template))

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        return await self._reader_db.run(uploads.get_upload, bucket, key, upload_id)

    async def upload_to_complete(
        self, bucket: str, key: str, upload_id: str
    ) -> tuple[UploadInfo, bool]:
        """The upload in progress, or (True) one completed recently: completing it again with
        the same parts answers as the first completion did (storage/completions.py)."""
        try:
            return await self.get_upload(bucket, key, upload_id), False
        except NoSuchUpload:
            upload = await self._reader_db.run(completions.completed_upload, bucket, key, upload_id)
            return upload, True

    async def begin_part(self, upload: UploadInfo, size_max: int) -> ObjectWriter:
        return ObjectWriter(self, upload.bucket, upload.key, size_max)

    async def copy_part(
        self,
        upload: UploadInfo,
        part_number: int,
        source: Manifest,
        first: int,
        last: int,
        checksums: tuple[tuple[str, str], ...] = (),
    ) -> PartInfo:
        """A part made of bytes [first, last] of ``source``, sharing its stored bytes.

        Whole chunks are referenced as they are; a chunk cut by the range is referenced by
        the covered slice of its record, with that slice's own BLAKE3. The bytes are read
        (and verified) once to compute the part's MD5, but never written again.
        """
        md5 = hashlib.md5()
        refs: list[ChunkRef] = []
        loop = asyncio.get_running_loop()
        token, chunks = await self._hold_chunks(source.chunks)
        try:
            for chunk, low, high in _chunk_spans(chunks, first, last):
                data = await loop.run_in_executor(None, self._reader.read_chunk, chunk)
                piece = data[low:high]
                md5.update(piece)
                if (low, high) == (0, chunk.length):
                    refs.append(chunk)
                else:
                    digest = blake3.blake3(piece).digest()
                    refs.append(ChunkRef(chunk.segment_id, chunk.offset + low, high - low, digest))
            size = last - first + 1
            result = await self._commit(
                PutPart(upload, part_number, size, md5.hexdigest(), tuple(refs), checksums)
            )
        finally:
            self.inflight.leave(token)
        return result

    async def _hold_chunks(self, chunks: tuple[ChunkRef, ...]) -> tuple[int, tuple[ChunkRef, ...]]:
        """Hold an in-flight floor under these chunks (a part will reference them), first
        following any that GC moved since their manifest was read."""
        while True:
            token = self.inflight.enter_unless_retired({c.segment_id for c in chunks})
            if token is not None:
                return token, chunks
            chunks = tuple([await self._locate(chunk) for chunk in chunks])

    async def _locate(self, chunk: ChunkRef) -> ChunkRef:
        """Where this node holds a chunk's bytes now (GC moves them; the index follows)."""
        found = await self._reader_db.run(catalog.chunk_location, chunk.blake3)
        if found is None or found.length != chunk.length:
            raise CorruptData(f"chunk {chunk.blake3.hex()} is no longer stored")
        return found

    async def _read_moved(self, chunk: ChunkRef, unreadable: CorruptData) -> bytes:
        """A chunk unreadable where its manifest says: GC or scrub --repair may have moved
        it after that manifest was resolved, or this node may hold a good copy elsewhere."""
        try:
            found = await self._locate(chunk)
        except CorruptData:
            raise unreadable from None
        if found == chunk:
            raise unreadable
        return await asyncio.to_thread(self._reader.read_chunk, found)

    async def list_parts(
        self, upload: UploadInfo, after_part: int, max_parts: int
    ) -> tuple[list[PartInfo], bool]:
        return await self._reader_db.run(uploads.list_parts, upload, after_part, max_parts)

    async def complete_upload(
        self,
        upload: UploadInfo,
        parts: list[tuple[int, str]],
        extra_headers: tuple[tuple[str, str], ...] = (),
        tags: bucket_config.Tags = (),
        part_checksums: tuple[tuple[int, str, str], ...] = (),
        expected_checksum: tuple[str, str] | None = None,
        condition: WriteCondition | None = None,
    ) -> Manifest | CompletedUpload:
        """The object from the listed parts; ``part_checksums`` (number, header, value) are
        the checksums the client listed, each checked against the part's stored one;
        ``expected_checksum`` (header, value) the whole object's, checked against the one
        built from the parts. A repeated completion (same parts) gets the first one's
        result, a CompletedUpload."""
        if tags:
            self._tagged_buckets.add(upload.bucket)
        return await self._commit(
            CompleteUpload(
                upload,
                tuple(parts),
                extra_headers,
                tags,
                part_checksums,
                expected_checksum,
                condition,
            )
        )

    async def abort_upload(self, upload: UploadInfo) -> None:
        await self._commit(AbortUpload(upload))

    async def list_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadPage:
        return await self._reader_db.run(
            uploads.list_uploads,
            bucket,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
        )

    # ---- internals used by ObjectWriter -----------------------------------------------------

    def _append_chunk(self, chunk: bytes, md5: hashlib._Hash) -> ChunkRef:
        md5.update(chunk)
        digest = blake3.blake3(chunk).digest()
        record = self._segments.append(RecordKind.CHUNK, chunk, digest)
        return ChunkRef(record.segment_id, record.offset, record.length, digest)


def _chunk_spans(
    chunks: tuple[ChunkRef, ...], start: int, end: int
) -> list[tuple[ChunkRef, int, int]]:
    """(chunk, low, high) slices covering object bytes [start, end]."""
    spans: list[tuple[ChunkRef, int, int]] = []
    position = 0
    for chunk in chunks:
        chunk_start, chunk_end = position, position + chunk.length  # [chunk_start, chunk_end)
        position = chunk_end
        if chunk_end <= start:
            continue
        if chunk_start > end:
            break
        low = max(start, chunk_start) - chunk_start
        high = min(end + 1, chunk_end) - chunk_start
        spans.append((chunk, low, high))
    return spans


class ObjectWriter:
    """Streams one object's (or part's) bytes into segments; nothing is visible until
    :meth:`commit` or :meth:`commit_part`."""

    def __init__(self, store: Store, bucket: str, key: str, size_max: int) -> None:
        self._store = store
        self.bucket = bucket
        self.key = key
        self._size_max = size_max
        self._chunker = Chunker(store.config.chunk_bytes)
        self._md5 = hashlib.md5()
        self._chunks: list[ChunkRef] = []
        self._in_flight: asyncio.Future[ChunkRef] | None = None
        self.size = 0
        # GC must not retire the segments this writer appends to before it commits (see
        # storage/inflight.py); released on commit or abort, or when the writer is dropped.
        token = store.inflight.enter(store._segments.active_segment_id)
        self._release = weakref.finalize(self, store.inflight.leave, token)

    async def write(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self._size_max:
            raise EntityTooLarge(f"object larger than {self._size_max} bytes")
        for chunk in self._chunker.feed(piece):
            await self._store_chunk(chunk)

    async def _store_chunk(self, chunk: bytes) -> None:
        # Keep at most one chunk in flight: bounded memory, and ordered appends of our chunks.
        await self._drain()
        if len(chunk) <= INLINE_BYTES_MAX:
            self._chunks.append(self._store._append_chunk(chunk, self._md5))
            return
        loop = asyncio.get_running_loop()
        self._in_flight = loop.run_in_executor(None, self._store._append_chunk, chunk, self._md5)

    async def _drain(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            self._chunks.append(await in_flight)

    async def finish(self) -> bytes:
        """End of body: store the last chunk and return the MD5 digest of the whole object."""
        last = self._chunker.finish()
        if last is not None:
            await self._store_chunk(last)
        await self._drain()
        return self._md5.digest()

    def _assert_finished(self) -> None:
        assert self._in_flight is None and self._chunker.pending_bytes == 0

    async def commit(
        self,
        headers: list[tuple[str, str]],
        tags: bucket_config.Tags = (),
        condition: WriteCondition | None = None,
    ) -> Manifest:
        """Make the object durable and visible (the durability barrier); return its manifest.
        ``condition`` (If-None-Match/If-Match) is decided inside the commit transaction."""
        self._assert_finished()
        mutation = PutObject(
            self.bucket,
            self.key,
            tuple(headers),
            self.size,
            self._md5.hexdigest(),
            tuple(self._chunks),
            tags,
            condition,
        )
        if tags:
            self._store._tagged_buckets.add(self.bucket)
        try:
            result = await self._store._commit(mutation)
        finally:
            self._release()
        return result

    async def commit_part(
        self,
        upload: UploadInfo,
        part_number: int,
        checksums: tuple[tuple[str, str], ...] = (),
    ) -> PartInfo:
        """Make the part durable (same barrier as an object); it stays invisible to reads.
        ``checksums``: the part's verified x-amz-checksum-* values, kept with the part."""
        self._assert_finished()
        mutation = PutPart(
            upload,
            part_number,
            self.size,
            self._md5.hexdigest(),
            tuple(self._chunks),
            checksums,
        )
        try:
            result = await self._store._commit(mutation)
        finally:
            self._release()
        return result

    async def abort(self) -> None:
        """Give up; chunks already written become garbage for a later GC."""
        if self._in_flight is not None:
            await asyncio.wait([self._in_flight])
            self._in_flight = None
        self._release()


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


def _tagged_buckets(conn: sqlite3.Connection) -> list[str]:
    # Module level: inside Store.open, ``config`` names the StoreConfig argument.
    return bucket_config.tagged_buckets(conn)


def _recover_segments(segment_dir: Path, states: dict[int, tuple[int, bool]]) -> int:
    """Recover every segment not known sealed; return the id for the next segment."""
    ids = list_segment_ids(segment_dir)
    for segment_id in ids:
        durable_end, sealed = states.get(segment_id, (0, False))
        if not sealed:
            recover_segment(segment_path(segment_dir, segment_id), durable_end)
    return (ids[-1] + 1) if ids else 1


def lock_data_dir(data_dir: Path) -> int:
    """Hold an exclusive lock on DATA/lakenode.lock while the store is open (and while an
    offline tool such as rebuild-index or restore works on the data dir): returns the
    descriptor, closing it releases the lock."""
    fd = os.open(data_dir / "lakenode.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise DataDirLocked(f"{data_dir} is in use by another lakenode process") from exc
    return fd


def _backfill_chunk_index(conn: sqlite3.Connection) -> None:
    """Index the chunks of versions written before the index existed (once per data dir)."""
    if (
        catalog.read_meta(conn, "chunk_index_complete") == "1"
        and catalog.read_meta(conn, "digests_complete") == "1"
    ):
        return
    conn.execute("BEGIN IMMEDIATE")
    for (blob,) in conn.execute("SELECT manifest FROM versions").fetchall():
        catalog.index_chunks(conn, decode(blob).chunks)
    catalog.write_meta(conn, "chunk_index_complete", "1")
    if catalog.read_meta(conn, "digests_complete") != "1":
        digest.rebuild(conn)
        catalog.write_meta(conn, "digests_complete", "1")
    conn.execute("COMMIT")


def _mark_recovered(conn: sqlite3.Connection, segment_ids: list[int]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    catalog.record_segments(conn, {}, segment_ids)
    conn.execute("COMMIT")
