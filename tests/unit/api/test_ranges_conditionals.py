"""Range parsing and conditional-request precedence."""

from __future__ import annotations

import pytest

from api.conditionals import check_preconditions
from api.errors import S3Error
from api.ranges import parse_range

SIZE = 100


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", [(0, 9)]),
        ("bytes=90-", [(90, 99)]),
        ("bytes=-10", [(90, 99)]),
        ("bytes=-1000", [(0, 99)]),
        ("bytes=50-1000", [(50, 99)]),
        ("bytes=0-0", [(0, 0)]),
        ("bytes=0-1,5-6", [(0, 1), (5, 6)]),
        ("bytes=5-1", None),  # invalid syntax is ignored: whole object
        ("items=0-1", None),
        ("bytes=abc", None),
        ("bytes=", None),
    ],
)
def test_parse_range(header: str | None, expected: list[tuple[int, int]] | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=200-300", "bytes=-0"])
def test_unsatisfiable_range_is_416_with_content_range(header: str) -> None:
    with pytest.raises(S3Error) as excinfo:
        parse_range(header, SIZE)
    assert excinfo.value.status == 416
    assert excinfo.value.headers["Content-Range"] == f"bytes */{SIZE}"


def test_any_range_of_an_empty_object_is_416() -> None:
    with pytest.raises(S3Error):
        parse_range("bytes=0-0", 0)


ETAG = '"abc"'
MODIFIED_MS = 1_700_000_000_000  # Tue, 14 Nov 2023 22:13:20 GMT
BEFORE = "Mon, 13 Nov 2023 00:00:00 GMT"
AFTER = "Wed, 15 Nov 2023 00:00:00 GMT"


def outcome(headers: dict[str, str]) -> int:
    try:
        check_preconditions(headers, ETAG, MODIFIED_MS)
    except S3Error as error:
        return error.status
    return 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"if-match": '"abc"'}, 200),
        ({"if-match": "abc"}, 200),
        ({"if-match": "*"}, 200),
        ({"if-match": '"other"'}, 412),
        ({"if-match": '"x", "abc"'}, 200),
        ({"if-none-match": '"abc"'}, 304),
        ({"if-none-match": '"other"'}, 200),
        ({"if-modified-since": AFTER}, 304),
        ({"if-modified-since": BEFORE}, 200),
        ({"if-unmodified-since": BEFORE}, 412),
        ({"if-unmodified-since": AFTER}, 200),
        # S3 precedence: If-Match true wins over If-Unmodified-Since false
        ({"if-match": '"abc"', "if-unmodified-since": BEFORE}, 200),
        # If-None-Match false + If-Modified-Since true -> 304
        ({"if-none-match": '"abc"', "if-modified-since": BEFORE}, 304),
        ({"if-modified-since": "not a date"}, 200),
    ],
)
def test_precedence(headers: dict[str, str], status: int) -> None:
    assert outcome(headers) == status
