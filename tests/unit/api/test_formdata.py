"""The streaming multipart/form-data parser (api/formdata.py): any split of the body into
pieces parses the same, data never loses bytes that look like a delimiter, limits hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import S3Error
from api.formdata import (
    FORM_END,
    PART_END,
    FormParser,
    FormReader,
    PartData,
    PartHead,
    boundary_of,
)

BOUNDARY = b"----WebKitFormBoundaryX3b9"
LIMIT = 20 * 1024


def part(name: str, value: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = disposition + (f"\r\nContent-Type: {ctype}" if ctype else "")
    return b"--" + BOUNDARY + b"\r\n" + head.encode() + b"\r\n\r\n" + value + b"\r\n"


def form(*parts: bytes, close: bool = True) -> bytes:
    return b"".join(parts) + (b"--" + BOUNDARY + b"--\r\n" if close else b"")


def parse(pieces: list[bytes]) -> list[tuple[PartHead, bytes]]:
    """Feed ``pieces``; return each part's head with its whole data."""
    parser = FormParser(BOUNDARY, LIMIT)
    parts: list[tuple[PartHead, bytes]] = []
    ended = False
    for piece in pieces:
        for event in parser.feed(piece):
            if isinstance(event, PartHead):
                parts.append((event, b""))
            elif isinstance(event, PartData):
                head, data = parts[-1]
                parts[-1] = (head, data + event.data)
            elif event is FORM_END:
                ended = True
            else:
                assert event is PART_END
    parser.close()
    assert ended
    return parts


def simple(parts: list[tuple[PartHead, bytes]]) -> list[tuple[str, str | None, bytes]]:
    return [(head.name, head.filename, data) for head, data in parts]


# Data that contains almost-delimiters: the parser must keep every byte of them.
TRICKY = b"\r\n--" + BOUNDARY[:-1] + b"!\r\n--\r\n-" + BOUNDARY + b"\r\r\n--" + BOUNDARY[:5]
BODY = form(
    part("key", b"uploads/${filename}"),
    part("x-amz-meta-empty", b""),
    part("file", TRICKY * 3, filename="a b.bin", ctype="application/octet-stream"),
    part("after", b"ignored"),
)
EXPECTED = [
    ("key", None, b"uploads/${filename}"),
    ("x-amz-meta-empty", None, b""),
    ("file", "a b.bin", TRICKY * 3),
    ("after", None, b"ignored"),
]


def test_whole_body_in_one_piece() -> None:
    parsed = parse([BODY])
    assert simple(parsed) == EXPECTED
    file_head = parsed[2][0]
    assert file_head.content_type == "application/octet-stream"
    assert BODY[file_head.data_offset :].startswith(TRICKY)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_fixed_size_pieces(size: int) -> None:
    assert simple(parse([BODY[i : i + size] for i in range(0, len(BODY), size)])) == EXPECTED


def test_every_two_way_split() -> None:
    for cut in range(len(BODY) + 1):
        assert simple(parse([BODY[:cut], BODY[cut:]])) == EXPECTED, cut


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_values_any_pieces(values: list[bytes], cuts: list[int]) -> None:
    # Values made of the delimiter's own bytes are the hard case.
    alphabet_values = [v.replace(b"a", b"\r\n--" + BOUNDARY[:3]) for v in values]
    body = form(*(part(f"f{i}", v) for i, v in enumerate(alphabet_values)))
    points = sorted({min(c, len(body)) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    parsed = simple(parse(pieces))
    assert parsed == [(f"f{i}", None, v) for i, v in enumerate(alphabet_values)]


def test_preamble_epilogue_and_padding_are_ignored() -> None:
    body = b"preamble text\r\n" + form(part("k", b"v")).replace(
        b"--" + BOUNDARY + b"\r\n", b"--" + BOUNDARY + b" \t\r\n", 1
    )
    assert simple(parse([body + b"epilogue"])) == [("k", None, b"v")]


def test_header_parameters() -> None:
    raw = (
        b"--" + BOUNDARY + b'\r\ncontent-disposition: form-data; filename="C:\\dir\\x \\"y\\".txt"'
        b"; NAME=file\r\n\r\ndata\r\n--" + BOUNDARY + b"--"
    )
    ((head, data),) = parse([raw])
    assert (head.name, head.filename, data) == ("file", 'C:\\dir\\x "y".txt', b"data")


def test_utf8_file_names() -> None:
    ((head, _),) = parse([form(part("file", b"", filename="ünï.txt"))])
    assert head.filename == "ünï.txt"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"no form at all",
        form(part("k", b"v"), close=False),  # truncated: no closing delimiter
        form(part("k", b"v"))[:-8],
        b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=k\r\n",  # headers cut
        b"--" + BOUNDARY + b"junk\r\n" + form(part("k", b"v")),
        b"--" + BOUNDARY + b"\r\nno colon here\r\n\r\nv\r\n--" + BOUNDARY + b"--",
        b"--" + BOUNDARY + b"\r\nContent-Type: text/plain\r\n\r\nv\r\n--" + BOUNDARY + b"--",
        b"--"
        + BOUNDARY
        + b"\r\nContent-Disposition: attachment; name=k\r\n\r\nv\r\n--"
        + BOUNDARY
        + b"--",
        b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data\r\n\r\nv\r\n--" + BOUNDARY + b"--",
        b"x" * (LIMIT + 100),  # a preamble that never ends
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(S3Error) as excinfo:
        parse([body])
    assert (excinfo.value.code, excinfo.value.status) == ("MalformedPOSTRequest", 400)


def test_a_header_block_over_the_limit_is_refused_before_it_ends() -> None:
    parser = FormParser(BOUNDARY, LIMIT)
    parser.feed(b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=k\r\n")
    with pytest.raises(S3Error) as excinfo:
        for _ in range(100):
            parser.feed(b"X-Long: " + b"y" * 1000 + b"\r\n")
    assert excinfo.value.code == "MaxPostPreDataLengthExceededError"


def test_data_is_handed_on_without_waiting_for_the_part_to_end() -> None:
    parser = FormParser(BOUNDARY, LIMIT)
    parser.feed(part("file", b"")[:-2])  # the head of a part, no data yet
    events = parser.feed(b"z" * 100_000)
    handed = sum(len(e.data) for e in events if isinstance(e, PartData))
    assert handed >= 100_000 - len(BOUNDARY) - 4  # only a delimiter's length is held back


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (f"multipart/form-data; boundary={BOUNDARY.decode()}", BOUNDARY),
        (f'Multipart/Form-Data;boundary="{BOUNDARY.decode()}"', BOUNDARY),
        ('multipart/form-data; charset=utf-8; boundary="a b"', b"a b"),
    ],
)
def test_boundary_of(content_type: str, expected: bytes) -> None:
    assert boundary_of(content_type) == expected


@pytest.mark.parametrize(
    ("content_type", "code"),
    [
        (None, "PreconditionFailed"),
        ("application/x-www-form-urlencoded", "PreconditionFailed"),
        ("multipart/mixed; boundary=x", "PreconditionFailed"),
        ("multipart/form-data", "MalformedPOSTRequest"),
        ("multipart/form-data; boundary=", "MalformedPOSTRequest"),
        ("multipart/form-data; boundary=" + "b" * 71, "MalformedPOSTRequest"),
    ],
)
def test_bad_content_types(content_type: str | None, code: str) -> None:
    with pytest.raises(S3Error) as excinfo:
        boundary_of(content_type)
    assert excinfo.value.code == code


async def _pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for index in range(0, len(body), size):
        yield body[index : index + size]


def test_reader_fields_then_streamed_file_then_the_rest() -> None:
    async def run() -> tuple[list[tuple[str, bytes]], list[bytes]]:
        reader = FormReader(_pieces(BODY, 5), BOUNDARY, LIMIT)
        fields = []
        while (head := await reader.next_part()) is not None and head.name != "file":
            fields.append((head.name, await reader.read_value(100, S3Error("InvalidArgument"))))
        pieces = [piece async for piece in reader.data()]
        await reader.finish()
        return fields, pieces

    fields, pieces = asyncio.run(run())
    assert fields == [("key", b"uploads/${filename}"), ("x-amz-meta-empty", b"")]
    assert b"".join(pieces) == TRICKY * 3
    assert len(pieces) > 1  # streamed, not collected


def test_reader_refuses_a_value_over_its_limit_and_a_cut_body() -> None:
    async def value(body: bytes) -> bytes:
        reader = FormReader(_pieces(body, 64), BOUNDARY, LIMIT)
        assert await reader.next_part() is not None
        return await reader.read_value(10, S3Error("MaxPostPreDataLengthExceededError"))

    with pytest.raises(S3Error) as too_long:
        asyncio.run(value(form(part("k", b"v" * 11))))
    assert too_long.value.code == "MaxPostPreDataLengthExceededError"
    with pytest.raises(S3Error) as cut:
        asyncio.run(value(form(part("k", b"v" * 5), close=False)[:-10]))
    assert cut.value.code == "MalformedPOSTRequest"
