"""Every kind of write, as a mutation applied inside the group-commit transaction.

Each mutation reads what it depends on inside the transaction (so concurrent writers cannot
invalidate its checks), takes its HLC stamp from the committer and writes its rows and its
change-log row. The committer appends every change-log row (with its manifest) to the
segment before the commit, so rebuild-index can find it without the database; state the
change log does not hold (multipart uploads) goes there as journal entries from the Outcome.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace

from storage import bucket_config, catalog, completions, conditions, journal, uploads
from storage.catalog import NULL_VERSION, BucketInfo
from storage.commit import Outcome
from storage.completions import CompletedUpload
from storage.conditions import WriteCondition
from storage.errors import NoSuchKey
from storage.hlc import Timestamp
from storage.lock_mutations import (
    LockRequest,
    amend_payload,
    check_delete,
    lock_new_version,
    refuse_suspend,
    request_from_upload,
    without_upload_lock,
)
from storage.manifest import ChunkRef, Kind, Manifest
from storage.uploads import PartInfo, UploadInfo


@dataclass(frozen=True)
class DeleteResult:
    version_id: str | None
    delete_marker: bool


@dataclass(frozen=True)
class CreateBucket:
    name: str
    owner: str

    def touched(self) -> tuple[str, str | None]:
        return self.name, None

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[BucketInfo]:
        return Outcome(catalog.apply_create_bucket(conn, stamp, self.name, self.owner))


@dataclass(frozen=True)
class DeleteBucket:
    name: str

    def touched(self) -> tuple[str, str | None]:
        return self.name, None

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        catalog.apply_delete_bucket(conn, stamp, self.name)
        conn.execute("DELETE FROM uploads WHERE bucket = ?", (self.name,))
        conn.execute("DELETE FROM completed_uploads WHERE bucket = ?", (self.name,))
        return Outcome(None)


@dataclass(frozen=True)
class SetVersioning:
    bucket: str
    status: str

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, None

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        refuse_suspend(conn, self.bucket, self.status)
        catalog.apply_set_versioning(conn, stamp, self.bucket, self.status)
        return Outcome(None)


def _write_version(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    bucket: BucketInfo,
    key: str,
    kind: Kind,
    size: int,
    etag: str,
    headers: tuple[tuple[str, str], ...],
    chunks: tuple[ChunkRef, ...],
    version_id: str | None = None,
) -> Outcome[Manifest]:
    manifest = Manifest(
        kind,
        bucket.name,
        key,
        version_id or catalog.version_id_for_write(bucket, stamp),
        stamp.pack(),
        stamp.node_id,
        size,
        etag,
        stamp.wall_ms,
        headers,
        chunks,
    )
    catalog.apply_put_version(conn, manifest, manifest.encode(), stamp)
    return Outcome(manifest)


def _tag(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    outcome: Outcome[Manifest],
    tags: bucket_config.Tags,
    lock: LockRequest | None = None,
) -> Outcome[Manifest]:
    """Tags and lock given with a write that creates a version: one stamp allows one change
    row, so they ride in the payload of the version's object.put change (for replication).
    The bucket's default retention applies here too (storage/lock_mutations.py)."""
    manifest = outcome.result
    if tags:
        bucket_config.write_tags(
            conn, stamp, manifest.bucket, manifest.key, manifest.version_id, tags
        )
        amend_payload(conn, stamp, {"tags": list(tags)})
    lock_new_version(conn, stamp, manifest, lock)
    return outcome


@dataclass(frozen=True)
class PutObject:
    bucket: str
    key: str
    headers: tuple[tuple[str, str], ...]
    size: int
    etag: str
    chunks: tuple[ChunkRef, ...]
    tags: bucket_config.Tags = ()
    condition: WriteCondition | None = None
    lock: LockRequest | None = None

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[Manifest]:
        bucket = catalog.get_bucket(conn, self.bucket)
        conditions.enforce(conn, self.condition, self.bucket, self.key)
        outcome = _write_version(
            conn,
            stamp,
            bucket,
            self.key,
            Kind.OBJECT,
            self.size,
            self.etag,
            conditions.mark(self.headers, self.condition),
            self.chunks,
        )
        return _tag(conn, stamp, outcome, self.tags, self.lock)


@dataclass(frozen=True)
class CopyObject:
    """A new version that shares the source version's chunks: no data is rewritten."""

    source_bucket: str
    source_key: str
    source_version: str
    bucket: str
    key: str
    headers: tuple[tuple[str, str], ...] | None  # None: keep the source's (COPY directive)
    tags: bucket_config.Tags | None = None  # None: copy the source's tags
    condition: WriteCondition | None = None  # on the destination key
    lock: LockRequest | None = None

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[Manifest]:
        source = catalog.get_version(conn, self.source_bucket, self.source_key, self.source_version)
        if source.kind != Kind.OBJECT:
            raise NoSuchKey(self.source_key)
        bucket = catalog.get_bucket(conn, self.bucket)
        conditions.enforce(conn, self.condition, self.bucket, self.key)
        headers = source.headers if self.headers is None else self.headers
        headers = conditions.mark(headers, self.condition)
        tags = self.tags
        if tags is None:
            _version, tags = bucket_config.get_tags(
                conn, self.source_bucket, self.source_key, self.source_version
            )
        outcome = _write_version(
            conn,
            stamp,
            bucket,
            self.key,
            Kind.OBJECT,
            source.size,
            source.etag,
            headers,
            source.chunks,
        )
        return _tag(conn, stamp, outcome, tags, self.lock)


@dataclass(frozen=True)
class DeleteObject:
    """DELETE without a version id: a delete marker (versioned) or a tombstone."""

    bucket: str
    key: str
    condition: WriteCondition | None = None

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[DeleteResult]:
        bucket = catalog.get_bucket(conn, self.bucket)
        conditions.enforce(conn, self.condition, self.bucket, self.key)
        if not bucket.versioning:
            # Unversioned: the null version is replaced by a tombstone, which S3 never shows
            # but which keeps the delete ordered (LWW) against replicated writes.
            _write_version(
                conn, stamp, bucket, self.key, Kind.TOMBSTONE, 0, "", (), (), NULL_VERSION
            )
            return Outcome(DeleteResult(None, False))
        marker = _write_version(conn, stamp, bucket, self.key, Kind.DELETE_MARKER, 0, "", (), ())
        return Outcome(DeleteResult(marker.result.version_id, True))


@dataclass(frozen=True)
class DeleteVersion:
    """DELETE with a version id: that version is removed for good."""

    bucket: str
    key: str
    version_id: str
    condition: WriteCondition | None = None  # on the key's current version, as AWS checks
    bypass_governance: bool = False  # x-amz-bypass-governance-retention, already authorized

    def touched(self) -> tuple[str, str | None]:
        return self.bucket, self.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[DeleteResult]:
        conditions.enforce(conn, self.condition, self.bucket, self.key)
        check_delete(conn, stamp, self.bucket, self.key, self.version_id, self.bypass_governance)
        removed = catalog.apply_delete_version(conn, stamp, self.bucket, self.key, self.version_id)
        if self.bypass_governance:
            amend_payload(conn, stamp, {"bypass_governance": True})
        marker = removed is not None and removed.kind == Kind.DELETE_MARKER
        return Outcome(DeleteResult(self.version_id, marker))


@dataclass(frozen=True)
class CreateUpload:
    upload: UploadInfo

    def touched(self) -> tuple[str, str | None]:
        return self.upload.bucket, self.upload.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[UploadInfo]:
        created = uploads.apply_create_upload(conn, stamp, self.upload)
        return Outcome(created, journal=(journal.upload_created(stamp, created),))


@dataclass(frozen=True)
class PutPart:
    upload: UploadInfo
    part_number: int
    size: int
    etag: str
    chunks: tuple[ChunkRef, ...]
    # The part's verified x-amz-checksum-* values, kept as the part manifest's headers
    # (for ListParts, checking CompleteMultipartUpload and the object's composite checksum).
    checksums: tuple[tuple[str, str], ...] = ()

    def touched(self) -> tuple[str, str | None]:
        return self.upload.bucket, self.upload.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[PartInfo]:
        part = Manifest(
            Kind.OBJECT,
            self.upload.bucket,
            self.upload.key,
            f"{self.upload.upload_id}.{self.part_number}",
            stamp.pack(),
            stamp.node_id,
            self.size,
            self.etag,
            stamp.wall_ms,
            self.checksums,
            self.chunks,
        )
        info: PartInfo = uploads.apply_put_part(conn, stamp, self.upload, self.part_number, part)
        entry = journal.part_stored(stamp, self.upload.upload_id, self.part_number, part.encode())
        return Outcome(info, journal=(entry,))


@dataclass(frozen=True)
class CompleteUpload:
    upload: UploadInfo
    parts: tuple[tuple[int, str], ...]
    extra_headers: tuple[tuple[str, str], ...]
    tags: bucket_config.Tags = ()
    # (part number, x-amz-checksum-* header, value) the client listed: each must match.
    part_checksums: tuple[tuple[int, str, str], ...] = ()
    # (x-amz-checksum-* header, value): the whole object's checksum sent with the completion.
    expected_checksum: tuple[str, str] | None = None
    condition: WriteCondition | None = None

    def touched(self) -> tuple[str, str | None]:
        return self.upload.bucket, self.upload.key

    def apply(
        self, conn: sqlite3.Connection, stamp: Timestamp
    ) -> Outcome[Manifest | CompletedUpload]:
        # A client retrying a completion whose answer it lost gets the first answer (before
        # the condition: the object it made may be what the condition now refuses).
        first = completions.repeated(conn, self.upload, self.parts)
        if first is not None:
            return Outcome(first)
        conditions.enforce(conn, self.condition, self.upload.bucket, self.upload.key)
        headers = conditions.mark(self.extra_headers, self.condition)
        lock = request_from_upload(self.upload.headers)
        manifest = uploads.apply_complete(
            conn,
            stamp,
            replace(self.upload, headers=without_upload_lock(self.upload.headers)),
            list(self.parts),
            headers,
            self.part_checksums,
            self.expected_checksum,
        )
        completions.record(conn, stamp, self.upload, self.parts, manifest)
        done = journal.upload_done(stamp, self.upload.upload_id)
        return _tag(conn, stamp, Outcome(manifest, journal=(done,)), self.tags, lock)


@dataclass(frozen=True)
class AbortUpload:
    upload: UploadInfo

    def touched(self) -> tuple[str, str | None]:
        return self.upload.bucket, self.upload.key

    def apply(self, conn: sqlite3.Connection, stamp: Timestamp) -> Outcome[None]:
        uploads.apply_abort(conn, self.upload)
        return Outcome(None, journal=(journal.upload_done(stamp, self.upload.upload_id),))
