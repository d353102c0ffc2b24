"""Recently completed multipart uploads, so that a repeated CompleteMultipartUpload gets the
answer of the first one.

Clients retry a completion whose answer was lost; by then the upload is gone. The completing
transaction records (``completed_uploads``) the upload, the part list it was completed with
and the resulting object's ETag, version id and checksums. A later completion of the same
upload with the same parts gets that result (nothing is written again); with other parts it
gets NoSuchUpload, as for any upload that is no longer in progress. Records are kept for
:data:`RETENTION_MS` and pruned by later completions. rebuild-index does not rebuild them: a
retry after a rebuild gets NoSuchUpload, as every retry did before this table existed.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from storage.errors import NoSuchUpload
from storage.hlc import Timestamp
from storage.manifest import Manifest
from storage.uploads import CHECKSUM_HEADER_PREFIX, UploadInfo

RETENTION_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class CompletedUpload:
    """What the first completion answered (the attributes the API reads from a Manifest)."""

    etag: str
    version_id: str
    headers: tuple[tuple[str, str], ...]  # the object's x-amz-checksum-* headers


def _part_list(parts: tuple[tuple[int, str], ...] | list[tuple[int, str]]) -> list[list[Any]]:
    return [[int(number), etag.strip().strip('"')] for number, etag in parts]


def _upload_from_json(text: str) -> UploadInfo:
    document = json.loads(text)
    document["headers"] = tuple((str(n), str(v)) for n, v in document["headers"])
    return UploadInfo(**document)


def record(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    upload: UploadInfo,
    parts: tuple[tuple[int, str], ...],
    manifest: Manifest,
) -> None:
    """Remember a completion (inside its transaction) and forget those past retention."""
    conn.execute(
        "DELETE FROM completed_uploads WHERE completed_ms < ?", (stamp.wall_ms - RETENTION_MS,)
    )
    checksums = [[n, v] for n, v in manifest.headers if n.startswith(CHECKSUM_HEADER_PREFIX)]
    result = {"etag": manifest.etag, "version_id": manifest.version_id, "headers": checksums}
    conn.execute(
        "INSERT OR REPLACE INTO completed_uploads (upload_id, bucket, key, completed_ms, upload,"
        " parts, result) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            upload.upload_id,
            upload.bucket,
            upload.key,
            stamp.wall_ms,
            json.dumps(dataclasses.asdict(upload)),
            json.dumps(_part_list(parts)),
            json.dumps(result),
        ),
    )


def _row(conn: sqlite3.Connection, bucket: str, key: str, upload_id: str) -> Any:
    return conn.execute(
        "SELECT upload, parts, result FROM completed_uploads"
        " WHERE upload_id = ? AND bucket = ? AND key = ?",
        (upload_id, bucket, key),
    ).fetchone()


def completed_upload(conn: sqlite3.Connection, bucket: str, key: str, upload_id: str) -> UploadInfo:
    """The upload as it was before it completed; NoSuchUpload if no completion is known."""
    row = _row(conn, bucket, key, upload_id)
    if row is None:
        raise NoSuchUpload(upload_id)
    return _upload_from_json(row[0])


def repeated(
    conn: sqlite3.Connection, upload: UploadInfo, parts: tuple[tuple[int, str], ...]
) -> CompletedUpload | None:
    """None while the upload is in progress; the first answer when it completed with these
    parts; NoSuchUpload when it is unknown or completed with other parts."""
    in_progress = conn.execute(
        "SELECT 1 FROM uploads WHERE upload_id = ?", (upload.upload_id,)
    ).fetchone()
    if in_progress is not None:
        return None
    row = _row(conn, upload.bucket, upload.key, upload.upload_id)
    if row is None or json.loads(row[1]) != _part_list(parts):
        raise NoSuchUpload(upload.upload_id)
    result = json.loads(row[2])
    headers = tuple((str(n), str(v)) for n, v in result["headers"])
    return CompletedUpload(str(result["etag"]), str(result["version_id"]), headers)
