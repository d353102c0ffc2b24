"""Range reads of a 9 MiB object (three 4 MiB chunks on the node): single, suffix and
open-ended ranges across chunk boundaries, multi-range multipart/byteranges bodies parsed
here byte by byte, trimming, 416 and HEAD."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.nodeproc import NodeProcess
from tests.integration.s3util import MiB, error_headers, error_of, md5_etag, send

SIZE = 9 * MiB + 12345
CHUNK = 4 * MiB
KEY = "nine-mib.bin"
CONTENT_TYPE = "application/x-ranges"


@dataclass(frozen=True)
class Stored:
    bucket: str
    data: bytes


@pytest.fixture(scope="module")
def stored(s3: Any) -> Iterator[Stored]:
    bucket = "ranges-module"
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(SIZE)
    s3.put_object(Bucket=bucket, Key=KEY, Body=data, ContentType=CONTENT_TYPE)
    yield Stored(bucket, data)


def get(node: NodeProcess, stored: Stored, range_header: str, method: str = "GET") -> Any:
    return send(node.url, method, f"/{stored.bucket}/{KEY}", headers={"Range": range_header})


# ---- single ranges --------------------------------------------------------------------------

SINGLE = [
    (0, 0),
    (0, 99),
    (CHUNK - 1, CHUNK),  # the two bytes either side of the first chunk boundary
    (CHUNK - 10, 2 * CHUNK + 10),  # three chunks: tail of 1, all of 2, head of 3
    (CHUNK, 2 * CHUNK - 1),  # exactly the second chunk
    (2 * CHUNK, SIZE - 1),  # the short last chunk
    (SIZE - 1, SIZE - 1),
    (0, SIZE - 1),
]


@pytest.mark.parametrize(("first", "last"), SINGLE)
def test_single_range(s3: Any, stored: Stored, first: int, last: int) -> None:
    got = s3.get_object(Bucket=stored.bucket, Key=KEY, Range=f"bytes={first}-{last}")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {first}-{last}/{SIZE}"
    assert got["ContentLength"] == last - first + 1
    assert got["Body"].read() == stored.data[first : last + 1]
    assert got["ETag"] == md5_etag(stored.data)  # the whole object's ETag
    assert got["ContentType"] == CONTENT_TYPE
    assert got["AcceptRanges"] == "bytes"


@pytest.mark.parametrize("suffix", [1, 100, CHUNK, CHUNK + 1, SIZE - 1, SIZE, SIZE + 1000])
def test_suffix_range(s3: Any, stored: Stored, suffix: int) -> None:
    got = s3.get_object(Bucket=stored.bucket, Key=KEY, Range=f"bytes=-{suffix}")
    first = max(0, SIZE - suffix)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {first}-{SIZE - 1}/{SIZE}"
    assert got["Body"].read() == stored.data[first:]


@pytest.mark.parametrize("first", [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK + 7, SIZE - 1])
def test_open_ended_range(s3: Any, stored: Stored, first: int) -> None:
    got = s3.get_object(Bucket=stored.bucket, Key=KEY, Range=f"bytes={first}-")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {first}-{SIZE - 1}/{SIZE}"
    assert got["ContentLength"] == SIZE - first
    assert got["Body"].read() == stored.data[first:]


@pytest.mark.parametrize("last", [SIZE, SIZE + 1, 10 * SIZE])
def test_range_past_the_end_is_trimmed(s3: Any, stored: Stored, last: int) -> None:
    first = SIZE - 10
    got = s3.get_object(Bucket=stored.bucket, Key=KEY, Range=f"bytes={first}-{last}")
    assert got["ContentRange"] == f"bytes {first}-{SIZE - 1}/{SIZE}"
    assert got["Body"].read() == stored.data[first:]


@pytest.mark.parametrize(
    "spec", [f"bytes={SIZE}-", f"bytes={SIZE}-{SIZE + 10}", "bytes=-0", f"bytes={SIZE + 5}-,-0"]
)
def test_unsatisfiable_range(node: NodeProcess, s3: Any, stored: Stored, spec: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=stored.bucket, Key=KEY, Range=spec)
    assert error_of(excinfo) == (416, "InvalidRange")
    assert error_headers(excinfo)["content-range"] == f"bytes */{SIZE}"
    raw = get(node, stored, spec)
    assert raw.status_code == 416
    assert raw.headers["content-range"] == f"bytes */{SIZE}"
    assert b"<Code>InvalidRange</Code>" in raw.content


@pytest.mark.parametrize("spec", ["bytes=abc", "items=0-9", "bytes=9-3", "bytes=", "bytes=1-2-3"])
def test_unparseable_range_is_ignored(node: NodeProcess, stored: Stored, spec: str) -> None:
    response = get(node, stored, spec)
    assert response.status_code == 200
    assert "content-range" not in response.headers
    assert int(response.headers["content-length"]) == SIZE
    assert response.content == stored.data


# ---- HEAD -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        (f"bytes={CHUNK - 5}-{CHUNK + 5}", CHUNK - 5, CHUNK + 5),
        ("bytes=-20", SIZE - 20, SIZE - 1),
        (f"bytes={SIZE - 3}-", SIZE - 3, SIZE - 1),
        (f"bytes=5-{SIZE * 2}", 5, SIZE - 1),
    ],
)
def test_head_with_range(
    node: NodeProcess, s3: Any, stored: Stored, spec: str, first: int, last: int
) -> None:
    head = s3.head_object(Bucket=stored.bucket, Key=KEY, Range=spec)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == last - first + 1
    assert head["ContentRange"] == f"bytes {first}-{last}/{SIZE}"
    assert head["ETag"] == md5_etag(stored.data)
    raw = get(node, stored, spec, method="HEAD")
    assert raw.status_code == 206 and raw.content == b""


def test_head_with_unsatisfiable_range(s3: Any, stored: Stored) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=stored.bucket, Key=KEY, Range=f"bytes={SIZE}-")
    assert error_of(excinfo)[0] == 416


# ---- several ranges -------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    content_type: str
    first: int
    last: int
    total: int
    data: bytes


def parse_byteranges(content_type: str, body: bytes) -> list[Part]:
    """Parse a multipart/byteranges body strictly, by the lengths its parts declare."""
    match = re.fullmatch(r"multipart/byteranges;\s*boundary=(\S+)", content_type)
    assert match, content_type
    delimiter = b"--" + match.group(1).encode()
    parts: list[Part] = []
    position = 0
    while True:
        assert body.startswith(delimiter, position), body[position : position + 80]
        position += len(delimiter)
        if body.startswith(b"--", position):
            assert body[position + 2 :] in (b"", b"\r\n"), "bytes after the closing delimiter"
            return parts
        assert body.startswith(b"\r\n", position)
        position += 2
        end = body.index(b"\r\n\r\n", position)
        headers = {}
        for line in body[position:end].decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        position = end + 4
        content_range = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers["content-range"])
        assert content_range, headers
        first, last, total = (int(g) for g in content_range.groups())
        data = body[position : position + last - first + 1]
        assert len(data) == last - first + 1, "part shorter than its Content-Range"
        position += len(data)
        assert body.startswith(b"\r\n", position), "part longer than its Content-Range"
        position += 2
        parts.append(Part(headers.get("content-type", ""), first, last, total, data))


MULTI = [
    [(0, 9), (20, 29)],
    [(CHUNK - 3, CHUNK + 3), (2 * CHUNK - 1, 2 * CHUNK), (SIZE - 5, SIZE - 1)],
    [(0, 0), (CHUNK - 100, 2 * CHUNK + 100), (SIZE - 1, SIZE - 1)],
    [(500, 600), (100, 200)],  # kept in the order asked
]


@pytest.mark.parametrize("ranges", MULTI)
def test_multi_range_body(node: NodeProcess, stored: Stored, ranges: list[tuple[int, int]]) -> None:
    spec = "bytes=" + ",".join(f"{first}-{last}" for first, last in ranges)
    response = get(node, stored, spec)
    assert response.status_code == 206
    assert "content-range" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["etag"] == md5_etag(stored.data)
    parts = parse_byteranges(response.headers["content-type"], response.content)
    assert [(p.first, p.last, p.total) for p in parts] == [(f, lst, SIZE) for f, lst in ranges]
    for part, (first, last) in zip(parts, ranges, strict=True):
        assert part.content_type == CONTENT_TYPE
        assert part.data == stored.data[first : last + 1]


def test_multi_range_suffix_open_and_trimmed_members(node: NodeProcess, stored: Stored) -> None:
    response = get(node, stored, f"bytes=-5, {SIZE - 20}-, 10-19, {SIZE - 2}-{SIZE + 50}")
    assert response.status_code == 206
    parts = parse_byteranges(response.headers["content-type"], response.content)
    expected = [(SIZE - 5, SIZE - 1), (SIZE - 20, SIZE - 1), (10, 19), (SIZE - 2, SIZE - 1)]
    assert [(p.first, p.last) for p in parts] == expected
    assert [p.data for p in parts] == [stored.data[f : lst + 1] for f, lst in expected]


def test_multi_range_drops_unsatisfiable_members(node: NodeProcess, stored: Stored) -> None:
    both = get(node, stored, f"bytes=0-9,{SIZE}-{SIZE + 9},30-39")
    parts = parse_byteranges(both.headers["content-type"], both.content)
    assert [(p.first, p.last) for p in parts] == [(0, 9), (30, 39)]
    # One satisfiable member left: a plain single-range answer.
    single = get(node, stored, f"bytes=0-9,{SIZE + 1}-")
    assert single.status_code == 206
    assert single.headers["content-range"] == f"bytes 0-9/{SIZE}"
    assert single.content == stored.data[:10]


def test_multi_range_through_boto3(s3: Any, stored: Stored) -> None:
    got = s3.get_object(Bucket=stored.bucket, Key=KEY, Range=f"bytes=1-2,{CHUNK}-{CHUNK + 1}")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    parts = parse_byteranges(got["ContentType"], got["Body"].read())
    assert [p.data for p in parts] == [stored.data[1:3], stored.data[CHUNK : CHUNK + 2]]


def test_ranges_of_a_small_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="small", Body=b"0123456789")
    assert s3.get_object(Bucket=bucket, Key="small", Range="bytes=-3")["Body"].read() == b"789"
    assert s3.get_object(Bucket=bucket, Key="small", Range="bytes=8-")["Body"].read() == b"89"
    got = s3.get_object(Bucket=bucket, Key="small", Range="bytes=-100")
    assert got["ContentRange"] == "bytes 0-9/10" and got["Body"].read() == b"0123456789"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="small", Range="bytes=10-")
    assert error_of(excinfo) == (416, "InvalidRange")
    assert error_headers(excinfo)["content-range"] == "bytes */10"
