"""Object operations: PutObject, GetObject, HeadObject, DeleteObject."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from email.utils import formatdate
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from api.body import Body, content_md5
from api.conditionals import check_preconditions
from api.context import S3Context
from api.errors import S3Error
from api.ranges import parse_range
from storage.catalog import NULL_VERSION
from storage.errors import StorageError
from storage.manifest import Manifest
from storage.store import DeleteMarker

log = logging.getLogger("lakenode.api")

KEY_BYTES_MAX = 1024
USER_METADATA_BYTES_MAX = 2048
STORED_HEADERS = (
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
# GetObject query parameters that override response headers (presigned downloads use them).
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


def validate_key(key: str) -> None:
    if len(key.encode()) > KEY_BYTES_MAX:
        raise S3Error("KeyTooLongError", "Your key is too long", resource=key)


def _stored_headers(ctx: S3Context, body: Body) -> list[tuple[str, str]]:
    """Headers kept with the object: standard ones, user metadata and verified checksums."""
    kept: list[tuple[str, str]] = []
    metadata_bytes = 0
    for name, value in ctx.headers.items():
        lowered = name.lower()
        if lowered == "content-encoding":
            # aws-chunked is transport framing, not a property of the object.
            value = ",".join(
                p.strip() for p in value.split(",") if p.strip() and p.strip() != "aws-chunked"
            )
            if not value:
                continue
        if lowered in STORED_HEADERS:
            kept.append((lowered, value))
        elif lowered.startswith("x-amz-meta-"):
            metadata_bytes += len(lowered) - len("x-amz-meta-") + len(value.encode())
            kept.append((lowered, value))
    if metadata_bytes > USER_METADATA_BYTES_MAX:
        raise S3Error(
            "MetadataTooLarge",
            f"Your metadata headers exceed the maximum allowed metadata size "
            f"({USER_METADATA_BYTES_MAX} bytes).",
        )
    if not any(name == "content-type" for name, _ in kept):
        kept.append(("content-type", DEFAULT_CONTENT_TYPE))
    kept.extend(sorted(body.checksum_values().items()))
    return kept


def _check_version_id(ctx: S3Context) -> None:
    version_id = ctx.query.get("versionId")
    if version_id is not None and version_id != NULL_VERSION:
        raise S3Error(
            "NoSuchVersion", "The specified version does not exist.", resource=ctx.resource
        )


async def put_object(ctx: S3Context) -> Response:
    validate_key(ctx.object_key)
    body = Body(ctx.request, ctx.auth)
    if body.declared_length is None and ctx.headers.get("transfer-encoding") is None:
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.")
    if body.declared_length is not None and body.declared_length > ctx.settings.max_object_size:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    expected_md5 = content_md5(ctx.headers)
    headers = _stored_headers(ctx, body)  # validates metadata before the body is read
    writer = await ctx.store.begin_object(
        ctx.bucket_name, ctx.object_key, ctx.settings.max_object_size
    )
    try:
        async for piece in body.stream():
            await writer.write(piece)
        md5 = await writer.finish()
        body.verify()
        if expected_md5 is not None and md5 != expected_md5:
            raise S3Error(
                "BadDigest", "The Content-MD5 you specified did not match what we received."
            )
        manifest = await writer.commit(_stored_headers(ctx, body) if body.trailers else headers)
    except BaseException:
        await writer.abort()
        raise
    response_headers = {"ETag": _etag(manifest)}
    response_headers.update(body.checksum_values())
    return Response(status_code=200, headers=response_headers)


def _etag(manifest: Manifest) -> str:
    return f'"{manifest.etag}"'


def _object_headers(ctx: S3Context, manifest: Manifest, ranged: bool) -> dict[str, str]:
    headers = {
        "ETag": _etag(manifest),
        "Last-Modified": formatdate(manifest.last_modified_ms / 1000, usegmt=True),
        "Accept-Ranges": "bytes",
    }
    # A stored checksum covers the whole object: never send it with part of the object.
    checksum_mode = ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED" and not ranged
    for name, value in manifest.headers:
        if name.startswith("x-amz-checksum-") and not checksum_mode:
            continue
        headers[name] = value
    for parameter, header in RESPONSE_OVERRIDES.items():
        if parameter in ctx.query:
            value = ctx.query[parameter]
            if not _valid_header_value(value):
                raise S3Error("InvalidArgument", f"Invalid value for {parameter}.")
            headers[header] = value
    return headers


def _valid_header_value(value: str) -> bool:
    """Sendable as an HTTP header: latin-1, no control characters (CR/LF would split it)."""
    return all((0x20 <= ord(c) <= 0xFF and ord(c) != 0x7F) or c == "\t" for c in value)


async def _latest(ctx: S3Context) -> Manifest:
    _check_version_id(ctx)
    try:
        return await ctx.store.head_object(ctx.bucket_name, ctx.object_key)
    except DeleteMarker as marker:
        raise S3Error(
            "NoSuchKey",
            "The specified key does not exist.",
            resource=ctx.resource,
            headers={"x-amz-delete-marker": "true"},
        ) from marker


async def head_object(ctx: S3Context) -> Response:
    manifest = await _latest(ctx)
    check_preconditions(ctx.headers, _etag(manifest), manifest.last_modified_ms)
    ranges = parse_range(ctx.headers.get("range"), manifest.size)
    headers = _object_headers(ctx, manifest, ranged=ranges is not None and len(ranges) == 1)
    if ranges is not None and len(ranges) == 1:
        first, last = ranges[0]
        headers["Content-Range"] = f"bytes {first}-{last}/{manifest.size}"
        headers["Content-Length"] = str(last - first + 1)
        return Response(status_code=206, headers=headers)
    headers["Content-Length"] = str(manifest.size)
    return Response(status_code=200, headers=headers)


async def get_object(ctx: S3Context) -> Response:
    manifest = await _latest(ctx)
    check_preconditions(ctx.headers, _etag(manifest), manifest.last_modified_ms)
    ranges = parse_range(ctx.headers.get("range"), manifest.size)
    headers = _object_headers(ctx, manifest, ranged=ranges is not None and len(ranges) == 1)
    status = 200
    first, last = 0, manifest.size - 1
    if ranges is not None and len(ranges) == 1:
        # Several ranges are answered with the whole object (as AWS does) until multi-range
        # (multipart/byteranges) lands.
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
        _guarded(ctx, head, stream),
        status_code=status,
        headers=headers,
        media_type=None,
    )


async def _guarded(ctx: S3Context, head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Stream the body; a failure mid-stream is logged and ends the response early."""
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
    _check_version_id(ctx)
    validate_key(ctx.object_key)
    await ctx.store.delete_object(ctx.bucket_name, ctx.object_key)
    return Response(status_code=204)


def encode_key(key: str, encoding_type: str | None) -> str:
    return quote(key, safe="/") if encoding_type == "url" else key
