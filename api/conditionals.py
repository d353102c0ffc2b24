"""Conditional requests (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since).

Evaluated in the order S3 documents: If-Match beats If-Unmodified-Since, and If-None-Match
beats If-Modified-Since. Failed preconditions give 412; "not modified" gives 304 on GET/HEAD.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from api.errors import S3Error


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip() for part in header.split(",")]
    bare = etag.strip('"')
    return any(c == "*" or c.removeprefix("W/").strip('"') == bare for c in candidates)


def _parse_date_s(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None  # an unparseable date is ignored, as HTTP requires


def check_preconditions(headers: Mapping[str, str], etag: str, last_modified_ms: int) -> None:
    """Raise PreconditionFailed (412) or NotModified (304) when the request says so."""
    modified_s = last_modified_ms // 1000  # HTTP dates have second resolution
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _etag_matches(if_match, etag):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                headers={"ETag": etag},
            )
    else:
        since = headers.get("if-unmodified-since")
        limit = _parse_date_s(since) if since else None
        if limit is not None and modified_s > limit:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                headers={"ETag": etag},
            )
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if _etag_matches(if_none_match, etag):
            raise S3Error("NotModified", "Not Modified", headers={"ETag": etag})
    else:
        since = headers.get("if-modified-since")
        limit = _parse_date_s(since) if since else None
        if limit is not None and modified_s <= limit:
            raise S3Error("NotModified", "Not Modified", headers={"ETag": etag})
