"""S3 Object Ownership: Put/Get/DeleteBucketOwnershipControls and CreateBucket's
``x-amz-object-ownership`` header.

The rule is kept as the bucket document ``ownership`` (its name alone). A bucket without one
has no ownership controls and ACLs work, as on MinIO and Ceph and on AWS before April 2023
(AWS now defaults new buckets to BucketOwnerEnforced): clients and conformance suites rely on
ACLs working by default. BucketOwnerEnforced disables ACLs (see api/acl_handlers.py).
"""

from __future__ import annotations

from starlette.responses import Response

from api import xml
from api.acl import Acl
from api.body import read_small_body
from api.context import S3Context
from api.errors import S3Error
from storage.errors import NoSuchConfiguration

ENFORCED = "BucketOwnerEnforced"
PREFERRED = "BucketOwnerPreferred"
OBJECT_WRITER = "ObjectWriter"
RULES = (ENFORCED, PREFERRED, OBJECT_WRITER)
DOCUMENT = "ownership"
BODY_BYTES_MAX = 16 * 1024


def check_rule(value: str) -> str:
    if value not in RULES:
        raise S3Error("InvalidArgument", f"Invalid x-amz-object-ownership value {value!r}.")
    return value


def parse_ownership_xml(body: bytes) -> str:
    """``<OwnershipControls><Rule><ObjectOwnership>..</ObjectOwnership></Rule>`` -> rule."""
    root = xml.parse(body)
    rules = xml.children_named(root, "Rule")
    if xml.local_name(root) != "OwnershipControls" or len(rules) != 1:
        raise xml.malformed_xml()
    value = xml.child_text(rules[0], "ObjectOwnership")
    if value not in RULES:
        raise xml.malformed_xml()
    return value


def refuse_acl_with_enforced(acl: Acl | None) -> None:
    """BucketOwnerEnforced and a bucket ACL that grants beyond the owner cannot go together
    (AWS asks for the ACL to be reset to the owner's FULL_CONTROL first)."""
    if acl is None:
        return
    if any(g.grantee != acl.owner for g in acl.grants):
        raise S3Error(
            "InvalidBucketAclWithObjectOwnership",
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        )


async def put_bucket_ownership_controls(ctx: S3Context) -> Response:
    rule = parse_ownership_xml(await read_small_body(ctx.request, ctx.auth, BODY_BYTES_MAX))
    access = await ctx.bucket_access.get(ctx.bucket_name)
    if rule == ENFORCED and access is not None:
        refuse_acl_with_enforced(access.acl)
    await ctx.store.put_bucket_document(ctx.bucket_name, DOCUMENT, rule)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=200)


async def get_bucket_ownership_controls(ctx: S3Context) -> Response:
    try:
        rule = await ctx.store.get_bucket_document(ctx.bucket_name, DOCUMENT)
    except NoSuchConfiguration as exc:
        raise S3Error(
            "OwnershipControlsNotFoundError",
            "The bucket ownership controls were not found",
            resource=ctx.resource,
        ) from exc
    body = xml.render("OwnershipControls", [("Rule", [("ObjectOwnership", rule)])])
    return Response(body, media_type="application/xml")


async def delete_bucket_ownership_controls(ctx: S3Context) -> Response:
    await ctx.store.put_bucket_document(ctx.bucket_name, DOCUMENT, None)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=204)
