"""The upload script's API (``POST api/presign``): presigned URLs for the browser to send an
upload straight to S3, so the bytes never pass through the console and the key's secret
never reaches the browser.

* ``{"op": "put", bucket, key}``: one presigned PutObject URL (files up to 16 MiB).
* ``{"op": "multipart", bucket, key, size, content_type}``: the console calls
  CreateMultipartUpload itself, as the key, and answers the upload id, the part size and
  count, and presigned CompleteMultipartUpload (POST) and AbortMultipartUpload (DELETE) URLs.
* ``{"op": "parts", bucket, key, upload_id, numbers}``: presigned UploadPart URLs for those
  parts, asked for a few at a time as the upload goes, so none expires while it waits.

S3 decides every request the URLs make, under the key's own rights: a read-only key gets
its URLs but S3 refuses them (and refuses the console's CreateMultipartUpload).
"""

from __future__ import annotations

import re
from typing import Any, Final

from fastapi import Request, Response

from node.console.objects_view import base_url
from node.console.s3_objects import create_multipart_upload
from node.console.s3_self import S3Refused, SelfS3, bucket_path, query_string
from node.console.web import ConsoleContext, ScriptCall, json_answer, json_error

PART_SIZE: Final = 8 << 20
SINGLE_PUT_MAX: Final = 16 << 20
PARTS_MAX: Final = 10_000  # AWS's limit of parts in an upload
PART_SIZE_MAX: Final = 5 << 30  # and of a part's size
URLS_PER_CALL: Final = 64
UPLOAD_URL_EXPIRES_S: Final = 3600
KEY_BYTES_MAX: Final = 1024
# A Content-Type to pass on: a media type as browsers give File.type, nothing else.
MEDIA_TYPE: Final = re.compile(r"[\w.+-]+/[\w.+-]+(?:\s*;\s*[\w.+-]+=[\w.+\"-]+)*")


class BadCall(ValueError):
    """The script sent something this API cannot take (answered 400 with the reason)."""


async def presign_answer(request: Request, ctx: ConsoleContext, call: ScriptCall) -> Response:
    body = call.body
    try:
        op = _string(body, "op")
        bucket, key = _string(body, "bucket"), _string(body, "key")
        if len(key.encode()) > KEY_BYTES_MAX:
            raise BadCall(f"A key is at most {KEY_BYTES_MAX} bytes.")
        s3, base = ctx.s3_as(call.session), base_url(request, ctx)
        if op == "put":
            return json_answer({"url": _presign(s3, base, "PUT", bucket, key, {})})
        if op == "multipart":
            return json_answer(await _start_multipart(s3, base, bucket, key, body))
        if op == "parts":
            return json_answer({"urls": _part_urls(s3, base, bucket, key, body)})
        raise BadCall("op is put, multipart or parts.")
    except BadCall as bad:
        return json_error(400, str(bad))
    except S3Refused as refused:
        return json_answer({"error": str(refused), "code": refused.code}, refused.status)


def part_size_for(size: int) -> int:
    """8 MiB, or more (whole MiB) when 8 MiB parts would be over AWS's 10,000."""
    needed = -(-size // PARTS_MAX)
    return max(PART_SIZE, -(-needed // (1 << 20)) << 20)


async def _start_multipart(
    s3: SelfS3, base: str, bucket: str, key: str, body: dict[str, Any]
) -> dict[str, Any]:
    size = _number(body, "size", 0, PARTS_MAX * PART_SIZE_MAX)
    content_type = body.get("content_type")
    if not isinstance(content_type, str) or not MEDIA_TYPE.fullmatch(content_type):
        content_type = "application/octet-stream"
    part_size = part_size_for(size)
    upload_id = await create_multipart_upload(s3, bucket, key, content_type)
    upload = {"uploadId": upload_id}
    return {
        "upload_id": upload_id,
        "part_size": part_size,
        "parts": max(1, -(-size // part_size)),
        "complete_url": _presign(s3, base, "POST", bucket, key, upload),
        "abort_url": _presign(s3, base, "DELETE", bucket, key, upload),
    }


def _part_urls(
    s3: SelfS3, base: str, bucket: str, key: str, body: dict[str, Any]
) -> dict[str, str]:
    upload_id = _string(body, "upload_id")
    numbers = body.get("numbers")
    if not isinstance(numbers, list) or not 0 < len(numbers) <= URLS_PER_CALL:
        raise BadCall(f"numbers is a list of 1 to {URLS_PER_CALL} part numbers.")
    urls = {}
    for number in numbers:
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number <= PARTS_MAX:
            raise BadCall(f"A part number is from 1 to {PARTS_MAX}.")
        params = {"partNumber": str(number), "uploadId": upload_id}
        urls[str(number)] = _presign(s3, base, "PUT", bucket, key, params)
    return urls


def _presign(
    s3: SelfS3, base: str, method: str, bucket: str, key: str, params: dict[str, str]
) -> str:
    return s3.presign(method, base, bucket_path(bucket, key), query_string(params),
                      UPLOAD_URL_EXPIRES_S)  # fmt: skip


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadCall(f"{name} must be a non-empty string.")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry and UTF-8 cannot
        raise BadCall(f"{name} is not valid Unicode.") from None
    return value


def _number(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadCall(f"{name} must be a whole number from {low} to {high}.")
    return value
