"""Authentication: SigV4 headers and presigned URLs, the refusals, and --auth off.

SigV2 is tested in test_sigv2.py."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_canonical import UNSIGNED_PAYLOAD
from api.sigv4_signing import presign_url, sign_headers
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.s3util import error_fields, expect_error


def signed(
    method: str,
    url: str,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    payload_hash: str | None = None,
    now: datetime | None = None,
) -> httpx.Response:
    all_headers = sign_headers(
        method,
        url,
        headers or {},
        access_key,
        secret_key,
        REGION,
        payload_hash or hashlib.sha256(body).hexdigest(),
        now,
    )
    return httpx.request(method, url, headers=all_headers, content=body)


def client_with(url: str, access_key: str, secret_key: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
    )


@pytest.fixture
def v4(node: NodeProcess) -> Any:
    """A client that presigns with SigV4 (boto3 presigns with SigV2 unless told otherwise)."""
    return make_client(node.url, signature_version="s3v4")


@pytest.fixture
def obj(s3: Any, bucket: str) -> str:
    s3.put_object(Bucket=bucket, Key="obj", Body=b"secret contents")
    return f"/{bucket}/obj"


def test_signature_does_not_match(node: NodeProcess, obj: str) -> None:
    client = client_with(node.url, ACCESS_KEY, "wrong-secret")
    with pytest.raises(ClientError) as excinfo:
        client.list_buckets()
    assert excinfo.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    response = signed("GET", node.url + obj, secret_key="wrong-secret")
    expect_error(response, 403, "SignatureDoesNotMatch")
    assert b"secret contents" not in response.content


def test_tampered_request_does_not_match(node: NodeProcess, obj: str) -> None:
    url = node.url + obj
    headers = sign_headers("GET", url, {}, ACCESS_KEY, SECRET_KEY, REGION, UNSIGNED_PAYLOAD)
    assert httpx.get(url, headers=headers).status_code == 200
    expect_error(httpx.get(url + "x", headers=headers), 403, "SignatureDoesNotMatch")
    expect_error(httpx.delete(url, headers=headers), 403, "SignatureDoesNotMatch")


def test_invalid_access_key_id(node: NodeProcess, obj: str) -> None:
    response = signed("GET", node.url + obj, access_key="nobody", secret_key="x")
    expect_error(response, 403, "InvalidAccessKeyId")
    client = client_with(node.url, "nobody", "x")
    with pytest.raises(ClientError) as excinfo:
        client.list_buckets()
    assert excinfo.value.response["Error"]["Code"] == "InvalidAccessKeyId"


@pytest.mark.parametrize("offset_min", [-20, 20])
def test_request_time_too_skewed(node: NodeProcess, obj: str, offset_min: int) -> None:
    when = datetime.now(UTC) + timedelta(minutes=offset_min)
    expect_error(signed("GET", node.url + obj, now=when), 403, "RequestTimeTooSkewed")
    # Within AWS's 15 minutes it is accepted.
    near = datetime.now(UTC) + timedelta(minutes=offset_min // 2)
    assert signed("GET", node.url + obj, now=near).status_code == 200


def test_presigned_get_and_put_from_boto3(node: NodeProcess, s3: Any, v4: Any, bucket: str) -> None:
    put_url = v4.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "up"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in put_url
    put = httpx.put(put_url, content=b"uploaded via presigned PUT")
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(b"uploaded via presigned PUT").hexdigest()}"'
    get_url = v4.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "up"}, ExpiresIn=300
    )
    got = httpx.get(get_url)
    assert got.status_code == 200
    assert got.content == b"uploaded via presigned PUT"
    # The signature covers the method: the GET URL cannot be used to overwrite.
    expect_error(httpx.put(get_url, content=b"evil"), 403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key="up")["Body"].read() == b"uploaded via presigned PUT"


def test_presigned_with_response_overrides(node: NodeProcess, v4: Any, obj: str) -> None:
    bucket = obj.split("/")[1]
    url = v4.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "obj", "ResponseContentType": "text/x-test"},
    )
    got = httpx.get(url)
    assert got.status_code == 200
    assert got.headers["content-type"] == "text/x-test"
    assert got.content == b"secret contents"


def test_presigned_expired_is_access_denied(node: NodeProcess, obj: str) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    url = presign_url("GET", node.url + obj, ACCESS_KEY, SECRET_KEY, 3600, REGION, now=past)
    message = expect_error(httpx.get(url), 403, "AccessDenied")
    assert "expired" in message.lower()
    fresh = presign_url("GET", node.url + obj, ACCESS_KEY, SECRET_KEY, 3600, REGION)
    assert httpx.get(fresh).content == b"secret contents"


def test_presigned_not_yet_valid_is_access_denied(node: NodeProcess, obj: str) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    url = presign_url("GET", node.url + obj, ACCESS_KEY, SECRET_KEY, 60, REGION, now=future)
    expect_error(httpx.get(url), 403, "AccessDenied")


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        (604801, "X-Amz-Expires must be less than a week (in seconds); that is, the given "
                 "X-Amz-Expires must be less than 604800 seconds"),
        (-1, "X-Amz-Expires must be non-negative"),
    ],
)  # fmt: skip
def test_presigned_expires_out_of_range(
    node: NodeProcess, obj: str, expires: int, message: str
) -> None:
    url = presign_url("GET", node.url + obj, ACCESS_KEY, SECRET_KEY, expires, REGION)
    assert expect_error(httpx.get(url), 400, "AuthorizationQueryParametersError") == message


def test_presigned_zero_expires_is_expired(node: NodeProcess, obj: str) -> None:
    url = presign_url("GET", node.url + obj, ACCESS_KEY, SECRET_KEY, 0, REGION)
    time.sleep(1.0)  # X-Amz-Date has whole seconds: a second later it is surely past
    response = httpx.get(url)
    assert expect_error(response, 403, "AccessDenied") == "Request has expired"
    assert "<X-Amz-Expires>0</X-Amz-Expires>" in response.text


def test_presigned_expires_at_the_limits(node: NodeProcess, obj: str) -> None:
    for expires in (1, 604800):
        # X-Amz-Date has whole seconds: sign just after a second starts, so that a 1 s URL
        # has nearly its whole second left (signed at x.95 it would expire 50 ms later).
        time.sleep(1.0 - time.time() % 1.0 + 0.005)
        url = presign_url("GET", node.url + obj, ACCESS_KEY, SECRET_KEY, expires, REGION)
        assert httpx.get(url).status_code == 200


def test_presigned_wrong_secret(node: NodeProcess, obj: str) -> None:
    url = presign_url("GET", node.url + obj, ACCESS_KEY, "wrong", 60, REGION)
    expect_error(httpx.get(url), 403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_anonymous_request_is_access_denied(node: NodeProcess, obj: str, method: str) -> None:
    response = httpx.request(method, node.url + obj, content=b"x" if method == "PUT" else None)
    expect_error(response, 403, "AccessDenied")
    listing = httpx.get(node.url + "/")
    expect_error(listing, 403, "AccessDenied")
    head = httpx.head(node.url + obj)
    assert head.status_code == 403
    assert head.content == b""


def test_anonymous_cannot_change_anything(node: NodeProcess, s3: Any, obj: str) -> None:
    bucket = obj.split("/")[1]
    httpx.put(node.url + obj, content=b"overwritten")
    httpx.delete(node.url + obj)
    httpx.put(f"{node.url}/anon-created-bucket")
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"secret contents"
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "anon-created-bucket" not in names


@pytest.fixture(scope="module")
def open_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(
        tmp_path_factory.mktemp("open") / "data", extra_args=["--auth", "off"]
    ).start()
    yield process
    process.stop()


def test_auth_off_accepts_unsigned_requests(open_node: NodeProcess) -> None:
    url = open_node.url
    assert httpx.put(f"{url}/open-bucket").status_code == 200
    put = httpx.put(f"{url}/open-bucket/k", content=b"hello")
    assert put.status_code == 200
    assert httpx.get(f"{url}/open-bucket/k").content == b"hello"
    listing = httpx.get(f"{url}/open-bucket?list-type=2")
    assert listing.status_code == 200
    assert "<Key>k</Key>" in listing.text
    assert httpx.delete(f"{url}/open-bucket/k").status_code == 204
    # A signed request works too, even one the node could not check.
    client = make_client(url)
    assert client.head_bucket(Bucket="open-bucket")["ResponseMetadata"]["HTTPStatusCode"] == 200
    bad = signed("GET", f"{url}/open-bucket?list-type=2", secret_key="wrong")
    assert bad.status_code == 200
    assert "auth" in open_node.log().lower()


def test_request_id_on_every_response(node: NodeProcess, s3: Any, obj: str) -> None:
    bucket = obj.split("/")[1]
    responses = [
        signed("GET", node.url + "/"),
        signed("GET", node.url + obj),
        signed("HEAD", node.url + obj),
        signed("PUT", node.url + obj, b"new"),
        signed("GET", f"{node.url}/{bucket}?list-type=2"),
        signed("GET", f"{node.url}/{bucket}/missing"),
        signed("HEAD", f"{node.url}/{bucket}/missing"),
        signed("GET", f"{node.url}/no-such-bucket-zz"),
        signed("GET", node.url + obj, secret_key="wrong"),
        httpx.get(node.url + obj),
        signed("PATCH", node.url + obj),
        signed("DELETE", node.url + obj),
    ]
    ids = [r.headers.get("x-amz-request-id") for r in responses]
    assert all(ids), [(r.request.method, r.status_code) for r in responses]
    assert len(set(ids)) == len(ids)
    for response in responses:
        if response.status_code >= 400 and response.request.method != "HEAD":
            assert error_fields(response)["RequestId"] == response.headers["x-amz-request-id"]
    meta = s3.head_bucket(Bucket=bucket)["ResponseMetadata"]
    assert meta["RequestId"] == meta["HTTPHeaders"]["x-amz-request-id"]


def test_unsigned_payload_and_signed_hex_payload(node: NodeProcess, s3: Any, bucket: str) -> None:
    url = f"{node.url}/{bucket}"
    unsigned = signed("PUT", f"{url}/unsigned", b"one", payload_hash=UNSIGNED_PAYLOAD)
    assert unsigned.status_code == 200, unsigned.text
    hexed = signed("PUT", f"{url}/hex", b"two")  # default: sha256 of the body
    assert hexed.status_code == 200, hexed.text
    assert s3.get_object(Bucket=bucket, Key="unsigned")["Body"].read() == b"one"
    assert s3.get_object(Bucket=bucket, Key="hex")["Body"].read() == b"two"
    empty = signed("PUT", f"{url}/empty", b"")
    assert empty.status_code == 200


def test_boto3_with_payload_signing(node: NodeProcess, bucket: str) -> None:
    client = make_client(node.url, signature_version="s3v4", s3={"payload_signing_enabled": True})
    data = b"payload signing " * 1000
    client.put_object(Bucket=bucket, Key="signed-payload", Body=data)
    assert client.get_object(Bucket=bucket, Key="signed-payload")["Body"].read() == data
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "signed-payload"}]})
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_boto3_with_checksums_when_required(node: NodeProcess, bucket: str) -> None:
    client = make_client(
        node.url,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    data = b"no flexible checksums " * 500
    put = client.put_object(Bucket=bucket, Key="plain", Body=data)
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert client.get_object(Bucket=bucket, Key="plain")["Body"].read() == data
    deleted = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "plain"}]})
    assert [d["Key"] for d in deleted["Deleted"]] == ["plain"]
