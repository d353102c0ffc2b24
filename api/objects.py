"""Object operations: PutObject, CopyObject, GetObject, HeadObject, DeleteObject."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from email.utils import formatdate

from starlette.responses import Response, StreamingResponse

from api import xml
from api.access import authorize
from api.acl_handlers import object_acl_headers, with_acl
from api.body import Body
from api.checksums import (
    TYPE_HEADER,
    checksum_elements,
    header_name,
    new_checksum,
    normalize_algorithm,
    stored_checksum_type,
)
from api.conditionals import check_preconditions
from api.context import S3Context
from api.copy import authorize_copy_source, check_copy_preconditions, parse_copy_source
from api.errors import S3Error
from api.lifecycle import expiration_header
from api.object_lock import bypass_governance, version_lock_headers, write_lock
from api.part_get import part_range
from api.ranges import parse_range
from api.tagging import copy_tags, header_tags, tag_count_headers
from api.upload import (
    check_declared_length,
    object_headers,
    receive,
    refuse_unsupported_headers,
    validate_key,
)
from api.write_conditions import observe_write_condition
from storage.catalog import NULL_VERSION
from storage.checksums import DEFAULT_ALGORITHM
from storage.errors import NoSuchKey, NoSuchVersion, StorageError
from storage.manifest import Manifest
from storage.store import DeleteMarker
from storage.uploads import PART_CHECKSUMS_HEADER

log = logging.getLogger("lakenode.api")

COPY_SOURCE_BYTES_MAX = 5 << 30  # AWS's limit for CopyObject; larger copies use parts
# GetObject query parameters that override response headers (presigned downloads use them).
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
# Headers the manifest keeps for lakenode's own use, never sent to clients.
INTERNAL_HEADER_PREFIX = "x-lakenode-"


def _etag(manifest: Manifest) -> str:
    return f'"{manifest.etag}"'


def _version_headers(manifest: Manifest) -> dict[str, str]:
    return {} if manifest.version_id == NULL_VERSION else {"x-amz-version-id": manifest.version_id}


async def put_object(ctx: S3Context) -> Response:
    validate_key(ctx.object_key)
    # Without a checksum of its own the object gets AWS's default CRC64NVME, computed as
    # the body streams in (and returned, as S3 returns it).
    body = Body(ctx.request, ctx.auth, default=DEFAULT_ALGORITHM)
    check_declared_length(ctx, body, ctx.settings.max_object_size)
    headers = object_headers(ctx.headers, lock=True)  # validated before the body is read
    headers += await object_acl_headers(ctx)
    lock = await write_lock(ctx)
    tags = header_tags(ctx)
    condition = await observe_write_condition(ctx)  # 412 now if it already fails
    writer = await ctx.store.begin_object(
        ctx.bucket_name, ctx.object_key, ctx.settings.max_object_size
    )
    await receive(ctx, writer, body)
    checksums = body.object_checksums()
    manifest = await writer.commit(headers + sorted(checksums.items()), tags, condition, lock)
    response_headers = {"ETag": _etag(manifest), **_version_headers(manifest)}
    response_headers.update(checksums)
    if checksums:
        response_headers[TYPE_HEADER] = "FULL_OBJECT"  # always, for a single PUT (AWS)
    return Response(status_code=200, headers=response_headers)


async def copy_object(ctx: S3Context) -> Response:
    validate_key(ctx.object_key)
    refuse_unsupported_headers(ctx.headers, lock=True)
    lock = await write_lock(ctx, body=False)
    bucket, key, version_id = parse_copy_source(ctx.headers["x-amz-copy-source"])
    await authorize_copy_source(ctx, bucket, key, version_id)
    source = await _source_version(bucket, key, version_id, ctx)
    check_copy_preconditions(ctx.headers, _etag(source), source.last_modified_ms)
    if source.size > COPY_SOURCE_BYTES_MAX:
        raise S3Error(
            "InvalidRequest",
            "The specified copy source is larger than the maximum "
            f"allowable size for a copy source: {COPY_SOURCE_BYTES_MAX}",
        )
    directive = ctx.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.")
    fresh_checksum = await _copy_checksum(ctx, source)
    acl_headers = await object_acl_headers(ctx)
    if directive == "REPLACE":
        checksums = fresh_checksum or tuple(
            (n, v) for n, v in source.headers if n.startswith("x-amz-checksum-")
        )
        headers = tuple(object_headers(ctx.headers, lock=True)) + checksums + acl_headers
    elif fresh_checksum:
        headers = with_acl(_without_checksums(source.headers) + fresh_checksum, acl_headers)
    elif (bucket, key) == (ctx.bucket_name, ctx.object_key) and version_id is None:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to "
            "copy an object to itself without changing the object's metadata, storage "
            "class, website redirect location or encryption attributes.",
        )
    else:
        headers = with_acl(source.headers, acl_headers)
    headers += await _default_copy_checksum(ctx, source, headers)
    condition = await observe_write_condition(ctx)  # on the destination key
    manifest = await ctx.store.copy_object(
        source, ctx.bucket_name, ctx.object_key, headers, copy_tags(ctx), condition, lock
    )
    response = Response(
        xml.render(
            "CopyObjectResult",
            [
                ("LastModified", xml.iso8601_ms(manifest.last_modified_ms)),
                ("ETag", _etag(manifest)),
                *checksum_elements(manifest.headers),
                ("ChecksumType", stored_checksum_type(manifest.headers)),
            ],
        ),
        media_type="application/xml",
    )
    response.headers.update(_version_headers(manifest))
    if source.version_id != NULL_VERSION:
        response.headers["x-amz-copy-source-version-id"] = source.version_id
    return response


async def _copy_checksum(ctx: S3Context, source: Manifest) -> tuple[tuple[str, str], ...]:
    """CopyObject with x-amz-checksum-algorithm: a new checksum of the copied data (the
    source read once more, chunk by chunk, BLAKE3-verified) for the copy; () without it."""
    requested = ctx.headers.get("x-amz-checksum-algorithm")
    if not requested:
        return ()
    return await _source_checksum(ctx, source, normalize_algorithm(requested))


async def _default_copy_checksum(
    ctx: S3Context, source: Manifest, headers: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    """A copy that would carry no checksum (its source was written without one, before
    lakenode gave every new object AWS's default) gets the default CRC64NVME, as on S3: the
    source is read once more for it, as for x-amz-checksum-algorithm; () otherwise."""
    if checksum_elements(headers):
        return ()
    return await _source_checksum(ctx, source, DEFAULT_ALGORITHM)


async def _source_checksum(
    ctx: S3Context, source: Manifest, algorithm: str
) -> tuple[tuple[str, str], ...]:
    """The full-object checksum headers of ``source`` computed over its data (read chunk by
    chunk, BLAKE3-verified: memory stays bounded)."""
    checksum = new_checksum(algorithm)
    if source.size:
        async for piece in ctx.store.read(source, 0, source.size - 1):
            checksum.update(piece)
    return (
        (header_name(checksum.algorithm), checksum.b64digest()),
        (TYPE_HEADER, "FULL_OBJECT"),
    )


def _without_checksums(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """A source's headers without its checksums (and the part checksums behind them)."""
    return tuple(
        (n, v)
        for n, v in headers
        if not n.startswith("x-amz-checksum-") and n != PART_CHECKSUMS_HEADER
    )


async def _source_version(
    bucket: str, key: str, version_id: str | None, ctx: S3Context
) -> Manifest:
    try:
        return await ctx.store.head_object(bucket, key, version_id)
    except DeleteMarker as marker:
        if version_id is not None:
            raise S3Error(
                "InvalidRequest",
                "The source of a copy request may not specifically "
                "refer to a delete marker by version id.",
            ) from marker
        raise S3Error(
            "NoSuchKey", "The specified key does not exist.", resource=f"/{bucket}/{key}"
        ) from marker


def _object_headers(ctx: S3Context, manifest: Manifest, ranged: bool) -> dict[str, str]:
    headers = {
        "ETag": _etag(manifest),
        "Last-Modified": formatdate(manifest.last_modified_ms / 1000, usegmt=True),
        "Accept-Ranges": "bytes",
        **_version_headers(manifest),
    }
    # A stored checksum covers the whole object: never send it with part of the object.
    checksum_mode = ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED" and not ranged
    for name, value in manifest.headers:
        if name.startswith(INTERNAL_HEADER_PREFIX):
            continue
        if name.startswith("x-amz-checksum-") and not checksum_mode:
            continue
        headers[name] = value
    checksum_type = stored_checksum_type(manifest.headers)
    if checksum_mode and checksum_type is not None:
        headers[TYPE_HEADER] = checksum_type
    for parameter, header in RESPONSE_OVERRIDES.items():
        if parameter in ctx.query:
            value = ctx.query[parameter]
            if not _valid_header_value(value):
                raise S3Error("InvalidArgument", f"Invalid value for {parameter}.")
            headers[header] = value
    return headers


async def _replication_header(ctx: S3Context, manifest: Manifest) -> dict[str, str]:
    """x-amz-replication-status, and the version's object lock headers (HEAD and GET)."""
    status = await ctx.replication_status(manifest)
    headers = {"x-amz-replication-status": status} if status else {}
    headers.update(
        await version_lock_headers(ctx, manifest.bucket, manifest.key, manifest.version_id)
    )
    return headers


def _valid_header_value(value: str) -> bool:
    """Sendable as an HTTP header: latin-1, no control characters (CR/LF would split it)."""
    return all((0x20 <= ord(c) <= 0xFF and ord(c) != 0x7F) or c == "\t" for c in value)


async def _requested_version(ctx: S3Context) -> Manifest:
    version_id = ctx.query.get("versionId")
    try:
        return await ctx.store.head_object(ctx.bucket_name, ctx.object_key, version_id)
    except (NoSuchKey, NoSuchVersion) as missing:
        # As on AWS: who may not list the bucket learns nothing about which keys exist.
        await authorize(ctx, "s3:ListBucket", ctx.bucket_name)
        if isinstance(missing, DeleteMarker):
            raise _delete_marker_error(ctx, missing, version_id) from missing
        raise


def _delete_marker_error(ctx: S3Context, marker: DeleteMarker, version_id: str | None) -> S3Error:
    headers = {"x-amz-delete-marker": "true", **_version_headers(marker.manifest)}
    if version_id is not None:
        # Asking for a delete marker by id: 405, as AWS answers.
        headers["Allow"] = "DELETE"
        return S3Error(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            resource=ctx.resource,
            headers=headers,
        )
    return S3Error(
        "NoSuchKey", "The specified key does not exist.", resource=ctx.resource, headers=headers
    )


def _requested_ranges(
    ctx: S3Context, manifest: Manifest
) -> tuple[list[tuple[int, int]] | None, dict[str, str]]:
    """The Range header's byte ranges, or those of ?partNumber= (with its headers)."""
    part = ctx.query.get("partNumber")
    if part is not None:
        return part_range(ctx, manifest, part)
    return parse_range(ctx.headers.get("range"), manifest.size), {}


async def head_object(ctx: S3Context) -> Response:
    manifest = await _requested_version(ctx)
    check_preconditions(ctx.headers, _etag(manifest), manifest.last_modified_ms)
    ranges, part_headers = _requested_ranges(ctx, manifest)
    headers = _object_headers(ctx, manifest, ranged=ranges is not None)
    headers.update(part_headers)
    headers.update(await expiration_header(ctx, manifest, "versionId" not in ctx.query))
    headers.update(await _replication_header(ctx, manifest))
    headers.update(await tag_count_headers(ctx, manifest))
    if ranges is not None and len(ranges) == 1:
        first, last = ranges[0]
        headers["Content-Range"] = f"bytes {first}-{last}/{manifest.size}"
        headers["Content-Length"] = str(last - first + 1)
        return Response(status_code=206, headers=headers)
    headers["Content-Length"] = str(manifest.size)
    return Response(status_code=200, headers=headers)


async def get_object(ctx: S3Context) -> Response:
    manifest = await _requested_version(ctx)
    check_preconditions(ctx.headers, _etag(manifest), manifest.last_modified_ms)
    ranges, part_headers = _requested_ranges(ctx, manifest)
    headers = _object_headers(ctx, manifest, ranged=ranges is not None)
    headers.update(part_headers)
    headers.update(await expiration_header(ctx, manifest, "versionId" not in ctx.query))
    headers.update(await _replication_header(ctx, manifest))
    headers.update(await tag_count_headers(ctx, manifest))
    if ranges is not None and len(ranges) > 1:
        return _multi_range(ctx, manifest, ranges, headers)
    status = 200
    first, last = 0, manifest.size - 1
    if ranges is not None:
        first, last = ranges[0]
        status = 206
        headers["Content-Range"] = f"bytes {first}-{last}/{manifest.size}"
    headers["Content-Length"] = str(last - first + 1)
    if manifest.size == 0:
        return Response(status_code=status, headers=headers)
    stream = ctx.store.read(manifest, first, last)
    # Read (and verify) the first piece before answering, so that a damaged chunk at the
    # start becomes a clean 500 instead of a truncated 200.
    head = await anext(stream)
    if len(head) == last - first + 1:
        # The whole answer is one verified piece (at most one chunk): a plain response
        # avoids the streaming machinery, which costs more than a small GET itself.
        await stream.aclose()
        return Response(head, status_code=status, headers=headers)
    return StreamingResponse(
        _guarded(ctx, head, stream), status_code=status, headers=headers, media_type=None
    )


def _multi_range(
    ctx: S3Context, manifest: Manifest, ranges: list[tuple[int, int]], headers: dict[str, str]
) -> Response:
    """Several ranges: one multipart/byteranges body (RFC 9110 section 14.6)."""
    boundary = secrets.token_hex(16)
    content_type = headers.pop("content-type", "binary/octet-stream")
    part_heads = [
        (
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: bytes {first}-{last}/{manifest.size}\r\n\r\n"
        ).encode()
        for first, last in ranges
    ]
    closing = f"--{boundary}--\r\n".encode()
    length = sum(
        len(h) + (last - first + 1) + 2 for h, (first, last) in zip(part_heads, ranges, strict=True)
    ) + len(closing)
    headers["Content-Length"] = str(length)

    async def body() -> AsyncIterator[bytes]:
        for part_head, (first, last) in zip(part_heads, ranges, strict=True):
            yield part_head
            async for piece in ctx.store.read(manifest, first, last):
                yield piece
            yield b"\r\n"
        yield closing

    return StreamingResponse(
        _guarded(ctx, b"", body()),
        status_code=206,
        headers=headers,
        media_type=f"multipart/byteranges; boundary={boundary}",
    )


async def _guarded(ctx: S3Context, head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Stream the body; a failure mid-stream is logged and ends the response early."""
    if head:
        yield head
    try:
        async for piece in rest:
            yield piece
    except StorageError:
        log.exception(
            "request %s: read of %s failed mid-stream; response cut short",
            ctx.request_id,
            ctx.resource,
        )
        raise


async def delete_object(ctx: S3Context) -> Response:
    validate_key(ctx.object_key)
    version_id = ctx.query.get("versionId")
    condition = await observe_write_condition(ctx, allow_if_none_match=False)
    bypass = await bypass_governance(ctx) if version_id is not None else False
    result = await ctx.store.delete_object(
        ctx.bucket_name, ctx.object_key, version_id, condition, bypass
    )
    headers = {}
    if result.version_id is not None and result.version_id != NULL_VERSION:
        headers["x-amz-version-id"] = result.version_id
    elif version_id == NULL_VERSION:
        headers["x-amz-version-id"] = NULL_VERSION
    if result.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    return Response(status_code=204, headers=headers)
