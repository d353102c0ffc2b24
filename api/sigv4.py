"""AWS Signature Version 4 for S3, server side: verification of the header and presigned forms.

* :func:`verify` checks a request's header (``Authorization: AWS4-HMAC-SHA256 ...``) or
  presigned-URL (``X-Amz-Signature`` in the query) signature. It returns None for an
  anonymous request, an :class:`AuthContext` for a good signature, and raises
  :class:`~api.errors.S3Error` for everything else.
* The body is not hashed by :func:`verify` because it has not arrived yet. For a hex
  ``x-amz-content-sha256`` the caller feeds the body through
  ``payload_sha256_verifier(ctx.payload_hash)`` (a :class:`PayloadHasher`: ``update(data)``
  per piece, then ``verify()``, which raises ``XAmzContentSHA256Mismatch``). Streaming
  (``STREAMING-*``) bodies go through :class:`api.chunked.ChunkedDecoder` instead, which
  checks the chunk signatures seeded by ``ctx.seed_signature``. ``UNSIGNED-PAYLOAD`` needs
  neither. :func:`is_sha256_hex` tells the cases apart.

The algorithm's building blocks (canonical request, string to sign, signing key, chunk and
trailer signatures) live in :mod:`api.sigv4_canonical`; the client side, which must agree
with :func:`verify`, in :mod:`api.sigv4_signing` (``sign_headers``, ``presign_url``: the
peer client signs replication calls with them).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from typing import Final

from api.errors import S3Error
from api.sigv4_canonical import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    SERVICE,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    as_utc,
    canonical_query,
    canonical_request,
    canonical_uri,
    presigned_payload_hash,
    query_pairs,
    signature,
    signing_key,
    string_to_sign,
)

# AWS allows 15 minutes of clock difference, and presigned URLs live at most 7 days.
MAX_SKEW: Final = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES_S: Final = 7 * 24 * 3600

_PAYLOAD_CONSTANTS: Final = frozenset(
    {
        UNSIGNED_PAYLOAD,
        STREAMING_PAYLOAD,
        STREAMING_PAYLOAD_TRAILER,
        STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    }
)
_SHA256_HEX: Final = re.compile(r"[0-9a-fA-F]{64}")
_PRESIGN_PARAMS: Final = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)
ONE_MECHANISM_ONLY: Final = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)
# The payload hash is bound to the signature on its own (last line of the canonical request,
# or UNSIGNED-PAYLOAD), so it is the one x-amz-* header that may be sent unsigned.
_MAY_BE_UNSIGNED: Final = frozenset({"x-amz-content-sha256"})
_SIGNATURE_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


@dataclass(frozen=True)
class SignableRequest:
    """What verification needs from an HTTP request."""

    method: str
    path: str  # percent-DECODED request path, e.g. "/bucket/a b/c"
    query_string: str  # raw query string as received (still percent-encoded), no "?"
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ","


@dataclass(frozen=True)
class AuthContext:
    """A verified request's credentials, kept for checking the body that follows."""

    access_key: str
    payload_hash: str  # x-amz-content-sha256: hex digest, UNSIGNED-PAYLOAD or STREAMING-*
    amz_date: str  # "20130524T000000Z"
    scope: str  # "20130524/us-east-1/s3/aws4_request"
    signing_key: bytes
    seed_signature: str  # the request's own signature: seed of the chunk-signature chain
    presigned: bool


@dataclass(frozen=True)
class _Credential:
    access_key: str
    date: str
    region: str
    service: str
    terminator: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


@dataclass(frozen=True)
class _ParsedAuth:
    """The signature parameters of either form, before any of them is trusted."""

    credential: _Credential
    signed_headers: list[str]
    signature: str
    amz_date: str
    request_time: datetime
    payload_hash: str
    presigned: bool
    expires_s: int  # presigned only; 0 for the header form


def signatures_equal(expected: str, provided: str) -> bool:
    """Constant-time comparison; bytes so non-ASCII input cannot raise TypeError."""
    return hmac.compare_digest(expected.encode("utf-8"), provided.encode("utf-8", "replace"))


def is_sha256_hex(payload_hash: str) -> bool:
    """True when x-amz-content-sha256 is an actual digest the body must be checked against."""
    return _SHA256_HEX.fullmatch(payload_hash) is not None


# --------------------------------------------------------------------------------------
# Payload hash check (the body arrives after verify())
# --------------------------------------------------------------------------------------


class PayloadHasher:
    """Hashes a body as it streams and checks it against x-amz-content-sha256."""

    def __init__(self, expected_hex: str) -> None:
        self._expected = expected_hex.lower()
        self._hash = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def verify(self) -> None:
        if not hmac.compare_digest(self._hash.hexdigest().encode(), self._expected.encode()):
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )


def payload_sha256_verifier(expected_hex: str) -> PayloadHasher:
    return PayloadHasher(expected_hex)


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


def verify(
    request: SignableRequest,
    secret_for: Callable[[str], str | None],
    region: str,
    now: datetime | None = None,
) -> AuthContext | None:
    """Check the request's SigV4 signature; None when it carries no authentication at all."""
    parsed = _parse_auth(request, region)
    if parsed is None:
        return None
    secret = secret_for(parsed.credential.access_key)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    _check_time(parsed, as_utc(now or datetime.now(UTC)))
    _check_amz_headers_signed(request.headers, parsed.signed_headers)
    cred = parsed.credential
    key = signing_key(secret, cred.date, cred.region, cred.service)
    exclude = ("X-Amz-Signature",) if parsed.presigned else ()
    text = canonical_request(
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query_string, exclude),
        request.headers,
        parsed.signed_headers,
        parsed.payload_hash,
    )
    sts = string_to_sign(parsed.amz_date, cred.scope, text)
    if not signatures_equal(signature(key, sts), parsed.signature):
        # AWS shows what it signed, so that a client's author can find the difference.
        raise S3Error(
            "SignatureDoesNotMatch",
            _SIGNATURE_MISMATCH,
            details={
                "AWSAccessKeyId": cred.access_key,
                "StringToSign": sts,
                "SignatureProvided": parsed.signature,
                "CanonicalRequest": text,
            },
        )
    return AuthContext(
        access_key=cred.access_key,
        payload_hash=parsed.payload_hash,
        amz_date=parsed.amz_date,
        scope=cred.scope,
        signing_key=key,
        seed_signature=parsed.signature,
        presigned=parsed.presigned,
    )


def _check_amz_headers_signed(headers: Mapping[str, str], signed_headers: list[str]) -> None:
    """Refuse x-amz-* headers left out of the signature, header form and presigned alike.

    AWS does, so that nobody can add metadata, an ACL or a copy source to a request signed
    by someone else (for presigned URLs AWS's documentation requires every x-amz-* header
    to be signed).
    """
    signed = set(signed_headers)
    unsigned = sorted(
        name
        for name in headers
        if name.startswith("x-amz-") and name not in signed and name not in _MAY_BE_UNSIGNED
    )
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            details={"HeadersNotSigned": ", ".join(unsigned)},
        )


def signable_headers(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs as signatures see them: names lower-cased, repeats joined with ','.

    Values are decoded as UTF-8 (undecodable bytes kept with surrogateescape), so that the
    canonical request, encoded back to UTF-8, hashes the bytes the client sent: clients sign
    non-ASCII metadata (``x-amz-meta-name: café``) as its UTF-8 bytes. Each value is
    trimmed before joining, as botocore and AWS canonicalize repeated headers.
    """
    joined: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("utf-8", "surrogateescape").strip()
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _parse_auth(request: SignableRequest, region: str) -> _ParsedAuth | None:
    """Find which authentication the request uses and parse it; None if anonymous."""
    authorization = request.headers.get("authorization")
    query_names = {name for name, _ in query_pairs(request.query_string)}
    presigned = b"X-Amz-Algorithm" in query_names or b"X-Amz-Signature" in query_names
    sigv2_query = b"AWSAccessKeyId" in query_names and b"Signature" in query_names
    if authorization is not None and (presigned or sigv2_query):
        raise S3Error("InvalidArgument", ONE_MECHANISM_ONLY)
    if authorization is not None:
        return _parse_header_auth(request, authorization, region)
    if presigned:
        return _parse_presigned(request, region)
    if sigv2_query:
        raise _sigv2_rejected()
    return None


def _sigv2_rejected() -> S3Error:
    return S3Error(
        "AccessDenied",
        "AWS Signature Version 2 is not supported by this server; sign requests with "
        "AWS Signature Version 4 (AWS4-HMAC-SHA256).",
    )


def _header_malformed(detail: str) -> S3Error:
    return S3Error(
        "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}"
    )


def _query_malformed(detail: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", detail)


def _parse_header_auth(request: SignableRequest, authorization: str, region: str) -> _ParsedAuth:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm == "AWS":
        raise _sigv2_rejected()
    if algorithm != ALGORITHM:
        raise _header_malformed(
            f"the authorization mechanism {algorithm!r} is not supported; use {ALGORITHM}."
        )
    fields = _parse_auth_fields(rest)
    credential = parse_credential(fields["Credential"], region, _header_malformed)
    signed_headers = _parse_signed_headers(fields["SignedHeaders"], _header_malformed)
    amz_date, request_time = _header_date(request.headers)
    if credential.date != amz_date[:8]:
        raise _header_malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
    payload_hash = request.headers.get("x-amz-content-sha256")
    if payload_hash is None:
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    if payload_hash not in _PAYLOAD_CONSTANTS and not is_sha256_hex(payload_hash):
        raise S3Error(
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
            "[-TRAILER], STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid sha256 value.",
        )
    return _ParsedAuth(
        credential=credential,
        signed_headers=signed_headers,
        signature=fields["Signature"],
        amz_date=amz_date,
        request_time=request_time,
        payload_hash=payload_hash,
        presigned=False,
        expires_s=0,
    )


def _parse_auth_fields(text: str) -> dict[str, str]:
    """``Credential=..., SignedHeaders=..., Signature=...`` (any spacing) as a dict."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name or name in fields:
            raise _header_malformed(f"the component {part.strip()!r} is malformed.")
        fields[name] = value.strip()
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if name not in fields]
    if missing:
        raise _header_malformed(f"missing {', '.join(missing)}.")
    return fields


def parse_credential(text: str, region: str, error: Callable[[str], S3Error]) -> _Credential:
    parts = text.rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        raise error(
            'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/'
            'aws4_request".'
        )
    credential = _Credential(*parts)
    if not re.fullmatch(r"\d{8}", credential.date):
        raise error(f"the Credential date {credential.date!r} is not of the form YYYYMMDD.")
    if credential.region != region:
        raise error(f"the region '{credential.region}' is wrong; expecting '{region}'")
    if credential.service != SERVICE:
        raise error(f"incorrect service '{credential.service}'. This endpoint belongs to 's3'.")
    if credential.terminator != TERMINATOR:
        raise error(
            f"incorrect terminal '{credential.terminator}'. This endpoint uses 'aws4_request'."
        )
    return credential


def _parse_signed_headers(text: str, error: Callable[[str], S3Error]) -> list[str]:
    """Names in the client's order (the order it signed them in), lower-cased."""
    names = [name.strip().lower() for name in text.split(";")]
    if not all(names):
        raise error("the SignedHeaders list is malformed.")
    if "host" not in names:
        raise error("the host header must be signed.")
    return names


_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


def parse_amz_date(text: str) -> datetime | None:
    # A regex and int() instead of strptime: this runs on every request and strptime
    # costs ten times more.
    match = _AMZ_DATE.fullmatch(text)
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def _header_date(headers: Mapping[str, str]) -> tuple[str, datetime]:
    """The request time from x-amz-date, else from Date; AWS answers AccessDenied if neither."""
    when: datetime | None = None
    if "x-amz-date" in headers:
        when = parse_amz_date(headers["x-amz-date"].strip())
    elif "date" in headers:
        try:
            when = parsedate_to_datetime(headers["date"])
        except (TypeError, ValueError):
            when = None
        if when is not None:
            when = as_utc(when)
    if when is None:
        raise S3Error(
            "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
        )
    return when.strftime(AMZ_DATE_FORMAT), when


def _parse_presigned(request: SignableRequest, region: str) -> _ParsedAuth:
    params = _presign_params(request.query_string)
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _query_malformed(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    credential = parse_credential(
        params["X-Amz-Credential"],
        region,
        lambda detail: _query_malformed(f"Error parsing the X-Amz-Credential parameter; {detail}"),
    )
    signed_headers = _parse_signed_headers(params["X-Amz-SignedHeaders"], _query_malformed)
    amz_date = params["X-Amz-Date"]
    request_time = parse_amz_date(amz_date)
    if request_time is None:
        raise _query_malformed(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    if credential.date != amz_date[:8]:
        raise _query_malformed(
            "Error parsing the X-Amz-Credential parameter; Invalid credential date. "
            "Date is not the same as X-Amz-Date."
        )
    return _ParsedAuth(
        credential=credential,
        signed_headers=signed_headers,
        signature=params["X-Amz-Signature"],
        amz_date=amz_date,
        request_time=request_time,
        payload_hash=presigned_payload_hash(request.query_string),
        presigned=True,
        expires_s=_parse_expires(params["X-Amz-Expires"]),
    )


def _presign_params(query_string: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for raw_name, raw_value in query_pairs(query_string):
        name = raw_name.decode("utf-8", "replace")
        if name.startswith("X-Amz-"):
            if name in params:
                raise _query_malformed(f"{name} appears more than once.")
            params[name] = raw_value.decode("utf-8", "replace")
    if any(name not in params for name in _PRESIGN_PARAMS):
        raise _query_malformed(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters."
        )
    return params


def _parse_expires(text: str) -> int:
    """X-Amz-Expires: 0..604800 seconds, AWS's messages otherwise (0 is simply expired)."""
    if re.fullmatch(r"-\d{1,12}", text):
        raise _query_malformed("X-Amz-Expires must be non-negative")
    if not re.fullmatch(r"\d{1,12}", text):
        raise _query_malformed("X-Amz-Expires should be a number")
    expires = int(text)
    if expires > MAX_PRESIGN_EXPIRES_S:
        raise _query_malformed(
            "X-Amz-Expires must be less than a week (in seconds); that is, the given "
            f"X-Amz-Expires must be less than {MAX_PRESIGN_EXPIRES_S} seconds"
        )
    return expires


def iso_time(when: datetime) -> str:
    """The time format of AWS's error elements (ServerTime, Expires)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_skew(request_time: datetime, now: datetime) -> None:
    """RequestTimeTooSkewed, with AWS's elements, beyond 15 minutes either way."""
    if abs(now - request_time) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            details={
                "RequestTime": formatdate(request_time.timestamp(), usegmt=True),
                "ServerTime": iso_time(now),
                "MaxAllowedSkewMilliseconds": str(int(MAX_SKEW.total_seconds() * 1000)),
            },
        )


def _check_time(parsed: _ParsedAuth, now: datetime) -> None:
    if not parsed.presigned:
        check_skew(parsed.request_time, now)
        return
    if parsed.request_time - now > MAX_SKEW:
        raise S3Error("AccessDenied", "Request is not valid yet")
    expires_at = parsed.request_time + timedelta(seconds=parsed.expires_s)
    if now > expires_at:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            details={
                "X-Amz-Expires": str(parsed.expires_s),
                "Expires": iso_time(expires_at),
                "ServerTime": iso_time(now),
            },
        )
