"""ObjectWriter: streams one object's (or part's) body into segments, visible only once committed.

The body is cut into chunks (storage/chunker.py); each is MD5'd, BLAKE3'd and appended to the
active segment, pipelined so that receiving the next chunk overlaps hashing and writing the
previous one. Nothing is visible until :meth:`ObjectWriter.commit` (or ``commit_part``) passes
the group-commit barrier (storage/commit.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from typing import TYPE_CHECKING

import blake3

from storage import bucket_config
from storage.chunker import Chunker
from storage.conditions import WriteCondition
from storage.errors import EntityTooLarge
from storage.lock_mutations import LockRequest
from storage.manifest import ChunkRef, Manifest
from storage.mutations import PutObject, PutPart
from storage.segments import RecordKind
from storage.uploads import PartInfo, UploadInfo

if TYPE_CHECKING:
    from storage.store import Store

# Chunks up to this size are hashed, written and read on the event loop: a thread hop costs
# more than the work itself.
INLINE_BYTES_MAX = 64 * 1024


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
        token = store.inflight.enter(store.active_segment_id)
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
            self._chunks.append(self._append_chunk(chunk))
            return
        loop = asyncio.get_running_loop()
        self._in_flight = loop.run_in_executor(None, self._append_chunk, chunk)

    def _append_chunk(self, chunk: bytes) -> ChunkRef:
        self._md5.update(chunk)
        digest = blake3.blake3(chunk).digest()
        record = self._store.append_record(RecordKind.CHUNK, chunk, digest)
        return ChunkRef(record.segment_id, record.offset, record.length, digest)

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
        lock: LockRequest | None = None,
    ) -> Manifest:
        """Make the object durable and visible (the durability barrier); return its manifest.
        ``condition`` (If-None-Match/If-Match) and ``lock`` are decided inside the commit."""
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
            lock,
        )
        if tags:
            self._store.mark_tagged(self.bucket)
        try:
            result = await self._store.commit(mutation)
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
            result = await self._store.commit(mutation)
        finally:
            self._release()
        return result

    async def abort(self) -> None:
        """Give up; chunks already written become garbage for a later GC."""
        if self._in_flight is not None:
            await asyncio.wait([self._in_flight])
            self._in_flight = None
        self._release()
