"""AWS Signature Version 2 (HMAC-SHA1) for S3: verification (server) and signing (tests).

boto3 still presigns URLs with SigV2 by default (``AWSAccessKeyId``, ``Signature`` and
``Expires`` in the query), and older tools sign ``Authorization: AWS AccessKeyId:Signature``
headers. Both forms are checked here; SigV4 stays in :mod:`api.sigv4`, and api/app.py picks
the scheme with :func:`applies`.

The string to sign is AWS's ("Signing and authenticating REST requests")::

    VERB \\n Content-MD5 \\n Content-Type \\n Date \\n CanonicalizedAmzHeaders CanonicalizedResource

* Date is the ``Date`` header, empty when ``x-amz-date`` is sent (the time then comes from
  x-amz-date, which is signed among the amz headers), and the ``Expires`` value for the
  query form. Clients that keep the Date header's value next to an x-amz-date (MinIO's
  reading of the rule) are accepted too: both strings are tried.
* CanonicalizedAmzHeaders: every ``x-amz-*`` header, name lower-cased, sorted, repeated
  values trimmed and joined with ',', folded whitespace unfolded; each line ends with \\n.
* CanonicalizedResource: ``/bucket`` for a virtual-hosted request, then the path exactly as
  sent (still percent-encoded), then the sub-resources of :data:`SUBRESOURCES` present in
  the query, sorted by name, with their decoded values (botocore's ``HmacV1Auth``, the
  de-facto reference, and a superset of the list in AWS's documentation).

There is no payload hash in SigV2: the body is covered only by Content-MD5 when the client
sends one (checked by the handlers as for any request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from api.errors import S3Error
from api.sigv4 import (
    ONE_MECHANISM_ONLY,
    AuthContext,
    check_skew,
    is_sha256_hex,
    iso_time,
    parse_amz_date,
    signatures_equal,
)
from api.sigv4_canonical import STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD

ALGORITHM: Final = "AWS"
# botocore.auth.HmacV1Auth.QSAOfInterest: the query parameters that are signed.
SUBRESOURCES: Final = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)
_QUERY_PARAMS: Final = ("AWSAccessKeyId", "Signature", "Expires")
_FOLDING: Final = re.compile(r"\s*\r?\n\s*")
# What may become a header (RFC 9110 token; no control characters in the value).
_HEADER_NAME: Final = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_HEADER_VALUE: Final = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_SIGNATURE_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
DISABLED_MESSAGE: Final = (
    "SigV2 is disabled on this node; sign requests with AWS Signature Version 4 (AWS4-HMAC-SHA256)."
)


@dataclass(frozen=True)
class SigV2Request:
    """What SigV2 verification needs from an HTTP request."""

    method: str
    raw_path: str  # the path as sent, still percent-encoded, e.g. "/bucket/a%20b"
    query_string: str  # raw query string as received, no "?"
    headers: Mapping[str, str]  # lower-case names; repeated values trimmed, joined with ","
    virtual_bucket: str | None = None  # the bucket named by the Host, if virtual-hosted


@dataclass(frozen=True)
class _Parsed:
    access_key: str
    signature: str
    date_lines: tuple[str, ...]  # candidate Date elements of the string to sign
    request_time: datetime | None  # header form: when it was signed
    expires: int | None  # query form: epoch seconds after which it is refused


# --------------------------------------------------------------------------------------
# Which scheme
# --------------------------------------------------------------------------------------


def _query_names(query_string: str) -> set[str]:
    return {unquote(part.partition("=")[0]) for part in query_string.split("&") if part}


def applies(headers: Mapping[str, str], query_string: str) -> bool:
    """True when the request is signed with SigV2 (``Authorization: AWS ...`` or the query).

    A SigV4 presigned query or a SigV4 Authorization header sends the request to SigV4's
    verification, which refuses a second mechanism with AWS's InvalidArgument.
    """
    names = _query_names(query_string)
    if "X-Amz-Algorithm" in names or "X-Amz-Signature" in names:
        return False
    authorization = headers.get("authorization")
    if authorization is not None:
        return authorization.strip().split(" ", 1)[0] == ALGORITHM
    return "AWSAccessKeyId" in names or {"Signature", "Expires"} <= names


def disabled() -> S3Error:
    """The refusal of every SigV2 request on a node started with ``--sigv2 off``."""
    return S3Error("AccessDenied", DISABLED_MESSAGE)


# --------------------------------------------------------------------------------------
# The string to sign
# --------------------------------------------------------------------------------------


def canonical_amz_headers(headers: Mapping[str, str]) -> str:
    """``name:value\\n`` for every x-amz-* header; ``headers`` has lower-case names."""
    return "".join(
        f"{name}:{_FOLDING.sub(' ', headers[name].strip())}\n"
        for name in sorted(headers)
        if name.startswith("x-amz-")
    )


def canonical_resource(raw_path: str, query_string: str, virtual_bucket: str | None) -> str:
    """The bucket (virtual-hosted), the path as sent and the signed sub-resources."""
    resource = (f"/{virtual_bucket}" if virtual_bucket else "") + (raw_path or "/")
    subresources = []
    for part in query_string.split("&"):
        name, sep, value = part.partition("=")
        if name in SUBRESOURCES:
            subresources.append((name, f"{name}={unquote(value)}" if sep else name))
    subresources.sort(key=lambda item: item[0])  # by name only, stable (as botocore)
    if subresources:
        resource += "?" + "&".join(text for _, text in subresources)
    return resource


def string_to_sign(
    method: str,
    headers: Mapping[str, str],
    date: str,
    resource: str,
) -> str:
    """AWS's StringToSign; ``date`` is the Date element (Date, "" or Expires)."""
    lower = {name.lower(): value for name, value in headers.items()}
    return "".join(
        [
            f"{method.upper()}\n",
            f"{lower.get('content-md5', '').strip()}\n",
            f"{lower.get('content-type', '').strip()}\n",
            f"{date}\n",
            canonical_amz_headers(lower),
            resource,
        ]
    )


def sign(secret_key: str, text: str) -> str:
    """base64(HMAC-SHA1(secret, UTF-8 text)); undecodable header bytes are kept as sent."""
    digest = hmac.new(
        secret_key.encode("utf-8"), text.encode("utf-8", "surrogateescape"), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


def verify(
    request: SigV2Request,
    secret_for: Callable[[str], str | None],
    now: datetime | None = None,
) -> AuthContext:
    """Check a SigV2 request (header or query form); raise S3Error for anything wrong."""
    parsed = _parse(request)
    secret = secret_for(parsed.access_key)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            details={"AWSAccessKeyId": parsed.access_key},
        )
    _check_time(parsed, now or datetime.now(UTC))
    headers = request.headers
    if parsed.expires is not None:
        headers = {**hoisted_headers(request.query_string, headers), **headers}
    texts = [
        string_to_sign(request.method, headers, date, resource)
        for resource in _resources(request)
        for date in parsed.date_lines
    ]
    if not any(signatures_equal(sign(secret, text), parsed.signature) for text in texts):
        raise S3Error(
            "SignatureDoesNotMatch",
            _SIGNATURE_MISMATCH,
            details={
                "AWSAccessKeyId": parsed.access_key,
                "StringToSign": texts[0],
                "SignatureProvided": parsed.signature,
            },
        )
    return AuthContext(
        access_key=parsed.access_key,
        payload_hash=_payload_hash(request.headers),
        amz_date="",
        scope="",
        signing_key=b"",
        seed_signature=parsed.signature,
        presigned=parsed.expires is not None,
    )


def hoisted_headers(query_string: str, headers: Mapping[str, str]) -> dict[str, str]:
    """Headers a SigV2 presigned URL carries as query parameters, that the request lacks.

    botocore's SigV2 presigning signs ``x-amz-*``, Content-Type and Content-MD5 and moves
    them into the URL (``?x-amz-meta-a=1&content-type=text%2Fcsv``), so that a plain HTTP
    client can use it. They count as the request's headers (names lower-cased, values
    percent-decoded); a header actually sent wins.
    """
    found: dict[str, str] = {}
    for part in query_string.split("&"):
        raw_name, _, raw_value = part.partition("=")
        name = unquote(raw_name).lower()
        value = unquote(raw_value)
        hoistable = name.startswith("x-amz-") or name in ("content-type", "content-md5")
        valid = _HEADER_NAME.fullmatch(name) and _HEADER_VALUE.fullmatch(value)
        if hoistable and valid and name not in headers and name not in found:
            found[name] = value
    return found


def _resources(request: SigV2Request) -> list[str]:
    """The CanonicalizedResource, plus ``/bucket/`` for a path-style bucket request sent as
    ``/bucket``: botocore signs the bucket with a trailing slash, other clients without."""
    resource = canonical_resource(request.raw_path, request.query_string, request.virtual_bucket)
    path = request.raw_path
    if request.virtual_bucket is None and path.count("/") == 1 and len(path) > 1:
        return [resource, canonical_resource(path + "/", request.query_string, None)]
    return [resource]


def _payload_hash(headers: Mapping[str, str]) -> str:
    """A hex x-amz-content-sha256 (signed among the amz headers) is checked against the body
    and unsigned aws-chunked framing with trailing checksums is kept; anything else is
    UNSIGNED-PAYLOAD: SigV2 has no chunk signatures to check."""
    declared = headers.get("x-amz-content-sha256", "")
    if is_sha256_hex(declared) or declared == STREAMING_UNSIGNED_PAYLOAD_TRAILER:
        return declared
    return UNSIGNED_PAYLOAD


def _parse(request: SigV2Request) -> _Parsed:
    authorization = request.headers.get("authorization")
    if authorization is None:
        return _parse_query(request.query_string)
    if _query_names(request.query_string) & {"AWSAccessKeyId", "Signature"}:
        raise S3Error("InvalidArgument", ONE_MECHANISM_ONLY)
    return _parse_header(authorization, request.headers)


def _parse_header(authorization: str, headers: Mapping[str, str]) -> _Parsed:
    _, _, credentials = authorization.strip().partition(" ")
    access_key, colon, signature = credentials.strip().partition(":")
    if not colon or not access_key or not signature:
        raise S3Error(
            "InvalidArgument",
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            details={"ArgumentName": "Authorization", "ArgumentValue": authorization},
        )
    request_time = _header_time(headers)
    date_header = headers.get("date", "").strip()
    if "x-amz-date" in headers:
        # AWS: the Date element is empty; MinIO-style signers keep the Date header's value.
        date_lines: tuple[str, ...] = ("", date_header) if date_header else ("",)
    else:
        date_lines = (date_header,)
    return _Parsed(access_key, signature.strip(), date_lines, request_time, None)


def _header_time(headers: Mapping[str, str]) -> datetime:
    """x-amz-date (RFC 1123 or ISO 8601 basic) if sent, else Date; AccessDenied if neither."""
    raw = headers.get("x-amz-date", headers.get("date"))
    when = _parse_http_date(raw.strip()) if raw is not None else None
    if when is None:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    return when


def _parse_http_date(text: str) -> datetime | None:
    when = parse_amz_date(text)
    if when is not None:
        return when
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse_query(query_string: str) -> _Parsed:
    params: dict[str, str] = {}
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        name = unquote(name)
        if name in _QUERY_PARAMS:
            if name in params:
                raise S3Error("InvalidArgument", f"{name} appears more than once.")
            params[name] = unquote(value)
    if any(not params.get(name) for name in _QUERY_PARAMS):
        raise S3Error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
            "parameters",
        )
    expires_text = params["Expires"]
    if not re.fullmatch(r"\d{1,12}", expires_text):
        raise S3Error(
            "AccessDenied", f"Invalid date (should be seconds since epoch): {expires_text}"
        )
    return _Parsed(
        params["AWSAccessKeyId"], params["Signature"], (expires_text,), None, int(expires_text)
    )


def _check_time(parsed: _Parsed, now: datetime) -> None:
    now = now.astimezone(UTC)
    if parsed.expires is not None:
        if now.timestamp() > parsed.expires:
            raise S3Error(
                "AccessDenied",
                "Request has expired",
                details={
                    "Expires": iso_time(datetime.fromtimestamp(parsed.expires, UTC)),
                    "ServerTime": iso_time(now),
                },
            )
        return
    assert parsed.request_time is not None
    check_skew(parsed.request_time, now)


# --------------------------------------------------------------------------------------
# Client side (tests): must agree with verify()
# --------------------------------------------------------------------------------------


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    access_key: str,
    secret_key: str,
    now: datetime | None = None,
) -> dict[str, str]:
    """``headers`` plus Date and ``Authorization: AWS key:signature`` for a path-style ``url``."""
    parts = urlsplit(url)
    result = {name: value for name, value in headers.items() if name.lower() != "authorization"}
    if not any(name.lower() in ("date", "x-amz-date") for name in result):
        result["Date"] = formatdate((now or datetime.now(UTC)).timestamp(), usegmt=True)
    lower = {name.lower(): value for name, value in result.items()}
    date = "" if "x-amz-date" in lower else lower["date"]
    resource = canonical_resource(parts.path or "/", parts.query, None)
    signature = sign(secret_key, string_to_sign(method, lower, date, resource))
    result["Authorization"] = f"{ALGORITHM} {access_key}:{signature}"
    return result


def presign_url(method: str, url: str, access_key: str, secret_key: str, expires: int) -> str:
    """``url`` (path-style) with the SigV2 query parameters; ``expires`` is epoch seconds."""
    parts = urlsplit(url)
    resource = canonical_resource(parts.path or "/", parts.query, None)
    signature = sign(secret_key, string_to_sign(method, {}, str(expires), resource))
    auth = (
        f"AWSAccessKeyId={quote(access_key, safe='')}&Expires={expires}"
        f"&Signature={quote(signature, safe='')}"
    )
    query = f"{parts.query}&{auth}" if parts.query else auth
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}"
