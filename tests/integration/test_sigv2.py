"""SigV2 against a real node: boto3's default presigned URLs, a boto3 client signing with
SigV2 ("s3"), every refusal with its status, and ``--sigv2 off``. Also the SigV4 rules that
came with it: unsigned x-amz-* headers are refused, UTF-8 metadata verifies."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from api import sigv2
from api.sigv4_canonical import UNSIGNED_PAYLOAD
from api.sigv4_signing import presign_url, sign_headers
from tests.integration.conftest import make_client
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess
from tests.integration.s3util import error_fields, error_of, expect_error, multipart_etag

MiB = 1 << 20


@pytest.fixture(scope="module")
def v2(node: NodeProcess) -> Any:
    """boto3 signing every request with SigV2 (``Authorization: AWS key:signature``)."""
    return make_client(node.url, signature_version="s3")


def v2_signed(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    **sign_options: Any,
) -> httpx.Response:
    sent = sigv2.sign_headers(method, url, headers or {}, ACCESS_KEY, SECRET_KEY, **sign_options)
    return httpx.request(method, url, headers=sent, content=body)


# --------------------------------------------------------------------------------------
# boto3's defaults
# --------------------------------------------------------------------------------------


def test_boto3_default_presigned_get_and_put(s3: Any, bucket: str) -> None:
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "dir/up load+1"}, ExpiresIn=300
    )
    assert "AWSAccessKeyId=" in put_url and "X-Amz-" not in put_url
    data = b"uploaded through a SigV2 presigned PUT"
    put = httpx.put(put_url, content=data)
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "dir/up load+1"}, ExpiresIn=300
    )
    got = httpx.get(get_url)
    assert got.status_code == 200, got.text
    assert got.content == data
    # The signature covers the method and the key.
    expect_error(httpx.put(get_url, content=b"evil"), 403, "SignatureDoesNotMatch")
    other = get_url.replace("up%20load", "down%20load")
    assert other != get_url
    expect_error(httpx.get(other), 403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key="dir/up load+1")["Body"].read() == data


def test_boto3_default_presigned_with_signed_params(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello")
    url = s3.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": "k",
            "ResponseContentType": "text/x-test",
            "ResponseContentDisposition": 'attachment; filename="a b.txt"',
        },
    )
    got = httpx.get(url)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "text/x-test"
    assert got.headers["content-disposition"] == 'attachment; filename="a b.txt"'
    # response-* parameters are signed sub-resources: changing one breaks the signature.
    tampered = url.replace("text%2Fx-test", "text%2Fhtml")
    assert tampered != url
    expect_error(httpx.get(tampered), 403, "SignatureDoesNotMatch")
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "typed", "ContentType": "text/csv"}
    )
    put = httpx.put(put_url, content=b"a,b", headers={"Content-Type": "text/csv"})
    assert put.status_code == 200, put.text
    assert s3.head_object(Bucket=bucket, Key="typed")["ContentType"] == "text/csv"
    wrong_type = httpx.put(put_url, content=b"a,b", headers={"Content-Type": "text/plain"})
    expect_error(wrong_type, 403, "SignatureDoesNotMatch")
    # boto3 carries the signed headers in the URL: a plain client need not send them.
    put_url = s3.generate_presigned_url(
        "put_object",
        Params={
            "Bucket": bucket,
            "Key": "carried",
            "ContentType": "text/csv",
            "Metadata": {"origin": "presigned url"},
        },
    )
    assert "x-amz-meta-origin=" in put_url
    put = httpx.put(put_url, content=b"c,d")
    assert put.status_code == 200, put.text
    head = s3.head_object(Bucket=bucket, Key="carried")
    assert head["ContentType"] == "text/csv"
    assert head["Metadata"] == {"origin": "presigned url"}


def test_boto3_sigv2_client_bucket_and_object_operations(v2: Any, s3: Any) -> None:
    name = "sigv2-client-ops"
    v2.create_bucket(Bucket=name)
    v2.head_bucket(Bucket=name)
    assert name in [b["Name"] for b in v2.list_buckets()["Buckets"]]
    assert v2.get_bucket_location(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    keys = ["a b/c+d=e&f.txt", "a b/ü ñ é/x", "a b/~tilde!*'()", "other"]
    for index, key in enumerate(keys):
        v2.put_object(Bucket=name, Key=key, Body=b"v" * index, Metadata={"n": str(index)})
    head = v2.head_object(Bucket=name, Key=keys[1])
    assert head["Metadata"] == {"n": "1"}
    assert v2.get_object(Bucket=name, Key=keys[2])["Body"].read() == b"vv"
    listed = v2.list_objects_v2(Bucket=name, Prefix="a b/", Delimiter="/")
    assert [c["Key"] for c in listed.get("Contents", [])] == sorted(keys[:1] + keys[2:3])
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a b/ü ñ é/"]
    special = v2.list_objects(Bucket=name, Prefix="a b/c+d=e&")
    assert [c["Key"] for c in special["Contents"]] == [keys[0]]
    v2.copy_object(Bucket=name, Key="copy", CopySource={"Bucket": name, "Key": keys[0]})
    assert s3.get_object(Bucket=name, Key="copy")["Body"].read() == b""
    v2.put_object_tagging(
        Bucket=name, Key="other", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]}
    )
    assert v2.get_object_tagging(Bucket=name, Key="other")["TagSet"] == [{"Key": "t", "Value": "1"}]
    deleted = v2.delete_objects(
        Bucket=name, Delete={"Objects": [{"Key": k} for k in [*keys, "copy"]]}
    )
    assert len(deleted["Deleted"]) == len(keys) + 1
    v2.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_boto3_sigv2_client_multipart(v2: Any, bucket: str) -> None:
    key = "multi part/ключ"
    upload_id = v2.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = [b"a" * (5 * MiB), b"b" * 1000]
    etags = [
        v2.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data)["ETag"]
        for n, data in enumerate(parts, 1)
    ]
    listed = v2.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]
    uploads = v2.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [upload_id]
    done = v2.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    assert done["ETag"] == multipart_etag(parts)
    body = v2.get_object(Bucket=bucket, Key=key, Range="bytes=5242879-5242880")["Body"].read()
    assert body == b"ab"
    aborted = v2.create_multipart_upload(Bucket=bucket, Key="aborted")["UploadId"]
    v2.abort_multipart_upload(Bucket=bucket, Key="aborted", UploadId=aborted)
    assert "Uploads" not in v2.list_multipart_uploads(Bucket=bucket)


def test_boto3_sigv2_wrong_secret_and_unknown_key(node: NodeProcess, bucket: str) -> None:
    for access_key, secret_key, code in [
        (ACCESS_KEY, "wrong-secret", "SignatureDoesNotMatch"),
        ("nobody", "x", "InvalidAccessKeyId"),
    ]:
        client = boto3.client(
            "s3",
            endpoint_url=node.url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=REGION,
            config=Config(signature_version="s3"),
        )
        with pytest.raises(ClientError) as caught:
            client.list_objects_v2(Bucket=bucket)
        assert error_of(caught) == (403, code)


# --------------------------------------------------------------------------------------
# Refusals, with the status AWS gives them
# --------------------------------------------------------------------------------------


def test_bad_signature_shows_the_string_to_sign(node: NodeProcess, bucket: str) -> None:
    url = f"{node.url}/{bucket}/k"
    sent = sigv2.sign_headers("GET", url, {}, ACCESS_KEY, "wrong")
    response = httpx.get(url, headers=sent)
    expect_error(response, 403, "SignatureDoesNotMatch")
    document = error_fields(response)
    assert document["StringToSign"] == f"GET\n\n\n{sent['Date']}\n/{bucket}/k"
    assert document["SignatureProvided"] == sent["Authorization"].split(":", 1)[1]
    assert document["AWSAccessKeyId"] == ACCESS_KEY


def test_unknown_key(node: NodeProcess, bucket: str) -> None:
    url = f"{node.url}/{bucket}/k"
    sent = sigv2.sign_headers("GET", url, {}, "nobody", "x")
    expect_error(httpx.get(url, headers=sent), 403, "InvalidAccessKeyId")


@pytest.mark.parametrize("minutes", [-20, 20])
def test_request_time_too_skewed(node: NodeProcess, bucket: str, minutes: int) -> None:
    url = f"{node.url}/{bucket}"
    when = datetime.now(UTC) + timedelta(minutes=minutes)
    response = v2_signed("GET", url, now=when)
    expect_error(response, 403, "RequestTimeTooSkewed")
    assert error_fields(response)["MaxAllowedSkewMilliseconds"] == "900000"
    near = datetime.now(UTC) + timedelta(minutes=minutes // 2)
    assert v2_signed("GET", url, now=near).status_code == 200


def test_missing_date_is_access_denied(node: NodeProcess, bucket: str) -> None:
    url = f"{node.url}/{bucket}"
    sent = sigv2.sign_headers("GET", url, {}, ACCESS_KEY, SECRET_KEY)
    del sent["Date"]
    message = expect_error(httpx.get(url, headers=sent), 403, "AccessDenied")
    assert "Date" in message
    sent["Date"] = "not a date"
    expect_error(httpx.get(url, headers=sent), 403, "AccessDenied")


def test_x_amz_date_instead_of_date(node: NodeProcess, bucket: str) -> None:
    url = f"{node.url}/{bucket}/dated"
    stamp = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    response = v2_signed("PUT", url, {"x-amz-date": stamp}, b"dated")
    assert response.status_code == 200, response.text


def test_expired_query_form(node: NodeProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = f"{node.url}/{bucket}/k"
    expired = sigv2.presign_url("GET", url, ACCESS_KEY, SECRET_KEY, int(time.time()) - 5)
    response = httpx.get(expired)
    assert expect_error(response, 403, "AccessDenied") == "Request has expired"
    assert {"Expires", "ServerTime"} <= set(error_fields(response))
    fresh = sigv2.presign_url("GET", url, ACCESS_KEY, SECRET_KEY, int(time.time()) + 60)
    assert httpx.get(fresh).content == b"x"


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        ("AWS", 400, "InvalidArgument"),
        (f"AWS {ACCESS_KEY}", 400, "InvalidArgument"),
        (f"AWS {ACCESS_KEY}:", 400, "InvalidArgument"),
        ("AWS :c2lnbmF0dXJl", 400, "InvalidArgument"),
        (f"AWS {ACCESS_KEY}:!!not base64!!", 403, "SignatureDoesNotMatch"),
        (f"AWS {ACCESS_KEY}:c2lnbmF0dXJl", 403, "SignatureDoesNotMatch"),
        ("AWS nobody:c2lnbmF0dXJl", 403, "InvalidAccessKeyId"),
    ],
)
def test_malformed_authorization_headers(
    node: NodeProcess, bucket: str, authorization: str, status: int, code: str
) -> None:
    date = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    for method in ("GET", "PUT", "HEAD"):
        response = httpx.request(
            method,
            f"{node.url}/{bucket}/k",
            headers={"Authorization": authorization, "Date": date},
            content=b"body" if method == "PUT" else None,
        )
        assert response.status_code == status, response.text
        if method != "HEAD":
            expect_error(response, status, code)


@pytest.mark.parametrize(
    "query",
    [
        f"AWSAccessKeyId={ACCESS_KEY}",
        f"AWSAccessKeyId={ACCESS_KEY}&Signature=x&Expires=soon",
        "Signature=x&Expires=9999999999",
        f"AWSAccessKeyId={ACCESS_KEY}&Signature=%ZZ&Expires=9999999999",
    ],
)
def test_malformed_query_forms_are_refused(node: NodeProcess, bucket: str, query: str) -> None:
    response = httpx.get(f"{node.url}/{bucket}/k?{query}")
    assert response.status_code in (400, 403), response.text
    assert error_fields(response)["Code"] in (
        "AccessDenied",
        "SignatureDoesNotMatch",
        "InvalidArgument",
    )


def test_sigv2_header_with_sigv4_query_is_invalid_argument(node: NodeProcess, bucket: str) -> None:
    url = presign_url("GET", f"{node.url}/{bucket}/k", ACCESS_KEY, SECRET_KEY, 60, REGION)
    sent = sigv2.sign_headers("GET", f"{node.url}/{bucket}/k", {}, ACCESS_KEY, SECRET_KEY)
    expect_error(httpx.get(url, headers=sent), 400, "InvalidArgument")


def test_unsigned_amz_header_breaks_a_sigv2_signature(node: NodeProcess, bucket: str) -> None:
    url = f"{node.url}/{bucket}/meta"
    sent = sigv2.sign_headers("PUT", url, {}, ACCESS_KEY, SECRET_KEY)
    added = httpx.put(url, headers={**sent, "x-amz-meta-added": "1"}, content=b"x")
    expect_error(added, 403, "SignatureDoesNotMatch")


# --------------------------------------------------------------------------------------
# Virtual-hosted style and --sigv2 off
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def domain_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(
        tmp_path_factory.mktemp("vhost") / "data", extra_args=["--domain", "s3.test"]
    ).start()
    yield process
    process.stop()


def test_virtual_hosted_sigv2(domain_node: NodeProcess) -> None:
    make_client(domain_node.url).create_bucket(Bucket="vhost")
    host = f"vhost.s3.test:{domain_node.port}"
    # The resource signed is /vhost/key, although the request's path is /key.
    sent = sigv2.sign_headers("PUT", "http://x/vhost/key?tagging", {}, ACCESS_KEY, SECRET_KEY)
    body = b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>"
    put = httpx.put(f"{domain_node.url}/key", headers={**sent, "Host": host}, content=b"v")
    assert put.status_code == 403  # signed with ?tagging, sent without it
    sent = sigv2.sign_headers("PUT", "http://x/vhost/key", {}, ACCESS_KEY, SECRET_KEY)
    put = httpx.put(f"{domain_node.url}/key", headers={**sent, "Host": host}, content=b"v")
    assert put.status_code == 200, put.text
    sent = sigv2.sign_headers("PUT", "http://x/vhost/key?tagging", {}, ACCESS_KEY, SECRET_KEY)
    tag = httpx.put(f"{domain_node.url}/key?tagging", headers={**sent, "Host": host}, content=body)
    assert tag.status_code == 200, tag.text
    sent = sigv2.sign_headers("GET", "http://x/vhost/", {}, ACCESS_KEY, SECRET_KEY)
    listing = httpx.get(f"{domain_node.url}/", headers={**sent, "Host": host})
    assert listing.status_code == 200, listing.text
    assert "<Key>key</Key>" in listing.text


@pytest.fixture(scope="module")
def sigv2_off_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    process = NodeProcess(
        tmp_path_factory.mktemp("nov2") / "data", extra_args=["--sigv2", "off"]
    ).start()
    yield process
    process.stop()


def test_sigv2_off_refuses_both_forms_naming_sigv4(sigv2_off_node: NodeProcess) -> None:
    s3 = make_client(sigv2_off_node.url)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"data")  # SigV4 works
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "k"})
    assert "AWSAccessKeyId=" in url
    message = expect_error(httpx.get(url), 403, "AccessDenied")
    assert "SigV2 is disabled" in message and "Signature Version 4" in message
    header = v2_signed("GET", f"{sigv2_off_node.url}/bkt/k")
    assert "Signature Version 4" in expect_error(header, 403, "AccessDenied")
    with pytest.raises(ClientError) as caught:
        make_client(sigv2_off_node.url, signature_version="s3").list_buckets()
    assert error_of(caught) == (403, "AccessDenied")
    # boto3's default presigned POST is a SigV2 form: refused the same way.
    form = s3.generate_presigned_post("bkt", "posted")
    assert "AWSAccessKeyId" in form["fields"]
    posted = httpx.post(form["url"], data=form["fields"], files={"file": ("f", b"x")})
    assert "Signature Version 4" in expect_error(posted, 403, "AccessDenied")
    assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"data"


def test_sigv2_off_from_the_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKENODE_SIGV2", "off")
    process = NodeProcess(tmp_path_factory.mktemp("nov2env") / "data").start()
    try:
        response = v2_signed("GET", f"{process.url}/")
        assert "Signature Version 4" in expect_error(response, 403, "AccessDenied")
    finally:
        process.stop()


# --------------------------------------------------------------------------------------
# SigV4: unsigned x-amz-* headers, UTF-8 metadata
# --------------------------------------------------------------------------------------


def test_unsigned_amz_meta_added_to_a_signed_request(
    node: NodeProcess, s3: Any, bucket: str
) -> None:
    url = f"{node.url}/{bucket}/signed"
    sent = sign_headers("PUT", url, {"x-amz-meta-a": "1"}, ACCESS_KEY, SECRET_KEY, REGION)
    added = httpx.put(url, headers={**sent, "x-amz-meta-evil": "x"}, content=b"body")
    message = expect_error(added, 403, "AccessDenied")
    assert message == "There were headers present in the request which were not signed"
    assert error_fields(added)["HeadersNotSigned"] == "x-amz-meta-evil"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="signed")
    assert httpx.put(url, headers=sent, content=b"body").status_code == 200
    assert s3.head_object(Bucket=bucket, Key="signed")["Metadata"] == {"a": "1"}


def test_unsigned_amz_header_on_a_presigned_url(node: NodeProcess, s3: Any, bucket: str) -> None:
    url = presign_url("PUT", f"{node.url}/{bucket}/pre", ACCESS_KEY, SECRET_KEY, 60, REGION)
    for header in ("x-amz-acl", "x-amz-meta-x", "x-amz-storage-class"):
        refused = httpx.put(url, headers={header: "public-read"}, content=b"x")
        expect_error(refused, 403, "AccessDenied")
        assert error_fields(refused)["HeadersNotSigned"] == header
    # x-amz-content-sha256 is bound on its own and may come along unsigned.
    ok = httpx.put(url, headers={"x-amz-content-sha256": UNSIGNED_PAYLOAD}, content=b"x")
    assert ok.status_code == 200, ok.text
    assert s3.get_object(Bucket=bucket, Key="pre")["Body"].read() == b"x"


def test_utf8_metadata_signed_by_botocore(node: NodeProcess, s3: Any, bucket: str) -> None:
    value = "café ☕ ünïcødé"
    url = f"{node.url}/{bucket}/utf8"
    request = AWSRequest(
        method="PUT", url=url, headers={"x-amz-meta-name": value}, data=b"utf-8 metadata"
    )
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    headers = [(n.encode(), v.encode("utf-8")) for n, v in request.headers.items()]
    put = httpx.put(url, headers=headers, content=b"utf-8 metadata")
    assert put.status_code == 200, put.text
    got = httpx.get(url, headers=sign_headers("GET", url, {}, ACCESS_KEY, SECRET_KEY, REGION))
    assert got.status_code == 200
    raw = dict(got.headers.raw)
    assert raw[b"x-amz-meta-name"] == value.encode("utf-8")  # byte-for-byte as sent
    assert got.content == b"utf-8 metadata"
