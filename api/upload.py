"""What PutObject and UploadPart share: request headers to keep, and receiving a body.

A body is received into an ObjectWriter (chunks appended to segments, nothing visible) and
then checked as a whole (declared length, payload hash, checksums, Content-MD5); only a body
that passed every check may be committed by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping

from api.body import Body, content_md5
from api.context import S3Context
from api.errors import S3Error
from storage.object_writer import ObjectWriter

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


_UNSUPPORTED_HEADER_PREFIXES = (
    "x-amz-server-side-encryption",
    "x-amz-website-redirect-location",
)
# Served by PutObject, CopyObject and CreateMultipartUpload (api/object_lock.py), refused
# wherever else a write could carry them (POST Object's form, for one).
LOCK_HEADER_PREFIX = "x-amz-object-lock-"


def refuse_unsupported_headers(headers: Mapping[str, str], lock: bool = False) -> None:
    """Features a client asks for that lakenode does not provide are refused, never ignored:
    a client told "encrypted" or "locked" must not get a plain object. ``lock``: this call
    applies the object lock headers itself."""
    refused = (
        _UNSUPPORTED_HEADER_PREFIXES
        if lock
        else (*_UNSUPPORTED_HEADER_PREFIXES, LOCK_HEADER_PREFIX)
    )
    for name in headers:
        lowered = name.lower()
        if lowered.startswith(refused):
            raise S3Error("NotImplemented", f"{lowered} is not supported by lakenode.")
    storage_class = headers.get("x-amz-storage-class")
    if storage_class is not None and storage_class != "STANDARD":
        raise S3Error(
            "NotImplemented",
            f"Storage class {storage_class!r} is not supported; every object is STANDARD.",
        )


def validate_key(key: str) -> None:
    if len(key.encode()) > KEY_BYTES_MAX:
        raise S3Error("KeyTooLongError", "Your key is too long", resource=key)


def object_headers(headers: Mapping[str, str], lock: bool = False) -> list[tuple[str, str]]:
    """Standard headers and x-amz-meta-* to keep with an object; enforces the 2 KiB limit.
    ``lock``: the caller applies x-amz-object-lock-* (else they are refused)."""
    refuse_unsupported_headers(headers, lock)
    kept: list[tuple[str, str]] = []
    metadata_bytes = 0
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "content-encoding":
            value = without_aws_chunked(value)
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
    return kept


def without_aws_chunked(value: str) -> str:
    """Content-Encoding as the client sent it, byte for byte (``deflate, gzip`` reads back
    as ``deflate, gzip``), less the aws-chunked token: that is transport framing, not a
    property of the object."""
    tokens = value.split(",")
    kept = [token for token in tokens if token.strip().lower() != "aws-chunked"]
    if len(kept) == len(tokens):
        return value
    return ",".join(kept).strip()


def check_declared_length(ctx: S3Context, body: Body, limit: int) -> None:
    if body.declared_length is None and ctx.headers.get("transfer-encoding") is None:
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.")
    if body.declared_length is not None and body.declared_length > limit:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")


async def receive(ctx: S3Context, writer: ObjectWriter, body: Body) -> None:
    """Stream the body into ``writer`` and run every whole-body check; abort on failure."""
    expected_md5 = content_md5(ctx.headers)
    try:
        async for piece in body.stream():
            await writer.write(piece)
        md5 = await writer.finish()
        body.verify()
        if expected_md5 is not None and md5 != expected_md5:
            raise S3Error(
                "BadDigest", "The Content-MD5 you specified did not match what we received."
            )
    except BaseException:
        await writer.abort()
        raise
