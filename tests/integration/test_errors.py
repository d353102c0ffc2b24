"""Every S3 error code the node emits: AWS's HTTP status and an S3 XML error document.

boto3 drives the requests it can produce; raw httpx requests signed with
:func:`api.sigv4_signing.sign_headers` (or a raw socket, for what httpx will not send) cover
the rest.
The last part fuzzes malformed requests: bad input is a 4xx with an XML body, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.chunked import encode_chunked
from api.sigv4_canonical import STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD
from api.sigv4_signing import sign_headers
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.s3util import send

MIB = 1 << 20


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def raw_http(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (``head`` without the final blank line); read until close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.rstrip(b"\r\n") + b"\r\nConnection: close\r\n\r\n" + body)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    header_block, _, payload = bytes(received).partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, payload


def signed_head(
    port: int, method: str, target: str, headers: dict[str, str], payload_hash: str
) -> bytes:
    """The request line and headers of a signed request, for :func:`raw_http`."""
    signed = sign_headers(
        method,
        f"http://127.0.0.1:{port}{target}",
        headers,
        ACCESS_KEY,
        SECRET_KEY,
        REGION,
        payload_hash,
    )
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in signed.items())]
    return "\r\n".join(lines).encode("latin-1")


def xml_error(status: int, headers: Any, body: bytes) -> dict[str, str]:
    """Parse and check an S3 error document; return its fields."""
    assert body, f"status {status}: error response without a body"
    assert headers.get("content-type", "").startswith("application/xml")
    root = ET.fromstring(body)
    assert root.tag == "Error"
    fields = {child.tag: child.text or "" for child in root}
    for name in ("Code", "Message", "Resource", "RequestId"):
        assert name in fields, f"{name} missing from {body!r}"
    assert fields["Message"]
    assert fields["RequestId"] == headers.get("x-amz-request-id")
    return fields


def expect_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    fields = xml_error(response.status_code, response.headers, response.content)
    assert fields["Code"] == code, response.text
    return fields


def expect_head_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.content == b""
    assert response.headers.get("x-amz-request-id")


def boto_error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = excinfo.value.response
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), str(response["Error"]["Code"])


@pytest.fixture(scope="module")
def small_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(
        tmp_path_factory.mktemp("small") / "data", extra_args=["--max-object-size", "1MiB"]
    ).start()
    yield process
    process.stop()


@pytest.fixture
def obj(s3: Any, bucket: str) -> tuple[str, str, str]:
    """(bucket, key, quoted ETag) of a 10-byte object."""
    etag = s3.put_object(Bucket=bucket, Key="obj", Body=b"0123456789")["ETag"]
    return bucket, "obj", str(etag)


# --------------------------------------------------------------------------------------
# buckets
# --------------------------------------------------------------------------------------

BAD_BUCKET_NAMES = [
    "ab",
    "a" * 64,
    "UpperCase",
    "under_score",
    "-leading-dash",
    "trailing-dash-",
    "double..dot",
    "dot.-dash",
    "192.168.1.1",
    "xn--punycode",
    "name-s3alias",
]


@pytest.mark.parametrize("name", BAD_BUCKET_NAMES)
def test_invalid_bucket_name(node: NodeProcess, name: str) -> None:
    fields = expect_error(send(node.url, "PUT", f"/{name}"), 400, "InvalidBucketName")
    assert name in fields["Resource"]
    listed = send(node.url, "GET", "/").text
    assert f"<Name>{name}</Name>" not in listed


def test_invalid_bucket_name_through_boto3(s3: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.create_bucket(Bucket="Not_Valid")
    assert boto_error(excinfo) == (400, "InvalidBucketName")


def test_bucket_already_owned_by_you_is_200_in_us_east_1(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    # AWS's legacy us-east-1 behaviour (409 BucketAlreadyOwnedByYou in other regions:
    # tests/integration/test_client_fidelity.py).
    assert s3.create_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    response = send(node.url, "PUT", f"/{bucket}")
    assert response.status_code == 200 and response.headers["location"] == f"/{bucket}"


def test_bucket_not_empty(node: NodeProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket(Bucket=bucket)
    assert boto_error(excinfo) == (409, "BucketNotEmpty")
    expect_error(send(node.url, "DELETE", f"/{bucket}"), 409, "BucketNotEmpty")
    s3.head_bucket(Bucket=bucket)  # still there
    s3.delete_object(Bucket=bucket, Key="k")
    s3.delete_bucket(Bucket=bucket)


@pytest.mark.parametrize(
    "call",
    [
        lambda s3: s3.get_object(Bucket="no-such-bucket-x", Key="k"),
        lambda s3: s3.put_object(Bucket="no-such-bucket-x", Key="k", Body=b"x"),
        lambda s3: s3.list_objects(Bucket="no-such-bucket-x"),
        lambda s3: s3.list_objects_v2(Bucket="no-such-bucket-x"),
        lambda s3: s3.delete_bucket(Bucket="no-such-bucket-x"),
        lambda s3: s3.delete_object(Bucket="no-such-bucket-x", Key="k"),
        lambda s3: s3.get_bucket_location(Bucket="no-such-bucket-x"),
        lambda s3: s3.delete_objects(Bucket="no-such-bucket-x", Delete={"Objects": [{"Key": "k"}]}),
    ],
    ids=[
        "get",
        "put",
        "list-v1",
        "list-v2",
        "delete-bucket",
        "delete-object",
        "location",
        "delete-objects",
    ],
)
def test_no_such_bucket(s3: Any, call: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        call(s3)
    assert boto_error(excinfo) == (404, "NoSuchBucket")


def test_no_such_bucket_xml_and_head(node: NodeProcess, s3: Any) -> None:
    fields = expect_error(send(node.url, "GET", "/no-such-bucket-y/k"), 404, "NoSuchBucket")
    assert fields["Resource"] == "/no-such-bucket-y/k"
    expect_error(send(node.url, "PUT", "/no-such-bucket-y/k", body=b"x"), 404, "NoSuchBucket")
    expect_error(send(node.url, "GET", "/no-such-bucket-y", "list-type=2"), 404, "NoSuchBucket")
    expect_head_error(send(node.url, "HEAD", "/no-such-bucket-y"), 404)
    with pytest.raises(ClientError) as excinfo:
        s3.head_bucket(Bucket="no-such-bucket-y")
    assert boto_error(excinfo)[0] == 404


def test_refused_upload_with_expect_100_continue(node: NodeProcess, s3: Any) -> None:
    # boto3 sends "Expect: 100-continue" and holds the body back; the refusal must close the
    # connection, or the client's next request would be read as this one's body.
    for _ in range(3):
        with pytest.raises(ClientError) as excinfo:
            s3.put_object(Bucket="no-such-bucket-e", Key="k", Body=b"x" * 4096)
        assert boto_error(excinfo) == (404, "NoSuchBucket")
        assert s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    headers = {"Expect": "100-continue", "Content-Length": "4096"}
    head = signed_head(node.port, "PUT", "/no-such-bucket-e/k", headers, UNSIGNED_PAYLOAD)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(head + b"\r\n\r\n")
        received = bytearray()
        while chunk := sock.recv(65536):  # ends only if the server closes the connection
            received += chunk
    assert received.startswith(b"HTTP/1.1 404")
    assert b"connection: close" in received.lower()
    assert b"100 Continue" not in received


# --------------------------------------------------------------------------------------
# objects: missing keys, ranges, conditionals
# --------------------------------------------------------------------------------------


def test_no_such_key(node: NodeProcess, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="missing")
    assert boto_error(excinfo) == (404, "NoSuchKey")
    fields = expect_error(send(node.url, "GET", f"/{bucket}/missing"), 404, "NoSuchKey")
    assert fields["Resource"] == f"/{bucket}/missing"
    head = send(node.url, "HEAD", f"/{bucket}/missing")
    expect_head_error(head, 404)
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="missing")
    assert boto_error(excinfo)[0] == 404


@pytest.mark.parametrize("spec", ["bytes=10-20", "bytes=100-", "bytes=10-10", "bytes=-0"])
def test_invalid_range(node: NodeProcess, obj: tuple[str, str, str], spec: str) -> None:
    bucket, key, _ = obj
    response = send(node.url, "GET", f"/{bucket}/{key}", headers={"Range": spec})
    expect_error(response, 416, "InvalidRange")
    assert response.headers["content-range"] == "bytes */10"


def test_invalid_range_through_boto3_and_empty_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="empty", Range="bytes=0-0")
    assert boto_error(excinfo) == (416, "InvalidRange")
    assert excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == (
        "bytes */0"
    )


def test_satisfiable_range_still_works(node: NodeProcess, obj: tuple[str, str, str]) -> None:
    bucket, key, _ = obj
    response = send(node.url, "GET", f"/{bucket}/{key}", headers={"Range": "bytes=8-20"})
    assert response.status_code == 206
    assert response.content == b"89"
    assert response.headers["content-range"] == "bytes 8-9/10"


PAST = formatdate(0, usegmt=True)  # 1970: the object was modified since then
FUTURE = formatdate(4_102_444_800, usegmt=True)  # 2100


def test_precondition_failed(node: NodeProcess, obj: tuple[str, str, str], s3: Any) -> None:
    bucket, key, etag = obj
    path = f"/{bucket}/{key}"
    for headers in ({"If-Match": '"0123abcd"'}, {"If-Unmodified-Since": PAST}):
        expect_error(send(node.url, "GET", path, headers=headers), 412, "PreconditionFailed")
        expect_head_error(send(node.url, "HEAD", path, headers=headers), 412)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key=key, IfMatch='"nope"')
    assert boto_error(excinfo) == (412, "PreconditionFailed")
    # The conditions that hold let the request through.
    assert send(node.url, "GET", path, headers={"If-Match": etag}).status_code == 200
    assert send(node.url, "GET", path, headers={"If-Match": "*"}).status_code == 200
    assert send(node.url, "GET", path, headers={"If-Unmodified-Since": FUTURE}).status_code == 200


def test_not_modified(node: NodeProcess, obj: tuple[str, str, str]) -> None:
    bucket, key, etag = obj
    path = f"/{bucket}/{key}"
    for method in ("GET", "HEAD"):
        for headers in ({"If-None-Match": etag}, {"If-Modified-Since": FUTURE}):
            response = send(node.url, method, path, headers=headers)
            assert response.status_code == 304, (method, headers)
            assert response.content == b""
            assert response.headers["etag"] == etag
    other = send(node.url, "GET", path, headers={"If-None-Match": '"other"'})
    assert other.status_code == 200
    assert send(node.url, "GET", path, headers={"If-Modified-Since": PAST}).status_code == 200


def test_conditional_precedence(node: NodeProcess, obj: tuple[str, str, str]) -> None:
    bucket, key, etag = obj
    path = f"/{bucket}/{key}"
    # If-Match true + If-Unmodified-Since false -> 200 (If-Match wins).
    both = {"If-Match": etag, "If-Unmodified-Since": PAST}
    response = send(node.url, "GET", path, headers=both)
    assert response.status_code == 200
    assert response.content == b"0123456789"
    # If-None-Match false + If-Modified-Since true -> 304 (If-None-Match wins).
    both = {"If-None-Match": etag, "If-Modified-Since": PAST}
    assert send(node.url, "GET", path, headers=both).status_code == 304
    # If-None-Match true + If-Modified-Since false -> 200.
    both = {"If-None-Match": '"other"', "If-Modified-Since": FUTURE}
    assert send(node.url, "GET", path, headers=both).status_code == 200


# --------------------------------------------------------------------------------------
# uploads: digests, sizes, keys, metadata
# --------------------------------------------------------------------------------------


def _b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def test_bad_digest(node: NodeProcess, s3: Any, bucket: str) -> None:
    response = send(
        node.url, "PUT", f"/{bucket}/k", headers={"Content-MD5": _b64md5(b"other")}, body=b"data"
    )
    expect_error(response, 400, "BadDigest")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", ContentMD5=_b64md5(b"nope"))
    assert boto_error(excinfo) == (400, "BadDigest")
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket, Key="k")
    assert boto_error(excinfo)[0] == 404  # nothing was stored
    good = send(
        node.url, "PUT", f"/{bucket}/k", headers={"Content-MD5": _b64md5(b"data")}, body=b"data"
    )
    assert good.status_code == 200


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode(), "", "%%%%"])
def test_invalid_digest(node: NodeProcess, bucket: str, value: str) -> None:
    response = send(node.url, "PUT", f"/{bucket}/k", headers={"Content-MD5": value}, body=b"x")
    expect_error(response, 400, "InvalidDigest")


def test_x_amz_content_sha256_mismatch(node: NodeProcess, s3: Any, bucket: str) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    response = send(node.url, "PUT", f"/{bucket}/k", body=b"payload", payload_hash=wrong)
    expect_error(response, 400, "XAmzContentSHA256Mismatch")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k")


def test_entity_too_large_by_content_length(small_node: NodeProcess) -> None:
    client = make_client(small_node.url)
    client.create_bucket(Bucket="big")
    response = send(small_node.url, "PUT", "/big/too-big", body=b"x" * (MIB + 1))
    expect_error(response, 400, "EntityTooLarge")
    exact = send(small_node.url, "PUT", "/big/exact", body=b"x" * MIB)
    assert exact.status_code == 200
    assert client.head_object(Bucket="big", Key="exact")["ContentLength"] == MIB
    with pytest.raises(ClientError):
        client.head_object(Bucket="big", Key="too-big")


def test_entity_too_large_by_aws_chunked(small_node: NodeProcess) -> None:
    client = make_client(small_node.url)  # defaults: aws-chunked with a CRC32 trailer
    client.create_bucket(Bucket="chunky")
    with pytest.raises(ClientError) as excinfo:
        client.put_object(Bucket="chunky", Key="k", Body=b"y" * (MIB + 1))
    assert boto_error(excinfo) == (400, "EntityTooLarge")
    # Without x-amz-decoded-content-length (and so no size up front) the body is streamed
    # with Transfer-Encoding: chunked and the limit is enforced as the bytes arrive.
    framed = encode_chunked([b"z" * 65536] * 17)
    url = f"{small_node.url}/chunky/k2"
    headers = sign_headers(
        "PUT",
        url,
        {"Content-Encoding": "aws-chunked"},
        ACCESS_KEY,
        SECRET_KEY,
        REGION,
        STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    )
    pieces = (framed[i : i + 65536] for i in range(0, len(framed), 65536))
    response = httpx.put(url, headers=headers, content=pieces)
    assert response.request.headers["transfer-encoding"] == "chunked"
    expect_error(response, 400, "EntityTooLarge")
    # aws-chunked with neither x-amz-decoded-content-length nor chunked transfer: 411.
    response = send(
        small_node.url,
        "PUT",
        "/chunky/k2",
        "",
        {"Content-Encoding": "aws-chunked"},
        framed,
        STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    )
    expect_error(response, 411, "MissingContentLength")
    with pytest.raises(ClientError):
        client.head_object(Bucket="chunky", Key="k2")


def test_key_too_long(node: NodeProcess, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert boto_error(excinfo) == (400, "KeyTooLongError")
    # 1025 bytes of UTF-8 in fewer characters is too long as well.
    response = send(node.url, "PUT", f"/{bucket}/" + "%C3%A9" * 512 + "k", body=b"x")
    expect_error(response, 400, "KeyTooLongError")
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"x")  # the limit itself is fine


def test_metadata_too_large(node: NodeProcess, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"big": "v" * 2100})
    assert boto_error(excinfo) == (400, "MetadataTooLarge")
    many = {f"x-amz-meta-m{i:02d}": "v" * 100 for i in range(25)}
    expect_error(
        send(node.url, "PUT", f"/{bucket}/k", headers=many, body=b"x"), 400, "MetadataTooLarge"
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"ok": "v" * 1500})
    assert s3.head_object(Bucket=bucket, Key="k")["Metadata"] == {"ok": "v" * 1500}


def test_missing_content_length(node: NodeProcess, bucket: str) -> None:
    head = signed_head(node.port, "PUT", f"/{bucket}/k", {}, UNSIGNED_PAYLOAD)
    status, headers, body = raw_http(node.port, head)
    assert status == 411
    assert xml_error(status, headers, body)["Code"] == "MissingContentLength"


# --------------------------------------------------------------------------------------
# DeleteObjects XML, unsupported features, methods
# --------------------------------------------------------------------------------------


def _post_delete(url: str, bucket: str, body: bytes) -> httpx.Response:
    return send(url, "POST", f"/{bucket}", "delete", {"Content-MD5": _b64md5(body)}, body)


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>a</Key></Object>",
        b"not xml at all",
        b"<Other><Object><Key>a</Key></Object></Other>",
        b"<Delete></Delete>",
        b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
        b"",
    ],
    ids=["unclosed", "text", "wrong-root", "no-objects", "no-key", "empty"],
)
def test_malformed_xml(node: NodeProcess, bucket: str, body: bytes) -> None:
    expect_error(_post_delete(node.url, bucket, body), 400, "MalformedXML")


def test_malformed_xml_more_than_1000_keys(node: NodeProcess, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]}
        )
    assert boto_error(excinfo) == (400, "MalformedXML")
    done = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1000)]}
    )
    assert len(done["Deleted"]) == 1000


def test_not_implemented(node: NodeProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_website(Bucket=bucket)
    assert boto_error(excinfo) == (501, "NotImplemented")
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_logging(Bucket=bucket)
    assert boto_error(excinfo) == (501, "NotImplemented")
    expect_error(send(node.url, "GET", f"/{bucket}", "website"), 501, "NotImplemented")
    expect_error(send(node.url, "POST", f"/{bucket}/src", "select"), 501, "NotImplemented")
    expect_error(send(node.url, "POST", f"/{bucket}/src", "restore"), 501, "NotImplemented")


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", "/"),
        ("DELETE", "/"),
        ("PUT", "/"),
        ("PATCH", "/{bucket}"),
        ("PATCH", "/{bucket}/k"),
        ("OPTIONS", "/"),
    ],
)
def test_method_not_allowed(node: NodeProcess, bucket: str, method: str, target: str) -> None:
    response = send(node.url, method, target.format(bucket=bucket))
    expect_error(response, 405, "MethodNotAllowed")


# --------------------------------------------------------------------------------------
# fuzz: malformed input never yields a 500
# --------------------------------------------------------------------------------------


def _check_not_500(status: int, headers: Any, body: bytes, method: str = "GET") -> None:
    """A client error with an XML body (501 NotImplemented counts: it is no server fault)."""
    if status == 501:
        assert xml_error(status, headers, body)["Code"] == "NotImplemented"
        return
    assert status < 500, body[:500]
    if status >= 400 and method != "HEAD":
        xml_error(status, headers, body)


def _signed_raw(
    port: int, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """A signed request over a raw socket: header values may hold any latin-1 character."""
    if method == "PUT":
        headers = {**headers, "Content-Length": str(len(body))}
    head = signed_head(port, method, target, headers, hashlib.sha256(body).hexdigest())
    return raw_http(port, head, body)


@pytest.fixture(scope="module")
def fuzz_bucket(node: NodeProcess) -> str:
    client = make_client(node.url)
    client.create_bucket(Bucket="fuzz-bucket")
    client.put_object(Bucket="fuzz-bucket", Key="obj", Body=b"0123456789")
    client.put_object(Bucket="fuzz-bucket", Key="dir/a", Body=b"a")
    return "fuzz-bucket"


BAD_RANGES = [
    "bytes=abc",
    "bytes=5-1",
    "bytes=--1",
    "bytes=",
    "chars=0-1",
    "bytes=99999999999999999999999-",
    "bytes=-99999999999999999999999",
    "bytes=0-1,,",
    "bytes=-",
    "bytes=1-2-3",
    "bytes=0-0,-1,5-",
    "bytes= 1 - 2 ",
    "bytes=\u00e9-\u00ff",
    "bytes=0-1\t",
]


@pytest.mark.parametrize("spec", BAD_RANGES)
def test_fuzz_range(node: NodeProcess, fuzz_bucket: str, spec: str) -> None:
    status, headers, body = _signed_raw(node.port, "GET", f"/{fuzz_bucket}/obj", {"Range": spec})
    _check_not_500(status, headers, body)


BAD_QUERIES = [
    ("", "list-type=2&max-keys=abc"),
    ("", "list-type=2&max-keys=-1"),
    ("", "max-keys=999999999999999999999999999"),
    ("", "list-type=2&continuation-token=!!!notbase64"),
    ("", "list-type=2&continuation-token=%2F%2F8%3D"),
    ("", "list-type=2&continuation-token="),
    ("", "encoding-type=xml"),
    ("", "list-type=3"),
    ("", "prefix=%FF%FE&delimiter=%00"),
    ("", "marker=%F0%9F%98%80&delimiter=%2F%2F"),
    ("", "list-type=2&start-after=%FF"),
    ("", "uploads&versions"),
    ("", "location=1&acl"),
    ("/obj", "versionId=nonsense"),
    ("/obj", "partNumber=abc"),
    ("/obj", "response-content-type=%0D%0Ainjected"),
    ("/obj", "response-content-disposition=%F0%9F%98%80&response-expires=%00"),
    ("/obj", "x-id=GetObject&%ZZ=1"),
]


@pytest.mark.parametrize(("suffix", "query"), BAD_QUERIES)
def test_fuzz_query(node: NodeProcess, fuzz_bucket: str, suffix: str, query: str) -> None:
    response = send(node.url, "GET", f"/{fuzz_bucket}{suffix}", query)
    _check_not_500(response.status_code, response.headers, response.content)


BAD_HEADERS: list[tuple[str, dict[str, str]]] = [
    ("PUT", {"x-amz-checksum-crc32": "garbage"}),
    ("PUT", {"x-amz-checksum-crc64nvme": "AAAAAAAAAAA="}),
    ("PUT", {"x-amz-checksum-sha256": "AAAA"}),
    ("PUT", {"x-amz-checksum-": "x"}),
    ("PUT", {"x-amz-trailer": "x-amz-checksum-crc32"}),
    ("PUT", {"x-amz-decoded-content-length": "-5", "Content-Encoding": "aws-chunked"}),
    ("PUT", {"x-amz-decoded-content-length": "abc", "Content-Encoding": "aws-chunked"}),
    ("PUT", {"Content-Encoding": "aws-chunked"}),
    ("PUT", {"x-amz-meta-": "empty name"}),
    ("PUT", {"Expires": "not a date", "Content-Type": "\u00e9/\u00e9"}),
    ("PUT", {"x-amz-copy-source": "%%%"}),
    ("PUT", {"x-amz-storage-class": "NOPE", "x-amz-acl": "bogus"}),
    ("GET", {"If-Modified-Since": "yesterday", "If-Unmodified-Since": "\u00e9"}),
    ("GET", {"If-Match": "", "If-None-Match": ",,,"}),
    ("GET", {"x-amz-checksum-mode": "ENABLED", "Range": "bytes=0-0"}),
    ("HEAD", {"If-Match": "garbage"}),
]


@pytest.mark.parametrize(("method", "headers"), BAD_HEADERS)
def test_fuzz_signed_headers(
    node: NodeProcess, fuzz_bucket: str, method: str, headers: dict[str, str]
) -> None:
    key = "fuzz-put" if method == "PUT" else "obj"
    body = b"data" if method == "PUT" else b""
    status, reply_headers, reply = _signed_raw(
        node.port, method, f"/{fuzz_bucket}/{key}", headers, body
    )
    _check_not_500(status, reply_headers, reply, method)


RAW_GARBAGE: list[bytes] = [
    b"GET /fuzz-bucket/obj HTTP/1.1\r\nHost: x\r\nAuthorization: garbage",
    b"GET /fuzz-bucket/obj HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256",
    b"GET /fuzz-bucket/obj HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 "
    b"Credential=a/b, SignedHeaders=host, Signature=00",
    b"GET /fuzz-bucket/obj HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 "
    b"Credential=test-access-key/20200101/us-east-1/s3/aws4_request, SignedHeaders=, "
    b"Signature=zz\r\nx-amz-date: 20200101T000000Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD",
    b"GET /fuzz-bucket/obj HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 "
    b"Credential=test-access-key/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, "
    b"Signature=00\r\nx-amz-date: \xff\xfe",
    b"GET /fuzz-bucket/obj HTTP/1.1\r\nHost: x\r\nAuthorization: \xe9\xe9 \xff",
    b"GET /fuzz-bucket/obj HTTP/1.1\r\nHost: \xff\xff\r\nAuthorization: AWS a:b",
    b"GET /fuzz-bucket/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=abc HTTP/1.1\r\nHost: x",
    b"GET /fuzz-bucket/obj?X-Amz-Algorithm=nope&X-Amz-Credential=%%&X-Amz-Date=1"
    b"&X-Amz-Expires=1&X-Amz-SignedHeaders=&X-Amz-Signature=1 HTTP/1.1\r\nHost: x",
    b"GET /%FF%FE/obj HTTP/1.1\r\nHost: x",
    b"GET /fuzz-bucket/%00%01 HTTP/1.1\r\nHost: x",
    b"GET //double//slash HTTP/1.1\r\nHost: x",
    b"GET /fuzz-bucket/../../etc/passwd HTTP/1.1\r\nHost: x",
    b"GET /" + b"a" * 4000 + b" HTTP/1.1\r\nHost: x",
]


@pytest.mark.parametrize("head", RAW_GARBAGE, ids=range(len(RAW_GARBAGE)))
def test_fuzz_raw_requests(node: NodeProcess, fuzz_bucket: str, head: bytes) -> None:
    status, headers, body = raw_http(node.port, head)
    _check_not_500(status, headers, body)


def _chunked_put(
    port: int, key: str, framed: bytes, extra: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    headers = {
        "Content-Encoding": "aws-chunked",
        "Content-Length": str(len(framed)),
        **extra,
    }
    payload_hash = headers.pop("payload-hash", STREAMING_UNSIGNED_PAYLOAD_TRAILER)
    head = signed_head(port, "PUT", f"/fuzz-bucket/{key}", headers, payload_hash)
    return raw_http(port, head, framed)


BAD_CHUNKED: list[tuple[bytes, dict[str, str]]] = [
    (b"zz\r\nabc\r\n0\r\n\r\n", {}),
    (b"3\r\nabc0\r\n\r\n", {}),
    (b"3\nabc\n0\n\n", {}),
    (b"5\r\nabc", {}),
    (b"3\r\nabc\r\n", {}),
    (b"3\r\nabc\r\n0\r\n\r\nextra bytes", {}),
    (b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n", {}),
    (b"3\r\nabc\r\n0\r\n\r\n", {"x-amz-trailer": "x-amz-checksum-crc32"}),
    (
        b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
        {"x-amz-trailer": "x-amz-checksum-crc32"},
    ),
    (
        b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:!!\r\n\r\n",
        {"x-amz-trailer": "x-amz-checksum-crc32"},
    ),
    (b"3\r\nabc\r\n0\r\n\r\n", {"x-amz-trailer": "x-amz-checksum-md5"}),
    (b"3\r\nabc\r\n0\r\n\r\n", {"x-amz-decoded-content-length": "10"}),
    (b"3\r\nabc\r\n0\r\n\r\n", {"x-amz-decoded-content-length": "1"}),
    (
        b"3;chunk-signature=00\r\nabc\r\n0;chunk-signature=00\r\n\r\n",
        {"payload-hash": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
    ),
    (
        b"3;chunk-signature="
        + b"0" * 64
        + b"\r\nabc\r\n0;chunk-signature="
        + b"0" * 64
        + b"\r\n\r\n",
        {"payload-hash": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"},
    ),
    (b"3\r\nabc\r\n0\r\n\r\n", {"payload-hash": "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"}),
    (b"3\r\nabc\r\n0\r\n\r\n", {"payload-hash": "STREAMING-NONSENSE"}),
    (b"F" * 17 + b"\r\n", {}),
    (b"FFFFFFFF\r\nabc\r\n", {}),
    (b"1" * 5000, {}),
]


@pytest.mark.parametrize(("framed", "extra"), BAD_CHUNKED, ids=range(len(BAD_CHUNKED)))
def test_fuzz_aws_chunked(
    node: NodeProcess, fuzz_bucket: str, framed: bytes, extra: dict[str, str]
) -> None:
    status, headers, body = _chunked_put(node.port, "chunked", framed, extra)
    assert 400 <= status < 500, body
    xml_error(status, headers, body)


BAD_XML_BODIES = [
    b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">'
    b"]><Delete><Object><Key>&b;</Key></Object></Delete>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<Delete><Object><Key>&e;</Key></Object></Delete>",
    b"\xff\xfe<\x00D\x00",
    b"<Delete><Object><Key>a</Key></Object></Delete><Delete/>",
    b"<Delete><Quiet>maybe</Quiet><Object><Key></Key></Object></Delete>",
    b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
    b"<" * 10000,
]


@pytest.mark.parametrize("body", BAD_XML_BODIES, ids=range(len(BAD_XML_BODIES)))
def test_fuzz_xml_bodies(node: NodeProcess, fuzz_bucket: str, body: bytes) -> None:
    response = _post_delete(node.url, fuzz_bucket, body)
    _check_not_500(response.status_code, response.headers, response.content)


@pytest.mark.parametrize(
    "body",
    [
        b"<CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint>"
        b"</CreateBucketConfiguration>",
        b"<CreateBucketConfiguration><LocationConstraint>",
        b"\x00\x01\x02",
    ],
)
def test_fuzz_create_bucket_bodies(node: NodeProcess, body: bytes) -> None:
    response = send(node.url, "PUT", "/fuzz-create-bucket", body=body)
    assert 400 <= response.status_code < 500
    xml_error(response.status_code, response.headers, response.content)
    listed = send(node.url, "GET", "/").text
    assert "<Name>fuzz-create-bucket</Name>" not in listed


def test_node_still_serves_after_fuzz(node: NodeProcess, fuzz_bucket: str) -> None:
    assert httpx.get(f"{node.url}/_lakenode/health").status_code == 200
    assert send(node.url, "GET", f"/{fuzz_bucket}/obj").content == b"0123456789"
