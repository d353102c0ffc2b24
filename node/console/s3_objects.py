"""The object browser's S3 calls, made as the signed-in key through :class:`SelfS3`.

Each function sends the request AWS's API defines (ListObjectsV2, ListObjectVersions,
HeadObject, the tagging, retention and legal-hold sub-resources, DeleteObject,
CreateMultipartUpload) and parses the answer with defusedxml. S3's refusals pass through as
:class:`S3Refused`, for the page to show.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeElementTree

from node.console.s3_self import S3_NS, S3Refused, SelfS3, bucket_path, child_text, query_string

PAGE_KEYS: Final = 200  # keys (and folders) per listing page
OBJECT_VERSIONS_MAX: Final = 200  # versions shown on an object's page
NO_RETENTION: Final = "NoSuchObjectLockConfiguration"  # lock on, nothing set on this version
XMLNS: Final = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    size: int
    last_modified: str
    etag: str


@dataclass(frozen=True)
class ListingPage:
    """One page of a prefix: its folders (common prefixes) and objects."""

    folders: list[str]
    objects: list[ObjectEntry]
    next_token: str | None


@dataclass(frozen=True)
class VersionEntry:
    key: str
    version_id: str
    latest: bool
    delete_marker: bool
    size: int
    last_modified: str
    etag: str


@dataclass(frozen=True)
class VersionsPage:
    folders: list[str]
    versions: list[VersionEntry]
    next_key_marker: str | None
    next_version_marker: str | None


@dataclass(frozen=True)
class ObjectHead:
    size: int
    etag: str
    content_type: str
    last_modified: str
    storage_class: str
    version_id: str | None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LockState:
    """An object's retention and legal hold; ``refusal`` says why they cannot be shown (no
    object lock on the bucket, or S3 refused the key), and then no controls are shown."""

    mode: str | None = None
    retain_until: str | None = None
    legal_hold: str | None = None
    refusal: str | None = None


async def list_prefix(s3: SelfS3, bucket: str, prefix: str, token: str | None) -> ListingPage:
    """ListObjectsV2 of ``prefix`` with delimiter "/" (keys URL-encoded by S3, so that a key
    with characters XML cannot carry still lists)."""
    params = {"list-type": "2", "delimiter": "/", "encoding-type": "url",
              "max-keys": str(PAGE_KEYS), "prefix": prefix}  # fmt: skip
    if token:
        params["continuation-token"] = token
    root = await _get_xml(s3, bucket_path(bucket), params)
    objects = [
        ObjectEntry(
            key=unquote_plus(child_text(item, "Key")),
            size=_int(child_text(item, "Size")),
            last_modified=shown_time(child_text(item, "LastModified")),
            etag=child_text(item, "ETag"),
        )
        for item in root.iter(f"{S3_NS}Contents")
    ]
    truncated = child_text(root, "IsTruncated") == "true"
    next_token = child_text(root, "NextContinuationToken") if truncated else ""
    return ListingPage(_folders(root), objects, next_token or None)


async def list_versions(
    s3: SelfS3, bucket: str, prefix: str, key_marker: str, version_marker: str,
    delimiter: str = "/", max_keys: int = PAGE_KEYS,
) -> VersionsPage:  # fmt: skip
    """ListObjectVersions of ``prefix``, from the given markers, delete markers included."""
    params = {"versions": "", "encoding-type": "url", "max-keys": str(max_keys),
              "prefix": prefix}  # fmt: skip
    if delimiter:
        params["delimiter"] = delimiter
    if key_marker:
        params["key-marker"] = key_marker
        if version_marker:
            params["version-id-marker"] = version_marker
    root = await _get_xml(s3, bucket_path(bucket), params)
    versions = [
        VersionEntry(
            key=unquote_plus(child_text(item, "Key")),
            version_id=child_text(item, "VersionId"),
            latest=child_text(item, "IsLatest") == "true",
            delete_marker=item.tag == f"{S3_NS}DeleteMarker",
            size=_int(child_text(item, "Size")),
            last_modified=shown_time(child_text(item, "LastModified")),
            etag=child_text(item, "ETag"),
        )
        for item in root
        if item.tag in (f"{S3_NS}Version", f"{S3_NS}DeleteMarker")
    ]
    truncated = child_text(root, "IsTruncated") == "true"
    key_next = unquote_plus(child_text(root, "NextKeyMarker")) if truncated else ""
    version_next = child_text(root, "NextVersionIdMarker") if truncated else ""
    return VersionsPage(_folders(root), versions, key_next or None, version_next or None)


async def object_versions(s3: SelfS3, bucket: str, key: str) -> tuple[list[VersionEntry], bool]:
    """The versions of one key (newest first) and whether there are more than shown. Every
    key listed under the prefix ``key`` sorts after ``key`` itself, so its versions come
    first."""
    page = await list_versions(s3, bucket, key, "", "", "", OBJECT_VERSIONS_MAX)
    mine = [entry for entry in page.versions if entry.key == key]
    more = page.next_key_marker == key
    return mine, more


async def head_object(s3: SelfS3, bucket: str, key: str, version: str | None) -> ObjectHead:
    answer = await s3.request("HEAD", object_path(bucket, key), _version_query(version))
    headers = answer.headers
    metadata = {
        name.removeprefix("x-amz-meta-"): value
        for name, value in headers.items()
        if name.startswith("x-amz-meta-")
    }
    return ObjectHead(
        size=_int(headers.get("content-length", "0")),
        etag=headers.get("etag", ""),
        content_type=headers.get("content-type", ""),
        last_modified=shown_time(headers.get("last-modified", "")),
        storage_class=headers.get("x-amz-storage-class", "STANDARD"),
        version_id=headers.get("x-amz-version-id"),
        metadata=dict(sorted(metadata.items())),
    )


async def object_tags(
    s3: SelfS3, bucket: str, key: str, version: str | None
) -> list[tuple[str, str]]:
    query = _sub_resource("tagging", version)
    root = SafeElementTree.fromstring(
        (await s3.request("GET", object_path(bucket, key), query)).content
    )
    return [(child_text(tag, "Key"), child_text(tag, "Value")) for tag in root.iter(f"{S3_NS}Tag")]


async def put_object_tags(
    s3: SelfS3, bucket: str, key: str, version: str | None, tags: Sequence[tuple[str, str]]
) -> None:
    """PutObjectTagging (an empty set is DeleteObjectTagging, as the AWS console does)."""
    path, query = object_path(bucket, key), _sub_resource("tagging", version)
    if not tags:
        await s3.request("DELETE", path, query)
        return
    tag_set = "".join(
        f"<Tag><Key>{escape(name)}</Key><Value>{escape(value)}</Value></Tag>"
        for name, value in tags
    )
    await _put_xml(s3, path, query, f"<Tagging {XMLNS}><TagSet>{tag_set}</TagSet></Tagging>")


async def lock_state(s3: SelfS3, bucket: str, key: str, version: str | None) -> LockState:
    """GetObjectRetention and GetObjectLegalHold. S3 answers NoSuchObjectLockConfiguration
    when the version has none set, and another error when the bucket has no object lock."""
    path = object_path(bucket, key)
    mode = until = hold = None
    try:
        root = await _get_xml_at(s3, path, _sub_resource("retention", version))
        mode, until = child_text(root, "Mode"), shown_time(child_text(root, "RetainUntilDate"))
    except S3Refused as refused:
        if refused.code != NO_RETENTION:
            return LockState(refusal=str(refused))
    try:
        root = await _get_xml_at(s3, path, _sub_resource("legal-hold", version))
        hold = child_text(root, "Status")
    except S3Refused as refused:
        if refused.code != NO_RETENTION:
            return LockState(refusal=str(refused))
    return LockState(mode or None, until or None, hold or "OFF")


async def put_retention(
    s3: SelfS3, bucket: str, key: str, version: str | None, mode: str, until: datetime,
    bypass_governance: bool,
) -> None:  # fmt: skip
    stamp = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    document = (
        f"<Retention {XMLNS}><Mode>{mode}</Mode>"
        f"<RetainUntilDate>{stamp}</RetainUntilDate></Retention>"
    )
    headers = {"x-amz-bypass-governance-retention": "true"} if bypass_governance else {}
    query = _sub_resource("retention", version)
    await _put_xml(s3, object_path(bucket, key), query, document, headers)


async def put_legal_hold(
    s3: SelfS3, bucket: str, key: str, version: str | None, status: str
) -> None:
    document = f"<LegalHold {XMLNS}><Status>{status}</Status></LegalHold>"
    await _put_xml(s3, object_path(bucket, key), _sub_resource("legal-hold", version), document)


async def delete_object(s3: SelfS3, bucket: str, key: str, version: str | None) -> None:
    await s3.request("DELETE", object_path(bucket, key), _version_query(version))


async def create_multipart_upload(s3: SelfS3, bucket: str, key: str, content_type: str) -> str:
    """CreateMultipartUpload as the key; its upload id."""
    headers = {"content-type": content_type} if content_type else {}
    answer = await s3.request("POST", object_path(bucket, key), "uploads", headers=headers)
    root = SafeElementTree.fromstring(answer.content)
    upload_id = child_text(root, "UploadId")
    if not upload_id:
        raise S3Refused(500, "InternalError", "CreateMultipartUpload gave no upload id.")
    return upload_id


def object_path(bucket: str, key: str) -> str:
    """The encoded path of an object, its '.' and '..' segments escaped: an HTTP client
    (httpx here) would otherwise resolve them and reach another key."""
    segments = bucket_path(bucket, key).split("/")
    return "/".join(
        segment.replace(".", "%2E") if segment in (".", "..") else segment for segment in segments
    )


def shown_time(value: str) -> str:
    """An S3 time (ISO 8601 in listings, an HTTP date in headers) as 'YYYY-MM-DD HH:MM:SS
    UTC'; a value that is neither is shown as it came."""
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _version_query(version: str | None) -> str:
    return query_string({"versionId": version}) if version else ""


def _sub_resource(name: str, version: str | None) -> str:
    return query_string({name: ""} | ({"versionId": version} if version else {}))


async def _get_xml(s3: SelfS3, path: str, params: Mapping[str, str]) -> ElementTree.Element:
    return await _get_xml_at(s3, path, query_string(params))


async def _get_xml_at(s3: SelfS3, path: str, query: str) -> ElementTree.Element:
    root: ElementTree.Element = SafeElementTree.fromstring(
        (await s3.request("GET", path, query)).content
    )
    return root


async def _put_xml(
    s3: SelfS3, path: str, query: str, document: str, headers: Mapping[str, str] | None = None
) -> None:
    """PUT an XML document with its Content-MD5, which AWS requires of these requests."""
    body = document.encode()
    digest = base64.b64encode(hashlib.md5(body).digest()).decode()  # AWS's choice, not a secret
    all_headers = {"content-md5": digest, "content-type": "application/xml", **(headers or {})}
    await s3.request("PUT", path, query, body, all_headers)


def _folders(root: ElementTree.Element) -> list[str]:
    prefixes = root.iter(f"{S3_NS}CommonPrefixes")
    return [unquote_plus(child_text(common, "Prefix")) for common in prefixes]


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0
