"""CORS against a real node: bucket configuration through boto3, unsigned OPTIONS preflights
through httpx, and the CORS headers on actual (signed) requests."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_signing import sign_headers
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY, NodeProcess

RULES: dict[str, Any] = {
    "CORSRules": [
        {
            "ID": "app",
            "AllowedOrigins": ["https://app.example.com"],
            "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["Content-Type", "x-amz-*"],
            "ExposeHeaders": ["ETag", "x-amz-version-id"],
            "MaxAgeSeconds": 600,
        },
        {"AllowedOrigins": ["http://*.example.org"], "AllowedMethods": ["GET"]},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"], "AllowedHeaders": ["*"]},
    ]
}


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = excinfo.value.response
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), str(response["Error"]["Code"])


def preflight(
    url: str, path: str, origin: str | None, method: str | None, headers: str | None = None
) -> httpx.Response:
    sent = {}
    if origin is not None:
        sent["Origin"] = origin
    if method is not None:
        sent["Access-Control-Request-Method"] = method
    if headers is not None:
        sent["Access-Control-Request-Headers"] = headers
    return httpx.options(f"{url}{path}", headers=sent, timeout=10)


def signed(
    url: str, method: str, path: str, query: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    full = f"{url}{path}" + (f"?{query}" if query else "")
    sent = sign_headers(
        method, full, headers or {}, ACCESS_KEY, SECRET_KEY, REGION, hashlib.sha256().hexdigest()
    )
    return httpx.request(method, full, headers=sent, timeout=10)


def error_code(response: httpx.Response) -> str:
    return response.text.split("<Code>")[1].split("</Code>")[0]


@pytest.fixture
def cors_bucket(s3: Any, bucket: str) -> str:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    s3.put_object(Bucket=bucket, Key="obj", Body=b"hello")
    return bucket


# ---- configuration ----------------------------------------------------------------------------


def test_put_get_delete_bucket_cors(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_of(excinfo) == (404, "NoSuchCORSConfiguration")
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES["CORSRules"]
    deleted = s3.delete_bucket_cors(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_of(excinfo) == (404, "NoSuchCORSConfiguration")


@pytest.mark.parametrize(
    ("rules", "code"),
    [
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["http://*.*.com"], "AllowedMethods": ["GET"]}], "InvalidRequest"),
        ([{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}] * 101, "MalformedXML"),
    ],
    ids=["bad-method", "two-wildcards", "too-many-rules"],
)
def test_invalid_cors_configuration(
    s3: Any, bucket: str, rules: list[dict[str, Any]], code: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert error_of(excinfo) == (400, code)
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_of(excinfo) == (404, "NoSuchCORSConfiguration")


@pytest.mark.parametrize(
    "body",
    [
        b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule>"
        b"</CORSConfiguration>",
        b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule>"
        b"</CORSConfiguration>",
        b"<CORSConfiguration/>",
        b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>",
        b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET"
        b"</AllowedMethod><Bogus/></CORSRule></CORSConfiguration>",
        b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET"
        b"</AllowedMethod><MaxAgeSeconds>soon</MaxAgeSeconds></CORSRule></CORSConfiguration>",
    ],
    ids=["no-origin", "no-method", "no-rules", "unclosed", "unknown-element", "bad-max-age"],
)
def test_malformed_cors_xml(node: NodeProcess, bucket: str, body: bytes) -> None:
    full = f"{node.url}/{bucket}?cors"
    headers = sign_headers(
        "PUT", full, {}, ACCESS_KEY, SECRET_KEY, REGION, hashlib.sha256(body).hexdigest()
    )
    response = httpx.put(full, headers=headers, content=body, timeout=10)
    assert response.status_code == 400, response.text
    assert error_code(response) == "MalformedXML"


# ---- preflight --------------------------------------------------------------------------------


def test_preflight_allowed(node: NodeProcess, cors_bucket: str) -> None:
    response = preflight(
        node.url,
        f"/{cors_bucket}/obj",
        "https://app.example.com",
        "PUT",
        "content-type, X-Amz-Date",
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert response.headers["access-control-allow-methods"] == "GET, PUT"
    assert response.headers["access-control-allow-headers"] == "content-type, x-amz-date"
    assert response.headers["access-control-expose-headers"] == "ETag, x-amz-version-id"
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]
    assert response.content == b""


def test_preflight_on_the_bucket_itself(node: NodeProcess, cors_bucket: str) -> None:
    response = preflight(node.url, f"/{cors_bucket}", "https://app.example.com", "GET")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("origin", "method", "headers"),
    [
        ("https://evil.example.com", "GET", None),  # origin not listed
        ("https://app.example.com", "DELETE", None),  # method not allowed by the rule
        ("https://app.example.com", "GET", "authorization"),  # header not allowed
        ("http://example.org", "GET", None),  # the wildcard needs a subdomain
        ("https://a.example.org", "GET", None),  # wrong scheme for the wildcard
    ],
    ids=["origin", "method", "header", "bare-domain", "scheme"],
)
def test_preflight_denied(
    node: NodeProcess, cors_bucket: str, origin: str, method: str, headers: str | None
) -> None:
    response = preflight(node.url, f"/{cors_bucket}/obj", origin, method, headers)
    assert response.status_code == 403, response.text
    assert error_code(response) == "AccessForbidden"
    assert "CORSResponse" in response.text
    assert "access-control-allow-origin" not in response.headers


def test_preflight_wildcard_origin(node: NodeProcess, cors_bucket: str) -> None:
    response = preflight(node.url, f"/{cors_bucket}/obj", "http://cdn.example.org", "GET")
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "http://cdn.example.org"
    assert "access-control-max-age" not in response.headers


def test_preflight_star_origin_and_wildcard_header(node: NodeProcess, cors_bucket: str) -> None:
    response = preflight(
        node.url, f"/{cors_bucket}/obj", "https://anyone.test", "HEAD", "X-Custom-Thing, Range"
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-headers"] == "x-custom-thing, range"
    assert "access-control-allow-credentials" not in response.headers


def test_preflight_header_names_are_case_insensitive(node: NodeProcess, cors_bucket: str) -> None:
    response = preflight(
        node.url, f"/{cors_bucket}/obj", "https://app.example.com", "GET", "CONTENT-TYPE"
    )
    assert response.status_code == 200, response.text


def test_preflight_without_configuration(node: NodeProcess, s3: Any, bucket: str) -> None:
    response = preflight(node.url, f"/{bucket}/k", "https://app.example.com", "GET")
    assert response.status_code == 403, response.text
    assert error_code(response) == "AccessForbidden"


def test_preflight_on_missing_bucket(node: NodeProcess) -> None:
    response = preflight(node.url, "/no-such-cors-bucket/k", "https://app.example.com", "GET")
    assert response.status_code == 403, response.text


def test_preflight_needs_origin_and_method(node: NodeProcess, cors_bucket: str) -> None:
    response = preflight(node.url, f"/{cors_bucket}/obj", None, "GET")
    assert response.status_code == 400
    assert error_code(response) == "BadRequest"
    response = preflight(node.url, f"/{cors_bucket}/obj", "https://app.example.com", None)
    assert response.status_code == 400
    assert error_code(response) == "BadRequest"


def test_configuration_changes_apply_at_once(node: NodeProcess, s3: Any, cors_bucket: str) -> None:
    path = f"/{cors_bucket}/obj"
    assert preflight(node.url, path, "https://app.example.com", "GET").status_code == 200
    s3.delete_bucket_cors(Bucket=cors_bucket)
    assert preflight(node.url, path, "https://app.example.com", "GET").status_code == 403
    s3.put_bucket_cors(Bucket=cors_bucket, CORSConfiguration=RULES)
    assert preflight(node.url, path, "https://app.example.com", "GET").status_code == 200


def test_bucket_recreated_without_cors_loses_it_within_a_second(
    node: NodeProcess, s3: Any, cors_bucket: str
) -> None:
    s3.delete_object(Bucket=cors_bucket, Key="obj")
    s3.delete_bucket(Bucket=cors_bucket)
    s3.create_bucket(Bucket=cors_bucket)
    time.sleep(1.1)
    response = preflight(node.url, f"/{cors_bucket}/k", "https://app.example.com", "GET")
    assert response.status_code == 403


# ---- actual requests --------------------------------------------------------------------------


def test_actual_request_gets_cors_headers(node: NodeProcess, cors_bucket: str) -> None:
    response = signed(
        node.url, "GET", f"/{cors_bucket}/obj", headers={"Origin": "https://app.example.com"}
    )
    assert response.status_code == 200
    assert response.content == b"hello"
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert response.headers["access-control-expose-headers"] == "ETag, x-amz-version-id"
    assert "Origin" in response.headers["vary"]


def test_actual_error_response_gets_cors_headers(node: NodeProcess, cors_bucket: str) -> None:
    response = signed(
        node.url, "GET", f"/{cors_bucket}/missing", headers={"Origin": "https://app.example.com"}
    )
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"


def test_actual_request_not_matching_gets_no_cors_headers(
    node: NodeProcess, cors_bucket: str
) -> None:
    for origin, method in (("https://evil.example.com", "GET"), ("http://x.example.org", "PUT")):
        response = signed(node.url, method, f"/{cors_bucket}/obj", headers={"Origin": origin})
        assert "access-control-allow-origin" not in response.headers
    response = signed(node.url, "GET", f"/{cors_bucket}/obj")
    assert "access-control-allow-origin" not in response.headers


def test_unauthenticated_actual_request_is_still_denied(
    node: NodeProcess, cors_bucket: str
) -> None:
    response = httpx.get(
        f"{node.url}/{cors_bucket}/obj", headers={"Origin": "https://app.example.com"}, timeout=10
    )
    assert response.status_code == 403
    assert response.content != b"hello"
