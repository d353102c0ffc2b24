"""The ACL calls (Get/PutBucketAcl, Get/PutObjectAcl) and the ACL a write sets (CreateBucket,
PutObject, CopyObject, CreateMultipartUpload: ``x-amz-acl`` or ``x-amz-grant-*``).

A request names an ACL in one of three ways, never two: a canned ACL, grant headers, or (the
ACL calls only) an AccessControlPolicy body. Who owns a new object follows the bucket's
ownership controls (api/ownership.py): its writer (ObjectWriter, or no controls), the bucket
owner (BucketOwnerEnforced; BucketOwnerPreferred with bucket-owner-full-control). With
BucketOwnerEnforced only the bucket owner's FULL_CONTROL may be set; a public access block
with BlockPublicAcls refuses public ACLs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.responses import Response

from api.access import BucketAccess, object_acl
from api.acl import (
    ACL_HEADER,
    Acl,
    canned,
    check_grantees,
    header_grants,
    is_unknown_grantee,
    parse_acl_xml,
    private,
    render_acl,
)
from api.body import read_small_body
from api.context import S3Context
from api.errors import S3Error
from api.ownership import DOCUMENT as OWNERSHIP_DOCUMENT
from api.ownership import ENFORCED, PREFERRED, check_rule, refuse_acl_with_enforced
from api.settings import owner_id

ACL_BODY_BYTES_MAX = 64 * 1024
Headers = tuple[tuple[str, str], ...]


def _display_name(ctx: S3Context) -> Callable[[str], str | None]:
    keyring = ctx.keyring
    return keyring.access_key_of if keyring is not None else lambda _canonical_id: None


def _known_user(ctx: S3Context) -> Callable[[str], bool]:
    keyring = ctx.keyring
    return lambda canonical_id: keyring is None or keyring.access_key_of(canonical_id) is not None


async def requested_acl(
    ctx: S3Context, owner: str, bucket_owner: str, on_object: bool, body: bytes = b""
) -> tuple[Acl | None, str | None]:
    """The ACL a request sets (None: it sets none) and the canned ACL's name if it used one.

    A grantee made moments ago (by `lakenode keys`, or loaded by another worker first) may
    not be known here yet: read the keys again once, if they changed, and decide again."""
    try:
        return _requested_acl(ctx, owner, bucket_owner, on_object, body)
    except S3Error as exc:
        if not is_unknown_grantee(exc) or ctx.keyring is None or not await ctx.keyring.refresh():
            raise
        return _requested_acl(ctx, owner, bucket_owner, on_object, body)


def _requested_acl(
    ctx: S3Context, owner: str, bucket_owner: str, on_object: bool, body: bytes
) -> tuple[Acl | None, str | None]:
    canned_name = ctx.headers.get("x-amz-acl")
    grants = header_grants(ctx.headers)
    if canned_name is not None and grants is not None:
        raise S3Error(
            "InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed"
        )
    if body.strip():
        if canned_name is not None or grants is not None:
            raise S3Error("UnexpectedContent", "This request does not support content")
        acl = parse_acl_xml(body)
        if acl.owner != owner:
            raise S3Error("AccessDenied", "Access Denied: the ACL's Owner is not the owner")
        check_grantees(acl.grants, _known_user(ctx))
        return acl, None
    if canned_name is not None:
        return canned(canned_name, owner, bucket_owner, on_object), canned_name
    if grants is not None:
        check_grantees(grants, _known_user(ctx))
        return Acl(owner, tuple(grants)), None
    return None, None


def _check_settable(access: BucketAccess, acl: Acl | None) -> None:
    """BucketOwnerEnforced takes only the bucket owner's FULL_CONTROL; BlockPublicAcls
    refuses public ACLs."""
    if acl is None:
        return
    bucket_owner = owner_id(access.owner)
    if not access.acls_enabled and any(
        g.grantee != bucket_owner or g.permission != "FULL_CONTROL" for g in acl.grants
    ):
        raise S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs")
    if access.public_access.block_public_acls and acl.is_public:
        raise S3Error("AccessDenied", "Access Denied: public ACLs are blocked on this bucket")


async def _access(ctx: S3Context) -> BucketAccess:
    access = await ctx.bucket_access.get(ctx.bucket_name)
    if access is None:
        raise S3Error("NoSuchBucket", "The specified bucket does not exist", resource=ctx.resource)
    return access


def _acl_response(ctx: S3Context, acl: Acl) -> Response:
    return Response(render_acl(acl, _display_name(ctx)), media_type="application/xml")


# ---- the ACL calls --------------------------------------------------------------------------


async def get_bucket_acl(ctx: S3Context) -> Response:
    return _acl_response(ctx, (await _access(ctx)).bucket_acl)


async def put_bucket_acl(ctx: S3Context) -> Response:
    access = await _access(ctx)
    body = await read_small_body(ctx.request, ctx.auth, ACL_BODY_BYTES_MAX)
    owner = owner_id(access.owner)
    acl, _canned = await requested_acl(ctx, owner, owner, on_object=False, body=body)
    if acl is None:
        raise _missing_acl()
    _check_settable(access, acl)
    await ctx.store.put_bucket_document(ctx.bucket_name, "acl", acl.to_json())
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=200)


async def get_object_acl(ctx: S3Context) -> Response:
    access = await _access(ctx)
    manifest, later = await ctx.store.get_object_acl(
        ctx.bucket_name, ctx.object_key, ctx.query.get("versionId")
    )
    acl = object_acl(manifest, later, access)
    return _acl_response(ctx, acl if access.acls_enabled else private(owner_id(access.owner)))


async def put_object_acl(ctx: S3Context) -> Response:
    access = await _access(ctx)
    version_id = ctx.query.get("versionId")
    manifest, later = await ctx.store.get_object_acl(ctx.bucket_name, ctx.object_key, version_id)
    owner = object_acl(manifest, later, access).owner
    body = await read_small_body(ctx.request, ctx.auth, ACL_BODY_BYTES_MAX)
    acl, _canned = await requested_acl(
        ctx, owner, owner_id(access.owner), on_object=True, body=body
    )
    if acl is None:
        raise _missing_acl()
    _check_settable(access, acl)
    await ctx.store.put_object_acl(ctx.bucket_name, ctx.object_key, version_id, acl.to_json())
    return Response(status_code=200)


def _missing_acl() -> S3Error:
    return S3Error("MissingSecurityHeader", "Your request was missing a required header")


# ---- the ACL a write sets ------------------------------------------------------------------


async def object_acl_headers(ctx: S3Context) -> Headers:
    """The internal manifest header holding the ACL a new object version gets (none for the
    default: the bucket owner owns it with FULL_CONTROL). Checked before the body is read."""
    access = await ctx.bucket_access.get(ctx.bucket_name)
    if access is None:
        return ()  # the write itself answers NoSuchBucket
    bucket_owner = owner_id(access.owner)
    canned_name = ctx.headers.get("x-amz-acl")
    owner = bucket_owner
    by_writer = access.ownership != ENFORCED and not (
        access.ownership == PREFERRED and canned_name == "bucket-owner-full-control"
    )
    if by_writer and not ctx.identity.anonymous:
        owner = owner_id(ctx.access_key)
    acl, _canned = await requested_acl(ctx, owner, bucket_owner, on_object=True)
    _check_settable(access, acl)
    acl = acl or private(owner)
    if not access.acls_enabled or acl == private(bucket_owner):
        return ()
    return ((ACL_HEADER, acl.to_json()),)


def with_acl(headers: Iterable[tuple[str, str]], acl_headers: Headers) -> Headers:
    """``headers`` (a copy source's) without their ACL, plus the new version's ACL: a copy
    never inherits its source's ACL."""
    return tuple((n, v) for n, v in headers if n != ACL_HEADER) + acl_headers


async def bucket_creation_acl(ctx: S3Context) -> tuple[Acl | None, str | None]:
    """CreateBucket's ACL and x-amz-object-ownership, validated before the bucket exists."""
    ownership = ctx.headers.get("x-amz-object-ownership")
    if ownership is not None:
        check_rule(ownership)
    owner = owner_id(ctx.access_key)
    acl, _canned = await requested_acl(ctx, owner, owner, on_object=False)
    if ownership == ENFORCED:
        refuse_acl_with_enforced(acl)
    return acl, ownership


async def apply_bucket_creation_acl(ctx: S3Context, acl: Acl | None, ownership: str | None) -> None:
    """Store what :func:`bucket_creation_acl` validated, once the bucket exists."""
    if ownership is not None:
        await ctx.store.put_bucket_document(ctx.bucket_name, OWNERSHIP_DOCUMENT, ownership)
    if acl is not None and acl != private(acl.owner):
        await ctx.store.put_bucket_document(ctx.bucket_name, "acl", acl.to_json())
    ctx.bucket_access.invalidate(ctx.bucket_name)
