"""The size limit of a request's header section, as AWS enforces it.

AWS refuses a request whose headers exceed 8 KiB with 400 RequestHeaderSectionTooLarge
(user metadata alone is limited to 2 KiB: api/upload.py). S3 requests are checked here before
anything else is done with them; node/serving.py bounds what the HTTP parser buffers before
a request reaches the application at all, with the same error.
"""

from __future__ import annotations

from collections.abc import Iterable

from api.errors import S3Error

HEADER_SECTION_BYTES_MAX = 8 * 1024
HEADER_SECTION_CODE = "RequestHeaderSectionTooLarge"
HEADER_SECTION_MESSAGE = "Your request header section exceeds the maximum allowed size."


def header_section_bytes(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """Bytes of the header lines as sent: ``name: value`` and CRLF each."""
    return sum(len(name) + len(value) + 4 for name, value in headers)


def check_header_section(headers: Iterable[tuple[bytes, bytes]]) -> None:
    if header_section_bytes(headers) > HEADER_SECTION_BYTES_MAX:
        raise S3Error(HEADER_SECTION_CODE, HEADER_SECTION_MESSAGE)
