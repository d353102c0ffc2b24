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

Where neither policies nor the key's scope decide (no Deny, no Allow), ACL grants decide
(api/acl.py): the bucket's ACL for bucket actions and object writes, the object version's ACL
for object reads and its ACL calls; a grant to the key's canonical id, to AuthenticatedUsers
or to AllUsers (anonymous requests: AllUsers only). An explicit Deny still wins, and a key's
``--read-only`` and ``--bucket`` scope still restrict what a grant gives it. ACLs are not
evaluated in a bucket whose ownership controls are BucketOwnerEnforced; a public access block
ignores public grants (IgnorePublicAcls) and keeps a public bucket policy from granting to
anonymous requests (RestrictPublicBuckets).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

from api.acl import (
    ACL_HEADER,
    ALL_USERS,
    AUTHENTICATED_USERS,
    BUCKET_ACL_ACTIONS,
    OBJECT_ACL_ACTIONS,
    Acl,
    permits,
    private,
)
from api.context import S3Context
from api.errors import S3Error
from api.keyring import Identity
from api.ownership import DOCUMENT as OWNERSHIP_DOCUMENT
from api.ownership import ENFORCED
from api.policy import (
    ARN_PREFIX,
    ContextValue,
    Decision,
    Policy,
    PolicyRequest,
    evaluate,
    parse_policy,
)
from api.public_access import DOCUMENT as PUBLIC_ACCESS_DOCUMENT
from api.public_access import NO_BLOCK, PublicAccessBlock, policy_is_public
from api.settings import owner_id
from storage.errors import NoSuchBucket, NoSuchConfiguration, NoSuchKey, NoSuchVersion
from storage.manifest import Manifest
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
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "GetBucketPolicy": "s3:GetBucketPolicy",
    "PutBucketPolicy": "s3:PutBucketPolicy",
    "DeleteBucketPolicy": "s3:DeleteBucketPolicy",
    "GetBucketAcl": "s3:GetBucketAcl",
    "PutBucketAcl": "s3:PutBucketAcl",
    "GetObjectAcl": "s3:GetObjectAcl",
    "PutObjectAcl": "s3:PutObjectAcl",
    "PostObject": "s3:PostObject",  # FORM_UPLOAD: api/post_object.py authorizes
    "GetBucketOwnershipControls": "s3:GetBucketOwnershipControls",
    "PutBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "DeleteBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketPolicyStatus": "s3:GetBucketPolicyStatus",
    "GetObjectRetention": "s3:GetObjectRetention",
    "PutObjectRetention": "s3:PutObjectRetention",
    "GetObjectLegalHold": "s3:GetObjectLegalHold",
    "PutObjectLegalHold": "s3:PutObjectLegalHold",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
}
_VERSIONED_ACTIONS = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
    "s3:GetObjectAcl": "s3:GetObjectVersionAcl",
    "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
}
# Not an IAM action: AWS authorizes a multi-object delete key by key (s3:DeleteObject on
# each), answering per-key AccessDenied errors, so a grant on a prefix works there too.
MULTI_DELETE = "s3:DeleteObjects"
# Not an IAM action either: a browser upload (POST Object) is an unsigned request whose form
# says who acts; api/post_object.py authorizes s3:PutObject with that identity.
FORM_UPLOAD = "s3:PostObject"
READ_ACTION_PREFIXES = ("s3:get", "s3:list")
# What no bucket policy can grant to anonymous users: on AWS only identities of the bucket
# owner's account may read or change a bucket policy, whatever the policy says. Everything
# else a policy grants to Principal "*" is granted to unsigned requests, as on AWS (a public
# access block with BlockPublicPolicy / RestrictPublicBuckets is the guard against it).
OWNER_ONLY_ACTIONS = frozenset(
    {"s3:getbucketpolicy", "s3:putbucketpolicy", "s3:deletebucketpolicy"}
)
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
    acl: Acl | None = None  # None: the default, the owner's FULL_CONTROL
    ownership: str | None = None  # the ObjectOwnership rule, None without ownership controls
    public_access: PublicAccessBlock = NO_BLOCK

    @property
    def acls_enabled(self) -> bool:
        return self.ownership != ENFORCED

    @property
    def bucket_acl(self) -> Acl:
        return self.acl or private(owner_id(self.owner))

    @property
    def policy_public(self) -> bool:
        return self.policy is not None and policy_is_public(self.policy)


class BucketAccessCache:
    """Owner, parsed policy, ACL, ownership rule and public access block per bucket, kept
    for a second (a remote change shows up within that time; this node's own changes to them,
    in any of its workers, invalidate at once: ``Store.bucket_epoch``)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # bucket -> (when read, the store's bucket epoch then, what was read)
        self._entries: dict[str, tuple[float, int, BucketAccess | None]] = {}

    def invalidate(self, bucket: str) -> None:
        self._entries.pop(bucket, None)

    async def get(self, bucket: str) -> BucketAccess | None:
        """None when the bucket does not exist."""
        epoch = self._store.bucket_epoch  # moves when any worker changes a bucket
        cached = self._entries.get(bucket)
        if (
            cached is not None
            and cached[1] == epoch
            and time.monotonic() - cached[0] < BUCKET_CACHE_TTL_S
        ):
            return cached[2]
        access = await self._load(bucket)
        self._entries[bucket] = (time.monotonic(), epoch, access)
        return access

    async def _load(self, bucket: str) -> BucketAccess | None:
        try:
            info = await self._store.get_bucket(bucket)
        except NoSuchBucket:
            return None
        policy, acl, ownership, block = [
            await self._document(bucket, name)
            for name in ("policy", "acl", OWNERSHIP_DOCUMENT, PUBLIC_ACCESS_DOCUMENT)
        ]
        return BucketAccess(
            info.owner,
            parse_policy(policy, bucket) if policy else None,
            Acl.from_json(acl) if acl else None,
            ownership,
            PublicAccessBlock.from_json(block) if block else NO_BLOCK,
        )

    async def _document(self, bucket: str, name: str) -> str | None:
        try:
            return await self._store.get_bucket_document(bucket, name)
        except NoSuchConfiguration:
            return None


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
    version_id: str | None = None,
    request_tags: Iterable[tuple[str, str]] | None = None,
    acls: bool = True,
) -> None:
    """Raise AccessDenied unless ``ctx.identity`` may do ``action`` on bucket/key.

    ``version_id`` is the version whose tags s3:ExistingObjectTag and whose object ACL are
    read (default: the request's own ?versionId when bucket/key is the request's object);
    ``request_tags`` the tag set a PutObjectTagging body carries, which api/tagging.py passes
    once it has it; ``acls=False`` leaves ACL grants out.
    """
    identity = ctx.identity
    if identity.root:
        return
    access = await ctx.bucket_access.get(bucket) if bucket is not None else None
    if bucket is not None and access is None and action != "s3:CreateBucket":
        return  # no such bucket: the handler answers NoSuchBucket
    if action == "s3:CreateBucket" and access is not None:
        return  # it exists: the handler answers BucketAlreadyExists / ...OwnedByYou
    if action == MULTI_DELETE:
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
    decision = policy_decision(identity, action, bucket, key, access, context)
    if decision is Decision.ALLOW:
        return
    if decision is None and acls and access is not None and bucket is not None:
        object_acl = None
        if key is not None and action.lower() in OBJECT_ACL_ACTIONS and access.acls_enabled:
            object_acl = await _object_acl(ctx.store, bucket, key, version_id, access)
        if acl_allows(identity, action, bucket, access, object_acl):
            return
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


async def _object_acl(
    store: Store, bucket: str, key: str, version_id: str | None, access: BucketAccess
) -> Acl | None:
    """The ACL of an object version (None when there is no such object version)."""
    try:
        manifest, later = await store.get_object_acl(bucket, key, version_id)
    except (NoSuchKey, NoSuchVersion):
        return None
    return object_acl(manifest, later, access)


def object_acl(manifest: Manifest, later: str | None, access: BucketAccess) -> Acl:
    """An object version's ACL: set later (PutObjectAcl), else written with the version,
    else the default (the bucket owner owns it with FULL_CONTROL)."""
    if later:
        return Acl.from_json(later)
    written = dict(manifest.headers).get(ACL_HEADER)
    return Acl.from_json(written) if written else private(owner_id(access.owner))


def allowed(
    identity: Identity,
    action: str,
    bucket: str | None,
    key: str | None,
    access: BucketAccess | None,
    context: Mapping[str, ContextValue],
    object_acl: Acl | None = None,
) -> bool:
    """The decision described in the module docstring (pure)."""
    decision = policy_decision(identity, action, bucket, key, access, context)
    if decision is not None:
        return decision is Decision.ALLOW
    return bucket is not None and acl_allows(identity, action, bucket, access, object_acl)


def policy_decision(
    identity: Identity,
    action: str,
    bucket: str | None,
    key: str | None,
    access: BucketAccess | None,
    context: Mapping[str, ContextValue],
) -> Decision | None:
    """Policies and key scopes: Deny, Allow, or None when they decide nothing."""
    if identity.root:
        return Decision.ALLOW
    request = PolicyRequest(identity.access_key, action, resource_for(bucket, key), context)
    bucket_decision = evaluate(access.policy, request) if access and access.policy else None
    if identity.anonymous:
        restricted = (
            access is not None
            and access.public_access.restrict_public_buckets
            and access.policy_public
        )
        if bucket_decision is Decision.ALLOW and restricted:
            return None  # RestrictPublicBuckets: a public policy grants no anonymous access
        if bucket_decision is Decision.ALLOW and action.lower() in OWNER_ONLY_ACTIONS:
            return None
        return bucket_decision
    identity_decision = _identity_decision(identity, request, bucket, access)
    if Decision.DENY in (bucket_decision, identity_decision):
        return Decision.DENY
    return Decision.ALLOW if Decision.ALLOW in (bucket_decision, identity_decision) else None


def acl_allows(
    identity: Identity,
    action: str,
    bucket: str,
    access: BucketAccess | None,
    object_acl: Acl | None,
) -> bool:
    """Whether an ACL grant allows ``action``: the object's ACL for object reads and object
    ACL calls, the bucket's for the rest; within the key's scope."""
    if access is None or not access.acls_enabled or identity.access_key == access.owner:
        return False  # the bucket owner's rights come from its key's scope or policy
    lowered = action.lower()
    on_object = lowered in OBJECT_ACL_ACTIONS
    acl = object_acl if on_object else access.bucket_acl
    if acl is None or not (on_object or lowered in BUCKET_ACL_ACTIONS):
        return False
    key = identity.key
    if key is not None:
        if key.read_only and not lowered.startswith(READ_ACTION_PREFIXES):
            return False
        if key.buckets and bucket not in key.buckets:
            return False
    principals = frozenset({ALL_USERS})
    if identity.access_key is not None:
        principals |= {AUTHENTICATED_USERS, owner_id(identity.access_key)}
    return permits(acl, lowered, on_object, principals, access.public_access.ignore_public_acls)


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
