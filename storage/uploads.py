"""Multipart uploads: create, parts, complete (a metadata operation), abort, list.

A part is stored like an object's data (chunks in segments) and described by a manifest
kept in the ``parts`` table. Completion concatenates the chosen parts' chunk lists into the
object's manifest, so no data is copied; the part rows go away and the object version is
written (with its change-log row) exactly as PutObject writes one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import sqlite3
from dataclasses import dataclass

from storage import checksums
from storage.catalog import apply_put_version, get_bucket, version_id_for_write
from storage.errors import (
    BadDigest,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
)
from storage.hlc import Timestamp
from storage.listing import after, common_prefix
from storage.manifest import ChunkRef, Kind, Manifest, decode

PART_NUMBER_MAX = 10_000
PART_BYTES_MIN = 5 * 1024 * 1024
PAGE_ROWS = 1000
CHECKSUM_HEADER_PREFIX = "x-amz-checksum-"
# The upload's checksum type (COMPOSITE / FULL_OBJECT), kept with the upload's headers and,
# after completion, with the object's.
CHECKSUM_TYPE_HEADER = CHECKSUM_HEADER_PREFIX + "type"
# Internal object header: the parts' checksums (base64, in part order) of a checksummed upload.
PART_CHECKSUMS_HEADER = "x-lakenode-part-checksums"
PART_SIZES_HEADER = "x-lakenode-parts"
# Internal part header: the default CRC64NVME of a part of an upload created without an
# algorithm, kept apart from the client's checksums (ListParts shows only those, as S3 does).
DEFAULT_PART_CHECKSUM_HEADER = "x-lakenode-default-crc64nvme"


@dataclass(frozen=True)
class UploadInfo:
    upload_id: str
    bucket: str
    key: str
    initiated_ms: int
    owner: str
    headers: tuple[tuple[str, str], ...]
    checksum: str


@dataclass(frozen=True)
class PartInfo:
    part_number: int
    size: int
    etag: str
    modified_ms: int
    manifest: Manifest


@dataclass(frozen=True)
class UploadPage:
    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


def new_upload_id() -> str:
    return secrets.token_urlsafe(24)


def apply_create_upload(
    conn: sqlite3.Connection, stamp: Timestamp, upload: UploadInfo
) -> UploadInfo:
    get_bucket(conn, upload.bucket)
    conn.execute(
        "INSERT INTO uploads (upload_id, bucket, key, initiated_ms, owner, headers, checksum)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            upload.upload_id,
            upload.bucket,
            upload.key,
            stamp.wall_ms,
            upload.owner,
            json.dumps(upload.headers),
            upload.checksum,
        ),
    )
    return UploadInfo(
        upload.upload_id,
        upload.bucket,
        upload.key,
        stamp.wall_ms,
        upload.owner,
        upload.headers,
        upload.checksum,
    )


def _upload_from_row(row: tuple[str, str, str, int, str, str, str]) -> UploadInfo:
    upload_id, bucket, key, initiated_ms, owner, headers, checksum = row
    return UploadInfo(
        upload_id,
        bucket,
        key,
        initiated_ms,
        owner,
        tuple((str(n), str(v)) for n, v in json.loads(headers)),
        checksum,
    )


_UPLOAD_COLUMNS = "upload_id, bucket, key, initiated_ms, owner, headers, checksum"


def get_upload(conn: sqlite3.Connection, bucket: str, key: str, upload_id: str) -> UploadInfo:
    get_bucket(conn, bucket)
    row = conn.execute(
        f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id = ? AND bucket = ? AND key = ?",
        (upload_id, bucket, key),
    ).fetchone()
    if row is None:
        raise NoSuchUpload(upload_id)
    return _upload_from_row(row)


def apply_put_part(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    upload: UploadInfo,
    part_number: int,
    part: Manifest,
) -> PartInfo:
    """Record a part (replacing an earlier upload of the same number)."""
    get_upload(conn, upload.bucket, upload.key, upload.upload_id)
    conn.execute(
        "INSERT INTO parts (upload_id, part_number, size, etag, modified_ms, manifest)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (upload_id, part_number) DO UPDATE SET"
        " size = excluded.size, etag = excluded.etag, modified_ms = excluded.modified_ms,"
        " manifest = excluded.manifest",
        (upload.upload_id, part_number, part.size, part.etag, stamp.wall_ms, part.encode()),
    )
    return PartInfo(part_number, part.size, part.etag, stamp.wall_ms, part)


def list_parts(
    conn: sqlite3.Connection, upload: UploadInfo, after_part: int, max_parts: int
) -> tuple[list[PartInfo], bool]:
    get_upload(conn, upload.bucket, upload.key, upload.upload_id)
    rows = conn.execute(
        "SELECT part_number, size, etag, modified_ms, manifest FROM parts"
        " WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
        (upload.upload_id, after_part, max_parts + 1),
    ).fetchall()
    parts = [PartInfo(n, size, etag, ms, decode(blob)) for n, size, etag, ms, blob in rows]
    return parts[:max_parts], len(parts) > max_parts


def multipart_etag(part_md5_hex: list[str]) -> str:
    """S3's multipart ETag: MD5 of the parts' binary MD5s, then '-' and the part count."""
    digest = hashlib.md5(b"".join(bytes.fromhex(etag) for etag in part_md5_hex)).hexdigest()
    return f"{digest}-{len(part_md5_hex)}"


def apply_complete(
    conn: sqlite3.Connection,
    stamp: Timestamp,
    upload: UploadInfo,
    requested: list[tuple[int, str]],
    extra_headers: tuple[tuple[str, str], ...],
    part_checksums: tuple[tuple[int, str, str], ...] = (),
    expected_checksum: tuple[str, str] | None = None,
) -> Manifest:
    """Validate the part list, build the object's manifest from the parts, and commit it.

    ``expected_checksum`` (header, value): the whole object's checksum the client sent with
    the completion; it must equal the one built from the parts (BadDigest otherwise)."""
    bucket = get_bucket(conn, upload.bucket)
    get_upload(conn, upload.bucket, upload.key, upload.upload_id)
    stored = {
        int(number): (int(size), str(etag), bytes(blob))
        for number, size, etag, blob in conn.execute(
            "SELECT part_number, size, etag, manifest FROM parts WHERE upload_id = ?",
            (upload.upload_id,),
        )
    }
    numbers = [number for number, _etag in requested]
    if any(later <= earlier for earlier, later in itertools.pairwise(numbers)):
        raise InvalidPartOrder("parts must be listed in ascending order of part number")
    for number, etag in requested:
        if number not in stored or stored[number][1] != etag.strip('"'):
            raise InvalidPart(f"part {number} with ETag {etag} was not uploaded")
    for number in numbers[:-1]:
        if stored[number][0] < PART_BYTES_MIN:
            raise EntityTooSmall(f"part {number} is {stored[number][0]} bytes; minimum 5 MiB")
    parts = {n: decode(stored[n][2]) for n in numbers}
    _check_part_checksums(parts, part_checksums)
    chunks: list[ChunkRef] = [c for n in numbers for c in parts[n].chunks]
    etags = [stored[number][1] for number in numbers]
    manifest = Manifest(
        Kind.OBJECT,
        upload.bucket,
        upload.key,
        version_id_for_write(bucket, stamp),
        stamp.pack(),
        stamp.node_id,
        sum(c.length for c in chunks),
        multipart_etag(etags),
        stamp.wall_ms,
        tuple(h for h in upload.headers if h[0] != CHECKSUM_TYPE_HEADER)
        + extra_headers
        + _object_checksum(upload, [parts[n] for n in numbers], expected_checksum)
        + ((PART_SIZES_HEADER, _part_sizes([stored[n][0] for n, _ in requested])),),
        tuple(chunks),
    )
    apply_put_version(conn, manifest, manifest.encode(), stamp)
    conn.execute("DELETE FROM uploads WHERE upload_id = ?", (upload.upload_id,))
    return manifest


def _check_part_checksums(
    parts: dict[int, Manifest], listed: tuple[tuple[int, str, str], ...]
) -> None:
    """Each checksum the client listed for a part must be the one stored with the part."""
    for number, name, value in listed:
        part = parts.get(number)
        stored = _part_checksum(part, name) if part is not None else None
        if stored is None or stored != value.strip():
            raise InvalidPart(f"part {number}: {name} {value} does not match the part's")


def _part_checksum(part: Manifest, name: str) -> str | None:
    """A part's stored checksum for the ``x-amz-checksum-<alg>`` header ``name``: the one
    the client sent or the upload's algorithm gave it, else (CRC64NVME) the default one."""
    headers = dict(part.headers)
    value = headers.get(name)
    if value is None and name == CHECKSUM_HEADER_PREFIX + checksums.DEFAULT_ALGORITHM.lower():
        value = headers.get(DEFAULT_PART_CHECKSUM_HEADER)
    return value


def whole_object_checksum(headers: tuple[tuple[str, str], ...], algorithm: str) -> str | None:
    """An object's stored ``algorithm`` checksum when it is of the whole object's bytes
    (FULL_OBJECT: a single PUT's, a copy's or a full-object multipart one), else None."""
    values = dict(headers)
    value = values.get(CHECKSUM_HEADER_PREFIX + algorithm.lower())
    if value is None or values.get(CHECKSUM_TYPE_HEADER, checksums.FULL_OBJECT) != (
        checksums.FULL_OBJECT
    ):
        return None
    return value


def upload_checksum_type(upload: UploadInfo) -> str:
    """COMPOSITE or FULL_OBJECT for an upload with an algorithm ('' without one); uploads
    created before checksum types existed were all COMPOSITE."""
    if not upload.checksum:
        return ""
    return dict(upload.headers).get(CHECKSUM_TYPE_HEADER, checksums.COMPOSITE)


def _object_checksum(
    upload: UploadInfo, parts: list[Manifest], expected: tuple[str, str] | None
) -> tuple[tuple[str, str], ...]:
    """The object's checksum headers, built from the parts' stored checksums (no data is
    read): FULL_OBJECT combines the part CRCs, COMPOSITE digests their concatenation (see
    storage/checksums.py). For an upload created with x-amz-checksum-algorithm. Created
    without one, the object gets a FULL_OBJECT CRC, as on S3: the whole-object CRC the
    completion sends (every part must carry that CRC), or else AWS's default CRC64NVME
    (parts uploaded before lakenode kept it have none: then the object has no checksum)."""
    algorithm, checksum_type = upload.checksum, upload_checksum_type(upload)
    if not algorithm:
        checksum_type = checksums.FULL_OBJECT
        if expected is None:
            algorithm = checksums.DEFAULT_ALGORITHM
            name = CHECKSUM_HEADER_PREFIX + algorithm.lower()
            if any(_part_checksum(part, name) is None for part in parts):
                return ()
        else:
            algorithm = expected[0].removeprefix(CHECKSUM_HEADER_PREFIX).upper()
            if algorithm not in checksums.CRC_ALGORITHMS:
                raise BadDigest(
                    f"The upload was created without a checksum; {expected[0]} was sent."
                )
    name = CHECKSUM_HEADER_PREFIX + algorithm.lower()
    listed = []
    for part in parts:
        value = _part_checksum(part, name)
        if value is None:
            raise InvalidPart(f"part {part.version_id} has no {algorithm} checksum")
        listed.append((value, part.size))
    try:
        value = checksums.multipart_checksum(algorithm, checksum_type, listed)
    except checksums.ChecksumMismatch as error:
        raise InvalidPart(str(error)) from error
    if expected is not None and expected != (name, value):
        raise BadDigest(f"The {algorithm} you specified did not match the calculated checksum.")
    return (
        (name, value),
        (CHECKSUM_TYPE_HEADER, checksum_type),
        (PART_CHECKSUMS_HEADER, ",".join(v for v, _size in listed)),
    )


def _part_sizes(sizes: list[int]) -> str:
    """Part boundaries, kept so GetObject?partNumber= and attributes can find them."""
    return ",".join(str(size) for size in sizes)


def apply_abort(conn: sqlite3.Connection, upload: UploadInfo) -> None:
    get_upload(conn, upload.bucket, upload.key, upload.upload_id)
    conn.execute("DELETE FROM uploads WHERE upload_id = ?", (upload.upload_id,))


def list_uploads(
    conn: sqlite3.Connection,
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
) -> UploadPage:
    """Uploads in progress by key, then initiation; keyset-paginated like list_versions."""
    get_bucket(conn, bucket)
    uploads: list[UploadInfo] = []
    prefixes: list[str] = []
    after_key, after_tail, floor = (
        key_marker,
        _marker_tail(conn, bucket, key_marker, upload_id_marker),
        prefix,
    )
    next_key: str | None = None
    next_upload: str | None = None
    while True:
        rows = _upload_rows(conn, bucket, after_key, after_tail, floor)
        if not rows:
            return UploadPage(uploads, prefixes, False, None, None)
        for row in rows:
            upload = _upload_from_row(row)
            if not upload.key.startswith(prefix):
                return UploadPage(uploads, prefixes, False, None, None)
            group = common_prefix(upload.key, prefix, delimiter)
            if group is not None and group == key_marker:
                after_key, after_tail, floor = upload.key, None, after(group)
                break
            if len(uploads) + len(prefixes) == max_uploads:
                return UploadPage(uploads, prefixes, True, next_key, next_upload)
            if group is not None:
                prefixes.append(group)
                next_key, next_upload = group, None
                after_key, after_tail, floor = upload.key, None, after(group)
                break
            uploads.append(upload)
            next_key, next_upload = upload.key, upload.upload_id
            after_key, after_tail = upload.key, (upload.initiated_ms, upload.upload_id)


def _marker_tail(
    conn: sqlite3.Connection, bucket: str, key_marker: str, upload_id_marker: str
) -> tuple[int, str] | None:
    if not (key_marker and upload_id_marker):
        return None
    row = conn.execute(
        "SELECT initiated_ms, upload_id FROM uploads WHERE bucket = ? AND key = ?"
        " AND upload_id = ?",
        (bucket, key_marker, upload_id_marker),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def _upload_rows(
    conn: sqlite3.Connection,
    bucket: str,
    after_key: str,
    after_tail: tuple[int, str] | None,
    floor: str,
) -> list[tuple[str, str, str, int, str, str, str]]:
    params: tuple[str | int, ...]
    if after_tail is None:
        where, params = "key > ?", (after_key,)
    else:
        where = "(key > ? OR (key = ? AND (initiated_ms, upload_id) > (?, ?)))"
        params = (after_key, after_key, *after_tail)
    rows: list[tuple[str, str, str, int, str, str, str]] = conn.execute(
        f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE bucket = ? AND {where} AND key >= ?"
        " ORDER BY key, initiated_ms, upload_id LIMIT ?",
        (bucket, *params, floor, PAGE_ROWS),
    ).fetchall()
    return rows
