"""Bucket policies (Put/Get/DeleteBucketPolicy) and the ACL-less ACL answers.

lakenode has no ACLs: access comes from key scopes and bucket policies. GetBucketAcl and
GetObjectAcl still answer, as AWS does for buckets with ACLs disabled, with the owner holding
FULL_CONTROL, because clients (s3cmd info, some SDK helpers) ask for them. Setting an ACL is
accepted only for the canned ``private`` ACL, which changes nothing.
"""

from __future__ import annotations

from starlette.responses import Response

from api import xml
from api.body import Body
from api.context import S3Context
from api.errors import S3Error
from api.policy import parse_policy
from api.settings import owner_id
from storage.errors import NoSuchConfiguration

POLICY_BYTES_MAX = 20 * 1024  # AWS's bucket policy size limit


async def put_bucket_policy(ctx: S3Context) -> Response:
    body = await Body(ctx.request, ctx.auth).read_all(POLICY_BYTES_MAX + 1)
    if len(body) > POLICY_BYTES_MAX:
        raise S3Error("PolicyTooLarge", f"Policies must be at most {POLICY_BYTES_MAX} bytes.")
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise S3Error("MalformedPolicy", "Policies must be UTF-8 JSON.") from exc
    parse_policy(text, ctx.bucket_name)  # refuse what we could not enforce
    await ctx.store.put_bucket_document(ctx.bucket_name, "policy", text)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=204)


async def get_bucket_policy(ctx: S3Context) -> Response:
    try:
        text = await ctx.store.get_bucket_document(ctx.bucket_name, "policy")
    except NoSuchConfiguration as exc:
        raise S3Error(
            "NoSuchBucketPolicy", "The bucket policy does not exist", resource=ctx.resource
        ) from exc
    return Response(text, media_type="application/json")


async def delete_bucket_policy(ctx: S3Context) -> Response:
    await ctx.store.get_bucket(ctx.bucket_name)
    await ctx.store.put_bucket_document(ctx.bucket_name, "policy", None)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=204)


def _acl_document(owner: str) -> bytes:
    identity = [("ID", owner_id(owner)), ("DisplayName", owner)]
    return xml.render(
        "AccessControlPolicy",
        [
            ("Owner", identity),
            (
                "AccessControlList",
                [
                    (
                        "Grant",
                        [
                            ("Grantee", identity),
                            ("Permission", "FULL_CONTROL"),
                        ],
                    )
                ],
            ),
        ],
    ).replace(
        b"<Grantee>",
        b'<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">',
    )


async def get_bucket_acl(ctx: S3Context) -> Response:
    bucket = await ctx.store.get_bucket(ctx.bucket_name)
    return Response(_acl_document(bucket.owner), media_type="application/xml")


async def get_object_acl(ctx: S3Context) -> Response:
    bucket = await ctx.store.get_bucket(ctx.bucket_name)
    await ctx.store.head_object(ctx.bucket_name, ctx.object_key, ctx.query.get("versionId"))
    return Response(_acl_document(bucket.owner), media_type="application/xml")


async def put_acl(ctx: S3Context) -> Response:
    canned = ctx.headers.get("x-amz-acl", "")
    if canned != "private" or int(ctx.headers.get("content-length", "0") or 0) > 0:
        raise S3Error(
            "NotImplemented",
            "ACLs are not supported; use bucket policies. Only the "
            "canned ACL 'private' is accepted.",
        )
    await ctx.store.get_bucket(ctx.bucket_name)
    return Response(status_code=200)
