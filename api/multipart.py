"""Multipart upload operations: Create, UploadPart, UploadPartCopy, Complete, Abort,
ListParts and ListMultipartUploads."""

from __future__ import annotations

from starlette.responses import Response

from api import xml
from api.body import Body
from api.context import S3Context
from api.copy import check_copy_preconditions, parse_copy_range, parse_copy_source
from api.errors import S3Error
from api.listing import encode_key, max_keys_param
from api.settings import owner_id
from api.upload import check_declared_length, object_headers, receive, validate_key
from storage.store import DeleteMarker
from storage.uploads import PART_NUMBER_MAX, UploadInfo

PART_BYTES_MAX = 5 << 30
COMPLETE_BODY_BYTES_MAX = 4 * 1024 * 1024
PARTS_PER_LISTING_MAX = 1000


def _xml(body: bytes) -> Response:
    return Response(body, media_type="application/xml")


def _part_number(ctx: S3Context) -> int:
    raw = ctx.query.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= PART_NUMBER_MAX:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {PART_NUMBER_MAX}, inclusive",
        )
    return int(raw)


async def _upload(ctx: S3Context) -> UploadInfo:
    return await ctx.store.get_upload(ctx.bucket_name, ctx.object_key, ctx.query["uploadId"])


async def create_multipart_upload(ctx: S3Context) -> Response:
    validate_key(ctx.object_key)
    headers = tuple(object_headers(ctx.headers))
    algorithm = ctx.headers.get("x-amz-checksum-algorithm", "").upper()
    upload = await ctx.store.create_upload(
        ctx.bucket_name, ctx.object_key, headers, ctx.access_key, algorithm
    )
    response = _xml(
        xml.render(
            "InitiateMultipartUploadResult",
            [
                ("Bucket", ctx.bucket_name),
                ("Key", ctx.object_key),
                ("UploadId", upload.upload_id),
            ],
        )
    )
    if algorithm:
        response.headers["x-amz-checksum-algorithm"] = algorithm
    return response


async def upload_part(ctx: S3Context) -> Response:
    number = _part_number(ctx)
    body = Body(ctx.request, ctx.auth)
    check_declared_length(ctx, body, min(PART_BYTES_MAX, ctx.settings.max_object_size))
    upload = await _upload(ctx)
    writer = await ctx.store.begin_part(upload, min(PART_BYTES_MAX, ctx.settings.max_object_size))
    await receive(ctx, writer, body)
    part = await writer.commit_part(upload, number)
    headers = {"ETag": f'"{part.etag}"'}
    headers.update(body.checksum_values())
    return Response(status_code=200, headers=headers)


async def upload_part_copy(ctx: S3Context) -> Response:
    number = _part_number(ctx)
    upload = await _upload(ctx)
    bucket, key, version_id = parse_copy_source(ctx.headers["x-amz-copy-source"])
    try:
        source = await ctx.store.head_object(bucket, key, version_id)
    except DeleteMarker as marker:
        raise S3Error("NoSuchKey", "The specified key does not exist.") from marker
    check_copy_preconditions(ctx.headers, f'"{source.etag}"', source.last_modified_ms)
    first, last = parse_copy_range(ctx.headers.get("x-amz-copy-source-range"), source.size)
    if last - first + 1 > PART_BYTES_MAX:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    part = await ctx.store.copy_part(upload, number, source, first, last)
    response = _xml(
        xml.render(
            "CopyPartResult",
            [
                ("ETag", f'"{part.etag}"'),
                ("LastModified", xml.iso8601_ms(part.modified_ms)),
            ],
        )
    )
    if version_id is not None:
        response.headers["x-amz-copy-source-version-id"] = version_id
    return response


def _parse_complete(body: bytes) -> list[tuple[int, str]]:
    root = xml.parse(body)
    parts: list[tuple[int, str]] = []
    for element in xml.children_named(root, "Part"):
        number, etag = xml.child_text(element, "PartNumber"), xml.child_text(element, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise S3Error("MalformedXML", "Each Part needs a PartNumber and an ETag.")
        parts.append((int(number), etag.strip()))
    if xml.local_name(root) != "CompleteMultipartUpload" or not parts:
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not "
            "validate against our published schema",
        )
    return parts


async def complete_multipart_upload(ctx: S3Context) -> Response:
    upload = await _upload(ctx)
    body = await Body(ctx.request, ctx.auth).read_all(COMPLETE_BODY_BYTES_MAX)
    manifest = await ctx.store.complete_upload(upload, _parse_complete(body))
    response = _xml(
        xml.render(
            "CompleteMultipartUploadResult",
            [
                ("Location", f"/{ctx.bucket_name}/{ctx.object_key}"),
                ("Bucket", ctx.bucket_name),
                ("Key", ctx.object_key),
                ("ETag", f'"{manifest.etag}"'),
            ],
        )
    )
    if manifest.version_id != "null":
        response.headers["x-amz-version-id"] = manifest.version_id
    return response


async def abort_multipart_upload(ctx: S3Context) -> Response:
    await ctx.store.abort_upload(await _upload(ctx))
    return Response(status_code=204)


def _int_param(ctx: S3Context, name: str, default: int) -> int:
    raw = ctx.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range")
    return int(raw)


async def list_parts(ctx: S3Context) -> Response:
    upload = await _upload(ctx)
    marker = _int_param(ctx, "part-number-marker", 0)
    max_parts = min(_int_param(ctx, "max-parts", PARTS_PER_LISTING_MAX), PARTS_PER_LISTING_MAX)
    parts, truncated = await ctx.store.list_parts(upload, marker, max_parts)
    owner = [("ID", owner_id(upload.owner)), ("DisplayName", upload.owner)]
    nodes: list[xml.Node] = [
        ("Bucket", ctx.bucket_name),
        ("Key", ctx.object_key),
        ("UploadId", upload.upload_id),
        ("Initiator", owner),
        ("Owner", owner),
        ("StorageClass", "STANDARD"),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", parts[-1].part_number if parts else marker),
        ("MaxParts", max_parts),
        ("IsTruncated", truncated),
    ]
    nodes.extend(
        (
            "Part",
            [
                ("PartNumber", p.part_number),
                ("LastModified", xml.iso8601_ms(p.modified_ms)),
                ("ETag", f'"{p.etag}"'),
                ("Size", p.size),
            ],
        )
        for p in parts
    )
    return _xml(xml.render("ListPartsResult", nodes))


async def list_multipart_uploads(ctx: S3Context) -> Response:
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter", "")
    key_marker = ctx.query.get("key-marker", "")
    upload_id_marker = ctx.query.get("upload-id-marker", "") if key_marker else ""
    max_uploads = max_keys_param(ctx, "max-uploads")
    encoding = ctx.query.get("encoding-type")
    if encoding is not None and encoding != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    page = await ctx.store.list_uploads(
        ctx.bucket_name, prefix, delimiter, key_marker, upload_id_marker, max_uploads
    )
    nodes: list[xml.Node] = [
        ("Bucket", ctx.bucket_name),
        ("KeyMarker", encode_key(key_marker, encoding)),
        ("UploadIdMarker", upload_id_marker),
        (
            "NextKeyMarker",
            encode_key(page.next_key_marker, encoding)
            if page.next_key_marker is not None
            else None,
        ),
        ("NextUploadIdMarker", page.next_upload_id_marker),
        ("Prefix", encode_key(prefix, encoding)),
        ("Delimiter", encode_key(delimiter, encoding) if delimiter else None),
        ("MaxUploads", max_uploads),
        ("IsTruncated", page.is_truncated),
        ("EncodingType", encoding),
    ]
    for upload in page.uploads:
        owner = [("ID", owner_id(upload.owner)), ("DisplayName", upload.owner)]
        nodes.append(
            (
                "Upload",
                [
                    ("Key", encode_key(upload.key, encoding)),
                    ("UploadId", upload.upload_id),
                    ("Initiator", owner),
                    ("Owner", owner),
                    ("StorageClass", "STANDARD"),
                    ("Initiated", xml.iso8601_ms(upload.initiated_ms)),
                ],
            )
        )
    nodes.extend(
        ("CommonPrefixes", [("Prefix", encode_key(p, encoding))]) for p in page.common_prefixes
    )
    return _xml(xml.render("ListMultipartUploadsResult", nodes))
