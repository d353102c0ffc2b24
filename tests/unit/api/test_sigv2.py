"""SigV2: AWS's published examples, botocore's HmacV1Auth as the reference client, every error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from api import sigv2
from api.errors import S3Error
from api.sigv2 import SigV2Request
from api.sigv4 import signable_headers
from api.sigv4_canonical import UNSIGNED_PAYLOAD

# AWS's example key pair ("Signing and authenticating REST requests", SigV2).
DOC_AK = "AKIAIOSFODNN7EXAMPLE"
DOC_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def doc_secret(access_key: str) -> str | None:
    return DOC_SK if access_key == DOC_AK else None


def raw(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Headers as the server sees them (ASGI byte pairs through the server's joining)."""
    return signable_headers([(n.encode(), v.encode("utf-8")) for n, v in headers])


def doc_request(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    signature: str,
    bucket: str | None,
) -> SigV2Request:
    path, _, query = target.partition("?")
    return SigV2Request(
        method=method,
        raw_path=path,
        query_string=query,
        headers=raw([*headers, ("Authorization", f"AWS {DOC_AK}:{signature}")]),
        virtual_bucket=bucket,
    )


# (name, method, request target, headers, virtual-hosted bucket, published StringToSign,
#  published signature). The request elements and expected values are the documentation's.
DOC_EXAMPLES: list[tuple[str, str, str, list[tuple[str, str]], str | None, str, str]] = [
    (
        "object-get",
        "GET",
        "/photos/puppy.jpg",
        [("Host", "awsexamplebucket1.us-west-1.s3.amazonaws.com"),
         ("Date", "Tue, 27 Mar 2007 19:36:42 +0000")],
        "awsexamplebucket1",
        "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg",
        "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=",
    ),
    (
        "object-get-johnsmith",
        "GET",
        "/photos/puppy.jpg",
        [("Host", "johnsmith.s3.amazonaws.com"), ("Date", "Tue, 27 Mar 2007 19:36:42 +0000")],
        "johnsmith",
        "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg",
        "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
    ),
    (
        "object-put",
        "PUT",
        "/photos/puppy.jpg",
        [("Content-Type", "image/jpeg"), ("Content-Length", "94328"),
         ("Host", "johnsmith.s3.amazonaws.com"), ("Date", "Tue, 27 Mar 2007 21:15:45 +0000")],
        "johnsmith",
        "PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/johnsmith/photos/puppy.jpg",
        "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
    ),
    (
        "list",
        "GET",
        "/?prefix=photos&max-keys=50&marker=puppy",
        [("User-Agent", "Mozilla/5.0"), ("Host", "johnsmith.s3.amazonaws.com"),
         ("Date", "Tue, 27 Mar 2007 19:42:41 +0000")],
        "johnsmith",
        "GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/johnsmith/",
        "htDYFYduRNen8P9ZfE/s9SuKy0U=",
    ),
    (
        "fetch-acl",
        "GET",
        "/?acl",
        [("Host", "johnsmith.s3.amazonaws.com"), ("Date", "Tue, 27 Mar 2007 19:44:46 +0000")],
        "johnsmith",
        "GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/johnsmith/?acl",
        "c2WLPFtWHVgbEmeEG93a4cG37dM=",
    ),
    (
        "delete-path-style",
        "DELETE",
        "/johnsmith/photos/puppy.jpg",
        [("User-Agent", "dotnet"), ("Host", "s3.amazonaws.com"),
         ("Date", "Tue, 27 Mar 2007 21:20:26 +0000")],
        None,
        "DELETE\n\n\nTue, 27 Mar 2007 21:20:26 +0000\n/johnsmith/photos/puppy.jpg",
        "lx3byBScXR6KzyMaifNkardMwNk=",
    ),
    (
        "upload-cname-amz-headers",
        "PUT",
        "/db-backup.dat.gz",
        [("User-Agent", "curl/7.15.5"), ("Host", "static.johnsmith.net:8080"),
         ("Date", "Tue, 27 Mar 2007 21:06:08 +0000"), ("x-amz-acl", "public-read"),
         ("content-type", "application/x-download"), ("Content-MD5", "4gJE4saaMU4BqNR0kLY+lw=="),
         ("X-Amz-Meta-ReviewedBy", "joe@johnsmith.net"),
         ("X-Amz-Meta-ReviewedBy", "jane@johnsmith.net"),
         ("X-Amz-Meta-FileChecksum", "0x02661779"),
         ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
         ("Content-Disposition", "attachment; filename=database.dat"),
         ("Content-Encoding", "gzip"), ("Content-Length", "5913339")],
        "static.johnsmith.net",
        "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\n"
        "Tue, 27 Mar 2007 21:06:08 +0000\nx-amz-acl:public-read\n"
        "x-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\n"
        "x-amz-meta-reviewedby:joe@johnsmith.net,jane@johnsmith.net\n"
        "/static.johnsmith.net/db-backup.dat.gz",
        "ilyl83RwaSoYIEdixDQcA4OnAnc=",
    ),
    (
        "list-all-my-buckets",
        "GET",
        "/",
        [("Host", "s3.amazonaws.com"), ("Date", "Wed, 28 Mar 2007 01:29:59 +0000")],
        None,
        "GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/",
        "qGdzdERIC03wnaRNKh6OqZehG9s=",
    ),
    (
        "unicode-keys",
        "GET",
        "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
        [("Host", "s3.amazonaws.com"), ("Date", "Wed, 28 Mar 2007 01:49:49 +0000")],
        None,
        "GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re",
        "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "target", "headers", "bucket", "expected_sts", "expected_sig"),
    [case[1:] for case in DOC_EXAMPLES],
    ids=[case[0] for case in DOC_EXAMPLES],
)
def test_doc_examples(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    bucket: str | None,
    expected_sts: str,
    expected_sig: str,
) -> None:
    request = doc_request(method, target, headers, expected_sig, bucket)
    date = request.headers["date"]
    resource = sigv2.canonical_resource(request.raw_path, request.query_string, bucket)
    text = sigv2.string_to_sign(method, request.headers, date, resource)
    assert text == expected_sts
    assert sigv2.sign(DOC_SK, text) == expected_sig
    when = datetime.strptime(date, "%a, %d %b %Y %H:%M:%S %z")
    auth = sigv2.verify(request, doc_secret, now=when + timedelta(minutes=14))
    assert auth.access_key == DOC_AK
    assert auth.payload_hash == UNSIGNED_PAYLOAD
    assert not auth.presigned


def test_doc_query_string_example() -> None:
    # GET /photos/puppy.jpg?AWSAccessKeyId=...&Signature=...&Expires=1175139620 (johnsmith).
    query = f"AWSAccessKeyId={DOC_AK}&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620"
    request = SigV2Request(
        "GET", "/photos/puppy.jpg", query, raw([("Host", "johnsmith.s3.amazonaws.com")]),
        "johnsmith",
    )  # fmt: skip
    before = datetime.fromtimestamp(1175139620 - 60, UTC)
    auth = sigv2.verify(request, doc_secret, now=before)
    assert auth.presigned
    with pytest.raises(S3Error) as expired:
        sigv2.verify(request, doc_secret, now=before + timedelta(minutes=2))
    assert expired.value.code == "AccessDenied"
    assert expired.value.message == "Request has expired"
    assert expired.value.details["Expires"] == "2007-03-29T03:40:20Z"


# --------------------------------------------------------------------------------------
# botocore's signer (HmacV1Auth / HmacV1QueryAuth) is the reference client
# --------------------------------------------------------------------------------------

AK = "lakenode"
SK = "lakenode-secret"


def secret(access_key: str) -> str | None:
    return SK if access_key == AK else None


def from_botocore(request: AWSRequest, bucket: str | None = None) -> SigV2Request:
    parts = urlsplit(request.url)
    headers = [(n.encode(), v.encode("utf-8")) for n, v in request.headers.items()]
    headers.append((b"host", parts.netloc.encode()))
    return SigV2Request(request.method, parts.path, parts.query, signable_headers(headers), bucket)


def botocore_signed(
    method: str, url: str, headers: dict[str, str] | None = None, auth_path: str | None = None
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=headers or {})
    request.auth_path = auth_path
    HmacV1Auth(Credentials(AK, SK)).add_auth(request)
    return request


BOTOCORE_CASES = [
    ("GET", "/b/k", {}),
    ("GET", "/b/dir/a%20b%2Bc%3D", {}),
    ("GET", "/b?acl", {}),
    ("GET", "/b?list-type=2&prefix=a%2Fb%20c&delimiter=%2F", {}),
    ("PUT", "/b/k?partNumber=3&uploadId=abc%2Bdef", {"Content-Type": "text/plain"}),
    ("POST", "/b?delete", {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}),
    ("GET", "/b/k?response-content-disposition=attachment%3B%20filename%3D%22x%20y%22", {}),
    ("GET", "/b/k?versionId=3%2Fx&response-content-type=text%2Fhtml", {}),
    ("PUT", "/b/k?tagging", {}),
    ("PUT", "/b/k", {"x-amz-meta-a": "one", "X-Amz-Meta-Z": " padded  ", "x-amz-acl": "private"}),
    ("PUT", "/b/k", {"x-amz-copy-source": "/src/some%20key", "x-amz-metadata-directive": "COPY"}),
    ("GET", "/", {}),
]


@pytest.mark.parametrize(("method", "target", "headers"), BOTOCORE_CASES)
def test_botocore_header_signatures_verify(
    method: str, target: str, headers: dict[str, str]
) -> None:
    request = botocore_signed(method, f"http://127.0.0.1:9000{target}", headers)
    auth = sigv2.verify(from_botocore(request), secret)
    assert auth.access_key == AK


@pytest.mark.parametrize(("method", "target", "headers"), BOTOCORE_CASES)
def test_botocore_signature_breaks_on_any_signed_change(
    method: str, target: str, headers: dict[str, str]
) -> None:
    good = from_botocore(botocore_signed(method, f"http://127.0.0.1:9000{target}", headers))
    changed = [
        SigV2Request("HEAD" if method == "GET" else "GET", *_rest(good)),
        SigV2Request(method, good.raw_path + "x", *_rest(good)[1:]),
        SigV2Request(
            method, good.raw_path, good.query_string, {**good.headers, "x-amz-meta-added": "1"}
        ),
        SigV2Request(
            method, good.raw_path, good.query_string, {**good.headers, "content-type": "a/b"}
        ),
    ]
    if "?" in target and any(name in target for name in ("acl", "part", "delete", "response")):
        changed.append(SigV2Request(method, good.raw_path, "", dict(good.headers)))
    for request in changed:
        with pytest.raises(S3Error) as caught:
            sigv2.verify(request, secret)
        assert caught.value.code == "SignatureDoesNotMatch", request
        assert "StringToSign" in caught.value.details


def _rest(request: SigV2Request) -> tuple[str, str, dict[str, str]]:
    return request.raw_path, request.query_string, dict(request.headers)


def test_botocore_virtual_hosted_signature() -> None:
    # Virtual-hosted: the signed resource is /bucket/key although the path is /key.
    request = botocore_signed(
        "GET", "http://photos.s3.example.net:9000/k?acl", auth_path="/photos/k"
    )
    assert sigv2.verify(from_botocore(request, bucket="photos"), secret).access_key == AK
    with pytest.raises(S3Error):
        sigv2.verify(from_botocore(request, bucket=None), secret)


def test_botocore_bucket_resource_with_trailing_slash() -> None:
    # botocore signs a path-style bucket request sent as /b as the resource /b/.
    request = botocore_signed("PUT", "http://127.0.0.1:9000/b?tagging", auth_path="/b/")
    assert sigv2.verify(from_botocore(request), secret).access_key == AK
    # Only the bucket level gets the slash: /b/k is never /b/k/.
    request = botocore_signed("PUT", "http://127.0.0.1:9000/b/k", auth_path="/b/k/")
    with pytest.raises(S3Error):
        sigv2.verify(from_botocore(request), secret)


def test_botocore_presigned_query_verifies() -> None:
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/b/some%20key?versionId=7")
    HmacV1QueryAuth(Credentials(AK, SK), expires=300).add_auth(request)
    assert "AWSAccessKeyId=" in request.url
    auth = sigv2.verify(from_botocore(request), secret)
    assert auth.presigned
    later = datetime.now(UTC) + timedelta(seconds=400)
    with pytest.raises(S3Error) as caught:
        sigv2.verify(from_botocore(request), secret, now=later)
    assert (caught.value.code, caught.value.message) == ("AccessDenied", "Request has expired")


@settings(max_examples=150, deadline=None)
@given(
    key=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30),
    meta=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
def test_round_trip_with_botocore_any_key(key: str, meta: str) -> None:
    url = f"http://127.0.0.1:9000/bucket/{quote(key, safe='/~')}"
    request = botocore_signed("PUT", url, {"x-amz-meta-m": meta})
    assert sigv2.verify(from_botocore(request), secret).access_key == AK
    ours = sigv2.sign_headers("PUT", url, {"x-amz-meta-m": meta}, AK, SK)
    assert ours["Authorization"] == request.headers["Authorization"] or (
        ours["Date"] != request.headers["Date"]  # signed in different seconds
    )


def test_botocore_presigned_headers_travel_in_the_query() -> None:
    # botocore signs x-amz-*, Content-Type and Content-MD5 and moves them into the URL.
    request = AWSRequest(
        method="PUT",
        url="http://127.0.0.1:9000/b/k",
        headers={"x-amz-meta-name": "a b/ü", "x-amz-acl": "private", "Content-Type": "text/csv"},
    )
    HmacV1QueryAuth(Credentials(AK, SK), expires=300).add_auth(request)
    parts = urlsplit(request.url)
    assert "x-amz-meta-name=" in parts.query and "content-type=" in parts.query
    bare = SigV2Request("PUT", parts.path, parts.query, raw([("Host", "127.0.0.1:9000")]))
    assert sigv2.verify(bare, secret).presigned
    assert sigv2.hoisted_headers(parts.query, bare.headers) == {
        "x-amz-meta-name": "a b/ü",
        "x-amz-acl": "private",
        "content-type": "text/csv",
    }
    # Sent as headers too, they must agree (a header sent wins over the URL's value).
    same = SigV2Request(
        "PUT", parts.path, parts.query, raw([("Host", "h"), ("Content-Type", "text/csv")])
    )
    assert sigv2.verify(same, secret).presigned
    other = SigV2Request(
        "PUT", parts.path, parts.query, raw([("Host", "h"), ("Content-Type", "text/html")])
    )
    with pytest.raises(S3Error) as caught:
        sigv2.verify(other, secret)
    assert caught.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    "param", ["x-amz-meta-a=1%0D%0AX-Injected%3A%201", "x-amz-meta-a%0Ab=1", "x-amz-meta-%20=1"]
)
def test_hoisting_refuses_what_cannot_be_a_header(param: str) -> None:
    assert sigv2.hoisted_headers(param, {}) == {}


def test_our_signers_verify() -> None:
    url = "http://127.0.0.1:9000/b/a%20key?uploadId=9&partNumber=2"
    headers = sigv2.sign_headers("PUT", url, {"x-amz-date": "20240301T120000Z"}, AK, SK)
    request = SigV2Request(
        "PUT", "/b/a%20key", "uploadId=9&partNumber=2", raw(list(headers.items()))
    )
    now = datetime(2024, 3, 1, 12, 5, tzinfo=UTC)
    assert sigv2.verify(request, secret, now=now).access_key == AK
    presigned = sigv2.presign_url("GET", "http://h/b/k?acl", AK, SK, int(now.timestamp()) + 60)
    parts = urlsplit(presigned)
    query_request = SigV2Request("GET", parts.path, parts.query, raw([("Host", "h")]))
    assert sigv2.verify(query_request, secret, now=now).presigned


def test_date_element_with_x_amz_date() -> None:
    # AWS: with x-amz-date the Date element is empty; MinIO-style clients sign the Date value.
    now = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    headers = {
        "date": "Fri, 01 Mar 2024 12:00:00 GMT",
        "x-amz-date": "Fri, 01 Mar 2024 12:00:00 GMT",
    }
    resource = "/b/k"
    for date in ("", headers["date"]):
        signature = sigv2.sign(SK, sigv2.string_to_sign("GET", headers, date, resource))
        request = SigV2Request(
            "GET", "/b/k", "", {**headers, "authorization": f"AWS {AK}:{signature}"}
        )
        assert sigv2.verify(request, secret, now=now).access_key == AK
    # The time comes from x-amz-date: a stale Date header does not matter, a stale x-amz-date does.
    stale = {**headers, "x-amz-date": "Fri, 01 Mar 2024 11:00:00 GMT"}
    signature = sigv2.sign(SK, sigv2.string_to_sign("GET", stale, "", resource))
    request = SigV2Request("GET", "/b/k", "", {**stale, "authorization": f"AWS {AK}:{signature}"})
    with pytest.raises(S3Error) as caught:
        sigv2.verify(request, secret, now=now)
    assert caught.value.code == "RequestTimeTooSkewed"


def test_hex_content_sha256_is_checked_and_streaming_is_not_signed() -> None:
    now = datetime.now(UTC)
    digest = "a" * 64
    for declared, expected in (
        (digest, digest),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", UNSIGNED_PAYLOAD),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        ("UNSIGNED-PAYLOAD", UNSIGNED_PAYLOAD),
    ):
        headers = sigv2.sign_headers(
            "PUT", "http://h/b/k", {"x-amz-content-sha256": declared}, AK, SK
        )
        request = SigV2Request("PUT", "/b/k", "", raw(list(headers.items())))
        assert sigv2.verify(request, secret, now=now).payload_hash == expected


# --------------------------------------------------------------------------------------
# Which scheme a request uses
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "query", "expected"),
    [
        ("AWS ak:sig", "", True),
        ("AWS", "", True),
        ("  AWS ak:sig", "", True),
        ("AWS4-HMAC-SHA256 Credential=x", "", False),
        ("AWSX ak:sig", "", False),
        (None, "AWSAccessKeyId=ak&Signature=s&Expires=1", True),
        (None, "AWSAccessKeyId=ak", True),
        (None, "Signature=s&Expires=1", True),
        (None, "X-Amz-Algorithm=AWS4-HMAC-SHA256&AWSAccessKeyId=ak", False),
        ("AWS ak:sig", "X-Amz-Signature=x", False),
        (None, "list-type=2&prefix=AWSAccessKeyId", False),
        (None, "", False),
    ],
)
def test_applies(authorization: str | None, query: str, expected: bool) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    assert sigv2.applies(headers, query) is expected


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DATE = "Fri, 01 Mar 2024 12:00:00 GMT"


def expect_error(request: SigV2Request, code: str, now: datetime = NOW) -> S3Error:
    with pytest.raises(S3Error) as caught:
        sigv2.verify(request, secret, now=now)
    assert caught.value.code == code, caught.value
    return caught.value


def header_request(authorization: str, **headers: str) -> SigV2Request:
    return SigV2Request(
        "GET", "/b/k", "", {"date": DATE, **headers, "authorization": authorization}
    )


@pytest.mark.parametrize(
    "authorization", ["AWS", "AWS ", "AWS lakenode", "AWS lakenode:", "AWS :c2ln", "AWS  :"]
)
def test_malformed_authorization_is_invalid_argument(authorization: str) -> None:
    error = expect_error(header_request(authorization), "InvalidArgument")
    assert error.status == 400
    assert "AwsAccessKeyId:signature" in error.message


@pytest.mark.parametrize("signature", ["not base64 at all!!", "====", "\u00e9\u00e9", "a" * 500])
def test_garbage_signature_is_a_mismatch(signature: str) -> None:
    error = expect_error(header_request(f"AWS {AK}:{signature}"), "SignatureDoesNotMatch")
    assert error.status == 403
    assert error.details["StringToSign"] == f"GET\n\n\n{DATE}\n/b/k"
    assert error.details["SignatureProvided"] == signature


def test_unknown_access_key() -> None:
    error = expect_error(header_request("AWS nobody:c2ln"), "InvalidAccessKeyId")
    assert error.status == 403


@pytest.mark.parametrize("date", [None, "", "yesterday", "Fri, 99 Mar 2024 12:00:00 GMT"])
def test_missing_or_bad_date_is_access_denied(date: str | None) -> None:
    request = SigV2Request("GET", "/b/k", "", {"authorization": f"AWS {AK}:c2ln"})
    if date is not None:
        request = header_request(f"AWS {AK}:c2ln", date=date)
    error = expect_error(request, "AccessDenied")
    assert "Date" in error.message


@pytest.mark.parametrize("offset", [timedelta(minutes=16), -timedelta(minutes=16)])
def test_request_time_too_skewed(offset: timedelta) -> None:
    headers = sigv2.sign_headers("GET", "http://h/b/k", {}, AK, SK, now=NOW + offset)
    request = SigV2Request("GET", "/b/k", "", raw(list(headers.items())))
    error = expect_error(request, "RequestTimeTooSkewed")
    assert error.status == 403
    assert error.details["MaxAllowedSkewMilliseconds"] == "900000"
    within = sigv2.sign_headers("GET", "http://h/b/k", {}, AK, SK, now=NOW + offset * 0.9)
    assert sigv2.verify(SigV2Request("GET", "/b/k", "", raw(list(within.items()))), secret, NOW)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("AWSAccessKeyId=lakenode&Expires=1709294460", "AccessDenied"),
        ("AWSAccessKeyId=lakenode&Signature=abc", "AccessDenied"),
        ("Signature=abc&Expires=1709294460", "AccessDenied"),
        ("AWSAccessKeyId=&Signature=abc&Expires=1709294460", "AccessDenied"),
        ("AWSAccessKeyId=lakenode&Signature=abc&Expires=soon", "AccessDenied"),
        ("AWSAccessKeyId=lakenode&Signature=abc&Expires=-5", "AccessDenied"),
        ("AWSAccessKeyId=lakenode&AWSAccessKeyId=x&Signature=a&Expires=1", "InvalidArgument"),
        ("AWSAccessKeyId=nobody&Signature=abc&Expires=1709294460", "InvalidAccessKeyId"),
        ("AWSAccessKeyId=lakenode&Signature=abc&Expires=1709294460", "SignatureDoesNotMatch"),
        ("AWSAccessKeyId=lakenode&Signature=abc&Expires=1709290000", "AccessDenied"),
    ],
)
def test_query_form_errors(query: str, code: str) -> None:
    expect_error(SigV2Request("GET", "/b/k", query, {"host": "h"}), code)


def test_header_and_query_together_is_invalid_argument() -> None:
    request = SigV2Request(
        "GET", "/b/k", "AWSAccessKeyId=lakenode", {"date": DATE, "authorization": "AWS a:b"}
    )
    expect_error(request, "InvalidArgument")


def test_disabled_names_sigv4() -> None:
    error = sigv2.disabled()
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert "Signature Version 4" in error.message
