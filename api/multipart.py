"""Multipart upload operations: Create, UploadPart, UploadPartCopy, Complete, Abort,
ListParts and ListMultipartUploads."""

from __future__ import annotations

from starlette.responses import Response

from api import xml
from api.acl_handlers import object_acl_headers
from api.body import Body, checksum_fields
from api.checksums import (
    ALGORITHMS,
    COMPOSITE,
    FULL_OBJECT,
    TYPE_HEADER,
    algorithm_from_header,
    checksum_elements,
    header_name,
    multipart_checksum_type,
    new_checksum,
    normalize_algorithm,
    stored_checksum_type,
)
from api.context import S3Context
from api.copy import (
    authorize_copy_source,
    check_copy_preconditions,
    parse_copy_range,
    parse_copy_source,
)
from api.errors import S3Error
from api.listing import encode_key, max_keys_param
from api.object_lock import write_lock
from api.part_get import part_number_param
from api.settings import owner_id
from api.tagging import pop_upload_tags, upload_tagging_headers
from api.upload import check_declared_length, object_headers, receive, validate_key
from api.write_conditions import observe_write_condition
from storage.checksums import CRC_ALGORITHMS, DEFAULT_ALGORITHM, decode_value
from storage.manifest import Manifest
from storage.store import DeleteMarker
from storage.uploads import (
    DEFAULT_PART_CHECKSUM_HEADER,
    UploadInfo,
    UploadPage,
    upload_checksum_type,
    whole_object_checksum,
)

PART_BYTES_MAX = 5 << 30
COMPLETE_BODY_BYTES_MAX = 4 * 1024 * 1024
PARTS_PER_LISTING_MAX = 1000
_CHECKSUM_ELEMENTS = frozenset(f"Checksum{algorithm}" for algorithm in ALGORITHMS)


def _xml(body: bytes) -> Response:
    return Response(body, media_type="application/xml")


def _part_number(ctx: S3Context) -> int:
    return part_number_param(ctx.query.get("partNumber", ""))


async def _upload(ctx: S3Context) -> UploadInfo:
    return await ctx.store.multipart.get_upload(
        ctx.bucket_name, ctx.object_key, ctx.query["uploadId"]
    )


async def create_multipart_upload(ctx: S3Context) -> Response:
    validate_key(ctx.object_key)
    headers = tuple(object_headers(ctx.headers, lock=True)) + upload_tagging_headers(ctx)
    lock = await write_lock(ctx, body=False)  # kept with the upload, applied at completion
    headers += lock.upload_headers() if lock is not None else ()
    headers += await object_acl_headers(ctx)  # applied at completion, with the headers
    algorithm, checksum_type = _upload_checksum(ctx)
    if checksum_type:
        headers += ((TYPE_HEADER, checksum_type),)
    upload = await ctx.store.multipart.create_upload(
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
        response.headers[TYPE_HEADER] = checksum_type
    return response


def _upload_checksum(ctx: S3Context) -> tuple[str, str]:
    """(algorithm, checksum type) of a new upload, both '' without x-amz-checksum-algorithm."""
    requested_algorithm = ctx.headers.get("x-amz-checksum-algorithm")
    requested_type = ctx.headers.get(TYPE_HEADER)
    if not requested_algorithm:
        if requested_type is not None:
            raise S3Error(
                "InvalidRequest",
                f"The {TYPE_HEADER} header can only be used with the "
                "x-amz-checksum-algorithm header.",
            )
        return "", ""
    algorithm = normalize_algorithm(requested_algorithm)
    return algorithm, multipart_checksum_type(algorithm, requested_type)


async def upload_part(ctx: S3Context) -> Response:
    number = _part_number(ctx)
    upload = await _upload(ctx)
    _check_part_algorithm(ctx, upload)
    # A part of an upload with an algorithm always gets that checksum: computed here when
    # the client sent none, so that the object's checksum can be built at completion. A
    # part of an upload without one gets AWS's default CRC64NVME (unless the client sent
    # that itself), from which completion combines the object's FULL_OBJECT CRC64NVME.
    body = Body(
        ctx.request,
        ctx.auth,
        compute=upload.checksum or None,
        default=None if upload.checksum else DEFAULT_ALGORITHM,
        default_alongside=True,
    )
    check_declared_length(ctx, body, min(PART_BYTES_MAX, ctx.settings.max_object_size))
    writer = await ctx.store.multipart.begin_part(
        upload, min(PART_BYTES_MAX, ctx.settings.max_object_size)
    )
    await receive(ctx, writer, body)
    default = body.default_checksum()
    stored = sorted(body.checksum_values().items())
    if default is not None:
        stored.append((DEFAULT_PART_CHECKSUM_HEADER, default[1]))
    part = await writer.commit_part(upload, number, tuple(stored))
    headers = {"ETag": f'"{part.etag}"'}
    headers.update(body.object_checksums())  # the default too, when the client sent none
    return Response(status_code=200, headers=headers)


def _check_part_algorithm(ctx: S3Context, upload: UploadInfo) -> None:
    """An upload created with x-amz-checksum-algorithm takes no part checksum of another
    algorithm (as a header, query parameter or declared trailer): the object's checksum is
    built from the parts' checksums of the upload's algorithm."""
    if not upload.checksum:
        return
    declared = [n for n in checksum_fields(ctx.request) if algorithm_from_header(n) is not None]
    declared += [t.strip().lower() for t in ctx.headers.get("x-amz-trailer", "").split(",")]
    sent = next((algorithm_from_header(n) for n in declared if algorithm_from_header(n)), None)
    if sent is not None and header_name(upload.checksum) not in declared:
        raise S3Error(
            "InvalidRequest",
            f"Checksum Type mismatch occurred, expected checksum Type: "
            f"{upload.checksum.lower()}, actual checksum Type: {(sent or 'null').lower()}",
        )


async def _range_checksum(
    ctx: S3Context, source: Manifest, first: int, last: int, algorithm: str
) -> str:
    """The checksum of a copied range: the source's own full-object checksum when the range is
    the whole source, else computed over the range, read (and BLAKE3-verified) once more."""
    if first == 0 and last == source.size - 1:
        stored = whole_object_checksum(source.headers, algorithm)
        if stored is not None:
            return stored
    checksum = new_checksum(algorithm)
    if last >= first:
        async for piece in ctx.store.read(source, first, last):
            checksum.update(piece)
    return checksum.b64digest()


async def _copied_part_checksums(
    ctx: S3Context, upload: UploadInfo, source: Manifest, first: int, last: int
) -> tuple[tuple[str, str], ...]:
    """The checksum a copied part keeps: the upload's algorithm's, or (an upload without
    one) the default CRC64NVME under its internal name, as UploadPart keeps them."""
    if upload.checksum:
        value = await _range_checksum(ctx, source, first, last, upload.checksum)
        return ((header_name(upload.checksum), value),)
    value = await _range_checksum(ctx, source, first, last, DEFAULT_ALGORITHM)
    return ((DEFAULT_PART_CHECKSUM_HEADER, value),)


async def upload_part_copy(ctx: S3Context) -> Response:
    number = _part_number(ctx)
    upload = await _upload(ctx)
    bucket, key, version_id = parse_copy_source(ctx.headers["x-amz-copy-source"])
    await authorize_copy_source(ctx, bucket, key, version_id)
    try:
        source = await ctx.store.head_object(bucket, key, version_id)
    except DeleteMarker as marker:
        raise S3Error("NoSuchKey", "The specified key does not exist.") from marker
    check_copy_preconditions(ctx.headers, f'"{source.etag}"', source.last_modified_ms)
    first, last = parse_copy_range(ctx.headers.get("x-amz-copy-source-range"), source.size)
    if last - first + 1 > PART_BYTES_MAX:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    checksums = await _copied_part_checksums(ctx, upload, source, first, last)
    part = await ctx.store.multipart.copy_part(upload, number, source, first, last, checksums)
    response = _xml(
        xml.render(
            "CopyPartResult",
            [
                ("ETag", f'"{part.etag}"'),
                ("LastModified", xml.iso8601_ms(part.modified_ms)),
                # Not the default CRC64NVME of an upload without an algorithm: AWS's
                # CopyPartResult has one only for uploads created with CRC64NVME.
                *checksum_elements(checksums),
            ],
        )
    )
    if version_id is not None:
        response.headers["x-amz-copy-source-version-id"] = version_id
    return response


def _shown_part_checksums(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """A part's checksums as ListParts shows them: those the client sent or the upload's
    algorithm gave it, or else the default CRC64NVME (AWS's ``Part``: "present if ... the
    object was uploaded without a checksum (and Amazon S3 added the default checksum)")."""
    elements = checksum_elements(headers)
    default = dict(headers).get(DEFAULT_PART_CHECKSUM_HEADER)
    if not elements and default is not None:
        elements.append((f"Checksum{DEFAULT_ALGORITHM}", default))
    return elements


def _parse_complete(body: bytes) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """(part number, ETag) pairs, and (part number, checksum header, value) listed with them."""
    root = xml.parse(body)
    parts: list[tuple[int, str]] = []
    checksums: list[tuple[int, str, str]] = []
    for element in xml.children_named(root, "Part"):
        number, etag = xml.child_text(element, "PartNumber"), xml.child_text(element, "ETag")
        if number is None or etag is None or not number.strip().isdigit():
            raise S3Error("MalformedXML", "Each Part needs a PartNumber and an ETag.")
        parts.append((int(number), etag.strip()))
        checksums.extend(
            (int(number), header_name(name.removeprefix("Checksum")), (value.text or "").strip())
            for value in element
            if (name := xml.local_name(value)) in _CHECKSUM_ELEMENTS
        )
    if xml.local_name(root) != "CompleteMultipartUpload" or not parts:
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not "
            "validate against our published schema",
        )
    return parts, checksums


def _check_listed_checksums(
    upload: UploadInfo, parts: list[tuple[int, str]], listed: list[tuple[int, str, str]]
) -> None:
    """An upload with a COMPOSITE checksum must list that checksum for every part (AWS); a
    FULL_OBJECT upload may omit them (its checksum is the object's, not the parts')."""
    if upload_checksum_type(upload) != COMPOSITE:
        return
    name = header_name(upload.checksum)
    have = {number for number, header, _value in listed if header == name}
    for number, _etag in parts:
        if number not in have:
            raise S3Error(
                "InvalidRequest",
                f"The upload was created using a {upload.checksum.lower()} checksum. The "
                f"complete request must include the checksum for each part. It was missing "
                f"for part {number} in the request.",
            )


def _check_complete_type(
    ctx: S3Context, upload: UploadInfo, expected: tuple[str, str] | None
) -> None:
    """x-amz-checksum-type on the completion must repeat the upload's type (AWS); an upload
    created without an algorithm is FULL_OBJECT when a whole-object CRC comes with it, and
    otherwise has no mode to repeat (even though its object gets the default CRC64NVME)."""
    requested = ctx.headers.get(TYPE_HEADER)
    if requested is None:
        return
    actual = upload_checksum_type(upload) or (FULL_OBJECT if expected is not None else "")
    if requested.strip().upper() != actual:
        raise S3Error(
            "InvalidRequest",
            f"The upload was created using the {actual or 'null'} checksum mode. The "
            "complete request must use the same checksum mode.",
        )


def _expected_object_checksum(ctx: S3Context, upload: UploadInfo) -> tuple[str, str] | None:
    """The whole object's x-amz-checksum-* value sent with the completion (header or query),
    checked for form here; storage compares it with the one it builds from the parts."""
    sent = [(n, v) for n, v in checksum_fields(ctx.request).items() if algorithm_from_header(n)]
    if not sent:
        return None
    if len(sent) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    name, value = sent[0]
    algorithm = normalize_algorithm(algorithm_from_header(name) or "", name)
    # Without an algorithm at creation only a full-object CRC can be formed (see storage).
    if algorithm != (upload.checksum or algorithm) or (
        not upload.checksum and algorithm not in CRC_ALGORITHMS
    ):
        raise S3Error(
            "InvalidRequest",
            f"Checksum Type mismatch occurred, expected checksum Type: "
            f"{(upload.checksum or 'null').lower()}, actual checksum Type: {algorithm.lower()}",
        )
    digest, dash, count = value.strip().partition("-")
    composite = upload_checksum_type(upload) == COMPOSITE
    if decode_value(algorithm, digest) is None or (dash and not (composite and count.isdigit())):
        raise S3Error("InvalidRequest", f"Value for {name} header is invalid.")
    return name, value.strip()


async def complete_multipart_upload(ctx: S3Context) -> Response:
    upload, repeated = await ctx.store.multipart.upload_to_complete(
        ctx.bucket_name, ctx.object_key, ctx.query["uploadId"]
    )
    expected = _expected_object_checksum(ctx, upload)
    _check_complete_type(ctx, upload, expected)
    # The x-amz-checksum-* headers here are the object's checksum, not the XML body's.
    body = await Body(ctx.request, ctx.auth, header_checksums=False).read_all(
        COMPLETE_BODY_BYTES_MAX
    )
    parts, listed = _parse_complete(body)
    _check_listed_checksums(upload, parts, listed)
    tags, upload = pop_upload_tags(upload)
    # A repeated completion is answered as the first was, whatever the key holds now.
    condition = None if repeated else await observe_write_condition(ctx)
    manifest = await ctx.store.multipart.complete_upload(
        upload,
        parts,
        tags=tags,
        part_checksums=tuple(listed),
        expected_checksum=expected,
        condition=condition,
    )
    checksums = checksum_elements(manifest.headers)
    response = _xml(
        xml.render(
            "CompleteMultipartUploadResult",
            [
                ("Location", f"/{ctx.bucket_name}/{ctx.object_key}"),
                ("Bucket", ctx.bucket_name),
                ("Key", ctx.object_key),
                ("ETag", f'"{manifest.etag}"'),
                *checksums,
                ("ChecksumType", stored_checksum_type(manifest.headers)),
            ],
        )
    )
    if manifest.version_id != "null":
        response.headers["x-amz-version-id"] = manifest.version_id
    return response


async def abort_multipart_upload(ctx: S3Context) -> Response:
    await ctx.store.multipart.abort_upload(await _upload(ctx))
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
    parts, truncated = (
        ([], False)  # max-parts=0: an empty listing that is not truncated, as AWS answers
        if max_parts == 0
        else await ctx.store.multipart.list_parts(upload, marker, max_parts)
    )
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
        ("ChecksumAlgorithm", upload.checksum or None),
        ("ChecksumType", upload_checksum_type(upload) or None),
    ]
    nodes.extend(
        (
            "Part",
            [
                ("PartNumber", p.part_number),
                ("LastModified", xml.iso8601_ms(p.modified_ms)),
                ("ETag", f'"{p.etag}"'),
                ("Size", p.size),
                *_shown_part_checksums(p.manifest.headers),
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
    page = (
        UploadPage([], [], False, None, None)  # max-uploads=0: empty, not truncated
        if max_uploads == 0
        else await ctx.store.multipart.list_uploads(
            ctx.bucket_name, prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )
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
                    ("ChecksumAlgorithm", upload.checksum or None),
                    ("ChecksumType", upload_checksum_type(upload) or None),
                ],
            )
        )
    nodes.extend(
        ("CommonPrefixes", [("Prefix", encode_key(p, encoding))]) for p in page.common_prefixes
    )
    return _xml(xml.render("ListMultipartUploadsResult", nodes))
