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

Policies see the request through :func:`request_context`: the global keys (aws:SourceIp,
aws:SecureTransport, aws:CurrentTime, aws:username...) and S3's own (s3:prefix, s3:delimiter,
s3:max-keys, s3:VersionId, s3:x-amz-acl, s3:x-amz-grant-*, s3:x-amz-copy-source,
s3:x-amz-metadata-directive, s3:RequestObjectTag/<key> and the multi-valued
s3:RequestObjectTagKeys). s3:ExistingObjectTag/<key> costs a catalog read, done only when a
policy that applies tests such a key.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

from api.context import S3Context
from api.errors import S3Error
from api.keyring import Identity
from api.policy import (
    ARN_PREFIX,
    ContextValue,
    Decision,
    Policy,
    PolicyRequest,
    evaluate,
    parse_policy,
)
from api.settings import owner_id
from storage.errors import NoSuchBucket, NoSuchConfiguration, NoSuchKey, NoSuchVersion
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


# Request headers that S3 exposes as condition keys of the same name ("s3:x-amz-acl"...).
HEADER_CONDITION_KEYS = (
    "x-amz-acl",
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-content-sha256",
    "x-amz-storage-class",
    "x-amz-server-side-encryption",
    "x-amz-website-redirect-location",
)
LISTING_CONDITION_KEYS = ("prefix", "delimiter", "max-keys")
# Operations whose x-amz-tagging header is the new object's tag set (s3:RequestObjectTag/...).
TAGGING_HEADER_OPERATIONS = frozenset({"PutObject", "CopyObject", "CreateMultipartUpload"})
# PutObjectTagging's tags are in its body: api/tagging.py authorizes once it has read them.
TAGS_IN_BODY_ACTIONS = frozenset({"s3:putobjecttagging", "s3:putobjectversiontagging"})
REQUEST_TAG = "s3:RequestObjectTag/"
REQUEST_TAG_KEYS = "s3:RequestObjectTagKeys"
EXISTING_TAG = "s3:ExistingObjectTag/"


def request_context(ctx: S3Context) -> dict[str, ContextValue]:
    """The condition keys a policy may test, from the request as it arrived."""
    client = ctx.request.scope.get("client")
    now = datetime.now(UTC)
    context: dict[str, ContextValue] = {
        "aws:SourceIp": client[0] if client else "",
        "aws:SecureTransport": "true" if ctx.request.url.scheme == "https" else "false",
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
        "aws:PrincipalType": "Anonymous" if ctx.identity.anonymous else "User",
    }
    if ctx.identity.access_key is not None:
        context["aws:username"] = ctx.identity.access_key
        context["aws:userid"] = ctx.identity.access_key
    for header, key in (("user-agent", "aws:UserAgent"), ("referer", "aws:Referer")):
        if header in ctx.headers:
            context[key] = ctx.headers[header]
    for name in LISTING_CONDITION_KEYS:
        if name in ctx.query:
            context[f"s3:{name}"] = ctx.query[name]
    if "versionId" in ctx.query:
        context["s3:VersionId"] = ctx.query["versionId"]
    for header in HEADER_CONDITION_KEYS:
        if header in ctx.headers:
            context[f"s3:{header}"] = ctx.headers[header]
    context.update(_auth_context(ctx))
    if ctx.operation in TAGGING_HEADER_OPERATIONS and "x-amz-tagging" in ctx.headers:
        context.update(request_tags_context(_header_tags(ctx.headers["x-amz-tagging"])))
    return context


def _auth_context(ctx: S3Context) -> dict[str, ContextValue]:
    """s3:authType and s3:signatureversion, as AWS names the way a request was signed."""
    if ctx.identity.anonymous:
        return {}
    header = ctx.headers.get("authorization", "")
    presigned = "X-Amz-Signature" in ctx.query or "Signature" in ctx.query
    sigv4 = header.startswith("AWS4-") or "X-Amz-Signature" in ctx.query
    return {
        "s3:authType": "REST-QUERY-STRING" if presigned else "REST-HEADER",
        "s3:signatureversion": "AWS4-HMAC-SHA256" if sigv4 else "AWS",
    }


def _header_tags(value: str) -> tuple[tuple[str, str], ...]:
    """x-amz-tagging's pairs as far as they parse; the handler refuses a malformed header."""
    return tuple(parse_qsl(value, keep_blank_values=True))


def tag_context(prefix: str, tags: Iterable[tuple[str, str]]) -> dict[str, ContextValue]:
    return {prefix + name: value for name, value in tags}


def request_tags_context(tags: Iterable[tuple[str, str]]) -> dict[str, ContextValue]:
    """s3:RequestObjectTag/<key> and s3:RequestObjectTagKeys for a tag set being written."""
    tags = tuple(tags)
    return {**tag_context(REQUEST_TAG, tags), REQUEST_TAG_KEYS: tuple(k for k, _ in tags)}


async def authorize(
    ctx: S3Context,
    action: str,
    bucket: str | None,
    key: str | None = None,
    *,
    form_upload: bool = False,
    version_id: str | None = None,
    request_tags: Iterable[tuple[str, str]] | None = None,
) -> None:
    """Raise AccessDenied unless ``ctx.identity`` may do ``action`` on bucket/key.

    ``form_upload``: for a browser upload, which anonymous users may make too. ``version_id``
    is the version whose tags s3:ExistingObjectTag reads (default: the request's own
    ?versionId when bucket/key is the request's object); ``request_tags`` the tag set a
    PutObjectTagging body carries, which api/tagging.py passes once it has it.
    """
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
    if action.lower() in TAGS_IN_BODY_ACTIONS and request_tags is None:
        return  # PutObjectTagging: api/tagging.py authorizes with the tags of its body
    context = request_context(ctx)
    if request_tags is not None:
        context.update(request_tags_context(request_tags))
    if bucket is not None and key is not None:
        if version_id is None and (bucket, key) == (ctx.bucket, ctx.key):
            version_id = ctx.query.get("versionId")
        context.update(await _existing_tags(ctx, identity, access, bucket, key, version_id))
    if not allowed(identity, action, bucket, key, access, context, form_upload=form_upload):
        raise S3Error("AccessDenied", "Access Denied", resource=ctx.resource)


async def _existing_tags(
    ctx: S3Context,
    identity: Identity,
    access: BucketAccess | None,
    bucket: str,
    key: str,
    version_id: str | None,
) -> dict[str, ContextValue]:
    """s3:ExistingObjectTag/<key> of the object version, read only when a policy that
    applies to this request tests one (a tag lookup per request would cost every GET)."""
    policies = [access.policy] if access is not None and access.policy is not None else []
    if identity.key is not None and identity.key.policy:
        policies.append(_identity_policy(identity.key.policy))
    needle = EXISTING_TAG.lower()
    if not any(p.uses_key_prefix(needle) for p in policies) or not ctx.store.may_have_tags(bucket):
        return {}
    try:
        _version, tags = await ctx.store.get_tags(bucket, key, version_id)
    except (NoSuchKey, NoSuchVersion, NoSuchBucket):
        return {}  # no such object (yet): it has no tags a condition could read
    return tag_context(EXISTING_TAG, tags)


async def check_expected_owner(ctx: S3Context) -> None:
    """``x-amz-expected-bucket-owner`` (and ``x-amz-source-expected-bucket-owner`` on a copy):
    AccessDenied unless it names the bucket's owner, by the canonical id lakenode shows as
    Owner ID (or the owner's access key). CreateBucket and ListBuckets have no bucket owner."""
    expected = ctx.headers.get("x-amz-expected-bucket-owner")
    if expected is not None and ctx.bucket is not None and ctx.operation != "CreateBucket":
        await _owner_is(ctx, ctx.bucket, expected)
    source_expected = ctx.headers.get("x-amz-source-expected-bucket-owner")
    copy_source = ctx.headers.get("x-amz-copy-source")
    if source_expected is not None and copy_source is not None:
        path = unquote(copy_source.partition("?")[0]).lstrip("/")
        await _owner_is(ctx, path.partition("/")[0], source_expected)


async def _owner_is(ctx: S3Context, bucket: str, expected: str) -> None:
    access = await ctx.bucket_access.get(bucket)
    if access is None:
        return  # no such bucket: the handler answers NoSuchBucket
    if expected.strip() not in (owner_id(access.owner), access.owner):
        raise S3Error("AccessDenied", "Access Denied", resource=ctx.resource)


def allowed(
    identity: Identity,
    action: str,
    bucket: str | None,
    key: str | None,
    access: BucketAccess | None,
    context: Mapping[str, ContextValue],
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
