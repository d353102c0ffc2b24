"""Bucket operations: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, location, versioning."""

from __future__ import annotations

import ipaddress
import re

from starlette.responses import Response

from api import xml
from api.access import authorize
from api.acl_handlers import apply_bucket_creation_acl, bucket_creation_acl
from api.body import Body
from api.context import S3Context
from api.errors import S3Error
from api.listing import decode_token, encode_token
from api.settings import owner_id
from storage.catalog import BucketInfo
from storage.errors import BucketAlreadyExists

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
CREATE_BODY_BYTES_MAX = 64 * 1024
MAX_BUCKETS_LIMIT = 10_000
# The region where CreateBucket of a bucket its owner already has succeeds (AWS's legacy).
LEGACY_REGION = "us-east-1"


def validate_bucket_name(name: str) -> None:
    """AWS's general-purpose bucket naming rules; violations are InvalidBucketName."""
    problem = None
    if not _BUCKET_NAME.match(name):
        problem = "must be 3-63 lowercase letters, digits, dots or hyphens, start/end alnum"
    elif ".." in name or ".-" in name or "-." in name:
        problem = "must not contain adjacent periods or a period next to a hyphen"
    elif name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        problem = "uses a reserved prefix or suffix"
    elif _is_ip_address(name):
        problem = "must not be formatted as an IP address"
    if problem:
        raise S3Error(
            "InvalidBucketName", f"The specified bucket is not valid: {problem}.", resource=name
        )


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def _xml_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/xml")


async def list_buckets(ctx: S3Context) -> Response:
    """ListBuckets, paginated as AWS does since 2024: max-buckets (1..10000),
    continuation-token (opaque: the last name sent), prefix and bucket-region filters."""
    page_size = _max_buckets(ctx.query)
    prefix = ctx.query.get("prefix", "")
    token = ctx.query.get("continuation-token")
    after = decode_token(token) if token else ""
    region = ctx.query.get("bucket-region")
    selected: list[BucketInfo] = []
    truncated = False
    if region is None or region == ctx.settings.region:
        for info in sorted(await ctx.store.list_buckets(), key=lambda b: b.name):
            if info.name <= after or not info.name.startswith(prefix):
                continue
            if not await _visible(ctx, info.name):
                continue
            if page_size is not None and len(selected) == page_size:
                truncated = True
                break
            selected.append(info)
    owner = ctx.access_key
    entries = [
        (
            "Bucket",
            [
                ("Name", b.name),
                ("CreationDate", xml.iso8601_ms(b.created_ms)),
                ("BucketRegion", ctx.settings.region),
            ],
        )
        for b in selected
    ]
    return _xml_response(
        xml.render(
            "ListAllMyBucketsResult",
            [
                ("Buckets", entries),
                ("Owner", [("ID", owner_id(owner)), ("DisplayName", owner)]),
                ("ContinuationToken", encode_token(selected[-1].name) if truncated else None),
                ("Prefix", prefix if "prefix" in ctx.query else None),
            ],
        )
    )


def _max_buckets(query: dict[str, str]) -> int | None:
    """The page size: max-buckets, else 10000 when another pagination parameter is given
    (AWS's default), else None (every bucket, the legacy answer)."""
    raw = query.get("max-buckets")
    if raw is None:
        paginated = any(n in query for n in ("continuation-token", "prefix", "bucket-region"))
        return MAX_BUCKETS_LIMIT if paginated else None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_BUCKETS_LIMIT:
        raise S3Error(
            "InvalidArgument",
            f"Argument max-buckets must be an integer between 1 and {MAX_BUCKETS_LIMIT}",
        )
    return value


async def _visible(ctx: S3Context, bucket: str) -> bool:
    """A bucket is listed to a key that owns it or may list its contents."""
    try:
        await authorize(ctx, "s3:ListBucket", bucket, acls=False)
    except S3Error:
        return False
    return True


async def create_bucket(ctx: S3Context) -> Response:
    validate_bucket_name(ctx.bucket_name)
    body = await Body(ctx.request, ctx.auth).read_all(CREATE_BODY_BYTES_MAX)
    if body.strip():
        root = xml.parse(body)
        location = xml.child_text(root, "LocationConstraint")
        if location and location != ctx.settings.region:
            raise S3Error(
                "IllegalLocationConstraintException",
                f"The {location} location constraint is incompatible for the region specific "
                f"endpoint this request was sent to ({ctx.settings.region}).",
            )
    acl, ownership = await bucket_creation_acl(ctx)
    object_lock = _lock_enabled_header(ctx)
    try:
        await ctx.store.create_bucket(ctx.bucket_name, ctx.access_key, object_lock)
    except BucketAlreadyExists as exists:
        owner = (await ctx.store.get_bucket(ctx.bucket_name)).owner
        if owner == ctx.access_key or ctx.identity.root:
            if ctx.settings.region == LEGACY_REGION:
                # AWS's us-east-1 answers 200 to its owner again; tools (awscli's `s3 mb`,
                # minio's make_bucket, Terraform) rely on it.
                return _created(ctx)
            raise S3Error(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named "
                "bucket succeeded and you already own it.",
                resource=ctx.resource,
            ) from exists
        raise S3Error(
            "BucketAlreadyExists",
            "The requested bucket name is not available. The "
            "bucket namespace is shared by all users of the system. Please select a "
            "different name and try again.",
            resource=ctx.resource,
        ) from exists
    await apply_bucket_creation_acl(ctx, acl, ownership)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return _created(ctx)


def _lock_enabled_header(ctx: S3Context) -> bool:
    """``x-amz-bucket-object-lock-enabled``: true makes a versioned bucket with object lock."""
    value = ctx.headers.get("x-amz-bucket-object-lock-enabled")
    if value is None:
        return False
    if value.strip().lower() not in ("true", "false"):
        raise S3Error("InvalidArgument", "x-amz-bucket-object-lock-enabled must be true or false.")
    return value.strip().lower() == "true"


def _created(ctx: S3Context) -> Response:
    return Response(status_code=200, headers={"Location": f"/{ctx.bucket_name}"})


async def delete_bucket(ctx: S3Context) -> Response:
    await ctx.store.delete_bucket(ctx.bucket_name)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=204)


async def head_bucket(ctx: S3Context) -> Response:
    await ctx.store.get_bucket(ctx.bucket_name)
    return Response(status_code=200, headers={"x-amz-bucket-region": ctx.settings.region})


async def get_bucket_location(ctx: S3Context) -> Response:
    await ctx.store.get_bucket(ctx.bucket_name)
    # us-east-1 is reported as an empty constraint, as AWS does.
    region = "" if ctx.settings.region == "us-east-1" else ctx.settings.region
    body = (
        f'{xml.XML_DECLARATION}<LocationConstraint xmlns="{xml.S3_NAMESPACE}">'
        f"{xml.escape(region)}</LocationConstraint>"
    ).encode()
    return _xml_response(body)


async def get_bucket_versioning(ctx: S3Context) -> Response:
    bucket = await ctx.store.get_bucket(ctx.bucket_name)
    status = [("Status", bucket.versioning)] if bucket.versioning else []
    return _xml_response(xml.render("VersioningConfiguration", status))


VERSIONING_BODY_BYTES_MAX = 64 * 1024


async def put_bucket_versioning(ctx: S3Context) -> Response:
    body = await Body(ctx.request, ctx.auth).read_all(VERSIONING_BODY_BYTES_MAX)
    root = xml.parse(body)
    if xml.local_name(root) != "VersioningConfiguration":
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not "
            "validate against our published schema",
        )
    status = (xml.child_text(root, "Status") or "").strip()
    if xml.child_text(root, "MfaDelete") not in (None, "", "Disabled"):
        raise S3Error("NotImplemented", "MFA Delete is not supported.")
    if status not in ("Enabled", "Suspended"):
        raise S3Error("MalformedXML", "The versioning Status must be Enabled or Suspended.")
    await ctx.store.set_versioning(ctx.bucket_name, status)
    return Response(status_code=200)
