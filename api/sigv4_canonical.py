"""AWS Signature Version 4 building blocks, shared by verification and signing.

The algorithm's constants, the canonical request (URI, query, headers), the string to sign,
the derived signing key, and the chained signatures of aws-chunked bodies (chunks and
trailers). :mod:`api.sigv4` verifies requests with them, :mod:`api.sigv4_signing` signs
them, :mod:`api.chunked` checks chunk signatures, :mod:`api.post_auth` POST policies.

Canonicalization follows S3, which differs from the generic SigV4 test suite in one way:
the URI path is neither normalized (``/a/../b`` stays) nor double-encoded. The building
blocks take a ``service`` so the published suite (service ``"service"``) can check them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final
from urllib.parse import quote, unquote_to_bytes

ALGORITHM: Final = "AWS4-HMAC-SHA256"
SERVICE: Final = "s3"
TERMINATOR: Final = "aws4_request"
UNSIGNED_PAYLOAD: Final = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER: Final = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER: Final = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()

AMZ_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"


def uri_encode(value: str | bytes, *, keep_slash: bool) -> str:
    """AWS URI-encoding: every byte but ``A-Za-z0-9-._~`` (and '/' if kept) as %XX."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return quote(raw, safe="/~" if keep_slash else "~")


def canonical_uri(path: str) -> str:
    """S3's canonical URI: the decoded path re-encoded once, with no dot-segment removal."""
    return uri_encode(path or "/", keep_slash=True)


def query_pairs(query_string: str) -> list[tuple[bytes, bytes]]:
    """Decoded (name, value) pairs in order; a parameter without '=' has an empty value.

    '+' decodes to a space (as S3 does): Go's url.Values sends a space as '+' but signs it
    as %20, and every client encodes a literal '+' as %2B.
    """
    pairs: list[tuple[bytes, bytes]] = []
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_unquote_plus(name), _unquote_plus(value)))
    return pairs


def _unquote_plus(text: str) -> bytes:
    """Percent-decode to bytes; raw non-ASCII characters count as their UTF-8 bytes."""
    return unquote_to_bytes(text.replace("+", " ").encode("utf-8", "surrogateescape"))


def canonical_query(query_string: str, exclude: Iterable[str] = ()) -> str:
    """Canonical query string: decode, re-encode (incl. '/'), sort by name then value."""
    skip = {name.encode() for name in exclude}
    encoded = sorted(
        (uri_encode(name, keep_slash=False), uri_encode(value, keep_slash=False))
        for name, value in query_pairs(query_string)
        if name not in skip
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_header_value(value: str) -> str:
    """Trim and collapse inner whitespace runs to one space (as botocore signs)."""
    return " ".join(value.split())


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    """The canonical request; ``uri`` and ``query`` are already canonical.

    A signed header missing from ``headers`` canonicalizes as empty, which makes the
    signature fail unless the client really signed an empty value.
    """
    lines = [f"{name}:{canonical_header_value(headers.get(name, ''))}\n" for name in signed_headers]
    return "\n".join([method, uri, query, "".join(lines), ";".join(signed_headers), payload_hash])


def string_to_sign(amz_date: str, scope: str, canonical_request_text: str) -> str:
    digest = hashlib.sha256(canonical_request_text.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


@lru_cache(maxsize=256)
def signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The derived key (4 HMACs); cached because it changes once a day per key and region."""
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, TERMINATOR)


def signature(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def chunk_signature(
    signing_key: bytes, amz_date: str, scope: str, previous_signature: str, chunk: bytes
) -> str:
    """Signature of one aws-chunked chunk, chained on the previous one (seed: request's)."""
    digest = hashlib.sha256(chunk).hexdigest()
    return chunk_signature_from_digest(signing_key, amz_date, scope, previous_signature, digest)


def chunk_signature_from_digest(
    signing_key: bytes, amz_date: str, scope: str, previous_signature: str, chunk_sha256: str
) -> str:
    """:func:`chunk_signature` for a chunk whose SHA-256 was computed incrementally."""
    text = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            amz_date,
            scope,
            previous_signature,
            EMPTY_SHA256,
            chunk_sha256,
        ]
    )
    return signature(signing_key, text)


def canonical_trailers(trailers: Mapping[str, str]) -> bytes:
    """Trailer block as signed: ``name:value\\n`` per trailer, names lower-case and sorted."""
    lines = sorted(f"{name.lower()}:{value.strip()}\n" for name, value in trailers.items())
    return "".join(lines).encode("utf-8")


def trailer_signature(
    signing_key: bytes,
    amz_date: str,
    scope: str,
    previous_signature: str,
    trailers: Mapping[str, str],
) -> str:
    """The ``x-amz-trailer-signature`` value; ``previous_signature`` is the final chunk's."""
    text = "\n".join(
        [
            "AWS4-HMAC-SHA256-TRAILER",
            amz_date,
            scope,
            previous_signature,
            hashlib.sha256(canonical_trailers(trailers)).hexdigest(),
        ]
    )
    return signature(signing_key, text)


def presigned_payload_hash(query_string: str) -> str:
    """UNSIGNED-PAYLOAD unless the URL pins a hash with X-Amz-Content-Sha256 (as AWS does)."""
    for name, value in query_pairs(query_string):
        if name == b"X-Amz-Content-Sha256":
            return value.decode("utf-8", "replace")
    return UNSIGNED_PAYLOAD


def as_utc(when: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
