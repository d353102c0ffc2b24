"""Authorization: may this identity perform this action on this resource?

Decision, as AWS makes it for a bucket policy plus an identity policy:

1. the root key (``--access-key``) may do everything;
2. an explicit Deny in the bucket policy or in the key's own policy denies;
3. an Allow in the bucket policy (for this key or for ``*``) allows;
4. the key's own scope allows: by default a key may do everything on the buckets it owns
   (and create buckets, which it then owns); ``--read-only`` keeps only read actions (and
   alone, without ``--bucket``, lets the key read every bucket),
   ``--bucket`` names the only buckets it may touch (owned or not), ``--policy`` replaces
   ownership with an identity policy;
5. otherwise: AccessDenied.

Anonymous requests only get what a bucket policy grants to Principal ``*``, and only the
read actions of a public bucket (GET, HEAD, list).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from api.context import S3Context
from api.errors import S3Error
from api.keyring import Identity
from api.policy import ARN_PREFIX, Decision, Policy, PolicyRequest, evaluate, parse_policy
from storage.errors import NoSuchBucket, NoSuchConfiguration
from storage.store import Store

# The IAM action each operation needs (variants for versionId are chosen in action_for).
ACTION_BY_OPERATION = {
    "ListBuckets": "s3:ListAllMyBuckets",
    "CreateBucket": "s3:CreateBucket",
    "DeleteBucket": "s3:DeleteBucket",
    "HeadBucket": "s3:ListBucket",
    "GetBucketLocation": "s3:GetBucketLocation",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "DeleteObjects": "s3:DeleteObjects",  # MULTI_DELETE: each key is authorized on its own
    "PutObject": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "GetObjectAttributes": "s3:GetObjectAttributes",
    "DeleteObject": "s3:DeleteObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "GetObjectTagging": "s3:GetObjectTagging",
    "PutObjectTagging": "s3:PutObjectTagging",
    "DeleteObjectTagging": "s3:DeleteObjectTagging",
    "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging",
    "DeleteBucketTagging": "s3:PutBucketTagging",
    "GetBucketCors": "s3:GetBucketCORS",
    "PutBucketCors": "s3:PutBucketCORS",
    "DeleteBucketCors": "s3:PutBucketCORS",
    "GetBucketPolicy": "s3:GetBucketPolicy",
    "PutBucketPolicy": "s3:PutBucketPolicy",
    "DeleteBucketPolicy": "s3:DeleteBucketPolicy",
    "GetBucketAcl": "s3:GetBucketAcl",
    "PutBucketAcl": "s3:PutBucketAcl",
    "GetObjectAcl": "s3:GetObjectAcl",
    "PutObjectAcl": "s3:PutObjectAcl",
    "PostObject": "s3:PostObject",  # FORM_UPLOAD: api/post_object.py authorizes
}
_VERSIONED_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
}
# Not an IAM action: AWS authorizes a multi-object delete key by key (s3:DeleteObject on
# each), answering per-key AccessDenied errors, so a grant on a prefix works there too.
MULTI_DELETE = "s3:DeleteObjects"
# Not an IAM action either: a browser upload (POST Object) is an unsigned request whose form
# says who acts; api/post_object.py authorizes s3:PutObject with that identity.
FORM_UPLOAD = "s3:PostObject"
READ_ACTION_PREFIXES = ("s3:get", "s3:list")
ANONYMOUS_ACTIONS = frozenset(
    {"s3:getobject", "s3:getobjectversion", "s3:listbucket", "s3:listbucketversions"}
)
# The one write an anonymous user may make where a bucket policy grants it: a browser upload
# (S3: "Requests without a security policy are considered anonymous and will succeed only on
# publicly writable buckets"). Anonymous PUT/DELETE stay refused.
ANONYMOUS_UPLOAD_ACTIONS = ANONYMOUS_ACTIONS | {"s3:putobject"}
BUCKET_CACHE_TTL_S = 1.0


def action_for(operation: str, query: dict[str, str]) -> str:
    action = ACTION_BY_OPERATION.get(operation, "s3:" + operation)
    if "versionId" in query:
        action = _VERSIONED_ACTIONS.get(action, action)
    return action


def resource_for(bucket: str | None, key: str | None) -> str:
    if bucket is None:  # ListAllMyBuckets: matched by "*" and by "arn:aws:s3:::*"
        return f"{ARN_PREFIX}*"
    return f"{ARN_PREFIX}{bucket}/{key}" if key is not None else f"{ARN_PREFIX}{bucket}"


@dataclass(frozen=True)
class BucketAccess:
    owner: str
    policy: Policy | None


class BucketAccessCache:
    """Owner and parsed policy per bucket, kept for a second (a remote change shows up within
    that time; this node's own policy and bucket changes invalidate at once)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._entries: dict[str, tuple[float, BucketAccess | None]] = {}

    def invalidate(self, bucket: str) -> None:
        self._entries.pop(bucket, None)

    async def get(self, bucket: str) -> BucketAccess | None:
        """None when the bucket does not exist."""
        cached = self._entries.get(bucket)
        if cached is not None and time.monotonic() - cached[0] < BUCKET_CACHE_TTL_S:
            return cached[1]
        access = await self._load(bucket)
        self._entries[bucket] = (time.monotonic(), access)
        return access

    async def _load(self, bucket: str) -> BucketAccess | None:
        try:
            info = await self._store.get_bucket(bucket)
        except NoSuchBucket:
            return None
        try:
            text = await self._store.get_bucket_document(bucket, "policy")
        except NoSuchConfiguration:
            return BucketAccess(info.owner, None)
        return BucketAccess(info.owner, parse_policy(text, bucket))


def request_context(ctx: S3Context) -> dict[str, str]:
    client = ctx.request.scope.get("client")
    context = {
        "aws:SourceIp": client[0] if client else "",
        "aws:SecureTransport": "true" if ctx.request.url.scheme == "https" else "false",
        "aws:CurrentTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if ctx.identity.access_key is not None:
        context["aws:username"] = ctx.identity.access_key
    for name in ("prefix", "delimiter", "max-keys"):
        if name in ctx.query:
            context[f"s3:{name}"] = ctx.query[name]
    return context


async def authorize(
    ctx: S3Context,
    action: str,
    bucket: str | None,
    key: str | None = None,
    *,
    form_upload: bool = False,
) -> None:
    """Raise AccessDenied unless ``ctx.identity`` may do ``action`` on bucket/key
    (``form_upload``: for a browser upload, which anonymous users may make too)."""
    identity = ctx.identity
    if identity.root:
        return
    access = await ctx.bucket_access.get(bucket) if bucket is not None else None
    if bucket is not None and access is None and action != "s3:CreateBucket":
        return  # no such bucket: the handler answers NoSuchBucket
    if action == "s3:CreateBucket" and access is not None:
        return  # it exists: the handler answers BucketAlreadyExists / ...OwnedByYou
    if action == MULTI_DELETE and not identity.anonymous:
        return  # DeleteObjects: api/multidelete.py authorizes s3:DeleteObject per key
    if action == FORM_UPLOAD:
        return  # POST Object: api/post_object.py authorizes with the form's identity
    context = request_context(ctx)
    if not allowed(identity, action, bucket, key, access, context, form_upload=form_upload):
        raise S3Error("AccessDenied", "Access Denied", resource=ctx.resource)


def allowed(
    identity: Identity,
    action: str,
    bucket: str | None,
    key: str | None,
    access: BucketAccess | None,
    context: dict[str, str],
    *,
    form_upload: bool = False,
) -> bool:
    """The decision described in the module docstring (pure)."""
    if identity.root:
        return True
    request = PolicyRequest(identity.access_key, action, resource_for(bucket, key), context)
    bucket_decision = evaluate(access.policy, request) if access and access.policy else None
    if identity.anonymous:
        permitted = ANONYMOUS_UPLOAD_ACTIONS if form_upload else ANONYMOUS_ACTIONS
        return bucket_decision is Decision.ALLOW and action.lower() in permitted
    identity_decision = _identity_decision(identity, request, bucket, access)
    if Decision.DENY in (bucket_decision, identity_decision):
        return False
    return Decision.ALLOW in (bucket_decision, identity_decision)


@functools.lru_cache(maxsize=256)
def _identity_policy(text: str) -> Policy:
    return parse_policy(text)


def _identity_decision(
    identity: Identity, request: PolicyRequest, bucket: str | None, access: BucketAccess | None
) -> Decision | None:
    key = identity.key
    assert key is not None
    if key.policy:
        decision = evaluate(_identity_policy(key.policy), request)
    else:
        owns = bucket is None or (access.owner == key.access_key if access else True)
        # A plain --read-only key reads everything (like AWS's ReadOnlyAccess policy); the
        # read-only filter below keeps it from writing.
        reads_everything = key.read_only and not key.buckets
        decision = Decision.ALLOW if owns or bucket in key.buckets or reads_everything else None
    if decision is Decision.ALLOW:
        if key.read_only and not request.action.lower().startswith(READ_ACTION_PREFIXES):
            return None
        if key.buckets and bucket is not None and bucket not in key.buckets:
            return None
    return decision
