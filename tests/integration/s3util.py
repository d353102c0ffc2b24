"""Small helpers shared by the multipart, versioning, copy and range integration tests."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.sigv4_signing import sign_headers
from tests.checksum_reference import b64
from tests.integration.nodeproc import ACCESS_KEY, REGION, SECRET_KEY

MiB = 1 << 20


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a boto3 ClientError."""
    response = excinfo.value.response
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), str(response["Error"]["Code"])


def error_headers(excinfo: pytest.ExceptionInfo[ClientError]) -> dict[str, str]:
    headers: dict[str, str] = excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]
    return headers


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    """The raw (lower-cased) HTTP headers of a boto3 response."""
    headers: dict[str, str] = response["ResponseMetadata"]["HTTPHeaders"]
    return headers


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(parts: Sequence[bytes]) -> str:
    """S3's multipart ETag, computed here independently of the server."""
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def upload_checksummed_parts(
    s3: Any, bucket: str, key: str, upload_id: str, algorithm: str, parts: Sequence[bytes]
) -> list[dict[str, Any]]:
    """Upload ``parts`` with boto3 computing ``algorithm``; check each returned checksum
    against the reference and return the CompleteMultipartUpload part list with them."""
    listed: list[dict[str, Any]] = []
    for number, data in enumerate(parts, start=1):
        part = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm=algorithm,
        )
        value = part[f"Checksum{algorithm}"]
        assert value == b64(algorithm, data)
        listed.append({"PartNumber": number, "ETag": part["ETag"], f"Checksum{algorithm}": value})
    return listed


def send(
    url: str,
    method: str,
    path: str,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    payload_hash: str | None = None,
    timeout_s: float = 30,
) -> httpx.Response:
    """A SigV4-signed request; ``path`` and ``query`` are sent as given (already encoded)."""
    full = f"{url}{path}" + (f"?{query}" if query else "")
    signed = _signed(method, full, headers, body, payload_hash)
    return httpx.request(method, full, headers=signed, content=body, timeout=timeout_s)


def send_on(
    client: httpx.Client, method: str, path: str, query: str = "", body: bytes = b""
) -> httpx.Response:
    """:func:`send` over ``client``'s connection (its ``base_url`` names the node)."""
    full = f"{client.base_url}".rstrip("/") + path + (f"?{query}" if query else "")
    signed = _signed(method, full, None, body, None)
    return client.request(method, full, headers=signed, content=body)


def _signed(
    method: str, url: str, headers: dict[str, str] | None, body: bytes, payload_hash: str | None
) -> dict[str, str]:
    return sign_headers(
        method,
        url,
        headers or {},
        ACCESS_KEY,
        SECRET_KEY,
        REGION,
        payload_hash or hashlib.sha256(body).hexdigest(),
    )


def error_fields(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    fields = {child.tag: child.text or "" for child in root}
    assert set(fields) >= {"Code", "Message", "Resource", "RequestId"}
    assert fields["RequestId"] == response.headers["x-amz-request-id"]
    return fields


def expect_error(response: httpx.Response, status: int, code: str) -> str:
    """Check status and code; return the message."""
    assert response.status_code == status, response.text
    fields = error_fields(response)
    assert fields["Code"] == code, response.text
    return fields["Message"]


def xml_code(response: httpx.Response) -> str:
    """The <Code> of an S3 XML error document ('' if there is none)."""
    text = response.text
    start = text.find("<Code>")
    end = text.find("</Code>")
    return text[start + len("<Code>") : end] if 0 <= start < end else ""


def expected_listing(
    keys: list[str], prefix: str = "", delimiter: str = ""
) -> tuple[list[str], list[str]]:
    """The model: (keys, common prefixes) S3 lists for ``keys`` (in S3 order), unpaginated."""
    contents: list[str] = []
    prefixes: list[str] = []
    for key in keys:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common not in prefixes:
                prefixes.append(common)
        else:
            contents.append(key)
    return contents, prefixes
