"""HTTP Range header parsing for GetObject (RFC 9110 byte ranges, as S3 applies them)."""

from __future__ import annotations

import re

from api.errors import S3Error

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """Inclusive (first, last) ranges satisfiable within ``size``, or None for "whole object".

    A header S3 cannot parse is ignored (whole object, like AWS). Ranges that are all
    unsatisfiable raise InvalidRange (416); unsatisfiable members of a list are dropped.
    """
    if header is None:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        return None
    ranges: list[tuple[int, int]] = []
    for spec in specs.split(","):
        parsed = _parse_spec(spec)
        if parsed is None:
            return None
        first, last = parsed
        resolved = _resolve(first, last, size)
        if resolved is not None:
            ranges.append(resolved)
    if not ranges:
        raise S3Error(
            "InvalidRange",
            "The requested range is not satisfiable",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return ranges


def _parse_spec(spec: str) -> tuple[int | None, int | None] | None:
    match = _SPEC.match(spec)
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(2)) if match.group(2) else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def _resolve(first: int | None, last: int | None, size: int) -> tuple[int, int] | None:
    if first is None:  # suffix: the last N bytes
        assert last is not None
        if last == 0 or size == 0:
            return None
        return max(0, size - last), size - 1
    if first >= size:
        return None
    return first, size - 1 if last is None else min(last, size - 1)
