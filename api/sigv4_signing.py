"""AWS Signature Version 4, client side: sign a request's headers or presign a URL.

Used in production by the replication peer client (node/peers.py) and by tests and
benchmarks; it must agree with :func:`api.sigv4.verify`, whose building blocks
(:mod:`api.sigv4_canonical`) it shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final
from urllib.parse import unquote, urlsplit

from api.sigv4_canonical import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    SERVICE,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    as_utc,
    canonical_query,
    canonical_request,
    canonical_uri,
    presigned_payload_hash,
    signature,
    signing_key,
    string_to_sign,
    uri_encode,
)

# Headers a client must not sign: proxies and the HTTP stack rewrite them (botocore's list).
UNSIGNABLE_HEADERS: Final = frozenset({"authorization", "expect", "user-agent", "x-amzn-trace-id"})


def _host_of(url: str) -> tuple[str, str, str]:
    """(host header value, decoded path, raw query) of an absolute URL.

    The default port is left out of the host, as HTTP clients (httpx, botocore) send it.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    return host, unquote(parts.path or "/", errors="surrogateescape"), parts.query


def _amz_date(now: datetime | None) -> str:
    return as_utc(now or datetime.now(UTC)).strftime(AMZ_DATE_FORMAT)


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
    payload_hash: str = UNSIGNED_PAYLOAD,
    now: datetime | None = None,
) -> dict[str, str]:
    """Headers to send for ``url`` (path and query encoded as sent), signed in header form.

    Every given header is signed except the ones HTTP stacks rewrite (User-Agent, Expect...).
    """
    host, path, query = _host_of(url)
    amz_date = _amz_date(now)
    replaced = ("x-amz-date", "x-amz-content-sha256", "authorization")
    result = {name: value for name, value in headers.items() if name.lower() not in replaced}
    if not any(name.lower() == "host" for name in result):
        result["host"] = host
    result["x-amz-date"] = amz_date
    result["x-amz-content-sha256"] = payload_hash
    lower = {name.lower(): value for name, value in result.items()}
    signed = sorted(name for name in lower if name not in UNSIGNABLE_HEADERS)
    scope = f"{amz_date[:8]}/{region}/{SERVICE}/{TERMINATOR}"
    text = canonical_request(
        method, canonical_uri(path), canonical_query(query), lower, signed, payload_hash
    )
    key = signing_key(secret_key, amz_date[:8], region)
    sig = signature(key, string_to_sign(amz_date, scope, text))
    result["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={sig}"
    )
    return result


def presign_url(
    method: str,
    url: str,
    access_key: str,
    secret_key: str,
    expires_s: int = 3600,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> str:
    """``url`` with X-Amz-* query parameters that authorize ``method`` for ``expires_s``."""
    host, path, query = _host_of(url)
    amz_date = _amz_date(now)
    scope = f"{amz_date[:8]}/{region}/{SERVICE}/{TERMINATOR}"
    auth_params = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_s),
        "X-Amz-SignedHeaders": "host",
    }
    encoded = "&".join(
        f"{uri_encode(name, keep_slash=False)}={uri_encode(value, keep_slash=False)}"
        for name, value in auth_params.items()
    )
    full_query = f"{query}&{encoded}" if query else encoded
    text = canonical_request(
        method,
        canonical_uri(path),
        canonical_query(full_query),
        {"host": host},
        ["host"],
        presigned_payload_hash(query),
    )
    key = signing_key(secret_key, amz_date[:8], region)
    sig = signature(key, string_to_sign(amz_date, scope, text))
    base = url.split("?", 1)[0]
    return f"{base}?{full_query}&X-Amz-Signature={sig}"
