"""The authorization decision (``allowed()``) as a table, plus the key ring's refusals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from api.access import MULTI_DELETE, BucketAccess, action_for, allowed, resource_for
from api.errors import S3Error
from api.keyring import ANONYMOUS, Identity, KeyRing
from api.policy import parse_policy
from storage.keys import AccessKey

ROOT = "root-key"


def key(name: str, **limits: Any) -> Identity:
    return Identity(name, key=AccessKey(name, f"{name}-secret", **limits))


def identity_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def bucket(owner: str, *statements: dict[str, Any], name: str = "b") -> BucketAccess:
    if not statements:
        return BucketAccess(owner, None)
    text = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    return BucketAccess(owner, parse_policy(text, name))


def grant(principal: Any, action: Any, resource: Any, effect: str = "Allow") -> dict[str, Any]:
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource}


ALICE = key("alice")
BOB = key("bob")
READ_ONLY = key("reader", read_only=True)
READ_ONLY_X = key("reader-x", read_only=True, buckets=("x",))
LIMITED = key("limited", buckets=("x", "y"))
GET_X = key(
    "getter",
    policy=identity_policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::x/*"},
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "arn:aws:s3:::*"},
    ),
)
ALL_BUT_DELETE = key(
    "no-delete",
    policy=identity_policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject*", "Resource": "arn:aws:s3:::x/*"},
    ),
)
ROOT_IDENTITY = Identity(ROOT, root=True)

PUBLIC_READ = bucket(
    ROOT,
    grant("*", "s3:GetObject", "arn:aws:s3:::b/*"),
    grant("*", "s3:ListBucket", "arn:aws:s3:::b"),
)
PUBLIC_WRITE = bucket(ROOT, grant("*", ["s3:PutObject", "s3:DeleteObject"], "arn:aws:s3:::b/*"))
PUBLIC_ALL = bucket(ROOT, grant({"AWS": "*"}, "s3:*", ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]))
BOB_SHARES_PUBLIC_WITH_ALICE = bucket(
    "bob", grant({"AWS": "alice"}, "s3:GetObject", "arn:aws:s3:::b/public/*")
)
BOB_SHARES_WITH_ALICE_ARN = bucket(
    "bob", grant({"AWS": "arn:aws:iam::000000000000:user/alice"}, "s3:*", "arn:aws:s3:::b/*")
)
ALICE_PROTECTS_KEEP = bucket(
    "alice", grant("*", "s3:DeleteObject", "arn:aws:s3:::b/keep/*", effect="Deny")
)
DENY_ALICE_EVERYTHING = bucket(
    "alice", grant({"AWS": "alice"}, "s3:*", ["arn:aws:s3:::b", "arn:aws:s3:::b/*"], "Deny")
)
ROOT_BUCKET = bucket(ROOT)
X_OPEN_TO_ALL = bucket(ROOT, grant("*", "s3:*", "arn:aws:s3:::x/*"), name="x")
FROM_TEN_NET = bucket(
    ROOT,
    grant("*", "s3:GetObject", "arn:aws:s3:::b/*")
    | {"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
)
PUBLIC_BUT_K = bucket(
    ROOT,
    grant("*", "s3:GetObject", "arn:aws:s3:::b/*"),
    grant("*", "s3:GetObject", "arn:aws:s3:::b/k", "Deny"),
)
TAGGED_READ = bucket(
    ROOT,
    grant("*", "s3:GetObject", "arn:aws:s3:::b/*")
    | {"Condition": {"StringEquals": {"s3:ExistingObjectTag/share": "yes"}}},
)
UPLOADS_MUST_BE_TAGGED = bucket(
    "alice",
    grant("*", "s3:PutObject", "arn:aws:s3:::b/*", "Deny")
    | {"Condition": {"ForAnyValue:StringNotEquals": {"s3:RequestObjectTagKeys": ["team"]}}},
    grant("*", "s3:PutObject", "arn:aws:s3:::b/*", "Deny")
    | {"Condition": {"Null": {"s3:RequestObjectTagKeys": "true"}}},
)
ONLY_ALICE = bucket(
    "alice",
    {
        "Effect": "Deny",
        "NotPrincipal": {"AWS": "alice"},
        "Action": "s3:*",
        "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
    },
    grant("*", "s3:GetObject", "arn:aws:s3:::b/*"),
)
PRIVATE_UPLOADS_ONLY = bucket(
    "alice",
    grant("*", "s3:PutObject", "arn:aws:s3:::b/*", "Deny")
    | {"Condition": {"StringNotEqualsIfExists": {"s3:x-amz-acl": "private"}}},
)
LIST_AT_MOST_10 = bucket(
    ROOT,
    grant("*", "s3:ListBucket", "arn:aws:s3:::b")
    | {"Condition": {"NumericLessThanEquals": {"s3:max-keys": "10"}}},
)
LIMITED_B = key("lim-b", buckets=("b",))
CAROL = key("carol")


@dataclass(frozen=True)
class Case:
    who: Identity
    action: str
    bucket: str | None
    key: str | None
    access: BucketAccess | None
    expected: bool
    context: tuple[tuple[str, str | tuple[str, ...]], ...] = ()


CASES = {
    # root: everything, even where a bucket policy denies
    "root reads another key's bucket": Case(
        ROOT_IDENTITY, "s3:GetObject", "b", "k", bucket("alice"), True
    ),
    "root deletes another key's bucket": Case(
        ROOT_IDENTITY, "s3:DeleteBucket", "b", None, bucket("alice"), True
    ),
    "root ignores a bucket-policy Deny": Case(
        ROOT_IDENTITY, "s3:GetObject", "b", "k", DENY_ALICE_EVERYTHING, True
    ),
    # a key owns what it creates
    "owner reads": Case(ALICE, "s3:GetObject", "b", "k", bucket("alice"), True),
    "owner writes": Case(ALICE, "s3:PutObject", "b", "k", bucket("alice"), True),
    "owner deletes objects": Case(ALICE, "s3:DeleteObject", "b", "k", bucket("alice"), True),
    "owner lists": Case(ALICE, "s3:ListBucket", "b", None, bucket("alice"), True),
    "owner sets the policy": Case(ALICE, "s3:PutBucketPolicy", "b", None, bucket("alice"), True),
    "owner deletes the bucket": Case(ALICE, "s3:DeleteBucket", "b", None, bucket("alice"), True),
    "key creates a new bucket": Case(ALICE, "s3:CreateBucket", "new", None, None, True),
    "key lists its buckets": Case(ALICE, "s3:ListAllMyBuckets", None, None, None, True),
    # another key's bucket
    "other key cannot read": Case(BOB, "s3:GetObject", "b", "k", bucket("alice"), False),
    "other key cannot write": Case(BOB, "s3:PutObject", "b", "k", bucket("alice"), False),
    "other key cannot list": Case(BOB, "s3:ListBucket", "b", None, bucket("alice"), False),
    "other key cannot delete the bucket": Case(
        BOB, "s3:DeleteBucket", "b", None, bucket("alice"), False
    ),
    "other key cannot read the policy": Case(
        BOB, "s3:GetBucketPolicy", "b", None, bucket("alice"), False
    ),
    "key cannot touch root's bucket": Case(ALICE, "s3:GetObject", "b", "k", ROOT_BUCKET, False),
    # --read-only
    "read-only reads its bucket": Case(READ_ONLY, "s3:GetObject", "b", "k", bucket("reader"), True),
    "read-only lists its bucket": Case(
        READ_ONLY, "s3:ListBucket", "b", None, bucket("reader"), True
    ),
    "read-only cannot write": Case(READ_ONLY, "s3:PutObject", "b", "k", bucket("reader"), False),
    "read-only cannot delete": Case(
        READ_ONLY, "s3:DeleteObject", "b", "k", bucket("reader"), False
    ),
    "read-only cannot set a policy": Case(
        READ_ONLY, "s3:PutBucketPolicy", "b", None, bucket("reader"), False
    ),
    "read-only cannot create buckets": Case(READ_ONLY, "s3:CreateBucket", "new", None, None, False),
    "plain read-only reads every bucket": Case(
        READ_ONLY, "s3:GetObject", "b", "k", ROOT_BUCKET, True
    ),
    "plain read-only cannot write others' buckets": Case(
        READ_ONLY, "s3:PutObject", "b", "k", ROOT_BUCKET, False
    ),
    "read-only --bucket reads there": Case(
        READ_ONLY_X, "s3:GetObject", "x", "k", ROOT_BUCKET, True
    ),
    "read-only --bucket cannot write there": Case(
        READ_ONLY_X, "s3:PutObject", "x", "k", ROOT_BUCKET, False
    ),
    # --bucket x --bucket y
    "limited key works in its bucket": Case(LIMITED, "s3:PutObject", "x", "k", ROOT_BUCKET, True),
    "limited key reads its other bucket": Case(
        LIMITED, "s3:GetObject", "y", "k", bucket("alice"), True
    ),
    "limited key cannot leave its list": Case(
        LIMITED, "s3:GetObject", "z", "k", ROOT_BUCKET, False
    ),
    "limited key cannot use an owned bucket off its list": Case(
        LIMITED, "s3:GetObject", "z", "k", bucket("limited"), False
    ),
    "limited key creates a listed bucket": Case(LIMITED, "s3:CreateBucket", "y", None, None, True),
    "limited key cannot create others": Case(LIMITED, "s3:CreateBucket", "new", None, None, False),
    # --policy (identity policy replaces ownership)
    "identity policy allows": Case(GET_X, "s3:GetObject", "x", "k", ROOT_BUCKET, True),
    "identity policy: other action": Case(GET_X, "s3:PutObject", "x", "k", ROOT_BUCKET, False),
    "identity policy: other bucket": Case(GET_X, "s3:GetObject", "y", "k", ROOT_BUCKET, False),
    "identity policy: no ownership rights": Case(
        GET_X, "s3:PutObject", "own", "k", bucket("getter"), False
    ),
    "identity policy: no bucket creation": Case(GET_X, "s3:CreateBucket", "new", None, None, False),
    "identity policy: ListAllMyBuckets on arn:aws:s3:::*": Case(
        GET_X, "s3:ListAllMyBuckets", None, None, None, True
    ),
    "identity policy allows all": Case(ALL_BUT_DELETE, "s3:PutObject", "x", "k", ROOT_BUCKET, True),
    "identity policy deny": Case(ALL_BUT_DELETE, "s3:DeleteObject", "x", "k", ROOT_BUCKET, False),
    "identity policy deny (version)": Case(
        ALL_BUT_DELETE, "s3:DeleteObjectVersion", "x", "k", ROOT_BUCKET, False
    ),
    "identity deny beats a bucket grant": Case(
        ALL_BUT_DELETE, "s3:DeleteObject", "x", "k", X_OPEN_TO_ALL, False
    ),
    # bucket policies
    "bucket policy grants a key": Case(
        ALICE, "s3:GetObject", "b", "public/a", BOB_SHARES_PUBLIC_WITH_ALICE, True
    ),
    "bucket policy grant: other prefix": Case(
        ALICE, "s3:GetObject", "b", "private/a", BOB_SHARES_PUBLIC_WITH_ALICE, False
    ),
    "bucket policy grant: other action": Case(
        ALICE, "s3:PutObject", "b", "public/a", BOB_SHARES_PUBLIC_WITH_ALICE, False
    ),
    "bucket policy grant: other key": Case(
        CAROL, "s3:GetObject", "b", "public/a", BOB_SHARES_PUBLIC_WITH_ALICE, False
    ),
    "bucket policy grant: owner keeps access": Case(
        BOB, "s3:PutObject", "b", "private/a", BOB_SHARES_PUBLIC_WITH_ALICE, True
    ),
    "bucket policy grants an IAM user ARN": Case(
        ALICE, "s3:PutObject", "b", "k", BOB_SHARES_WITH_ALICE_ARN, True
    ),
    "bucket policy grants *": Case(CAROL, "s3:GetObject", "b", "k", PUBLIC_READ, True),
    "bucket policy grants * listing": Case(CAROL, "s3:ListBucket", "b", None, PUBLIC_READ, True),
    "bucket policy * read is not write": Case(CAROL, "s3:PutObject", "b", "k", PUBLIC_READ, False),
    "bucket policy grants a limited key outside its list": Case(
        LIMITED, "s3:GetObject", "b", "k", PUBLIC_READ, True
    ),
    "bucket Deny beats ownership": Case(
        ALICE, "s3:DeleteObject", "b", "keep/a", ALICE_PROTECTS_KEEP, False
    ),
    "bucket Deny leaves the rest": Case(
        ALICE, "s3:DeleteObject", "b", "tmp/a", ALICE_PROTECTS_KEEP, True
    ),
    "bucket Deny of everything for the owner": Case(
        ALICE, "s3:GetObject", "b", "k", DENY_ALICE_EVERYTHING, False
    ),
    "bucket Deny beats a limited key's list": Case(
        LIMITED_B, "s3:DeleteObject", "b", "keep/a", ALICE_PROTECTS_KEEP, False
    ),
    "bucket grant with a failing condition": Case(
        CAROL, "s3:GetObject", "b", "k", FROM_TEN_NET, False, (("aws:SourceIp", "127.0.0.1"),)
    ),
    "bucket grant with a holding condition": Case(
        CAROL, "s3:GetObject", "b", "k", FROM_TEN_NET, True, (("aws:SourceIp", "10.1.1.1"),)
    ),
    # condition keys of the S3 request
    "existing tag grants": Case(
        CAROL, "s3:GetObject", "b", "k", TAGGED_READ, True, (("s3:ExistingObjectTag/share", "yes"),)
    ),
    "existing tag of another value": Case(
        CAROL, "s3:GetObject", "b", "k", TAGGED_READ, False, (("s3:ExistingObjectTag/share", "no"),)
    ),
    "no existing tags": Case(CAROL, "s3:GetObject", "b", "k", TAGGED_READ, False),
    "request tags include the required key": Case(
        ALICE,
        "s3:PutObject",
        "b",
        "k",
        UPLOADS_MUST_BE_TAGGED,
        True,
        (("s3:RequestObjectTagKeys", ("team",)), ("s3:RequestObjectTag/team", "blue")),
    ),
    "request tags with another key are denied": Case(
        ALICE,
        "s3:PutObject",
        "b",
        "k",
        UPLOADS_MUST_BE_TAGGED,
        False,
        (("s3:RequestObjectTagKeys", ("team", "cost")),),
    ),
    "request without tags is denied": Case(
        ALICE, "s3:PutObject", "b", "k", UPLOADS_MUST_BE_TAGGED, False
    ),
    "NotPrincipal deny spares the named key": Case(
        ALICE, "s3:PutObject", "b", "k", ONLY_ALICE, True
    ),
    "NotPrincipal deny hits other keys": Case(CAROL, "s3:GetObject", "b", "k", ONLY_ALICE, False),
    "NotPrincipal deny hits anonymous": Case(
        ANONYMOUS, "s3:GetObject", "b", "k", ONLY_ALICE, False
    ),
    # ...IfExists makes the condition true when the key is absent: this Deny applies then too
    "IfExists: no acl header": Case(ALICE, "s3:PutObject", "b", "k", PRIVATE_UPLOADS_ONLY, False),
    "IfExists: private acl": Case(
        ALICE, "s3:PutObject", "b", "k", PRIVATE_UPLOADS_ONLY, True, (("s3:x-amz-acl", "private"),)
    ),
    "IfExists: public acl": Case(
        ALICE,
        "s3:PutObject",
        "b",
        "k",
        PRIVATE_UPLOADS_ONLY,
        False,
        (("s3:x-amz-acl", "public-read"),),
    ),
    "max-keys within the limit": Case(
        CAROL, "s3:ListBucket", "b", None, LIST_AT_MOST_10, True, (("s3:max-keys", "10"),)
    ),
    "max-keys over the limit": Case(
        CAROL, "s3:ListBucket", "b", None, LIST_AT_MOST_10, False, (("s3:max-keys", "11"),)
    ),
    "max-keys absent": Case(CAROL, "s3:ListBucket", "b", None, LIST_AT_MOST_10, False),
    # anonymous
    "anonymous without a policy": Case(ANONYMOUS, "s3:GetObject", "b", "k", ROOT_BUCKET, False),
    "anonymous list without a policy": Case(
        ANONYMOUS, "s3:ListBucket", "b", None, ROOT_BUCKET, False
    ),
    "anonymous ListBuckets": Case(ANONYMOUS, "s3:ListAllMyBuckets", None, None, None, False),
    "anonymous create bucket": Case(ANONYMOUS, "s3:CreateBucket", "new", None, None, False),
    "anonymous reads a public bucket": Case(ANONYMOUS, "s3:GetObject", "b", "k", PUBLIC_READ, True),
    "anonymous lists a public bucket": Case(
        ANONYMOUS, "s3:ListBucket", "b", None, PUBLIC_READ, True
    ),
    "anonymous reads a version of a public bucket": Case(
        ANONYMOUS, "s3:GetObjectVersion", "b", "k", PUBLIC_ALL, True
    ),
    "anonymous write granted by * PutObject": Case(
        ANONYMOUS, "s3:PutObject", "b", "k", PUBLIC_WRITE, True
    ),
    "anonymous delete granted by * DeleteObject": Case(
        ANONYMOUS, "s3:DeleteObject", "b", "k", PUBLIC_WRITE, True
    ),
    "anonymous write granted by * s3:*": Case(
        ANONYMOUS, "s3:PutObject", "b", "k", PUBLIC_ALL, True
    ),
    "anonymous policy read even with * s3:*": Case(
        ANONYMOUS, "s3:GetBucketPolicy", "b", None, PUBLIC_ALL, False
    ),
    "anonymous multi-delete is decided per key, not as an action": Case(
        ANONYMOUS, MULTI_DELETE, "b", None, PUBLIC_WRITE, False
    ),
    "anonymous is not a named key": Case(
        ANONYMOUS, "s3:GetObject", "b", "public/a", BOB_SHARES_PUBLIC_WITH_ALICE, False
    ),
    "anonymous and a Deny": Case(ANONYMOUS, "s3:GetObject", "b", "k", PUBLIC_BUT_K, False),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_allowed(case: Case) -> None:
    context = {"aws:SourceIp": "127.0.0.1", "aws:SecureTransport": "false", **dict(case.context)}
    outcome = allowed(case.who, case.action, case.bucket, case.key, case.access, context)
    assert outcome is case.expected


@pytest.mark.parametrize(
    ("operation", "query", "action"),
    [
        ("GetObject", {}, "s3:GetObject"),
        ("GetObject", {"versionId": "v1"}, "s3:GetObjectVersion"),
        ("HeadObject", {}, "s3:GetObject"),
        ("DeleteObject", {"versionId": "v1"}, "s3:DeleteObjectVersion"),
        ("CopyObject", {}, "s3:PutObject"),
        ("ListObjectsV2", {"list-type": "2"}, "s3:ListBucket"),
        ("HeadBucket", {}, "s3:ListBucket"),
        ("ListBuckets", {}, "s3:ListAllMyBuckets"),
        ("PutBucketPolicy", {}, "s3:PutBucketPolicy"),
        ("GetObjectAcl", {"versionId": "v1"}, "s3:GetObjectVersionAcl"),
        ("PutObjectAcl", {"versionId": "v1"}, "s3:PutObjectVersionAcl"),
        ("DeletePublicAccessBlock", {}, "s3:PutBucketPublicAccessBlock"),
        ("DeleteBucketOwnershipControls", {}, "s3:PutBucketOwnershipControls"),
        ("GetBucketPolicyStatus", {}, "s3:GetBucketPolicyStatus"),
        ("DeleteObjects", {}, MULTI_DELETE),  # then s3:DeleteObject per key
    ],
)
def test_action_for(operation: str, query: dict[str, str], action: str) -> None:
    assert action_for(operation, query) == action


def test_resource_for() -> None:
    assert resource_for("b", "a/k") == "arn:aws:s3:::b/a/k"
    assert resource_for("b", None) == "arn:aws:s3:::b"
    assert resource_for(None, None) == "arn:aws:s3:::*"  # ListAllMyBuckets


# ---- the key ring: who may sign, and which keys are refused ----------------------------------


def ring() -> KeyRing:
    keyring = KeyRing(ROOT, "root-secret")
    keyring.replace(
        [
            AccessKey("alice", "alice-secret"),
            AccessKey("off", "off-secret", status="disabled"),
            AccessKey(ROOT, "shadow-secret"),  # cannot replace the root key
        ],
        generation=3,
    )
    return keyring


def test_keyring_secrets_and_identities() -> None:
    keyring = ring()
    assert keyring.generation == 3
    assert keyring.secret_for(ROOT) == "root-secret"
    assert keyring.secret_for("alice") == "alice-secret"
    assert keyring.secret_for("nobody") is None
    assert keyring.identity(ROOT).root
    alice = keyring.identity("alice")
    assert not alice.root and not alice.anonymous
    assert alice.key is not None and alice.key.access_key == "alice"


def test_disabled_key_is_refused_with_access_denied() -> None:
    keyring = ring()
    # The signature is still checked with its secret (a wrong secret stays a mismatch) ...
    assert keyring.secret_for("off") == "off-secret"
    # ... and then the request is refused.
    with pytest.raises(S3Error) as excinfo:
        keyring.identity("off")
    assert excinfo.value.code == "AccessDenied"
    assert excinfo.value.status == 403


def test_key_removed_after_verification_is_invalid() -> None:
    keyring = ring()
    keyring.replace([], generation=4)
    assert keyring.secret_for("alice") is None
    with pytest.raises(S3Error) as excinfo:
        keyring.identity("alice")
    assert excinfo.value.code == "InvalidAccessKeyId"


def test_reenabled_key_is_accepted_again() -> None:
    keyring = ring()
    keyring.replace([AccessKey("off", "off-secret", status="active")], generation=5)
    assert keyring.identity("off").access_key == "off"


def test_secret_is_not_in_the_key_repr() -> None:
    assert "alice-secret" not in repr(AccessKey("alice", "alice-secret"))
    assert "alice-secret" not in repr(ring().identity("alice"))
