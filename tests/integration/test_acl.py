"""ACLs, ownership controls, public access blocks and policy status, end to end with boto3
and raw signed requests: what is stored reads back, what is granted is enforced (for
anonymous requests and for other keys), and every refusal has AWS's code and status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.settings import owner_id
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, NodeProcess, two_way_pair
from tests.integration.s3util import send, xml_code
from tests.integration.test_access_control import (
    Key,
    allow,
    assert_denied,
    assert_ok,
    outcome,
    put_policy,
    root_bucket,
    unique,
)
from tests.integration.test_access_control import make_key as make_key  # the fixture
from tests.integration.test_awscli import api_json, make_aws
from tests.integration.test_replication_pull import converge
from tests.integration.test_s3cmd import S3cmd
from tests.integration.test_s3cmd import s3cmd as s3cmd  # the fixture, used by name

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
ROOT_ID = owner_id(ACCESS_KEY)
PUBLIC_BLOCKS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


def grants_of(acl: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(grantee type, id or URI, permission) of each grant GetBucketAcl/GetObjectAcl gave."""
    return {
        (g["Grantee"]["Type"], g["Grantee"].get("ID") or g["Grantee"]["URI"], g["Permission"])
        for g in acl["Grants"]
    }


def user(canonical_id: str, permission: str) -> tuple[str, str, str]:
    return ("CanonicalUser", canonical_id, permission)


def group(uri: str, permission: str) -> tuple[str, str, str]:
    return ("Group", uri, permission)


def anonymous_get(node: NodeProcess, path: str) -> int:
    return httpx.get(f"{node.url}{path}").status_code


def block(client: Any, bucket: str, **settings: bool) -> None:
    client.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={name: settings.get(name, False) for name in PUBLIC_BLOCKS},
    )


def policy_document(*grants: tuple[str, str, str]) -> dict[str, Any]:
    """An AccessControlPolicy for boto3, owned by the s3 key."""
    items = []
    for kind, who, permission in grants:
        grantee = {"Type": kind, "ID" if kind == "CanonicalUser" else "URI": who}
        items.append({"Grantee": grantee, "Permission": permission})
    return {"Owner": {"ID": ROOT_ID}, "Grants": items}


# ---- canned ACLs, grant headers and AccessControlPolicy bodies, read back ------------------

CANNED = {
    "private": set(),
    "public-read": {group(ALL_USERS, "READ")},
    "public-read-write": {group(ALL_USERS, "READ"), group(ALL_USERS, "WRITE")},
    "authenticated-read": {group(AUTHENTICATED, "READ")},
    "log-delivery-write": {group(LOG_DELIVERY, "WRITE"), group(LOG_DELIVERY, "READ_ACP")},
    "bucket-owner-read": set(),
    "bucket-owner-full-control": set(),
}


@pytest.mark.parametrize("canned", sorted(CANNED))
def test_canned_acl_on_bucket_and_object(s3: Any, canned: str) -> None:
    expected = {user(ROOT_ID, "FULL_CONTROL")} | CANNED[canned]
    created = unique("canned")
    s3.create_bucket(Bucket=created, ACL=canned)
    assert grants_of(s3.get_bucket_acl(Bucket=created)) == expected
    name = root_bucket(s3, "canned-put")
    s3.put_bucket_acl(Bucket=name, ACL=canned)
    acl = s3.get_bucket_acl(Bucket=name)
    assert acl["Owner"] == {"ID": ROOT_ID, "DisplayName": ACCESS_KEY}
    assert grants_of(acl) == expected
    if canned == "log-delivery-write":
        return  # a bucket-only canned ACL
    s3.put_object(Bucket=name, Key="written", Body=b"x", ACL=canned)
    assert grants_of(s3.get_object_acl(Bucket=name, Key="written")) == expected
    s3.put_object_acl(Bucket=name, Key="obj", ACL=canned)
    assert grants_of(s3.get_object_acl(Bucket=name, Key="obj")) == expected


def test_grant_headers_and_policy_body_round_trip(
    s3: Any,
    make_key: Callable[..., Key],
) -> None:
    other = make_key("grantee")
    other_id = owner_id(other.access_key)
    name = root_bucket(s3, "grants")
    s3.put_bucket_acl(
        Bucket=name,
        GrantRead=f'id="{other_id}", uri="{AUTHENTICATED}"',
        GrantWriteACP=f'uri="{ALL_USERS}"',
        GrantFullControl=f'id="{ROOT_ID}"',
    )
    acl = s3.get_bucket_acl(Bucket=name)
    assert grants_of(acl) == {
        user(other_id, "READ"),
        group(AUTHENTICATED, "READ"),
        group(ALL_USERS, "WRITE_ACP"),
        user(ROOT_ID, "FULL_CONTROL"),
    }
    names = {g["Grantee"].get("DisplayName") for g in acl["Grants"]}
    assert {other.access_key, ACCESS_KEY} <= names

    wanted = (user(ROOT_ID, "FULL_CONTROL"), user(other_id, "READ_ACP"), group(ALL_USERS, "READ"))
    s3.put_object_acl(Bucket=name, Key="obj", AccessControlPolicy=policy_document(*wanted))
    assert grants_of(s3.get_object_acl(Bucket=name, Key="obj")) == set(wanted)
    # The ACL is internal state: never a response header of the object.
    head = s3.head_object(Bucket=name, Key="obj")["ResponseMetadata"]["HTTPHeaders"]
    assert not any(header.startswith("x-lakenode-") for header in head)


def test_object_acl_per_version(s3: Any, node: NodeProcess) -> None:
    name = root_bucket(s3, "acl-versions", {})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=name, Key="k", Body=b"one", ACL="public-read")["VersionId"]
    second = s3.put_object(Bucket=name, Key="k", Body=b"two")["VersionId"]
    assert group(ALL_USERS, "READ") in grants_of(
        s3.get_object_acl(Bucket=name, Key="k", VersionId=first)
    )
    assert grants_of(s3.get_object_acl(Bucket=name, Key="k")) == {user(ROOT_ID, "FULL_CONTROL")}
    assert anonymous_get(node, f"/{name}/k?versionId={first}") == 200
    assert anonymous_get(node, f"/{name}/k") == 403
    s3.put_object_acl(Bucket=name, Key="k", VersionId=second, ACL="public-read")
    assert anonymous_get(node, f"/{name}/k") == 200
    missing = outcome(s3.get_object_acl, Bucket=name, Key="k", VersionId="0" * 24)
    assert missing[0] == 404


def test_multipart_and_copy_take_the_requested_acl(
    s3: Any,
    node: NodeProcess,
) -> None:
    name = root_bucket(s3, "acl-writes", {})
    upload = s3.create_multipart_upload(Bucket=name, Key="mp", ACL="public-read")["UploadId"]
    etag = s3.upload_part(Bucket=name, Key="mp", UploadId=upload, PartNumber=1, Body=b"p")["ETag"]
    s3.complete_multipart_upload(
        Bucket=name,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
    )
    assert anonymous_get(node, f"/{name}/mp") == 200
    # A copy never inherits its source's ACL; it takes the one it asks for.
    s3.copy_object(Bucket=name, Key="copy", CopySource={"Bucket": name, "Key": "mp"})
    assert anonymous_get(node, f"/{name}/copy") == 403
    s3.copy_object(
        Bucket=name, Key="public", CopySource={"Bucket": name, "Key": "mp"}, ACL="public-read"
    )
    assert anonymous_get(node, f"/{name}/public") == 200
    s3.copy_object(
        Bucket=name,
        Key="replaced",
        CopySource={"Bucket": name, "Key": "mp"},
        MetadataDirective="REPLACE",
        ACL="public-read",
    )
    assert anonymous_get(node, f"/{name}/replaced") == 200


# ---- enforcement --------------------------------------------------------------------------


def test_public_read_serves_anonymous_until_a_public_access_block(
    s3: Any,
    node: NodeProcess,
) -> None:
    name = root_bucket(s3, "public-acl", {"open": b"o", "closed": b"c"})
    assert anonymous_get(node, f"/{name}?list-type=2") == 403
    s3.put_bucket_acl(Bucket=name, ACL="public-read")
    s3.put_object_acl(Bucket=name, Key="open", ACL="public-read")
    assert anonymous_get(node, f"/{name}?list-type=2") == 200
    got = httpx.get(f"{node.url}/{name}/open")
    assert (got.status_code, got.content) == (200, b"o")
    assert anonymous_get(node, f"/{name}/closed") == 403
    assert httpx.put(f"{node.url}/{name}/anon", content=b"x").status_code == 403
    assert httpx.get(f"{node.url}/{name}?acl").status_code == 403

    block(s3, name, IgnorePublicAcls=True)
    assert anonymous_get(node, f"/{name}/open") == 403
    assert anonymous_get(node, f"/{name}?list-type=2") == 403
    block(s3, name, BlockPublicAcls=True)
    assert anonymous_get(node, f"/{name}/open") == 200  # existing grants still count
    assert outcome(s3.put_object_acl, Bucket=name, Key="closed", ACL="public-read") == (
        403,
        "AccessDenied",
    )
    assert outcome(s3.put_bucket_acl, Bucket=name, ACL="authenticated-read") == (
        403,
        "AccessDenied",
    )
    assert outcome(s3.put_object, Bucket=name, Key="new", Body=b"n", ACL="public-read") == (
        403,
        "AccessDenied",
    )
    assert_ok(s3.put_object_acl, Bucket=name, Key="closed", ACL="private")
    s3.delete_public_access_block(Bucket=name)
    assert outcome(s3.get_public_access_block, Bucket=name) == (
        404,
        "NoSuchPublicAccessBlockConfiguration",
    )
    assert_ok(s3.put_object_acl, Bucket=name, Key="closed", ACL="public-read")
    assert anonymous_get(node, f"/{name}/closed") == 200


def test_public_read_write_lets_anonymous_write(s3: Any, node: NodeProcess) -> None:
    name = root_bucket(s3, "public-write", {})
    assert httpx.put(f"{node.url}/{name}/anon", content=b"x").status_code == 403
    s3.put_bucket_acl(Bucket=name, ACL="public-read-write")
    assert httpx.put(f"{node.url}/{name}/anon", content=b"x").status_code == 200
    assert s3.get_object(Bucket=name, Key="anon")["Body"].read() == b"x"
    # Written anonymously, owned by the bucket owner with the default ACL.
    assert grants_of(s3.get_object_acl(Bucket=name, Key="anon")) == {user(ROOT_ID, "FULL_CONTROL")}
    assert httpx.delete(f"{node.url}/{name}/anon").status_code == 204


def test_grants_let_another_key_in_and_a_deny_policy_still_wins(
    make_key: Callable[..., Key],
) -> None:
    owner, other, stranger = make_key("acl-owner"), make_key("acl-other"), make_key("acl-none")
    other_id = owner_id(other.access_key)
    name = unique("granted")
    owner.client.create_bucket(Bucket=name)
    owner.client.put_object(Bucket=name, Key="shared", Body=b"s")
    owner.client.put_object(Bucket=name, Key="kept", Body=b"k")
    assert_denied(other.client.list_objects_v2, Bucket=name)
    owner.client.put_bucket_acl(
        Bucket=name, GrantRead=f'id="{other_id}"', GrantWrite=f'id="{other_id}"'
    )
    owner.client.put_object_acl(Bucket=name, Key="shared", GrantRead=f'id="{other_id}"')

    assert_ok(other.client.list_objects_v2, Bucket=name)
    assert other.client.get_object(Bucket=name, Key="shared")["Body"].read() == b"s"
    assert_denied(other.client.get_object, Bucket=name, Key="kept")
    assert_denied(other.client.get_object_acl, Bucket=name, Key="shared")
    assert_denied(other.client.put_bucket_acl, Bucket=name, ACL="public-read")
    other.client.put_object(Bucket=name, Key="by-other", Body=b"o")
    # The writer owns what it wrote (ObjectWriter, the default without ownership controls).
    written = other.client.get_object_acl(Bucket=name, Key="by-other")
    assert written["Owner"]["ID"] == other_id
    for client in (stranger.client,):
        assert_denied(client.list_objects_v2, Bucket=name)
        assert_denied(client.get_object, Bucket=name, Key="shared")

    put_policy(
        owner.client,
        name,
        {
            "Effect": "Deny",
            "Principal": {"AWS": [other.access_key]},
            "Action": ["s3:ListBucket", "s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        },
    )
    assert_denied(other.client.list_objects_v2, Bucket=name)
    assert_denied(other.client.get_object, Bucket=name, Key="shared")


def test_authenticated_read_is_for_keys_not_anonymous(
    s3: Any,
    node: NodeProcess,
    make_key: Callable[..., Key],
) -> None:
    reader = make_key("auth-reader")
    read_only = make_key("auth-read-only", "--read-only", "--bucket", "elsewhere")
    name = root_bucket(s3, "auth-read")
    s3.put_bucket_acl(Bucket=name, ACL="authenticated-read")
    s3.put_object_acl(Bucket=name, Key="obj", ACL="authenticated-read")
    assert reader.client.get_object(Bucket=name, Key="obj")["Body"].read() == b"data"
    assert_ok(reader.client.list_objects_v2, Bucket=name)
    assert anonymous_get(node, f"/{name}/obj") == 403
    # A key's --bucket scope still restricts what a grant gives it.
    assert_denied(read_only.client.get_object, Bucket=name, Key="obj")


# ---- real clients -------------------------------------------------------------------------


def test_acls_through_awscli(node: NodeProcess, bucket: str, tmp_path: Any) -> None:
    aws = make_aws(node, tmp_path / "aws-home")
    source = tmp_path / "page.html"
    source.write_bytes(b"<p>public</p>")
    aws("s3", "cp", str(source), f"s3://{bucket}/page.html", "--acl", "public-read")
    aws("s3", "cp", str(source), f"s3://{bucket}/closed.html")
    assert httpx.get(f"{node.url}/{bucket}/page.html").content == b"<p>public</p>"
    assert anonymous_get(node, f"/{bucket}/closed.html") == 403
    aws("s3api", "put-bucket-acl", "--bucket", bucket, "--acl", "public-read")
    assert anonymous_get(node, f"/{bucket}?list-type=2") == 200
    acl = api_json(aws, "get-bucket-acl", "--bucket", bucket)
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in acl["Grants"]
    aws("s3api", "put-object-acl", "--bucket", bucket, "--key", "page.html", "--acl", "private")
    assert anonymous_get(node, f"/{bucket}/page.html") == 403


def test_acls_through_s3cmd(
    s3cmd: S3cmd,
    node: NodeProcess,
    bucket: str,
    tmp_path: Any,
) -> None:
    source = tmp_path / "file.txt"
    source.write_bytes(b"shared")
    s3cmd("put", "--acl-public", str(source), f"s3://{bucket}/file.txt")
    assert anonymous_get(node, f"/{bucket}/file.txt") == 200
    s3cmd("setacl", "--acl-private", f"s3://{bucket}/file.txt")
    assert anonymous_get(node, f"/{bucket}/file.txt") == 403
    info = s3cmd("info", f"s3://{bucket}/file.txt").stdout
    assert "FULL_CONTROL" in info


# ---- ownership controls -------------------------------------------------------------------


def test_ownership_controls(s3: Any, node: NodeProcess) -> None:
    plain = root_bucket(s3, "no-controls")
    assert outcome(s3.get_bucket_ownership_controls, Bucket=plain) == (
        404,
        "OwnershipControlsNotFoundError",
    )
    enforced = unique("enforced")
    s3.create_bucket(Bucket=enforced, ObjectOwnership="BucketOwnerEnforced")
    rules = s3.get_bucket_ownership_controls(Bucket=enforced)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    not_supported = (400, "AccessControlListNotSupported")
    assert outcome(s3.put_bucket_acl, Bucket=enforced, ACL="public-read") == not_supported
    assert outcome(s3.put_object, Bucket=enforced, Key="k", Body=b"x", ACL="public-read") == (
        not_supported
    )
    assert_ok(s3.put_object, Bucket=enforced, Key="k", Body=b"x", ACL="bucket-owner-full-control")
    assert_ok(s3.put_bucket_acl, Bucket=enforced, ACL="private")
    assert grants_of(s3.get_object_acl(Bucket=enforced, Key="k")) == {user(ROOT_ID, "FULL_CONTROL")}

    # Turning enforcement on needs a bucket ACL without other grantees; then ACLs stop counting.
    s3.put_bucket_acl(Bucket=plain, ACL="public-read")
    s3.put_object_acl(Bucket=plain, Key="obj", ACL="public-read")
    assert anonymous_get(node, f"/{plain}/obj") == 200
    controls = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert outcome(s3.put_bucket_ownership_controls, Bucket=plain, OwnershipControls=controls) == (
        400,
        "InvalidBucketAclWithObjectOwnership",
    )
    s3.put_bucket_acl(Bucket=plain, ACL="private")
    s3.put_bucket_ownership_controls(Bucket=plain, OwnershipControls=controls)
    assert anonymous_get(node, f"/{plain}/obj") == 403
    s3.put_bucket_ownership_controls(
        Bucket=plain, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
    )
    assert anonymous_get(node, f"/{plain}/obj") == 200
    s3.delete_bucket_ownership_controls(Bucket=plain)
    assert outcome(s3.get_bucket_ownership_controls, Bucket=plain)[0] == 404
    assert outcome(
        s3.create_bucket,
        Bucket=unique("bad-mix"),
        ACL="public-read",
        ObjectOwnership="BucketOwnerEnforced",
    ) == (400, "InvalidBucketAclWithObjectOwnership")


def test_bucket_owner_preferred_takes_objects_written_with_full_control(
    make_key: Callable[..., Key],
) -> None:
    owner, writer = make_key("preferred-owner"), make_key("preferred-writer")
    name = unique("preferred")
    owner.client.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerPreferred")
    owner.client.put_bucket_acl(Bucket=name, GrantWrite=f'id="{owner_id(writer.access_key)}"')
    writer.client.put_object(Bucket=name, Key="given", Body=b"g", ACL="bucket-owner-full-control")
    writer.client.put_object(Bucket=name, Key="kept", Body=b"k")
    given = owner.client.get_object_acl(Bucket=name, Key="given")
    assert given["Owner"]["ID"] == owner_id(owner.access_key)
    kept = writer.client.get_object_acl(Bucket=name, Key="kept")
    assert kept["Owner"]["ID"] == owner_id(writer.access_key)


# ---- policies: status, BlockPublicPolicy, RestrictPublicBuckets ---------------------------


def test_policy_status_and_public_policy_blocks(s3: Any, node: NodeProcess) -> None:
    name = root_bucket(s3, "policy-status")
    assert outcome(s3.get_bucket_policy_status, Bucket=name) == (404, "NoSuchBucketPolicy")
    read_all = allow("*", "s3:GetObject", f"arn:aws:s3:::{name}/*")
    fixed_ip = allow(
        "*",
        "s3:GetObject",
        f"arn:aws:s3:::{name}/*",
        Condition={"IpAddress": {"aws:SourceIp": "10.1.2.0/24"}},
    )
    put_policy(s3, name, fixed_ip)
    assert s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"] == {"IsPublic": False}
    put_policy(s3, name, read_all)
    assert s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"] == {"IsPublic": True}
    assert anonymous_get(node, f"/{name}/obj") == 200

    block(s3, name, RestrictPublicBuckets=True)
    assert anonymous_get(node, f"/{name}/obj") == 403
    block(s3, name, BlockPublicPolicy=True)
    assert anonymous_get(node, f"/{name}/obj") == 200
    assert outcome(
        s3.put_bucket_policy,
        Bucket=name,
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [read_all]}),
    ) == (403, "AccessDenied")
    assert_ok(
        s3.put_bucket_policy,
        Bucket=name,
        Policy=json.dumps({"Version": "2012-10-17", "Statement": [fixed_ip]}),
    )
    got = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert got == {n: n == "BlockPublicPolicy" for n in PUBLIC_BLOCKS}


# ---- refusals -----------------------------------------------------------------------------


def _acl_body(owner: str, grantee: str, permission: str = "READ") -> bytes:
    return (
        '<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Owner><ID>{owner}</ID></Owner><AccessControlList><Grant>"
        f'<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" {grantee}'
        f"<Permission>{permission}</Permission></Grant></AccessControlList>"
        "</AccessControlPolicy>"
    ).encode()


_ALL = f'xsi:type="Group"><URI>{ALL_USERS}</URI></Grantee>'
_EMAIL = 'xsi:type="AmazonCustomerByEmail"><EmailAddress>a@b.c</EmailAddress></Grantee>'
REFUSED_ACL_REQUESTS: list[tuple[str, dict[str, str], bytes, int, str]] = [
    ("bogus canned", {"x-amz-acl": "bogus"}, b"", 400, "InvalidArgument"),
    (
        "canned and grants",
        {"x-amz-acl": "private", "x-amz-grant-read": f'uri="{ALL_USERS}"'},
        b"",
        400,
        "InvalidRequest",
    ),
    ("email grant", {"x-amz-grant-read": 'emailAddress="a@b.c"'}, b"", 400,
     "UnresolvableGrantByEmailAddress"),
    ("unknown id", {"x-amz-grant-read": 'id="' + "f" * 64 + '"'}, b"", 400, "InvalidArgument"),
    ("unknown group", {"x-amz-grant-read": 'uri="http://example.com/g"'}, b"", 400,
     "InvalidArgument"),
    ("bad grant syntax", {"x-amz-grant-read": "id=unquoted"}, b"", 400, "InvalidArgument"),
    ("no acl at all", {}, b"", 400, "MissingSecurityHeader"),
    ("body and header", {"x-amz-acl": "private"}, _acl_body(ROOT_ID, _ALL), 400,
     "UnexpectedContent"),
    ("not xml", {}, b"<AccessControlPolicy><Owner>", 400, "MalformedXML"),
    ("wrong s3", {}, b"<Tagging/>", 400, "MalformedACLError"),
    ("no owner", {}, b"<AccessControlPolicy><AccessControlList/></AccessControlPolicy>", 400,
     "MalformedACLError"),
    ("bad permission", {}, _acl_body(ROOT_ID, _ALL, "EVERYTHING"), 400, "MalformedACLError"),
    ("grantee without id", {}, _acl_body(ROOT_ID, 'xsi:type="CanonicalUser"></Grantee>'), 400,
     "MalformedACLError"),
    ("email in body", {}, _acl_body(ROOT_ID, _EMAIL), 400, "UnresolvableGrantByEmailAddress"),
    ("other owner", {}, _acl_body("0" * 64, _ALL), 403, "AccessDenied"),
    ("entities", {}, b'<!DOCTYPE a [<!ENTITY e "x">]><AccessControlPolicy>&e;'
     b"</AccessControlPolicy>", 400, "MalformedXML"),
    ("too large", {}, b"<AccessControlPolicy>" + b" " * 70_000, 400, "MalformedXML"),
    ("not utf-8", {}, b"<AccessControlPolicy>\xff\xfe</AccessControlPolicy>", 400,
     "MalformedXML"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [case[1:] for case in REFUSED_ACL_REQUESTS],
    ids=[case[0] for case in REFUSED_ACL_REQUESTS],
)
@pytest.mark.parametrize("target", ["bucket", "object"])
def test_refused_acl_requests(
    s3: Any,
    node: NodeProcess,
    target: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
) -> None:
    name = root_bucket(s3, "refused")
    path = f"/{name}" if target == "bucket" else f"/{name}/obj"
    response = send(node.url, "PUT", path, "acl", headers, body)
    assert (response.status_code, xml_code(response)) == (status, code), response.text
    assert grants_of(s3.get_bucket_acl(Bucket=name)) == {user(ROOT_ID, "FULL_CONTROL")}


REFUSED_CONFIGURATIONS = [
    ("publicAccessBlock", b"<PublicAccessBlockConfiguration><BlockPublicAcls>maybe"
     b"</BlockPublicAcls></PublicAccessBlockConfiguration>", "MalformedXML"),
    ("publicAccessBlock", b"<Other/>", "MalformedXML"),
    ("publicAccessBlock", b"not xml", "MalformedXML"),
    ("ownershipControls", b"<OwnershipControls><Rule><ObjectOwnership>Nobody</ObjectOwnership>"
     b"</Rule></OwnershipControls>", "MalformedXML"),
    ("ownershipControls", b"<OwnershipControls/>", "MalformedXML"),
]  # fmt: skip


@pytest.mark.parametrize(("query", "body", "code"), REFUSED_CONFIGURATIONS)
def test_refused_configurations(
    s3: Any,
    node: NodeProcess,
    query: str,
    body: bytes,
    code: str,
) -> None:
    name = root_bucket(s3, "bad-config")
    response = send(node.url, "PUT", f"/{name}", query, {}, body)
    assert (response.status_code, xml_code(response)) == (400, code), response.text
    assert send(node.url, "GET", f"/{name}", query).status_code == 404


def test_acls_of_missing_buckets_and_keys(s3: Any) -> None:
    missing = unique("no-such-bucket")
    for call, kwargs in [
        (s3.get_bucket_acl, {}),
        (s3.put_bucket_acl, {"ACL": "private"}),
        (s3.get_public_access_block, {}),
        (s3.get_bucket_ownership_controls, {}),
        (s3.get_bucket_policy_status, {}),
    ]:
        assert outcome(call, Bucket=missing, **kwargs) == (404, "NoSuchBucket"), call
    name = root_bucket(s3, "missing-keys", {})
    assert outcome(s3.get_object_acl, Bucket=name, Key="nope") == (404, "NoSuchKey")
    assert outcome(s3.put_object_acl, Bucket=name, Key="nope", ACL="private") == (
        404,
        "NoSuchKey",
    )


def test_bad_object_ownership_header(node: NodeProcess) -> None:
    name = unique("bad-ownership")
    response = send(node.url, "PUT", f"/{name}", "", {"x-amz-object-ownership": "Everyone"})
    assert (response.status_code, xml_code(response)) == (400, "InvalidArgument")
    assert send(node.url, "HEAD", f"/{name}").status_code == 404


# ---- two sites ----------------------------------------------------------------------------


def replicated_state(client: Any, node: NodeProcess, bucket: str) -> Any:
    """What a site shows and enforces of a bucket's ACLs, controls and blocks."""
    try:
        return (
            grants_of(client.get_bucket_acl(Bucket=bucket)),
            grants_of(client.get_object_acl(Bucket=bucket, Key="written")),
            grants_of(client.get_object_acl(Bucket=bucket, Key="later")),
            client.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"],
            outcome(client.get_public_access_block, Bucket=bucket),
            anonymous_get(node, f"/{bucket}/written"),
            anonymous_get(node, f"/{bucket}/later"),
            anonymous_get(node, f"/{bucket}?list-type=2"),
        )
    except ClientError as exc:
        return exc.response["Error"]["Code"]


@pytest.mark.slow
def test_acls_controls_and_blocks_replicate_and_apply_on_the_other_site(tmp_path: Any) -> None:
    a, b = two_way_pair(tmp_path)
    try:
        s3a, s3b = make_client(a.url), make_client(b.url)
        name = unique("repl-acl")
        s3a.create_bucket(Bucket=name, ACL="public-read", ObjectOwnership="ObjectWriter")
        s3a.put_object(Bucket=name, Key="written", Body=b"w", ACL="public-read")
        s3a.put_object(Bucket=name, Key="later", Body=b"l")
        s3a.put_object_acl(Bucket=name, Key="later", ACL="authenticated-read")
        s3a.put_object_acl(Bucket=name, Key="later", ACL="public-read")  # the last one wins
        expected = replicated_state(s3a, a, name)
        assert expected[3] == {"Rules": [{"ObjectOwnership": "ObjectWriter"}]}
        assert expected[5:] == (200, 200, 200)
        converge(lambda: replicated_state(s3b, b, name), expected)

        # A public access block set on B stops anonymous reads on A.
        block(s3b, name, IgnorePublicAcls=True)
        converge(lambda: anonymous_get(a, f"/{name}/written"), 403)
        assert s3a.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == {
            n: n == "IgnorePublicAcls" for n in PUBLIC_BLOCKS
        }
        s3b.delete_public_access_block(Bucket=name)
        s3b.put_object_acl(Bucket=name, Key="written", ACL="private")
        s3b.put_bucket_acl(Bucket=name, ACL="private")
        s3b.put_bucket_ownership_controls(
            Bucket=name, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        )
        converge(lambda: replicated_state(s3a, a, name), replicated_state(s3b, b, name))
        assert replicated_state(s3a, a, name)[5:] == (403, 403, 403)
    finally:
        b.stop()
        a.stop()
