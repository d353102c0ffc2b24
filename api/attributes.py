"""GetObjectAttributes (``GET ?attributes``): an object's metadata without its body.

Everything comes from the version's manifest: ETag, size, stored checksums, and for a
multipart object the part sizes (and part checksums) recorded at completion in internal
headers, so no part rows need to survive the upload.
"""

from __future__ import annotations

from email.utils import formatdate

from starlette.responses import Response

from api import xml
from api.checksums import checksum_elements
from api.context import S3Context
from api.errors import S3Error
from storage.catalog import NULL_VERSION
from storage.manifest import Manifest
from storage.store import DeleteMarker
from storage.uploads import PART_CHECKSUMS_HEADER, PART_SIZES_HEADER

ATTRIBUTES = frozenset(("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"))
PARTS_MAX = 1000


def _requested_attributes(ctx: S3Context) -> set[str]:
    raw = ctx.headers.get("x-amz-object-attributes", "")
    names = {name.strip() for name in raw.split(",") if name.strip()}
    if not names or not names <= ATTRIBUTES:
        raise S3Error("InvalidArgument", "Invalid attribute name specified.")
    return names


def _int_header(ctx: S3Context, name: str, default: int) -> int:
    raw = ctx.headers.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise S3Error("InvalidArgument", f"Invalid value for {name}: {raw!r}")
    return int(raw)


async def _version(ctx: S3Context) -> Manifest:
    version_id = ctx.query.get("versionId")
    try:
        return await ctx.store.head_object(ctx.bucket_name, ctx.object_key, version_id)
    except DeleteMarker as marker:
        headers = {"x-amz-delete-marker": "true"}
        if marker.manifest.version_id != NULL_VERSION:
            headers["x-amz-version-id"] = marker.manifest.version_id
        code = "MethodNotAllowed" if version_id is not None else "NoSuchKey"
        raise S3Error(code, resource=ctx.resource, headers=headers) from marker


def _checksum_node(manifest: Manifest) -> xml.Node:
    elements: list[xml.Node] = list(checksum_elements(manifest.headers))
    if not elements:
        return ("Checksum", None)
    stored_type = dict(manifest.headers).get("x-amz-checksum-type", "FULL_OBJECT")
    return ("Checksum", [*elements, ("ChecksumType", stored_type)])


def _parts_node(ctx: S3Context, manifest: Manifest) -> xml.Node:
    """ObjectParts of a multipart object (None, i.e. omitted, for a single PUT)."""
    headers = dict(manifest.headers)
    sizes_header = headers.get(PART_SIZES_HEADER)
    if sizes_header is None:
        return ("ObjectParts", None)
    sizes = [int(size) for size in sizes_header.split(",")]
    checksums = headers.get(PART_CHECKSUMS_HEADER, "")
    part_checksums = checksums.split(",") if checksums else []
    algorithm_element = next((name for name, _ in checksum_elements(manifest.headers)), None)
    marker = _int_header(ctx, "x-amz-part-number-marker", 0)
    max_parts = min(_int_header(ctx, "x-amz-max-parts", PARTS_MAX), PARTS_MAX)
    numbers = list(range(marker + 1, len(sizes) + 1))[:max_parts]
    truncated = bool(numbers) and numbers[-1] < len(sizes)
    nodes: list[xml.Node] = [
        ("PartsCount", len(sizes)),  # TotalPartsCount in the SDKs; PartsCount on the wire
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", numbers[-1] if numbers else marker),
        ("MaxParts", max_parts),
        ("IsTruncated", truncated),
    ]
    for number in numbers:
        part: list[xml.Node] = [("PartNumber", number), ("Size", sizes[number - 1])]
        if algorithm_element is not None and len(part_checksums) == len(sizes):
            part.append((algorithm_element, part_checksums[number - 1]))
        nodes.append(("Part", part))
    return ("ObjectParts", nodes)


async def get_object_attributes(ctx: S3Context) -> Response:
    wanted = _requested_attributes(ctx)
    manifest = await _version(ctx)
    candidates: list[xml.Node] = [
        ("ETag", manifest.etag),  # unquoted here, as AWS returns it
        _checksum_node(manifest),
        _parts_node(ctx, manifest) if "ObjectParts" in wanted else ("ObjectParts", None),
        ("StorageClass", "STANDARD"),
        ("ObjectSize", manifest.size),
    ]
    nodes = [node for node in candidates if node[0] in wanted]
    headers = {"Last-Modified": formatdate(manifest.last_modified_ms / 1000, usegmt=True)}
    if manifest.version_id != NULL_VERSION:
        headers["x-amz-version-id"] = manifest.version_id
    body = xml.render("GetObjectAttributesResponse", nodes)
    return Response(body, media_type="application/xml", headers=headers)
