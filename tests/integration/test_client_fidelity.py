"""What clients meet besides objects (issue 9, item 8): CreateBucket of an owned bucket,
ListBuckets pagination, max-keys=0, header values kept byte for byte, the expected bucket
owner, and a header section too large. Each error is asserted with its code and status.
"""

from __future__ import annotations

import contextlib
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from api.chunked import encode_chunked
from api.settings import owner_id
from api.sigv4_canonical import STREAMING_UNSIGNED_PAYLOAD_TRAILER
from tests.integration.nodeproc import ACCESS_KEY, SECRET_KEY, NodeProcess
from tests.integration.s3util import error_of, send, xml_code
from tests.integration.test_awscli import make_aws
from tests.integration.test_errors import expect_error, expect_head_error

OTHER_REGION = "eu-west-1"
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@pytest.fixture(scope="module")
def eu_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(
        tmp_path_factory.mktemp("eu") / "data", extra_args=["--region", OTHER_REGION]
    ).start()
    yield process
    process.stop()


def eu_client(node: NodeProcess) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=node.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=OTHER_REGION,
        config=Config(retries={"max_attempts": 1}),
    )


def location_body(region: str) -> bytes:
    return (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
    ).encode()


# ---- CreateBucket ------------------------------------------------------------------------------


def test_create_owned_bucket_twice_with_awscli_in_us_east_1(
    node: NodeProcess, s3: Any, tmp_path: Path
) -> None:
    aws = make_aws(node, tmp_path / "home")
    name = "fidelity-mb-twice"
    aws("s3", "mb", f"s3://{name}")
    again = aws("s3", "mb", f"s3://{name}", check=False)
    assert again.returncode == 0, again.stderr
    assert s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]].count(name) == 1


def test_create_owned_bucket_elsewhere_is_409(eu_node: NodeProcess) -> None:
    client = eu_client(eu_node)
    config = {"LocationConstraint": OTHER_REGION}
    client.create_bucket(Bucket="eu-bucket", CreateBucketConfiguration=config)
    with pytest.raises(ClientError) as excinfo:
        client.create_bucket(Bucket="eu-bucket", CreateBucketConfiguration=config)
    assert error_of(excinfo) == (409, "BucketAlreadyOwnedByYou")


def test_create_bucket_location_constraint(node: NodeProcess, eu_node: NodeProcess) -> None:
    # An empty body and an empty configuration are fine; another region is refused.
    assert send(node.url, "PUT", "/fidelity-loc-empty").status_code == 200
    empty = b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
    assert send(node.url, "PUT", "/fidelity-loc-blank", body=empty).status_code == 200
    response = send(node.url, "PUT", "/fidelity-loc-eu", body=location_body(OTHER_REGION))
    expect_error(response, 400, "IllegalLocationConstraintException")
    client = eu_client(eu_node)
    with pytest.raises(ClientError) as excinfo:
        client.create_bucket(
            Bucket="eu-loc-west2", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
        )
    assert error_of(excinfo) == (400, "IllegalLocationConstraintException")
    client.create_bucket(
        Bucket="eu-loc-ok", CreateBucketConfiguration={"LocationConstraint": OTHER_REGION}
    )


# ---- ListBuckets pagination --------------------------------------------------------------------


def test_list_buckets_pages_with_boto3(eu_node: NodeProcess) -> None:
    client = eu_client(eu_node)
    names = [f"page-{i:02d}" for i in range(5)]
    for name in names:
        client.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": OTHER_REGION}
        )
    seen: list[str] = []
    kwargs: dict[str, Any] = {"MaxBuckets": 2, "Prefix": "page-"}
    pages = 0
    while True:
        page = client.list_buckets(**kwargs)
        pages += 1
        assert len(page["Buckets"]) <= 2
        assert page["Prefix"] == "page-"
        assert page["Owner"]["ID"] == owner_id(ACCESS_KEY)
        assert {b["BucketRegion"] for b in page["Buckets"]} == {OTHER_REGION}
        seen.extend(b["Name"] for b in page["Buckets"])
        if "ContinuationToken" not in page:
            break
        kwargs["ContinuationToken"] = page["ContinuationToken"]
    assert seen == names and pages == 3
    # Without parameters: every bucket and no token (the legacy answer).
    everything = client.list_buckets()
    assert "ContinuationToken" not in everything
    assert set(names) <= {b["Name"] for b in everything["Buckets"]}
    assert client.list_buckets(BucketRegion=OTHER_REGION, Prefix="page-03")["Buckets"][0][
        "Name"
    ] == ("page-03")
    assert client.list_buckets(BucketRegion="us-west-2")["Buckets"] == []


@pytest.mark.parametrize("value", ["0", "10001", "-1", "two", ""])
def test_list_buckets_max_buckets_out_of_range(node: NodeProcess, value: str) -> None:
    expect_error(send(node.url, "GET", "/", f"max-buckets={value}"), 400, "InvalidArgument")


def test_list_buckets_bad_continuation_token(node: NodeProcess) -> None:
    response = send(node.url, "GET", "/", "continuation-token=%25%25not-base64")
    expect_error(response, 400, "InvalidArgument")


def test_list_buckets_raw_response_elements(node: NodeProcess, s3: Any) -> None:
    for name in ("fidelity-raw-a", "fidelity-raw-b"):
        s3.create_bucket(Bucket=name)
    response = send(node.url, "GET", "/", "max-buckets=1&prefix=fidelity-raw-")
    root = ET.fromstring(response.content)
    assert [child.tag.removeprefix(S3_NS) for child in root] == [
        "Buckets",
        "Owner",
        "ContinuationToken",
        "Prefix",
    ]
    bucket = root.find(f"{S3_NS}Buckets/{S3_NS}Bucket")
    assert bucket is not None
    assert bucket.findtext(f"{S3_NS}Name") == "fidelity-raw-a"
    assert bucket.findtext(f"{S3_NS}BucketRegion") == "us-east-1"


# ---- max-keys=0 --------------------------------------------------------------------------------


def test_max_keys_zero_is_an_empty_listing_not_truncated(s3: Any, bucket: str) -> None:
    for key in ("a", "b/c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p")
    v2 = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert (v2["KeyCount"], v2["IsTruncated"], v2["MaxKeys"]) == (0, False, 0)
    assert "Contents" not in v2 and "NextContinuationToken" not in v2
    v1 = s3.list_objects(Bucket=bucket, MaxKeys=0, Delimiter="/")
    assert (v1["IsTruncated"], "Contents" in v1, "CommonPrefixes" in v1) == (False, False, False)
    versions = s3.list_object_versions(Bucket=bucket, MaxKeys=0)
    assert versions["IsTruncated"] is False and "Versions" not in versions
    uploads = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=0)
    assert uploads["IsTruncated"] is False and "Uploads" not in uploads
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload, MaxParts=0)
    assert parts["IsTruncated"] is False and "Parts" not in parts
    # ...while max-keys=1 still pages.
    assert s3.list_objects_v2(Bucket=bucket, MaxKeys=1)["IsTruncated"] is True


@pytest.mark.parametrize(
    "query",
    [
        "list-type=2&max-keys=-1",
        "list-type=2&max-keys=x",
        "max-keys=-5",
        "versions&max-keys=1.5",
        "uploads&max-uploads=-1",
    ],
)
def test_bad_max_keys_is_invalid_argument(node: NodeProcess, bucket: str, query: str) -> None:
    expect_error(send(node.url, "GET", f"/{bucket}", query), 400, "InvalidArgument")


# ---- header values byte for byte ---------------------------------------------------------------

VERBATIM = {
    "Content-Encoding": "deflate, gzip",
    "Content-Type": "text/plain;  charset=UTF-8",
    "Content-Disposition": 'attachment; filename="a  b.txt"',
    "Cache-Control": "no-cache,  max-age=0",
    "Content-Language": "en-GB, fr",
    "x-amz-meta-Mixed-Case": "Some  Value, With\tTab",
}


def test_header_values_read_back_byte_for_byte(node: NodeProcess, s3: Any, bucket: str) -> None:
    assert send(node.url, "PUT", f"/{bucket}/raw", headers=VERBATIM, body=b"x").is_success
    for method in ("GET", "HEAD"):
        got = send(node.url, method, f"/{bucket}/raw").headers
        for name, value in VERBATIM.items():
            assert got[name] == value, (method, name)
    # boto3's default upload is aws-chunked: only that token is dropped from the value.
    s3.put_object(Bucket=bucket, Key="sdk", Body=b"y" * 100, ContentEncoding="deflate, gzip")
    assert s3.head_object(Bucket=bucket, Key="sdk")["ContentEncoding"] == "deflate, gzip"
    framed = {
        "Content-Encoding": "deflate, aws-chunked, gzip",
        "x-amz-decoded-content-length": "1",
    }
    body = encode_chunked([b"z"])
    response = send(
        node.url, "PUT", f"/{bucket}/framed", "", framed, body, STREAMING_UNSIGNED_PAYLOAD_TRAILER
    )
    assert response.is_success, response.text
    assert send(node.url, "HEAD", f"/{bucket}/framed").headers["content-encoding"] == (
        "deflate, gzip"
    )
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentEncoding="deflate, gzip")
    part = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"p"
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.head_object(Bucket=bucket, Key="mp")["ContentEncoding"] == "deflate, gzip"


# ---- x-amz-expected-bucket-owner ---------------------------------------------------------------


def test_expected_bucket_owner(node: NodeProcess, s3: Any, bucket: str) -> None:
    mine, other = owner_id(ACCESS_KEY), "0" * 64
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ExpectedBucketOwner=mine)
    assert s3.get_object(Bucket=bucket, Key="k", ExpectedBucketOwner=mine)["Body"].read() == b"v"
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=mine)
    s3.list_objects_v2(Bucket=bucket, ExpectedBucketOwner=mine)
    s3.get_bucket_versioning(Bucket=bucket, ExpectedBucketOwner=mine)
    for call, kwargs in (
        (s3.put_object, {"Key": "k2", "Body": b"w"}),
        (s3.get_object, {"Key": "k"}),
        (s3.delete_object, {"Key": "k"}),
        (s3.list_objects_v2, {}),
        (s3.get_bucket_tagging, {}),
        (s3.delete_bucket, {}),
    ):
        with pytest.raises(ClientError) as excinfo:
            call(Bucket=bucket, ExpectedBucketOwner=other, **kwargs)
        assert error_of(excinfo) == (403, "AccessDenied"), call
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k", ExpectedBucketOwner=other)
    assert error_of(excinfo)[0] == 403
    expect_head_error(
        send(node.url, "HEAD", f"/{bucket}/k", headers={"x-amz-expected-bucket-owner": other}),
        403,
    )
    # Copies: the destination's and the source's owner each.
    source = {"Bucket": bucket, "Key": "k"}
    s3.copy_object(Bucket=bucket, Key="c", CopySource=source, ExpectedSourceBucketOwner=mine)
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="c2", CopySource=source, ExpectedSourceBucketOwner=other)
    assert error_of(excinfo) == (403, "AccessDenied")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket, Key="c2", CopySource=source, ExpectedBucketOwner=other)
    assert error_of(excinfo) == (403, "AccessDenied")
    # Nothing was written or deleted by the refused requests.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["c", "k"]


# ---- a header section too large ----------------------------------------------------------------


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` (even if the server stops reading) and return what came back."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # The server may answer and close before it has taken everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                received += chunk
    return bytes(received)


@pytest.mark.parametrize("size", [9 * 1024, 64 * 1024, 1024 * 1024])
def test_header_section_too_large_is_a_400_s3_error(node: NodeProcess, s3: Any, size: int) -> None:
    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: "
        + b"f" * size
        + b"\r\nConnection: close\r\n\r\n"
    )
    answer = exchange(node.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"content-type: application/xml" in head.lower()
    assert xml_code(httpx.Response(400, content=body)) == "RequestHeaderSectionTooLarge"
    assert s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200  # still serving


def test_header_section_limit_applies_to_signed_requests(node: NodeProcess, bucket: str) -> None:
    filler = {f"x-amz-meta-f{i}": "v" * 1000 for i in range(9)}
    response = send(node.url, "PUT", f"/{bucket}/big", headers=filler, body=b"x")
    expect_error(response, 400, "RequestHeaderSectionTooLarge")
    small = {"x-amz-meta-f": "v" * 1000}
    assert send(node.url, "PUT", f"/{bucket}/ok", headers=small, body=b"x").is_success
