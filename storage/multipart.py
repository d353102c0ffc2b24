"""Multipart uploads on a Store: create, parts (streamed or copied), complete, abort, list.

``store.multipart`` is this facade; the S3 handlers (api/multipart.py) and mpu-gc call it. The
SQL lives in storage/uploads.py and storage/completions.py, the commits in storage/mutations.py:
like every write, a part or a completion becomes durable and visible through the group-commit
barrier (storage/commit.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING

import blake3

from storage import bucket_config, completions, uploads
from storage.completions import CompletedUpload
from storage.conditions import WriteCondition
from storage.errors import NoSuchUpload
from storage.manifest import ChunkRef, Manifest, chunk_spans
from storage.mutations import AbortUpload, CompleteUpload, CreateUpload, PutPart
from storage.object_writer import ObjectWriter
from storage.uploads import PartInfo, UploadInfo, UploadPage

if TYPE_CHECKING:
    from storage.store import Store


class Multipart:
    """A store's multipart uploads."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create_upload(
        self,
        bucket: str,
        key: str,
        headers: tuple[tuple[str, str], ...],
        owner: str,
        checksum: str = "",
    ) -> UploadInfo:
        template = UploadInfo(uploads.new_upload_id(), bucket, key, 0, owner, headers, checksum)
        return await self._store.commit(CreateUpload(template))

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        return await self._store.query(uploads.get_upload, bucket, key, upload_id)

    async def upload_to_complete(
        self, bucket: str, key: str, upload_id: str
    ) -> tuple[UploadInfo, bool]:
        """The upload in progress, or (True) one completed recently: completing it again with
        the same parts answers as the first completion did (storage/completions.py)."""
        try:
            return await self.get_upload(bucket, key, upload_id), False
        except NoSuchUpload:
            upload = await self._store.query(completions.completed_upload, bucket, key, upload_id)
            return upload, True

    async def begin_part(self, upload: UploadInfo, size_max: int) -> ObjectWriter:
        return ObjectWriter(self._store, upload.bucket, upload.key, size_max)

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
            for chunk, low, high in chunk_spans(chunks, first, last):
                data = await loop.run_in_executor(None, self._store.read_chunk_at, chunk)
                piece = data[low:high]
                md5.update(piece)
                if (low, high) == (0, chunk.length):
                    refs.append(chunk)
                else:
                    digest = blake3.blake3(piece).digest()
                    refs.append(ChunkRef(chunk.segment_id, chunk.offset + low, high - low, digest))
            size = last - first + 1
            result = await self._store.commit(
                PutPart(upload, part_number, size, md5.hexdigest(), tuple(refs), checksums)
            )
        finally:
            self._store.inflight.leave(token)
        return result

    async def _hold_chunks(self, chunks: tuple[ChunkRef, ...]) -> tuple[int, tuple[ChunkRef, ...]]:
        """Hold an in-flight floor under these chunks (a part will reference them), first
        following any that GC moved since their manifest was read."""
        while True:
            token = self._store.inflight.enter_unless_retired({c.segment_id for c in chunks})
            shared = self._store.workers.shared
            if token is not None:
                if shared is None:
                    return token, chunks
                # GC runs in another worker, whose retirements this one does not see: once
                # the floor is published and any commit that may have missed it is over, GC
                # retires nothing at or above it, and what it retired shows in the index.
                await asyncio.to_thread(shared.pass_commit_in_progress)
                current = tuple([await self._store.locate(chunk) for chunk in chunks])
                if current == chunks:
                    return token, chunks
                self._store.inflight.leave(token)
                chunks = current
                continue
            chunks = tuple([await self._store.locate(chunk) for chunk in chunks])

    async def list_parts(
        self, upload: UploadInfo, after_part: int, max_parts: int
    ) -> tuple[list[PartInfo], bool]:
        return await self._store.query(uploads.list_parts, upload, after_part, max_parts)

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
            self._store.mark_tagged(upload.bucket)
        return await self._store.commit(
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
        await self._store.commit(AbortUpload(upload))

    async def list_uploads(
        self,
        bucket: str,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadPage:
        return await self._store.query(
            uploads.list_uploads,
            bucket,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
        )
