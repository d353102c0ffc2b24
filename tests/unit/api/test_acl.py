"""The ACL model (api/acl.py), public policies and access blocks (api/public_access.py) and
ACL grants in the authorization decision (api/access.py ``allowed``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.access import BucketAccess, allowed
from api.acl import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    CANONICAL_USER,
    GROUP,
    LOG_DELIVERY,
    Acl,
    Grant,
    canned,
    check_grantees,
    header_grants,
    parse_acl_xml,
    permits,
    private,
    render_acl,
)
from api.errors import S3Error
from api.keyring import ANONYMOUS, Identity
from api.ownership import ENFORCED, parse_ownership_xml
from api.policy import parse_policy
from api.public_access import (
    PublicAccessBlock,
    parse_public_access_xml,
    policy_is_public,
    render_public_access,
)
from api.settings import owner_id
from storage.keys import AccessKey

OWNER, OTHER = owner_id("owner"), owner_id("other")
CONTEXT = {"aws:SourceIp": "127.0.0.1"}


def key(name: str, **limits: Any) -> Identity:
    return Identity(name, key=AccessKey(name, f"{name}-secret", **limits))


def grants(*items: tuple[str, str, str]) -> tuple[Grant, ...]:
    return tuple(Grant(*item) for item in items)


# ---- canned ACLs and headers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "on_object", "extra"),
    [
        ("private", False, ()),
        ("public-read", False, ((GROUP, ALL_USERS, "READ"),)),
        ("public-read-write", True, ((GROUP, ALL_USERS, "READ"), (GROUP, ALL_USERS, "WRITE"))),
        ("authenticated-read", True, ((GROUP, AUTHENTICATED_USERS, "READ"),)),
        ("log-delivery-write", False,
         ((GROUP, LOG_DELIVERY, "WRITE"), (GROUP, LOG_DELIVERY, "READ_ACP"))),
        ("bucket-owner-read", True, ((CANONICAL_USER, OTHER, "READ"),)),
        ("bucket-owner-full-control", True, ((CANONICAL_USER, OTHER, "FULL_CONTROL"),)),
        ("bucket-owner-full-control", False, ()),  # on a bucket: private
        ("aws-exec-read", True, ()),
    ],
)  # fmt: skip
def test_canned_acls(name: str, on_object: bool, extra: tuple[tuple[str, str, str], ...]) -> None:
    acl = canned(name, OWNER, OTHER, on_object)
    assert acl == Acl(OWNER, grants((CANONICAL_USER, OWNER, "FULL_CONTROL"), *extra))
    assert Acl.from_json(acl.to_json()) == acl


def test_unknown_canned_acl() -> None:
    with pytest.raises(S3Error) as refused:
        canned("world-writable", OWNER, OWNER, False)
    assert (refused.value.code, refused.value.status) == ("InvalidArgument", 400)


def test_grant_headers() -> None:
    headers = {
        "x-amz-grant-read": f'id="{OTHER}", uri="{ALL_USERS}"',
        "x-amz-grant-full-control": f'ID = "{OWNER}"',
    }
    assert header_grants(headers) == [
        Grant(CANONICAL_USER, OTHER, "READ"),
        Grant(GROUP, ALL_USERS, "READ"),
        Grant(CANONICAL_USER, OWNER, "FULL_CONTROL"),
    ]
    assert header_grants({}) is None


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ('emailAddress="a@example.com"', "UnresolvableGrantByEmailAddress"),
        ("id=unquoted", "InvalidArgument"),
        ('color="blue"', "InvalidArgument"),
        ("", "InvalidArgument"),
        (f'id="{OTHER}",, id="x"', "InvalidArgument"),
    ],
)
def test_bad_grant_headers(value: str, code: str) -> None:
    with pytest.raises(S3Error) as refused:
        header_grants({"x-amz-grant-read": value})
    assert refused.value.code == code


def test_grantees_must_be_known() -> None:
    check_grantees(grants((CANONICAL_USER, OWNER, "READ"), (GROUP, ALL_USERS, "READ")), bool)
    for unknown in ((CANONICAL_USER, "nobody", "READ"), (GROUP, "http://x/y", "READ")):
        with pytest.raises(S3Error) as refused:
            check_grantees(grants(unknown), lambda canonical_id: canonical_id == OWNER)
        assert refused.value.code == "InvalidArgument"


# ---- the AccessControlPolicy document ---------------------------------------------------------


def test_render_then_parse_round_trip() -> None:
    acl = Acl(OWNER, grants((CANONICAL_USER, OTHER, "WRITE_ACP"), (GROUP, ALL_USERS, "READ")))
    document = render_acl(acl, {OWNER: "owner", OTHER: "other"}.get)
    assert b'xsi:type="CanonicalUser"' in document and b'xsi:type="Group"' in document
    assert b"<DisplayName>other</DisplayName>" in document
    assert parse_acl_xml(document) == acl


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<AccessControlPolicy>", "MalformedXML"),
        (b"<Tagging/>", "MalformedACLError"),
        (b"<AccessControlPolicy/>", "MalformedACLError"),
        (b"<AccessControlPolicy><Owner><ID></ID></Owner></AccessControlPolicy>",
         "MalformedACLError"),
        (b"<AccessControlPolicy><Owner><ID>o</ID></Owner><AccessControlList><Other/>"
         b"</AccessControlList></AccessControlPolicy>", "MalformedACLError"),
        (b"<AccessControlPolicy><Owner><ID>o</ID></Owner><AccessControlList><Grant><Grantee>"
         b"<ID>x</ID></Grantee><Permission>ALL</Permission></Grant></AccessControlList>"
         b"</AccessControlPolicy>", "MalformedACLError"),
        (b"<AccessControlPolicy><Owner><ID>o</ID></Owner><AccessControlList><Grant><Grantee>"
         b"<EmailAddress>a@b.c</EmailAddress></Grantee><Permission>READ</Permission></Grant>"
         b"</AccessControlList></AccessControlPolicy>", "UnresolvableGrantByEmailAddress"),
    ],
)  # fmt: skip
def test_bad_acl_documents(body: bytes, code: str) -> None:
    with pytest.raises(S3Error) as refused:
        parse_acl_xml(body)
    assert refused.value.code == code


def test_a_document_without_grants_is_an_empty_acl() -> None:
    body = b"<AccessControlPolicy><Owner><ID>o</ID></Owner></AccessControlPolicy>"
    assert parse_acl_xml(body) == Acl("o", ())


# ---- what a grant allows ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("permission", "action", "on_object", "expected"),
    [
        ("READ", "s3:listbucket", False, True),
        ("READ", "s3:listbucketversions", False, True),
        ("READ", "s3:putobject", False, False),
        ("WRITE", "s3:putobject", False, True),
        ("WRITE", "s3:deleteobject", False, True),
        ("READ_ACP", "s3:getbucketacl", False, True),
        ("READ_ACP", "s3:putbucketacl", False, False),
        ("WRITE_ACP", "s3:putbucketacl", False, True),
        ("FULL_CONTROL", "s3:putbucketacl", False, True),
        ("FULL_CONTROL", "s3:deletebucket", False, False),
        ("FULL_CONTROL", "s3:putbucketpolicy", False, False),
        ("READ", "s3:getobject", True, True),
        ("READ", "s3:getobjectversion", True, True),
        ("READ", "s3:getobjectacl", True, False),
        ("READ_ACP", "s3:getobjectversionacl", True, True),
        ("WRITE_ACP", "s3:putobjectacl", True, True),
        ("FULL_CONTROL", "s3:getobject", True, True),
        ("WRITE", "s3:getobject", True, False),
    ],
)
def test_permissions(permission: str, action: str, on_object: bool, expected: bool) -> None:
    acl = Acl(OWNER, grants((CANONICAL_USER, OTHER, permission)))
    assert permits(acl, action, on_object, frozenset({OTHER}), False) is expected
    assert permits(acl, action, on_object, frozenset({OWNER}), False) is False


def test_public_grants_can_be_ignored() -> None:
    acl = canned("public-read", OWNER, OWNER, True)
    assert permits(acl, "s3:getobject", True, frozenset({ALL_USERS}), False)
    assert not permits(acl, "s3:getobject", True, frozenset({ALL_USERS}), True)
    assert acl.is_public and not private(OWNER).is_public


# ---- the decision with ACLs -------------------------------------------------------------------


def access(
    acl: Acl | None = None,
    policy: dict[str, Any] | None = None,
    ownership: str | None = None,
    block: PublicAccessBlock | None = None,
) -> BucketAccess:
    parsed = parse_policy(json.dumps(policy), "b") if policy else None
    return BucketAccess("owner", parsed, acl, ownership, block or PublicAccessBlock())


PUBLIC_READ = canned("public-read", OWNER, OWNER, False)
GRANT_OTHER = Acl(OWNER, grants((CANONICAL_USER, OTHER, "READ"), (CANONICAL_USER, OTHER, "WRITE")))
AUTH_READ = canned("authenticated-read", OWNER, OWNER, False)
PUBLIC_WRITE = canned("public-read-write", OWNER, OWNER, False)
DENY_OTHER = {
    "Statement": [
        {"Effect": "Deny", "Principal": {"AWS": "other"}, "Action": "s3:*", "Resource": "*"}
    ]
}
PUBLIC_POLICY = {
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]
}
OTHER_KEY = key("other")
STRANGER = key("stranger")
OBJECT_FOR_OTHER = Acl(OWNER, grants((CANONICAL_USER, OTHER, "READ")))

READ_ONLY, LIMITED = key("other", read_only=True), key("other", buckets=("y",))
OWNER_WITH_POLICY = key(
    "owner",
    policy=json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    ),
)
OPEN, OPEN_WRITE, AUTH, GRANTED = (
    access(PUBLIC_READ), access(PUBLIC_WRITE), access(AUTH_READ), access(GRANT_OTHER)
)  # fmt: skip
IGNORED = access(PUBLIC_READ, block=PublicAccessBlock(ignore_public_acls=True))
ENFORCING = access(PUBLIC_READ, ownership=ENFORCED)
RESTRICTED = access(policy=PUBLIC_POLICY, block=PublicAccessBlock(restrict_public_buckets=True))
DENYING, DENYING_GRANTED = access(policy=DENY_OTHER), access(GRANT_OTHER, DENY_OTHER)
Decision = tuple[Identity, str, str | None, BucketAccess, Acl | None, bool]

DECISIONS: dict[str, Decision] = {
    "anonymous lists a public-read bucket": (ANONYMOUS, "s3:ListBucket", None, OPEN, None, True),
    "anonymous cannot write it": (ANONYMOUS, "s3:PutObject", "k", OPEN, None, False),
    "anonymous writes public-read-write": (ANONYMOUS, "s3:PutObject", "k", OPEN_WRITE, None, True),
    "anonymous reads public objects": (ANONYMOUS, "s3:GetObject", "k", access(), PUBLIC_READ, True),
    "anonymous and a private object": (ANONYMOUS, "s3:GetObject", "k", OPEN, private(OWNER), False),
    "anonymous and IgnorePublicAcls": (ANONYMOUS, "s3:ListBucket", None, IGNORED, None, False),
    "anonymous and BucketOwnerEnforced": (ANONYMOUS, "s3:ListBucket", None, ENFORCING, None, False),
    "anonymous, RestrictPublicBuckets": (ANONYMOUS, "s3:GetObject", "k", RESTRICTED, None, False),
    "anonymous and a public policy": (
        ANONYMOUS, "s3:GetObject", "k", access(policy=PUBLIC_POLICY), None, True
    ),
    "anonymous is not authenticated": (ANONYMOUS, "s3:ListBucket", None, AUTH, None, False),
    "a key is an authenticated user": (STRANGER, "s3:ListBucket", None, AUTH, None, True),
    "a key's grant by id": (OTHER_KEY, "s3:PutObject", "k", GRANTED, None, True),
    "another key's grant": (STRANGER, "s3:PutObject", "k", GRANTED, None, False),
    "a grant does not reach the ACL": (OTHER_KEY, "s3:PutBucketAcl", None, GRANTED, None, False),
    "an object grant by id": (OTHER_KEY, "s3:GetObject", "k", access(), OBJECT_FOR_OTHER, True),
    "an object grant is not for its ACL": (
        OTHER_KEY, "s3:GetObjectAcl", "k", access(), OBJECT_FOR_OTHER, False
    ),
    "a Deny beats a bucket grant": (OTHER_KEY, "s3:PutObject", "k", DENYING_GRANTED, None, False),
    "a Deny beats an object grant": (
        OTHER_KEY, "s3:GetObject", "k", DENYING, OBJECT_FOR_OTHER, False
    ),
    "read-only key: a write grant gives nothing": (
        READ_ONLY, "s3:PutObject", "k", GRANTED, None, False
    ),
    "read-only key: a read grant works": (READ_ONLY, "s3:ListBucket", None, GRANTED, None, True),
    "bucket-limited key: not elsewhere": (LIMITED, "s3:ListBucket", None, GRANTED, None, False),
    "the owner's ACL is not its scope": (
        OWNER_WITH_POLICY, "s3:PutObject", "k", access(), None, False
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", DECISIONS.values(), ids=list(DECISIONS))
def test_acl_decisions(
    case: tuple[Identity, str, str | None, BucketAccess, Acl | None, bool],
) -> None:
    who, action, object_key, bucket_access, object_acl, expected = case
    outcome = allowed(who, action, "b", object_key, bucket_access, CONTEXT, object_acl)
    assert outcome is expected


# ---- public policies, access blocks, ownership controls --------------------------------------


def _policy(
    condition: dict[str, Any] | None = None, principal: Any = "*", element: str = "Principal"
) -> Any:
    statement: dict[str, Any] = {
        "Effect": "Allow", element: principal, "Action": "s3:GetObject", "Resource": "*"
    }  # fmt: skip
    if condition:
        statement["Condition"] = condition
    return parse_policy(json.dumps({"Statement": [statement]}), "b")


@pytest.mark.parametrize(
    ("policy", "public"),
    [
        (_policy(), True),
        (_policy(principal={"AWS": "*"}), True),
        (_policy(principal={"AWS": "alice"}), False),
        (_policy(principal={"AWS": "alice"}, element="NotPrincipal"), True),
        (_policy(principal={"AWS": "*"}, element="NotPrincipal"), False),
        (_policy({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}), False),
        (_policy({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}), True),
        (_policy({"StringEquals": {"aws:SourceVpce": "vpce-1"}}), False),
        (_policy({"StringLike": {"aws:SourceVpce": "vpce-*"}}), True),
        (_policy({"StringEquals": {"s3:prefix": "docs/"}}), True),
        (_policy({"Bool": {"aws:SecureTransport": "true"}}), True),
    ],
)
def test_policy_is_public(policy: Any, public: bool) -> None:
    assert policy_is_public(policy) is public


def test_public_access_block_document() -> None:
    block = parse_public_access_xml(
        b'<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<BlockPublicAcls>TRUE</BlockPublicAcls><RestrictPublicBuckets>true"
        b"</RestrictPublicBuckets></PublicAccessBlockConfiguration>"
    )
    assert block == PublicAccessBlock(block_public_acls=True, restrict_public_buckets=True)
    assert parse_public_access_xml(render_public_access(block)) == block
    assert PublicAccessBlock.from_json(block.to_json()) == block
    for bad in (
        b"<PublicAccessBlockConfiguration><BlockPublicAcls>yes</BlockPublicAcls>"
        b"</PublicAccessBlockConfiguration>",
        b"<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>"
        b"<BlockPublicAcls>true</BlockPublicAcls></PublicAccessBlockConfiguration>",
        b"<PublicAccessBlockConfiguration><Other>true</Other></PublicAccessBlockConfiguration>",
    ):
        with pytest.raises(S3Error) as refused:
            parse_public_access_xml(bad)
        assert refused.value.code == "MalformedXML"


def test_ownership_document() -> None:
    body = b"<OwnershipControls><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule>"
    assert parse_ownership_xml(body + b"</OwnershipControls>") == "ObjectWriter"
    with pytest.raises(S3Error):
        parse_ownership_xml(body + body[19:] + b"</OwnershipControls>")  # two rules
