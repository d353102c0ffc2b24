"""POST Object (browser uploads) against a real node: forms built by boto3's
``generate_presigned_post`` (default SigV2 and SigV4), by hand, and malformed on purpose.

Every refused form is checked for its S3 status and code, and for leaving nothing stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.sigv4_canonical import signature, signing_key
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.s3util import md5_etag, send, xml_code
from tests.integration.test_access_control import client_for, keys_ok, outcome, unique, wait_for
from tests.integration.test_listing import DOMAIN, vhost
from tests.integration.test_memory import (
    ONE_PROCESS,
    RSS_GROWTH_MAX,
    Digests,
    RssSampler,
    generate,
)

BOUNDARY = "----lakenode-post-test"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
FAR_FUTURE = "2999-01-01T00:00:00Z"


# ---- building forms ---------------------------------------------------------------------------


def encode_policy(conditions: list[Any], expiration: str = FAR_FUTURE) -> str:
    document = {"expiration": expiration, "conditions": conditions}
    return base64.b64encode(json.dumps(document).encode()).decode()


def sigv2_fields(policy: str, access_key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> dict:
    """SigV2 form fields: base64 HMAC-SHA1 of the base64 policy under the secret."""
    digest = hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()
    return {
        "AWSAccessKeyId": access_key,
        "policy": policy,
        "signature": base64.b64encode(digest).decode(),
    }


def sigv4_scope(date: str = "20240506") -> dict[str, str]:
    """The SigV4 fields a policy names (all but the signature)."""
    return {
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": f"{ACCESS_KEY}/{date}/{REGION}/s3/aws4_request",
        "x-amz-date": f"{date}T070809Z",
    }


def sigv4_fields(policy: str, date: str = "20240506", secret: str = SECRET_KEY) -> dict:
    """SigV4 form fields: hex HMAC-SHA256 of the base64 policy under the scope's signing key."""
    key = signing_key(secret, date, REGION)
    return {**sigv4_scope(date), "policy": policy, "x-amz-signature": signature(key, policy)}


def signed_form(bucket: str, fields: dict[str, str], extra: list[Any] | None = None) -> dict:
    """``fields`` plus SigV4 fields, under a policy that admits exactly these fields."""
    conditions: list[Any] = [{"bucket": bucket}]
    conditions += [{name: value} for name, value in {**fields, **sigv4_scope()}.items()]
    return {**fields, **sigv4_fields(encode_policy(conditions + (extra or [])))}


def multipart(
    fields: dict[str, str] | list[tuple[str, str]],
    file: bytes | None = b"content",
    filename: str = "upload.txt",
    after: dict[str, str] | None = None,
    close: bool = True,
) -> bytes:
    """A form body by hand: the fields, the file part, fields after it, the last delimiter."""
    items = list(fields.items()) if isinstance(fields, dict) else fields
    out = b""
    for name, value in items:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file is not None:
        out += (
            (
                f"--{BOUNDARY}\r\nContent-Disposition: form-data; "
                f'name="file"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + file
            + b"\r\n"
        )
    for name, value in (after or {}).items():
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    if close:
        out += f"--{BOUNDARY}--\r\n".encode()
    return out


def post(
    url: str, body: bytes, content_type: str | None = MULTIPART, **headers: str
) -> httpx.Response:
    sent = {"content-type": content_type} if content_type is not None else {}
    return httpx.post(url, content=body, headers={**sent, **headers}, timeout=30)


def post_presigned(presigned: dict[str, Any], data: bytes, filename: str = "f.bin") -> Any:
    """A browser's upload of a boto3 presigned POST: the fields, then the file."""
    return httpx.post(
        presigned["url"],
        data=presigned["fields"],
        files={"file": (filename, data, "application/octet-stream")},
        timeout=30,
    )


def message(response: httpx.Response) -> str:
    found = re.search(r"<Message>([^<]*)</Message>", response.text)
    return found.group(1) if found else ""


def expect_error(response: httpx.Response, status: int, code: str, text: str = "") -> None:
    assert (response.status_code, xml_code(response)) == (status, code), response.text
    assert text in message(response), response.text


def keys_in(s3: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


# ---- boto3's presigned POST, as a browser sends it ---------------------------------------------


def test_boto3_default_presigned_post_uploads_with_metadata(s3: Any, bucket: str) -> None:
    presigned = s3.generate_presigned_post(
        bucket,
        "uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-color": "green"},
        Conditions=[{"Content-Type": "text/plain"}, {"x-amz-meta-color": "green"}],
    )
    assert "AWSAccessKeyId" in presigned["fields"]  # boto3's default: a SigV2 form
    response = post_presigned(presigned, b"hello, form", "notes.txt")
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["etag"] == md5_etag(b"hello, form")
    key = "uploads/notes.txt"
    assert response.headers["location"] == f"{presigned['url']}/{quote(key, safe='')}"
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"hello, form"
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"color": "green"}


def test_sigv4_presigned_post_with_201_answers_the_post_response(node: NodeProcess) -> None:
    s3v4 = make_client(node.url, signature_version="s3v4")
    bucket = "post-sigv4"
    s3v4.create_bucket(Bucket=bucket)
    presigned = s3v4.generate_presigned_post(
        bucket,
        "doc.bin",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}],
    )
    assert "x-amz-signature" in presigned["fields"]
    response = post_presigned(presigned, b"v4 bytes")
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/xml"
    etag = md5_etag(b"v4 bytes")
    location = f"{node.url}/{bucket}/doc.bin"
    assert response.text.endswith(
        f"<PostResponse><Location>{location}</Location><Bucket>{bucket}</Bucket>"
        f"<Key>doc.bin</Key><ETag>{etag.replace(chr(34), '&quot;')}</ETag></PostResponse>"
    )
    assert s3v4.get_object(Bucket=bucket, Key="doc.bin")["Body"].read() == b"v4 bytes"


@pytest.mark.parametrize(
    ("size", "status", "code"),
    [(1, 400, "EntityTooSmall"), (4, 204, ""), (10, 204, ""), (11, 400, "EntityTooLarge")],
)
def test_content_length_range(s3: Any, bucket: str, size: int, status: int, code: str) -> None:
    presigned = s3.generate_presigned_post(
        bucket, "sized", Conditions=[["content-length-range", 4, 10]]
    )
    response = post_presigned(presigned, b"x" * size)
    assert (response.status_code, xml_code(response)) == (status, code), response.text
    assert keys_in(s3, bucket) == ([] if code else ["sized"])


def test_starts_with_key_prefix(s3: Any, bucket: str) -> None:
    conditions = [["starts-with", "$key", "user/eric/"]]
    allowed = s3.generate_presigned_post(bucket, "user/eric/a.txt", Conditions=conditions)
    assert post_presigned(allowed, b"a").status_code == 204
    presigned = s3.generate_presigned_post(bucket, "user/eric/b.txt", Conditions=conditions)
    presigned["fields"]["key"] = "user/mallory/b.txt"  # the signed policy does not admit it
    response = post_presigned(presigned, b"b")
    failed = 'Policy Condition failed: ["starts-with", "$key", "user/eric/"]'
    expect_error(response, 403, "AccessDenied", f"Invalid according to Policy: {failed}")
    assert keys_in(s3, bucket) == ["user/eric/a.txt"]


def test_success_action_redirect_answers_303(s3: Any, bucket: str) -> None:
    target = "https://example.com/done?from=form"
    presigned = s3.generate_presigned_post(
        bucket,
        "dir/r.txt",
        Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}],
    )
    response = post_presigned(presigned, b"redirected")
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://example.com/done"
    assert parse_qs(location.query) == {
        "from": ["form"],
        "bucket": [bucket],
        "key": ["dir/r.txt"],
        "etag": [md5_etag(b"redirected")],
    }


@pytest.mark.parametrize(("value", "status"), [("200", 200), ("204", 204), ("404", 204)])
def test_success_action_status(s3: Any, bucket: str, value: str, status: int) -> None:
    presigned = s3.generate_presigned_post(
        bucket,
        "k",
        Fields={"success_action_status": value},
        Conditions=[{"success_action_status": value}],
    )
    response = post_presigned(presigned, b"s")
    assert (response.status_code, response.content) == (status, b"")


# ---- forms signed by hand -----------------------------------------------------------------------


def test_sigv2_form_by_hand_and_filename_everywhere(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    fields = {
        "key": "in/${filename}",
        "x-amz-meta-names": "${filename},${filename}",
        "Content-Type": "image/png",
    }
    policy = encode_policy(
        [
            {"bucket": bucket},
            ["starts-with", "$key", "in/"],
            ["eq", "$x-amz-meta-names", "photo.png,photo.png"],
            ["starts-with", "$Content-Type", "image/"],
        ]
    )
    body = multipart({**fields, **sigv2_fields(policy)}, b"png", filename="C:\\pics\\photo.png")
    response = post(f"{node.url}/{bucket}", body)
    assert response.status_code == 204, response.text
    head = s3.head_object(Bucket=bucket, Key="in/photo.png")
    assert head["Metadata"] == {"names": "photo.png,photo.png"}
    assert head["ContentType"] == "image/png"


def test_field_names_are_case_insensitive_and_fields_after_the_file_are_ignored(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    policy = encode_policy(
        [{"BUCKET": bucket}, ["StArTs-WiTh", "$KeY", "ci/"], {"content-type": "text/css"}]
    )
    upper = {"KEY": "ci/style.css", "CONTENT-TYPE": "text/css"}
    signed = {name.upper(): value for name, value in sigv2_fields(policy).items()}
    after = {"key": "other", "Content-Type": "text/html", "x-amz-meta-late": "1"}
    response = post(f"{node.url}/{bucket}", multipart({**upper, **signed}, b"a{}", after=after))
    assert response.status_code == 204, response.text
    assert keys_in(s3, bucket) == ["ci/style.css"]
    head = s3.head_object(Bucket=bucket, Key="ci/style.css")
    assert (head["ContentType"], head["Metadata"]) == ("text/css", {})


def test_tagging_checksum_and_versioning_fields(node: NodeProcess, s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    data = b"checked content"
    sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
    tagging = "<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>"
    fields = {
        "key": "tagged",
        "tagging": tagging,
        "x-amz-checksum-sha256": sha256,
        "acl": "private",
    }
    response = post(f"{node.url}/{bucket}", multipart(signed_form(bucket, fields), data))
    assert response.status_code == 204, response.text
    assert response.headers["x-amz-checksum-sha256"] == sha256
    version = response.headers["x-amz-version-id"]
    head = s3.head_object(Bucket=bucket, Key="tagged", ChecksumMode="ENABLED")
    assert (head["VersionId"], head["ChecksumSHA256"]) == (version, sha256)
    tags = s3.get_object_tagging(Bucket=bucket, Key="tagged")["TagSet"]
    assert tags == [{"Key": "a", "Value": "1"}]


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"x-amz-checksum-sha256": base64.b64encode(b"x" * 32).decode()}, 400, "BadDigest"),
        ({"x-amz-checksum-sha256": "not-a-digest"}, 400, "InvalidRequest"),
        ({"Content-MD5": base64.b64encode(b"y" * 16).decode()}, 400, "BadDigest"),
        ({"acl": "world-writable"}, 400, "InvalidArgument"),
        ({"tagging": "a=1"}, 400, "MalformedXML"),
        ({"x-amz-meta-big": "m" * 2100}, 400, "MetadataTooLarge"),
        ({"x-amz-meta-lines": "one\ntwo"}, 400, "InvalidArgument"),
        ({"x-amz-server-side-encryption": "AES256"}, 501, "NotImplemented"),
    ],
)
def test_object_fields_that_are_refused(
    node: NodeProcess, s3: Any, bucket: str, fields: dict[str, str], status: int, code: str
) -> None:
    form = signed_form(bucket, {"key": "refused", **fields})
    expect_error(post(f"{node.url}/{bucket}", multipart(form)), status, code)
    assert keys_in(s3, bucket) == []


# ---- the policy and its signature ---------------------------------------------------------------


def _form_with(bucket: str, policy: str, **signed: str) -> bytes:
    return multipart({"key": "k", **sigv2_fields(policy), **signed})


@pytest.mark.parametrize(
    ("policy", "status", "code", "text"),
    [
        ("{not base64}", 400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON."),
        (base64.b64encode(b"expiration").decode(), 400, "InvalidPolicyDocument", "Invalid JSON."),
        (
            base64.b64encode(b'{"conditions": []}').decode(),
            400,
            "InvalidPolicyDocument",
            "Invalid Policy",
        ),
        (
            encode_policy([{"bucket": "b", "key": "k"}]),
            400,
            "InvalidPolicyDocument",
            "Simple-Conditions must have exactly one property specified.",
        ),
        (
            encode_policy([["ends-with", "$key", "k"]]),
            400,
            "InvalidPolicyDocument",
            "Invalid Policy",
        ),
        (
            encode_policy([], expiration="2999-02-30T00:00:00Z"),
            400,
            "InvalidPolicyDocument",
            "Invalid 'expiration' value: '2999-02-30T00:00:00Z'",
        ),
        (
            encode_policy([["starts-with", "$key", ""]], expiration="2020-01-01T00:00:00.000Z"),
            403,
            "AccessDenied",
            "Invalid according to Policy: Policy expired.",
        ),
        (
            encode_policy([["starts-with", "$key", ""]]),
            403,
            "AccessDenied",
            "Invalid according to Policy: Extra input fields: bucket",
        ),
    ],
)
def test_policy_document_errors(
    node: NodeProcess, s3: Any, bucket: str, policy: str, status: int, code: str, text: str
) -> None:
    expect_error(post(f"{node.url}/{bucket}", _form_with(bucket, policy)), status, code, text)
    assert keys_in(s3, bucket) == []


def test_every_field_must_be_covered_except_the_exempt_ones(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    policy = encode_policy([{"bucket": bucket}, {"key": "k"}])
    ignored = {"x-ignore-anything": "1"}
    assert post(f"{node.url}/{bucket}", _form_with(bucket, policy, **ignored)).status_code == 204
    extra = _form_with(bucket, policy, **{"x-amz-meta-sneaky": "1"})
    text = "Invalid according to Policy: Extra input fields: x-amz-meta-sneaky"
    expect_error(post(f"{node.url}/{bucket}", extra), 403, "AccessDenied", text)


def test_signature_errors(node: NodeProcess, s3: Any, bucket: str) -> None:
    policy = encode_policy([{"bucket": bucket}, {"key": "k"}])
    url = f"{node.url}/{bucket}"
    wrong = multipart({"key": "k", **sigv2_fields(policy, secret="wrong")})
    expect_error(post(url, wrong), 403, "SignatureDoesNotMatch")
    unknown = multipart({"key": "k", **sigv2_fields(policy, access_key="nobody")})
    expect_error(post(url, unknown), 403, "InvalidAccessKeyId")
    v4_wrong = multipart({"key": "k", **sigv4_fields(policy, secret="wrong")})
    expect_error(post(url, v4_wrong), 403, "SignatureDoesNotMatch")
    tampered = {**sigv4_fields(policy), "policy": encode_policy([{"key": "k"}])}
    expect_error(post(url, multipart({"key": "k", **tampered})), 403, "SignatureDoesNotMatch")
    other_region = {**sigv4_fields(policy)}
    other_region["x-amz-credential"] = other_region["x-amz-credential"].replace(REGION, "eu-west-1")
    expect_error(
        post(url, multipart({"key": "k", **other_region})),
        400,
        "AuthorizationQueryParametersError",
        "the region 'eu-west-1' is wrong; expecting 'us-east-1'",
    )
    no_signature = {k: v for k, v in sigv4_fields(policy).items() if k != "x-amz-signature"}
    expect_error(
        post(url, multipart({"key": "k", **no_signature})),
        400,
        "InvalidArgument",
        "Bucket POST must contain a field named 'X-Amz-Signature'.",
    )
    unsigned_policy = multipart({"key": "k", "policy": policy})
    expect_error(post(url, unsigned_policy), 403, "AccessDenied", "Access Denied")
    assert keys_in(s3, bucket) == []


# ---- who may upload -----------------------------------------------------------------------------


def test_anonymous_post_needs_a_bucket_that_allows_it(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    url = f"{node.url}/{bucket}"
    expect_error(post(url, multipart({"key": "anon"})), 403, "AccessDenied")
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/drop/*",
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    deadline = time.monotonic() + 3  # the node caches bucket policies for a second
    while (response := post(url, multipart({"key": "drop/anon"}, b"anon"))).status_code == 403:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.1)
    assert response.status_code == 204, response.text
    expect_error(post(url, multipart({"key": "elsewhere"})), 403, "AccessDenied")
    # As on AWS, the policy admits a plain anonymous PUT under drop/ too, and nothing else.
    assert httpx.put(f"{url}/drop/put", content=b"x").status_code == 200
    expect_error(httpx.put(f"{url}/put", content=b"x"), 403, "AccessDenied")
    assert keys_in(s3, bucket) == ["drop/anon", "drop/put"]
    assert s3.get_object(Bucket=bucket, Key="drop/anon")["Body"].read() == b"anon"


def test_a_signed_form_acts_as_its_key_and_is_authorized_like_a_put(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    access, secret = unique("post-signer"), "s3cr3t-" + unique("secret")
    keys_ok(node.data_dir, "create", "--access-key", access, "--secret-key", secret)
    signer = client_for(node.url, access, secret)
    wait_for(lambda: outcome(signer.list_buckets)[1] != "InvalidAccessKeyId")
    # Root's bucket: the key may not write there.
    denied = post_presigned(signer.generate_presigned_post(bucket, "shared/x"), b"x")
    expect_error(denied, 403, "AccessDenied", "Access Denied")
    # Its own bucket: it may.
    own = unique("post-own")
    signer.create_bucket(Bucket=own)
    assert post_presigned(signer.generate_presigned_post(own, "mine"), b"m").status_code == 204
    # A bucket policy granting it s3:PutObject on a prefix admits forms for that prefix only.
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": [access]},
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/shared/*",
    }
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )
    shared = signer.generate_presigned_post(bucket, "shared/x")
    wait_for(lambda: post_presigned(shared, b"shared").status_code == 204, limit_s=10)
    elsewhere = post_presigned(signer.generate_presigned_post(bucket, "private/x"), b"p")
    expect_error(elsewhere, 403, "AccessDenied")
    assert keys_in(s3, bucket) == ["shared/x"]
    keys_ok(node.data_dir, "disable", access)
    # Probe with a read until the node has seen the change: a probing POST could land first.
    wait_for(lambda: outcome(signer.list_buckets)[1] == "AccessDenied", limit_s=10)
    disabled = signer.generate_presigned_post(bucket, "shared/y")
    expect_error(post_presigned(disabled, b"d"), 403, "AccessDenied")
    assert keys_in(s3, bucket) == ["shared/x"]


def test_an_unsigned_form_in_a_signed_request_acts_as_the_request_signer(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    body = multipart({"key": "by-header"}, b"header-signed")
    response = send(node.url, "POST", f"/{bucket}", headers={"content-type": MULTIPART}, body=body)
    assert response.status_code == 204, response.text
    assert s3.get_object(Bucket=bucket, Key="by-header")["Body"].read() == b"header-signed"


def test_a_browser_post_gets_cors_headers(node: NodeProcess, s3: Any, bucket: str) -> None:
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [{"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["POST"]}]
        },
    )
    presigned = s3.generate_presigned_post(bucket, "cors.txt")
    response = httpx.post(
        presigned["url"],
        data=presigned["fields"],
        files={"file": ("c.txt", b"c")},
        headers={"Origin": "https://app.example"},
    )
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == "https://app.example"


# ---- malformed forms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/x-www-form-urlencoded", b"key=k", 412, "PreconditionFailed"),
        (None, b"key=k", 412, "PreconditionFailed"),
        ("multipart/form-data", multipart({"key": "k"}), 400, "MalformedPOSTRequest"),
        (MULTIPART, b"key=k&file=x", 400, "MalformedPOSTRequest"),
        (MULTIPART, b"", 400, "MalformedPOSTRequest"),
        (MULTIPART, multipart({"key": "k"}, close=False), 400, "MalformedPOSTRequest"),
        (
            MULTIPART,
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="key"\r\n'.encode()
            + b"X-Padding: "
            + b"p" * 30_000
            + b"\r\n\r\nk\r\n",
            400,
            "MaxPostPreDataLengthExceededError",
        ),
        (
            MULTIPART,
            multipart({"key": "k", "x-ignore-big": "b" * 21_000}),
            400,
            "MaxPostPreDataLengthExceededError",
        ),
        (MULTIPART, multipart({"key": "k"}, file=None), 400, "InvalidArgument"),
        (MULTIPART, multipart({}, after={"key": "k"}), 400, "InvalidArgument"),
        (MULTIPART, multipart({"key": ""}), 400, "InvalidArgument"),
        (MULTIPART, multipart({"key": "k" * 1025}), 400, "KeyTooLongError"),
    ],
)
def test_malformed_forms(
    node: NodeProcess,
    s3: Any,
    bucket: str,
    content_type: str | None,
    body: bytes,
    status: int,
    code: str,
) -> None:
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:PutObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    }
                ],
            }
        ),
    )
    response = post(f"{node.url}/{bucket}", body, content_type)
    expect_error(response, status, code)
    assert keys_in(s3, bucket) == []


def test_missing_key_and_file_messages(node: NodeProcess, bucket: str) -> None:
    url = f"{node.url}/{bucket}"
    expect_error(
        post(url, multipart({}, after={"key": "k"})),
        400,
        "InvalidArgument",
        "Bucket POST must contain a field named 'key'.",
    )
    expect_error(
        post(url, multipart({"key": "k"}, file=None)),
        400,
        "InvalidArgument",
        "POST requires exactly one file upload per request.",
    )


def test_post_to_a_missing_bucket_or_an_object_url(node: NodeProcess, bucket: str) -> None:
    expect_error(
        post(f"{node.url}/no-such-bucket-here", multipart({"key": "k"})), 404, "NoSuchBucket"
    )
    expect_error(
        post(f"{node.url}/{bucket}/an-object", multipart({"key": "k"})), 405, "MethodNotAllowed"
    )


def test_a_body_cut_short_is_an_error_and_stores_nothing(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    policy = encode_policy([{"bucket": bucket}, {"key": "cut"}])
    body = multipart({"key": "cut", **sigv2_fields(policy)}, b"z" * 100_000)
    sent = body[: len(body) // 2]
    head = (
        f"POST /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
        f"Content-Type: {MULTIPART}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(head + sent)
        sock.shutdown(socket.SHUT_WR)  # the client gives up half-way
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    # The client is gone, so whether an answer arrives is up to the server; the access log
    # says what it answered: an S3 error (400), never a success or a 500.
    if answer:
        assert int(answer.split(b" ", 2)[1]) == 400, answer[:300]
    wait_for(lambda: _logged_statuses(node, f"/{bucket}", "PostObject") == [400], limit_s=10)
    assert keys_in(s3, bucket) == []


def test_virtual_hosted_post_answers_a_virtual_hosted_location(tmp_path: Any) -> None:
    node = NodeProcess(tmp_path / "data", extra_args=["--domain", DOMAIN]).start()
    try:
        assert vhost(node, "PUT", "vpost", "/").status_code == 200
        policy = encode_policy([{"bucket": "vpost"}, ["starts-with", "$key", ""]])
        body = multipart({"key": "a/b c", "success_action_status": "201", **sigv2_fields(policy)})
        host = f"vpost.{DOMAIN}:{node.port}"
        response = post(f"{node.url}/", body, host=host)
        assert response.status_code == 403  # success_action_status needs a condition too
        policy = encode_policy(
            [{"bucket": "vpost"}, ["starts-with", "$key", ""], {"success_action_status": "201"}]
        )
        body = multipart({"key": "a/b c", "success_action_status": "201", **sigv2_fields(policy)})
        response = post(f"{node.url}/", body, host=host)
        assert response.status_code == 201, response.text
        location = f"http://{host}/a%2Fb%20c"
        assert response.headers["location"] == location
        assert f"<Location>{location}</Location><Bucket>vpost</Bucket>" in response.text
        assert vhost(node, "GET", "vpost", "/a/b%20c").content == b"content"
    finally:
        node.stop()


def _logged_statuses(node: NodeProcess, path: str, operation: str) -> list[int]:
    """The statuses the node's access log records for ``operation`` requests on ``path``."""
    statuses = []
    for line in node.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"path":"{path}"' in line:
            entry = json.loads(line)
            if entry.get("operation") == operation:
                statuses.append(int(entry["status"]))
    return statuses


# ---- streaming --------------------------------------------------------------------------------


@pytest.fixture
def memory_node(tmp_path: Any) -> Iterator[NodeProcess]:
    node = NodeProcess(tmp_path / "data", extra_args=ONE_PROCESS).start()
    yield node
    node.stop()


@pytest.mark.slow
def test_a_large_post_streams_with_bounded_node_memory(memory_node: NodeProcess) -> None:
    node = memory_node
    assert node.process is not None
    client = make_client(node.url, retries={"max_attempts": 1})
    client.create_bucket(Bucket="big")
    size = 256 << 20
    presigned = client.generate_presigned_post(
        "big", "large.bin", Conditions=[["content-length-range", size, size]]
    )
    # Warm-up: what every POST needs is imported and allocated before the baseline.
    assert post_presigned(presigned, b"").status_code == 400  # EntityTooSmall
    head, tail = _split_form(presigned["fields"], "large.bin")
    digests = Digests()

    def body() -> Iterator[bytes]:
        yield head
        yield from generate(size, digests)
        yield tail

    with RssSampler(node.process.pid) as rss:
        baseline = rss.rss()
        response = httpx.post(
            presigned["url"],
            content=body(),
            headers={
                "content-type": MULTIPART,
                "content-length": str(len(head) + size + len(tail)),
            },
            timeout=300,
        )
    assert response.status_code == 204, response.text
    assert response.headers["etag"] == f'"{digests.md5.hexdigest()}"'
    growth = rss.peak - baseline
    print(f"\nnode RSS: baseline {baseline >> 20} MiB, +{growth >> 20} MiB for {size >> 20} MiB")
    assert growth < RSS_GROWTH_MAX, (
        f"node RSS grew by {growth >> 20} MiB for a {size >> 20} MiB POST"
    )
    got = client.head_object(Bucket="big", Key="large.bin")
    assert got["ContentLength"] == size


def _split_form(fields: dict[str, str], filename: str) -> tuple[bytes, bytes]:
    """The bytes of a form before and after the file's content."""
    marker = b"\x00FILE\x00"
    whole = multipart(fields, marker, filename=filename)
    before, _, after = whole.partition(marker)
    return before, after


def test_presigned_post_expiry_from_boto3(s3: Any, bucket: str) -> None:
    presigned = s3.generate_presigned_post(bucket, "late", ExpiresIn=1)
    policy = json.loads(base64.b64decode(presigned["fields"]["policy"]))
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    time.sleep(max(0.0, (expires - datetime.now(UTC) + timedelta(seconds=1.1)).total_seconds()))
    response = post_presigned(presigned, b"late")
    expect_error(response, 403, "AccessDenied", "Policy expired.")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="late")


# ---- hostile forms: every one gets an S3 error or a success, never a 500 ----------------------


@pytest.fixture(scope="module")
def open_bucket(s3: Any) -> str:
    """A bucket any anonymous form may upload to (a bucket policy grants it)."""
    name = "post-open"
    s3.create_bucket(Bucket=name)
    statement = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{name}/*",
    }
    s3.put_bucket_policy(
        Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )
    return name


def test_hostile_field_names_and_values(node: NodeProcess, s3: Any, open_bucket: str) -> None:
    url = f"{node.url}/{open_bucket}"
    nested = base64.b64encode(b"[" * 5000 + b"]" * 5000).decode()
    expect_error(post(url, _form_with(open_bucket, nested)), 400, "InvalidPolicyDocument")
    for name in ("x-amz-meta-a b", "x-amz-meta-\u00fc", "x-amz-meta-a:b"):
        body = multipart({"key": "bad-name", name: "v"})
        expect_error(post(url, body), 400, "InvalidArgument")
    not_utf8 = multipart({"key": "k"}).replace(b"\r\n\r\nk\r\n", b"\r\n\r\n\xff\xfe\r\n")
    expect_error(post(url, not_utf8), 400, "InvalidArgument")
    injected = multipart({"key": "inj", "success_action_redirect": "http://a.example/\r\nX: y"})
    assert post(url, injected).status_code == 204  # a redirect S3 cannot use is ignored
    unicode_redirect = multipart({"key": "uni", "redirect": "https://b.example/\u00e9t\u00e9"})
    redirected = post(url, unicode_redirect)
    assert redirected.status_code == 303
    assert redirected.headers["location"].startswith("https://b.example/%C3%A9t%C3%A9?bucket=")
    assert "bad-name" not in keys_in(s3, open_bucket)


def test_utf8_metadata_is_kept_as_the_bytes_sent(node: NodeProcess, open_bucket: str) -> None:
    url = f"{node.url}/{open_bucket}"
    value = "\u00fcn\u00ef \u20ac"
    response = post(url, multipart({"key": "utf8-meta", "x-amz-meta-word": value}))
    assert response.status_code == 204, response.text
    got = send(node.url, "HEAD", f"/{open_bucket}/utf8-meta")
    raw = dict(got.headers.raw)[b"x-amz-meta-word"]
    assert raw == value.encode()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.binary(min_size=0, max_size=8)),
        min_size=1,
        max_size=6,
    ),
    cut=st.integers(min_value=0, max_value=500),
)
def test_mangled_forms_never_fail_with_a_500(
    node: NodeProcess, open_bucket: str, edits: list[tuple[int, bytes]], cut: int
) -> None:
    body = bytearray(
        multipart({"key": "fuzz/${filename}", "Content-Type": "text/plain"}, b"data" * 20)
    )
    for position, replacement in edits:
        at = min(position, len(body))
        body[at : at + len(replacement)] = replacement
    response = post(f"{node.url}/{open_bucket}", bytes(body[: len(body) - cut]))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert xml_code(response), response.text
