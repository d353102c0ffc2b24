"""POST Object: browser-based uploads, ``POST /bucket`` with a multipart/form-data body.

The form replaces PutObject's headers: ``key`` (``${filename}`` is the file's name),
``Content-Type`` and the other stored headers, ``x-amz-meta-*``, ``acl``, ``tagging`` (XML),
``x-amz-checksum-*``, ``Content-MD5``, ``success_action_status`` / ``success_action_redirect``,
and the authority: a signed ``policy`` (api/post_auth.py checks who signed it,
api/post_policy.py what it allows). The request itself is unsigned, so access is decided
here, with the form's identity: api/access.py lets this operation through unchecked.

The ``file`` part must come last (fields after it are ignored, as S3 does). Everything
before it is bounded (20 KiB, S3's limit); the file itself streams into an ObjectWriter
piece by piece like a PutObject body, the policy's content-length-range checked as the bytes
arrive, so memory stays bounded whatever the file's size. Nothing is committed unless the
whole form was well-formed and every check passed.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from starlette.responses import Response

from api import xml
from api.access import authorize
from api.body import Body, content_md5
from api.checksums import (
    Checksum,
    algorithm_from_header,
    header_name,
    new_checksum,
    normalize_algorithm,
    verify_checksum,
)
from api.context import S3Context
from api.errors import S3Error
from api.formdata import FormReader, PartHead, boundary_of
from api.keyring import Identity
from api.post_auth import form_signer, missing_field
from api.post_policy import PostPolicy, check_length, check_policy, parse_policy
from api.tagging import OBJECT_TAGS_MAX, parse_tagging_xml
from api.upload import object_headers, validate_key
from storage.bucket_config import Tags
from storage.catalog import NULL_VERSION
from storage.checksums import DEFAULT_ALGORITHM
from storage.manifest import Manifest
from storage.object_writer import ObjectWriter

# S3: "The form data and boundaries (excluding the contents of the file) cannot exceed 20 KB."
PRE_DATA_BYTES_MAX = 20 * 1024
CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "aws-exec-read",
        "authenticated-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
    }
)
SUCCESS_STATUSES = {"200": 200, "201": 201, "204": 204}  # anything else: 204, as S3 does
FILENAME_VARIABLE = "${filename}"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # RFC 9110 token (names are lower case)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# What a URL may keep as it is; anything else in a redirect (non-ASCII) is percent-encoded.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def _too_much_before_file() -> S3Error:
    return S3Error(
        "MaxPostPreDataLengthExceededError",
        "Your POST request fields preceding the upload file were too large.",
    )


@dataclasses.dataclass(frozen=True)
class _Upload:
    """What the form asks for, validated before any byte of the file is stored."""

    key: str
    # The canned ACL asked for (validated). Stored nowhere on this branch: the ACL model
    # (api/acl.py) turns it into the object's ACL headers as PutObject does with x-amz-acl.
    acl: str | None
    headers: list[tuple[str, str]]
    tags: Tags
    checksum: Checksum
    checksum_value: str | None  # the client's value to verify; None: computed and stored
    content_md5: bytes | None
    policy: PostPolicy | None


async def post_object(ctx: S3Context) -> Response:
    boundary = boundary_of(ctx.headers.get("content-type"))
    await ctx.store.get_bucket(ctx.bucket_name)  # NoSuchBucket before the body is read
    body = Body(ctx.request, ctx.auth)
    limit = ctx.settings.max_object_size + PRE_DATA_BYTES_MAX
    if body.declared_length is not None and body.declared_length > limit:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    reader = FormReader(body.stream(), boundary, PRE_DATA_BYTES_MAX)
    fields, file_part = await _read_fields(reader)
    _expand_filename(fields, file_part)
    key = _key(fields)
    identity = await _identity(ctx, fields)
    ctx.request.scope["state"]["access_key"] = identity.access_key  # the access log's actor
    policy = parse_policy(fields["policy"]) if "policy" in fields else None
    if policy is not None:
        check_policy(policy, {**fields, "bucket": ctx.bucket_name}, datetime.now(UTC))
    form_ctx = dataclasses.replace(ctx, identity=identity, key=key)
    await authorize(form_ctx, "s3:PutObject", ctx.bucket_name, key)
    upload = _upload(fields, key, policy)
    writer = await ctx.store.begin_object(ctx.bucket_name, key, ctx.settings.max_object_size)
    await _receive_file(reader, body, writer, upload)
    headers = upload.headers + _checksum_headers(upload)
    manifest = await writer.commit(headers, upload.tags)
    return _success(ctx, fields, key, manifest, dict(_checksum_headers(upload)))


async def _read_fields(reader: FormReader) -> tuple[dict[str, str], PartHead]:
    """The fields before the file (names in lower case; repeated ones joined by commas, as
    the policy sees them) and the file part's head; the file's data is not read yet."""
    values: dict[str, list[str]] = {}
    while (part := await reader.next_part()) is not None:
        if part.data_offset > PRE_DATA_BYTES_MAX:
            raise _too_much_before_file()
        name = part.name.lower()
        if name == "file":
            return {n: ",".join(v) for n, v in values.items()}, part
        raw = await reader.read_value(
            PRE_DATA_BYTES_MAX - part.data_offset, _too_much_before_file()
        )
        try:
            values.setdefault(name, []).append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise S3Error("InvalidArgument", f"The form field {part.name!r} is not UTF-8.") from exc
    raise S3Error("InvalidArgument", "POST requires exactly one file upload per request.")


def _expand_filename(fields: dict[str, str], file_part: PartHead) -> None:
    """``${filename}`` in any field becomes the file's name, without a client's path."""
    filename = (file_part.filename or "").replace("\\", "/").rpartition("/")[2]
    for name, value in fields.items():
        if FILENAME_VARIABLE in value:
            fields[name] = value.replace(FILENAME_VARIABLE, filename)


def _key(fields: dict[str, str]) -> str:
    key = fields.get("key")
    if key is None:
        raise missing_field("key")
    if not key:
        raise S3Error("InvalidArgument", "User key must have a length greater than 0.")
    validate_key(key)
    return key


async def _identity(ctx: S3Context, fields: dict[str, str]) -> Identity:
    """The form's signer; an unsigned form acts as the request itself (anonymous, or the
    signer of its Authorization header); with --auth off everyone is the root key."""
    keyring = ctx.keyring
    if not ctx.settings.auth_enabled or keyring is None:
        return ctx.identity
    settings = ctx.settings
    try:
        signer = form_signer(fields, keyring.secret_for, settings.region, settings.sigv2_enabled)
    except S3Error as exc:
        # A key made moments ago may not be loaded by this worker yet (as in api/app.py).
        if exc.code != "InvalidAccessKeyId" or not await keyring.refresh():
            raise
        signer = form_signer(fields, keyring.secret_for, settings.region, settings.sigv2_enabled)
    return ctx.identity if signer is None else keyring.identity(signer)


def _upload(fields: dict[str, str], key: str, policy: PostPolicy | None) -> _Upload:
    acl = fields.get("acl")
    if acl is not None and acl not in CANNED_ACLS:
        raise S3Error("InvalidArgument", f"The ACL {acl!r} is not a canned ACL S3 knows.")
    tagging = fields.get("tagging")
    tags = parse_tagging_xml(tagging.encode(), OBJECT_TAGS_MAX) if tagging is not None else ()
    checksum, value = _checksum(fields)
    md5 = content_md5({"content-md5": fields["content-md5"]}) if "content-md5" in fields else None
    return _Upload(key, acl, _stored_headers(fields), tags, checksum, value, md5, policy)


def _stored_headers(fields: dict[str, str]) -> list[tuple[str, str]]:
    """The object's headers from the form, as a PutObject would store them: checked as
    text (metadata size in UTF-8 bytes), kept as the bytes a header would have carried.

    A form can say what no header can (a name with a space, a value with a line break);
    such a field is refused, as S3 does, since GetObject could not send it back."""
    kept = object_headers(fields)
    for name, value in kept:
        if _TOKEN.fullmatch(name) is None:
            raise S3Error("InvalidArgument", f"{name!r} is not a valid header name.")
        if _CONTROL.search(value):
            raise S3Error("InvalidArgument", f"The value of {name} has a control character.")
    return [(name, value.encode().decode("latin-1")) for name, value in kept]


def _checksum(fields: dict[str, str]) -> tuple[Checksum, str | None]:
    """The checksum the form asks for: a value to verify (x-amz-checksum-<alg>), or only an
    algorithm (x-amz-checksum-algorithm) whose checksum is computed and stored; without
    either, AWS's default CRC64NVME is computed and stored, as for PutObject."""
    given = [(name, value) for name, value in fields.items() if algorithm_from_header(name)]
    requested = fields.get("x-amz-checksum-algorithm")
    if len(given) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    if given:
        name, value = given[0]
        algorithm = algorithm_from_header(name)
        assert algorithm is not None
        if requested is not None and normalize_algorithm(requested) != algorithm:
            raise S3Error(
                "InvalidRequest",
                "Value for x-amz-checksum-algorithm is not the algorithm of the checksum given.",
            )
        return new_checksum(algorithm), value
    return new_checksum(requested if requested is not None else DEFAULT_ALGORITHM), None


def _checksum_headers(upload: _Upload) -> list[tuple[str, str]]:
    return [(header_name(upload.checksum.algorithm), upload.checksum.b64digest())]


async def _receive_file(
    reader: FormReader, body: Body, writer: ObjectWriter, upload: _Upload
) -> None:
    """Stream the file into ``writer``, then read the rest of the form and run every
    whole-body check; the writer is aborted on any failure."""
    policy = upload.policy
    size = 0
    try:
        async for piece in reader.data():
            size += len(piece)
            if policy is not None:
                check_length(policy, size, final=False)  # stop as soon as it is too large
            upload.checksum.update(piece)
            await writer.write(piece)
        md5 = await writer.finish()
        if policy is not None:
            check_length(policy, size, final=True)
        await reader.finish()
        body.verify()
        if upload.checksum_value is not None:
            verify_checksum(upload.checksum, upload.checksum_value)
        if upload.content_md5 is not None and md5 != upload.content_md5:
            raise S3Error(
                "BadDigest", "The Content-MD5 you specified did not match what we received."
            )
    except BaseException:
        await writer.abort()
        raise


def _location(ctx: S3Context, key: str) -> str:
    """The object's URL, as S3 gives it: path-style or virtual-hosted like the request."""
    host = ctx.headers.get("host", "")
    base = f"{ctx.request.url.scheme}://{host}"
    encoded = quote(key, safe="")
    if ctx.request.scope["path"].strip("/"):  # path-style: /bucket
        return f"{base}/{ctx.bucket_name}/{encoded}"
    return f"{base}/{encoded}"


def _redirect_target(fields: dict[str, str]) -> str | None:
    """success_action_redirect (or the older ``redirect``), if it is an http(s) URL; S3
    ignores one it cannot interpret."""
    target = fields.get("success_action_redirect", fields.get("redirect"))
    if target is None or _CONTROL.search(target) or "\t" in target:
        return None
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return quote(target, safe=_URL_SAFE)


def _success(
    ctx: S3Context,
    fields: dict[str, str],
    key: str,
    manifest: Manifest,
    checksum_headers: dict[str, str],
) -> Response:
    etag = f'"{manifest.etag}"'
    location = _location(ctx, key)
    headers = {"ETag": etag, "Location": location, **checksum_headers}
    if manifest.version_id != NULL_VERSION:
        headers["x-amz-version-id"] = manifest.version_id
    target = _redirect_target(fields)
    if target is not None:
        query = "&".join(
            f"{name}={quote(value, safe='')}"
            for name, value in (("bucket", ctx.bucket_name), ("key", key), ("etag", etag))
        )
        headers["Location"] = f"{target}{'&' if '?' in target else '?'}{query}"
        return Response(status_code=303, headers=headers)
    status = SUCCESS_STATUSES.get(fields.get("success_action_status", ""), 204)
    if status != 201:
        return Response(status_code=status, headers=headers)
    document = xml.render(
        "PostResponse",
        [("Location", location), ("Bucket", ctx.bucket_name), ("Key", key), ("ETag", etag)],
        namespace=False,
    )
    return Response(document, status_code=201, headers=headers, media_type="application/xml")
