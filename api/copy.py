"""x-amz-copy-source: parsing the source, and the copy-source conditions.

Shared by CopyObject and UploadPartCopy. The header is ``/bucket/key`` or ``bucket/key``,
URL-encoded, optionally with ``?versionId=``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

from api.access import action_for, authorize
from api.conditionals import check_preconditions
from api.context import S3Context
from api.errors import S3Error

_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


async def authorize_copy_source(
    ctx: S3Context, bucket: str, key: str, version_id: str | None
) -> None:
    """A copy reads its source: the caller needs read permission there too."""
    query = {"versionId": version_id} if version_id is not None else {}
    await authorize(ctx, action_for("GetObject", query), bucket, key, version_id=version_id)


def parse_copy_source(header: str) -> tuple[str, str, str | None]:
    """(bucket, key, version id or None) from an x-amz-copy-source header."""
    path, _, query = header.partition("?")
    path = unquote(path).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )
    version_id = None
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if name == "versionId":
            version_id = unquote(value)
        elif name:
            raise S3Error("InvalidArgument", f"Unsupported copy source parameter {name!r}")
    if version_id == "":
        raise S3Error("InvalidArgument", "Invalid version id specified")
    return bucket, key, version_id


def check_copy_preconditions(headers: Mapping[str, str], etag: str, modified_ms: int) -> None:
    """x-amz-copy-source-if-*: like If-*, but every failure is 412 PreconditionFailed."""
    mapped = {
        name.removeprefix("x-amz-copy-source-"): value
        for name, value in headers.items()
        if name.lower().startswith("x-amz-copy-source-if-")
    }
    if not mapped:
        return
    try:
        check_preconditions(mapped, etag, modified_ms)
    except S3Error as error:
        if error.code == "NotModified":
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            ) from error
        raise


def parse_copy_range(header: str | None, size: int) -> tuple[int, int]:
    """x-amz-copy-source-range (bytes=first-last, both required) -> inclusive bounds."""
    if header is None:
        return 0, size - 1  # (0, -1) for an empty source: an empty part
    match = _RANGE.match(header.strip())
    if not match:
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the "
            "form bytes=first-last where first and last are the zero-based offsets",
        )
    first, last = int(match.group(1)), int(match.group(2))
    if first > last or last >= size:
        # AWS answers 400 InvalidArgument here, not GetObject's 416 InvalidRange.
        raise S3Error(
            "InvalidArgument", f"Range specified is not valid for source object of size: {size}"
        )
    return first, last
