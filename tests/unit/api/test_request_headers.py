"""Request headers kept as sent (Content-Encoding less aws-chunked) and the header-section limit."""

from __future__ import annotations

import pytest

from api.errors import S3Error
from api.header_limits import HEADER_SECTION_BYTES_MAX, check_header_section, header_section_bytes
from api.upload import object_headers, without_aws_chunked


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("deflate, gzip", "deflate, gzip"),
        ("deflate,gzip", "deflate,gzip"),
        ("gzip", "gzip"),
        ("aws-chunked", ""),
        ("AWS-Chunked", ""),
        ("aws-chunked,gzip", "gzip"),
        ("gzip,aws-chunked", "gzip"),
        ("deflate, aws-chunked, gzip", "deflate, gzip"),
        ("aws-chunked, deflate,  gzip", "deflate,  gzip"),
    ],
)
def test_content_encoding_loses_only_aws_chunked(sent: str, kept: str) -> None:
    assert without_aws_chunked(sent) == kept


def test_stored_headers_are_the_values_sent() -> None:
    sent = {
        "content-encoding": "deflate, gzip",
        "content-type": "text/plain;  charset=UTF-8",
        "cache-control": "no-cache,  max-age=0",
        "x-amz-meta-mixed": "Some  Value",
    }
    assert dict(object_headers(sent)) == sent
    assert "content-encoding" not in dict(object_headers({"content-encoding": "aws-chunked"}))


def test_header_section_limit() -> None:
    line = (b"x-filler", b"v" * 100)
    assert header_section_bytes([line]) == len(b"x-filler: ") + 100 + 2
    fits = [line] * (HEADER_SECTION_BYTES_MAX // header_section_bytes([line]))
    check_header_section(fits)
    with pytest.raises(S3Error) as excinfo:
        check_header_section([*fits, line])
    assert (excinfo.value.code, excinfo.value.status) == ("RequestHeaderSectionTooLarge", 400)
