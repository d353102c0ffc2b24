"""ListObjects (V1), ListObjectsV2 and ListObjectVersions."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from starlette.responses import Response

from api import xml
from api.context import S3Context
from api.errors import S3Error
from api.settings import owner_id
from storage.listing import ListPage, VersionPage

MAX_KEYS_LIMIT = 1000


def encode_key(key: str, encoding_type: str | None) -> str:
    return quote(key, safe="/") if encoding_type == "url" else key


def max_keys_param(ctx: S3Context, name: str = "max-keys") -> int:
    """A max-keys style parameter: a non-negative integer, capped at 1000."""
    raw = ctx.query.get(name)
    if raw is None:
        return MAX_KEYS_LIMIT
    try:
        value = int(raw)
    except ValueError as exc:
        raise S3Error(
            "InvalidArgument", "Provided max-keys not an integer or within integer range"
        ) from exc
    if value < 0:
        raise S3Error(
            "InvalidArgument", "Argument maxKeys must be an integer between 0 and 2147483647"
        )
    return min(value, MAX_KEYS_LIMIT)


def _encoding_type(ctx: S3Context) -> str | None:
    value = ctx.query.get("encoding-type")
    if value is None:
        return None
    if value.lower() != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return "url"


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from exc


def _contents(page: ListPage, encoding: str | None, owner: str | None) -> list[str]:
    """The Contents and CommonPrefixes elements, rendered: one f-string per entry, the same
    bytes as the node renderer would give (tests/unit/api/test_listing_render.py checks)."""
    owner_xml = ""
    if owner is not None:
        owner_xml = (
            f"<Owner><ID>{xml.escape(owner_id(owner))}</ID>"
            f"<DisplayName>{xml.escape(owner)}</DisplayName></Owner>"
        )
    escape, iso8601_ms = xml.escape, xml.iso8601_ms
    # The ETag's quotes are escaped here (&quot;), its text like any other.
    parts = [
        f"<Contents><Key>{escape(quote(key, safe='/') if encoding == 'url' else key)}</Key>"
        f"<LastModified>{iso8601_ms(modified_ms)}</LastModified>"
        f"<ETag>&quot;{escape(etag)}&quot;</ETag><Size>{size}</Size>{owner_xml}"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for key, size, etag, modified_ms in page.entries
    ]
    parts.extend(
        f"<CommonPrefixes><Prefix>{escape(encode_key(p, encoding))}</Prefix></CommonPrefixes>"
        for p in page.common_prefixes
    )
    return parts


async def _latest_page(
    ctx: S3Context, prefix: str, delimiter: str, marker: str, max_keys: int
) -> ListPage:
    if max_keys == 0:  # AWS answers an empty listing that is not truncated
        return ListPage([], [], False, None)
    return await ctx.store.list_objects(ctx.bucket_name, prefix, delimiter, marker, max_keys)


async def list_objects_v1(ctx: S3Context) -> Response:
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter", "")
    marker = ctx.query.get("marker", "")
    max_keys = max_keys_param(ctx)
    encoding = _encoding_type(ctx)
    bucket = await ctx.store.get_bucket(ctx.bucket_name)
    page = await _latest_page(ctx, prefix, delimiter, marker, max_keys)
    next_marker = None
    if page.is_truncated and page.last_returned is not None:
        # AWS sends NextMarker only with a delimiter; clients use the last Key otherwise.
        next_marker = encode_key(page.last_returned, encoding) if delimiter else None
    body = xml.render(
        "ListBucketResult",
        [
            ("Name", ctx.bucket_name),
            ("Prefix", encode_key(prefix, encoding)),
            ("Marker", encode_key(marker, encoding)),
            ("NextMarker", next_marker),
            ("MaxKeys", max_keys),
            ("Delimiter", encode_key(delimiter, encoding) if delimiter else None),
            ("IsTruncated", page.is_truncated),
            ("EncodingType", encoding),
        ],
        rendered=_contents(page, encoding, bucket.owner),
    )
    return Response(body, media_type="application/xml")


async def list_objects_v2(ctx: S3Context) -> Response:
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter", "")
    token = ctx.query.get("continuation-token")
    start_after = ctx.query.get("start-after", "")
    max_keys = max_keys_param(ctx)
    encoding = _encoding_type(ctx)
    fetch_owner = ctx.query.get("fetch-owner", "").lower() == "true"
    marker = decode_token(token) if token is not None else start_after
    owner: str | None = None
    if fetch_owner or max_keys == 0:
        # Otherwise the listing itself answers NoSuchBucket: one catalog call fewer.
        bucket = await ctx.store.get_bucket(ctx.bucket_name)
        owner = bucket.owner if fetch_owner else None
    page = await _latest_page(ctx, prefix, delimiter, marker, max_keys)
    next_token = (
        encode_token(page.last_returned)
        if page.is_truncated and page.last_returned is not None
        else None
    )
    body = xml.render(
        "ListBucketResult",
        [
            ("Name", ctx.bucket_name),
            ("Prefix", encode_key(prefix, encoding)),
            ("MaxKeys", max_keys),
            ("KeyCount", len(page.entries) + len(page.common_prefixes)),
            ("Delimiter", encode_key(delimiter, encoding) if delimiter else None),
            ("IsTruncated", page.is_truncated),
            ("ContinuationToken", token),
            ("NextContinuationToken", next_token),
            ("StartAfter", encode_key(start_after, encoding) if start_after else None),
            ("EncodingType", encoding),
        ],
        rendered=_contents(page, encoding, owner),
    )
    return Response(body, media_type="application/xml")


async def list_object_versions(ctx: S3Context) -> Response:
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter", "")
    key_marker = ctx.query.get("key-marker", "")
    version_marker = ctx.query.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise S3Error(
            "InvalidArgument", "A version-id marker cannot be specified without a key marker."
        )
    max_keys = max_keys_param(ctx)
    encoding = _encoding_type(ctx)
    bucket = await ctx.store.get_bucket(ctx.bucket_name)
    page = (
        VersionPage([], [], False, None, None)  # max-keys=0: AWS answers empty, not truncated
        if max_keys == 0
        else await ctx.store.list_versions(
            ctx.bucket_name, prefix, delimiter, key_marker, version_marker, max_keys
        )
    )
    owner = [("ID", owner_id(bucket.owner)), ("DisplayName", bucket.owner)]
    nodes: list[xml.Node] = [
        ("Name", ctx.bucket_name),
        ("Prefix", encode_key(prefix, encoding)),
        ("KeyMarker", encode_key(key_marker, encoding)),
        ("VersionIdMarker", version_marker),
        (
            "NextKeyMarker",
            encode_key(page.next_key_marker, encoding)
            if page.next_key_marker is not None
            else None,
        ),
        ("NextVersionIdMarker", page.next_version_marker),
        ("MaxKeys", max_keys),
        ("Delimiter", encode_key(delimiter, encoding) if delimiter else None),
        ("IsTruncated", page.is_truncated),
        ("EncodingType", encoding),
    ]
    for entry in page.entries:
        common: list[xml.Node] = [
            ("Key", encode_key(entry.key, encoding)),
            ("VersionId", entry.version_id),
            ("IsLatest", entry.is_latest),
            ("LastModified", xml.iso8601_ms(entry.last_modified_ms)),
        ]
        if entry.is_delete_marker:
            nodes.append(("DeleteMarker", [*common, ("Owner", owner)]))
        else:
            nodes.append(
                (
                    "Version",
                    [
                        *common,
                        ("ETag", f'"{entry.etag}"'),
                        ("Size", entry.size),
                        ("Owner", owner),
                        ("StorageClass", "STANDARD"),
                    ],
                )
            )
    nodes.extend(
        ("CommonPrefixes", [("Prefix", encode_key(p, encoding))]) for p in page.common_prefixes
    )
    return Response(xml.render("ListVersionsResult", nodes), media_type="application/xml")
