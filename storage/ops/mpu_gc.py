"""Stale multipart uploads: list them, abort them (their parts' bytes become GC garbage).

An abort goes through the store's own abort path (AbortUpload, group commit), exactly as
AbortMultipartUpload does. Uploads in progress are not replicated (only a completed upload
is, as an object.put), and neither is their abort: each site collects its own.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from storage import uploads
from storage.errors import NoSuchBucket, NoSuchUpload
from storage.ops.jobstate import Progress
from storage.store import Store
from storage.uploads import UploadInfo


@dataclass(frozen=True)
class StaleUpload:
    upload: UploadInfo
    parts: int
    part_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.upload.bucket,
            "key": self.upload.key,
            "upload_id": self.upload.upload_id,
            "initiated_ms": self.upload.initiated_ms,
            "parts": self.parts,
            "part_bytes": self.part_bytes,
        }


async def stale_uploads(store: Store, older_than_ms: int) -> list[StaleUpload]:
    """Uploads initiated at least ``older_than_ms`` ago, oldest first."""
    return await store.inspect(_stale, store.time_source.wall_ms() - older_than_ms)


def _stale(conn: sqlite3.Connection, cutoff_ms: int) -> list[StaleUpload]:
    rows = conn.execute(
        "SELECT u.upload_id, u.bucket, u.key, count(p.part_number), coalesce(sum(p.size), 0)"
        " FROM uploads u LEFT JOIN parts p ON p.upload_id = u.upload_id"
        " WHERE u.initiated_ms <= ? GROUP BY u.upload_id ORDER BY u.initiated_ms, u.upload_id",
        (cutoff_ms,),
    ).fetchall()
    return [
        StaleUpload(uploads.get_upload(conn, bucket, key, upload_id), int(count), int(size))
        for upload_id, bucket, key, count, size in rows
    ]


async def abort_stale(
    store: Store, stale: list[StaleUpload], progress: Progress
) -> list[StaleUpload]:
    """Abort each upload; return those aborted (one completed or aborted meanwhile is not)."""
    aborted = []
    for number, item in enumerate(stale, start=1):
        try:
            await store.multipart.abort_upload(item.upload)
        except (NoSuchUpload, NoSuchBucket):
            progress.note(f"{item.upload.upload_id}: already completed or aborted")
            continue
        aborted.append(item)
        progress.advance(number, len(stale), "uploads")
    return aborted
