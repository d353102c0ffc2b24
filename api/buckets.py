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
from api.settings import owner_id
from storage.errors import BucketAlreadyExists

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
CREATE_BODY_BYTES_MAX = 64 * 1024


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
    buckets = [b for b in await ctx.store.list_buckets() if await _visible(ctx, b.name)]
    owner = ctx.access_key
    entries = [
        ("Bucket", [("Name", b.name), ("CreationDate", xml.iso8601_ms(b.created_ms))])
        for b in buckets
    ]
    return _xml_response(
        xml.render(
            "ListAllMyBucketsResult",
            [
                ("Owner", [("ID", owner_id(owner)), ("DisplayName", owner)]),
                ("Buckets", entries),
            ],
        )
    )


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
    acl, ownership = bucket_creation_acl(ctx)
    try:
        await ctx.store.create_bucket(ctx.bucket_name, ctx.access_key)
    except BucketAlreadyExists as exists:
        owner = (await ctx.store.get_bucket(ctx.bucket_name)).owner
        if owner == ctx.access_key or ctx.identity.root:
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
