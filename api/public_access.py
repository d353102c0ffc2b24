"""Block Public Access: Put/Get/DeletePublicAccessBlock, GetBucketPolicyStatus, and AWS's
rule of what makes a bucket policy public.

The configuration is kept as the bucket document ``public-access-block`` (compact JSON of the
four settings). api/access.py enforces IgnorePublicAcls and RestrictPublicBuckets when it
decides; BlockPublicAcls is enforced where an ACL is set (api/acl_handlers.py) and
BlockPublicPolicy by PutBucketPolicy (api/bucket_policy.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from starlette.responses import Response

from api import xml
from api.body import read_small_body
from api.context import S3Context
from api.errors import S3Error
from api.policy import Condition, Decision, Policy
from storage.errors import NoSuchConfiguration

DOCUMENT = "public-access-block"
BODY_BYTES_MAX = 16 * 1024
# XML element -> field, in AWS's order.
_ELEMENTS = {
    "BlockPublicAcls": "block_public_acls",
    "IgnorePublicAcls": "ignore_public_acls",
    "BlockPublicPolicy": "block_public_policy",
    "RestrictPublicBuckets": "restrict_public_buckets",
}
# Condition keys that, fixed to values without wildcards, make an Allow to "*" non-public
# (AWS: "The meaning of public", in "Blocking public access to your Amazon S3 storage").
_FIXING_KEYS = frozenset(
    {
        "aws:sourceip",
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceaccount",
        "aws:sourceowner",
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:userid",
        "s3:dataaccesspointarn",
        "s3:dataaccesspointaccount",
    }
)
_FIXING_OPERATORS = frozenset({"StringEquals", "StringLike", "ArnEquals", "ArnLike", "IpAddress"})
_OPEN_NETWORKS = frozenset({"0.0.0.0/0", "::/0"})


@dataclass(frozen=True)
class PublicAccessBlock:
    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PublicAccessBlock:
        return cls(**{name: bool(value) for name, value in json.loads(text).items()})


NO_BLOCK = PublicAccessBlock()


def parse_public_access_xml(body: bytes) -> PublicAccessBlock:
    root = xml.parse(body)
    if xml.local_name(root) != "PublicAccessBlockConfiguration":
        raise xml.malformed_xml()
    values: dict[str, bool] = {}
    for element in root:
        field = _ELEMENTS.get(xml.local_name(element))
        text = (element.text or "").strip().lower()
        if field is None or field in values or text not in ("true", "false"):
            raise xml.malformed_xml()
        values[field] = text == "true"
    return PublicAccessBlock(**values)


def render_public_access(block: PublicAccessBlock) -> bytes:
    settings = asdict(block)
    return xml.render(
        "PublicAccessBlockConfiguration",
        [(element, bool(settings[field])) for element, field in _ELEMENTS.items()],
    )


def policy_is_public(policy: Policy) -> bool:
    """AWS's rule: a policy is public when an Allow statement grants to every principal
    ("*") without a condition that fixes the caller to known values (a source IP range other
    than the whole Internet, a source ARN/VPC/account, a principal's organisation...). An
    Allow with NotPrincipal grants to everyone it does not name, anonymous users included."""
    return any(
        statement.effect is Decision.ALLOW
        and statement.principals is not None
        and ("*" in statement.principals) != statement.not_principal
        and not any(_fixes_caller(c) for c in statement.conditions)
        for statement in policy.statements
    )


def _fixes_caller(condition: Condition) -> bool:
    if condition.key not in _FIXING_KEYS or condition.operator not in _FIXING_OPERATORS:
        return False
    if condition.operator == "IpAddress":
        return not any(value in _OPEN_NETWORKS for value in condition.values)
    return not any("*" in value or "?" in value for value in condition.values)


async def put_public_access_block(ctx: S3Context) -> Response:
    body = await read_small_body(ctx.request, ctx.auth, BODY_BYTES_MAX)
    block = parse_public_access_xml(body)
    await ctx.store.put_bucket_document(ctx.bucket_name, DOCUMENT, block.to_json())
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=200)


async def get_public_access_block(ctx: S3Context) -> Response:
    try:
        text = await ctx.store.get_bucket_document(ctx.bucket_name, DOCUMENT)
    except NoSuchConfiguration as exc:
        raise S3Error(
            "NoSuchPublicAccessBlockConfiguration",
            "The public access block configuration was not found",
            resource=ctx.resource,
        ) from exc
    body = render_public_access(PublicAccessBlock.from_json(text))
    return Response(body, media_type="application/xml")


async def delete_public_access_block(ctx: S3Context) -> Response:
    await ctx.store.put_bucket_document(ctx.bucket_name, DOCUMENT, None)
    ctx.bucket_access.invalidate(ctx.bucket_name)
    return Response(status_code=204)


def refuse_public_policy(block: PublicAccessBlock, policy: Policy) -> None:
    """BlockPublicPolicy: PutBucketPolicy of a public policy is AccessDenied."""
    if block.block_public_policy and policy_is_public(policy):
        raise S3Error("AccessDenied", "Access Denied")
