"""Object and bucket tagging: the ``?tagging`` sub-resource and the ``x-amz-tagging`` header.

Tags are validated here against AWS's limits before storage sees them, so every tag set in
the store is one AWS would have accepted. Object tags live in storage's ``object_tags`` table
(per version); a bucket's tag set is kept as a normalized ``Tagging`` XML document, so
GetBucketTagging returns the stored document as it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

from starlette.responses import Response

from api import xml
from api.access import action_for, authorize
from api.body import read_small_body
from api.context import S3Context
from api.errors import S3Error
from storage.bucket_config import Tags
from storage.catalog import NULL_VERSION
from storage.errors import NoSuchConfiguration, NoSuchKey, NoSuchVersion
from storage.manifest import Manifest
from storage.uploads import UploadInfo

OBJECT_TAGS_MAX = 10
BUCKET_TAGS_MAX = 50
TAG_KEY_CHARS_MAX = 128
TAG_VALUE_CHARS_MAX = 256
TAGGING_BODY_BYTES_MAX = 64 * 1024
# Internal upload header: the x-amz-tagging of CreateMultipartUpload, applied at completion.
UPLOAD_TAGGING_HEADER = "x-lakenode-tagging"


# ---- validation and parsing -------------------------------------------------------------------


def validate_tags(tags: Tags, limit: int) -> Tags:
    """Raise InvalidTag unless ``tags`` is a tag set AWS accepts; return it unchanged."""
    if len(tags) > limit:
        raise S3Error("InvalidTag", f"A tag set cannot have more than {limit} tags")
    seen: set[str] = set()
    for key, value in tags:
        if not key or len(key) > TAG_KEY_CHARS_MAX:
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid")
        if len(value) > TAG_VALUE_CHARS_MAX:
            raise S3Error("InvalidTag", "The TagValue you have provided is invalid")
        if key.lower().startswith("aws:"):
            raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:")
        if key in seen:
            raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
        seen.add(key)
    return tags


def parse_tagging_xml(body: bytes, limit: int) -> Tags:
    """``<Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging>`` -> tags."""
    root = xml.parse(body)
    tag_sets = xml.children_named(root, "TagSet")
    if xml.local_name(root) != "Tagging" or len(tag_sets) != 1:
        raise xml.malformed_xml()
    tags: list[tuple[str, str]] = []
    for element in tag_sets[0]:
        if xml.local_name(element) != "Tag":
            raise xml.malformed_xml()
        key, value = xml.child_text(element, "Key"), xml.child_text(element, "Value")
        if key is None or value is None:
            raise xml.malformed_xml()
        tags.append((key, value))
    return validate_tags(tuple(tags), limit)


def parse_tagging_header(value: str) -> Tags:
    """The ``x-amz-tagging`` header: URL query form ``k1=v1&k2=v2`` (object limits)."""
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value))
    except ValueError as exc:
        raise _bad_header() from exc
    if len({key for key, _ in pairs}) != len(pairs):
        raise _bad_header()
    return validate_tags(tuple(pairs), OBJECT_TAGS_MAX)


def header_tags(ctx: S3Context) -> Tags:
    """Tags from the request's x-amz-tagging header; none when it is absent."""
    raw = ctx.headers.get("x-amz-tagging")
    return () if raw is None else parse_tagging_header(raw)


def upload_tagging_headers(ctx: S3Context) -> tuple[tuple[str, str], ...]:
    """CreateMultipartUpload's x-amz-tagging, validated now and kept with the upload."""
    tags = header_tags(ctx)
    return ((UPLOAD_TAGGING_HEADER, urlencode(tags)),) if tags else ()


def pop_upload_tags(upload: UploadInfo) -> tuple[Tags, UploadInfo]:
    """The tags kept with an upload, and the upload without them: the tags go to the
    object's tag set at completion, never into its stored headers."""
    raw = dict(upload.headers).get(UPLOAD_TAGGING_HEADER)
    tags: Tags = tuple(parse_qsl(raw, keep_blank_values=True)) if raw else ()
    kept = tuple((n, v) for n, v in upload.headers if n != UPLOAD_TAGGING_HEADER)
    return tags, dataclasses.replace(upload, headers=kept)


def _bad_header() -> S3Error:
    return S3Error(
        "InvalidArgument",
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
        "parameters without tag name duplicates.",
    )


def render_tagging(tags: Iterable[tuple[str, str]]) -> bytes:
    tag_nodes: list[xml.Node] = [("Tag", [("Key", k), ("Value", v)]) for k, v in tags]
    return xml.render("Tagging", [("TagSet", tag_nodes)])


async def _read_tagging(ctx: S3Context, limit: int) -> Tags:
    """Read, check (Content-MD5 and checksums) and parse a Tagging request body."""
    body = await read_small_body(ctx.request, ctx.auth, TAGGING_BODY_BYTES_MAX)
    return parse_tagging_xml(body, limit)


# ---- object tagging ---------------------------------------------------------------------------


def _version_headers(version_id: str) -> dict[str, str]:
    return {} if version_id == NULL_VERSION else {"x-amz-version-id": version_id}


async def put_object_tagging(ctx: S3Context) -> Response:
    # Authorized here, not before the handler: s3:RequestObjectTag/* come from the body (a
    # body that does not parse is authorized with no tags, so AccessDenied still comes first).
    action = action_for(ctx.operation, ctx.query)
    try:
        tags = await _read_tagging(ctx, OBJECT_TAGS_MAX)
    except S3Error:
        await authorize(ctx, action, ctx.bucket_name, ctx.object_key, request_tags=())
        raise
    await authorize(ctx, action, ctx.bucket_name, ctx.object_key, request_tags=tags)
    version_id = await ctx.store.put_tags(
        ctx.bucket_name, ctx.object_key, ctx.query.get("versionId"), tags
    )
    return Response(status_code=200, headers=_version_headers(version_id))


async def get_object_tagging(ctx: S3Context) -> Response:
    version_id, tags = await ctx.store.get_tags(
        ctx.bucket_name, ctx.object_key, ctx.query.get("versionId")
    )
    return Response(
        render_tagging(tags), media_type="application/xml", headers=_version_headers(version_id)
    )


async def delete_object_tagging(ctx: S3Context) -> Response:
    version_id = await ctx.store.put_tags(
        ctx.bucket_name, ctx.object_key, ctx.query.get("versionId"), None
    )
    return Response(status_code=204, headers=_version_headers(version_id))


async def tag_count_headers(ctx: S3Context, manifest: Manifest) -> dict[str, str]:
    """``x-amz-tagging-count`` for GetObject/HeadObject when the version has tags."""
    if not ctx.store.may_have_tags(manifest.bucket):
        return {}  # the GET hot path: no tag lookup in a bucket that never had tags
    try:
        _version, tags = await ctx.store.get_tags(
            manifest.bucket, manifest.key, manifest.version_id
        )
    except (NoSuchKey, NoSuchVersion):
        return {}  # the version went away since it was read: it has no tags to count
    return {"x-amz-tagging-count": str(len(tags))} if tags else {}


def copy_tags(ctx: S3Context) -> Tags | None:
    """CopyObject's tags: None keeps the source's (COPY), else x-amz-tagging (REPLACE)."""
    directive = ctx.headers.get("x-amz-tagging-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown tagging directive.")
    return header_tags(ctx) if directive == "REPLACE" else None


# ---- bucket tagging ---------------------------------------------------------------------------


async def put_bucket_tagging(ctx: S3Context) -> Response:
    tags = await _read_tagging(ctx, BUCKET_TAGS_MAX)
    await ctx.store.put_bucket_document(ctx.bucket_name, "tagging", render_tagging(tags).decode())
    return Response(status_code=204)


async def get_bucket_tagging(ctx: S3Context) -> Response:
    try:
        document = await ctx.store.get_bucket_document(ctx.bucket_name, "tagging")
    except NoSuchConfiguration as exc:
        raise S3Error("NoSuchTagSet", "The TagSet does not exist", ctx.resource) from exc
    return Response(document.encode(), media_type="application/xml")


async def delete_bucket_tagging(ctx: S3Context) -> Response:
    await ctx.store.put_bucket_document(ctx.bucket_name, "tagging", None)
    return Response(status_code=204)
