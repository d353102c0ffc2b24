"""Bucket policies: Put/Get/DeleteBucketPolicy (ACLs are in api/acl_handlers.py).

A policy is parsed before it is stored, so every stored policy is one api/access.py can
enforce; a public access block with BlockPublicPolicy refuses public policies.
"""

from __future__ import annotations

from starlette.responses import Response

from api import xml
from api.body import Body
from api.context import S3Context
from api.errors import S3Error
from api.policy import parse_policy
from api.public_access import policy_is_public, refuse_public_policy
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
    policy = parse_policy(text, ctx.bucket_name)  # refuse what we could not enforce
    access = await ctx.bucket_access.get(ctx.bucket_name)
    if access is not None:
        refuse_public_policy(access.public_access, policy)
    await ctx.store.put_bucket_document(ctx.bucket_name, "policy", text)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=204)


async def _stored_policy(ctx: S3Context) -> str:
    try:
        return await ctx.store.get_bucket_document(ctx.bucket_name, "policy")
    except NoSuchConfiguration as exc:
        raise S3Error(
            "NoSuchBucketPolicy", "The bucket policy does not exist", resource=ctx.resource
        ) from exc


async def get_bucket_policy(ctx: S3Context) -> Response:
    return Response(await _stored_policy(ctx), media_type="application/json")


async def get_bucket_policy_status(ctx: S3Context) -> Response:
    """GetBucketPolicyStatus: IsPublic by AWS's rule (api/public_access.py)."""
    public = policy_is_public(parse_policy(await _stored_policy(ctx), ctx.bucket_name))
    body = xml.render("PolicyStatus", [("IsPublic", public)])
    return Response(body, media_type="application/xml")


async def delete_bucket_policy(ctx: S3Context) -> Response:
    await ctx.store.get_bucket(ctx.bucket_name)
    await ctx.store.put_bucket_document(ctx.bucket_name, "policy", None)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=204)
