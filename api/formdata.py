"""A streaming, bounded ``multipart/form-data`` parser (RFC 7578) for POST Object.

Browser uploads put the object's bytes in one part of a form; the parser hands them on
piece by piece, so a form of any size passes through a bounded amount of memory: the
unparsed tail kept between pieces is shorter than the delimiter, and a part's header block
is refused past ``header_bytes_max``. Nothing here buffers a field's value: the caller
(:class:`FormReader`) decides how much of each part it keeps.

:class:`FormParser` is sans-I/O (``feed(bytes) -> events``, ``close()``), which keeps it
testable without a server; :class:`FormReader` drives it from an async byte stream.
Anything that is not well-formed multipart is ``MalformedPOSTRequest``, as S3 answers it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from enum import Enum

from api.errors import S3Error

MALFORMED_MESSAGE = "The body of your POST request is not well-formed multipart/form-data."
# RFC 2046: a boundary is 1 to 70 characters.
BOUNDARY_CHARS_MAX = 70
# Between a delimiter and the CRLF that ends its line only transport padding may appear.
_PADDING_BYTES_MAX = 1024
_PARAMETER = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def malformed() -> S3Error:
    return S3Error("MalformedPOSTRequest", MALFORMED_MESSAGE)


@dataclass(frozen=True)
class PartHead:
    """A part's headers: its field name, the file name when it has one, its Content-Type."""

    name: str
    filename: str | None
    content_type: str | None
    data_offset: int  # where the part's data begins, in bytes from the start of the body


@dataclass(frozen=True)
class PartData:
    data: bytes


class _PartEnd:
    """The current part's data is complete."""


class _FormEnd:
    """The closing delimiter was read: no more parts."""


PART_END = _PartEnd()
FORM_END = _FormEnd()
Event = PartHead | PartData | _PartEnd | _FormEnd


class _State(Enum):
    PREAMBLE = 1
    DELIMITER = 2  # just after a delimiter: "--" (the last one) or padding + CRLF
    HEADERS = 3
    DATA = 4
    DONE = 5


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type.

    Another enclosure type is PreconditionFailed (S3's answer to a form that is not
    multipart/form-data); form-data without a usable boundary is MalformedPOSTRequest.
    """
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() != "multipart/form-data":
        raise S3Error(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold "
            "(Bucket POST must be of the enclosure-type multipart/form-data)",
        )
    for name, value in _PARAMETER.findall(";" + parameters):
        if name.lower() == "boundary":
            boundary = _unquote(value.strip())
            if 0 < len(boundary) <= BOUNDARY_CHARS_MAX and boundary.isascii():
                return boundary.encode("ascii")
            break
    raise malformed()


def _unquote(value: str) -> str:
    """A quoted-string's content. Only ``\\"`` and ``\\\\`` are escapes: browsers send a
    Windows path's backslashes as they are (``C:\\dir\\f.txt``), never escaped."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r'\\([\\"])', r"\1", value[1:-1])
    return value


class FormParser:
    """Push parser: :meth:`feed` the body piece by piece, then :meth:`close`."""

    def __init__(self, boundary: bytes, header_bytes_max: int) -> None:
        self._delimiter = b"\r\n--" + boundary
        # A CRLF in front makes the first delimiter (at the very start) look like the others.
        self._buffer = b"\r\n"
        self._state = _State.PREAMBLE
        self._header_bytes_max = header_bytes_max
        self._offset = -2  # body offset of self._buffer[0] (the invented CRLF is not in it)

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def feed(self, data: bytes) -> list[Event]:
        """The events the body's next bytes complete (data of the current part included)."""
        if self._state is _State.DONE:
            return []  # the epilogue after the closing delimiter is ignored
        self._buffer += data
        return list(self._events())

    def close(self) -> None:
        """End of body: anything but a complete form is malformed (a truncated body too)."""
        if self._state is not _State.DONE:
            raise malformed()

    def _consume(self, count: int) -> bytes:
        taken, self._buffer = self._buffer[:count], self._buffer[count:]
        self._offset += count
        return taken

    def _events(self) -> Iterator[Event]:
        while True:
            state = self._state
            if state is _State.PREAMBLE:
                progressed = self._skip_preamble()
            elif state is _State.DELIMITER:
                progressed = yield from self._after_delimiter()
            elif state is _State.HEADERS:
                progressed = yield from self._headers()
            elif state is _State.DATA:
                progressed = yield from self._data()
            else:
                return
            if not progressed:
                return

    def _skip_preamble(self) -> bool:
        found = self._buffer.find(self._delimiter)
        if found < 0:
            if self._offset + len(self._buffer) > self._header_bytes_max:
                raise malformed()  # no form starts within any sane distance
            return False
        self._consume(found + len(self._delimiter))
        self._state = _State.DELIMITER
        return True

    def _after_delimiter(self) -> Generator[Event, None, bool]:
        if len(self._buffer) < 2:
            return False
        if self._buffer.startswith(b"--"):
            self._state = _State.DONE
            self._buffer = b""
            yield FORM_END
            return True
        line_end = self._buffer.find(b"\r\n")
        if line_end < 0:
            if len(self._buffer) > _PADDING_BYTES_MAX:
                raise malformed()
            return False
        if self._buffer[:line_end].strip(b" \t"):
            raise malformed()  # the boundary was only the prefix of a longer line
        self._consume(line_end + 2)
        self._state = _State.HEADERS
        return True

    def _headers(self) -> Generator[Event, None, bool]:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > self._header_bytes_max:
                raise S3Error(
                    "MaxPostPreDataLengthExceededError",
                    "Your POST request fields preceding the upload file were too large.",
                )
            return False
        block = self._consume(end + 4)[:end]
        self._state = _State.DATA
        yield _part_head(block, self._offset)
        return True

    def _data(self) -> Generator[Event, None, bool]:
        found = self._buffer.find(self._delimiter)
        if found >= 0:
            if found:
                yield PartData(self._consume(found))
            self._consume(len(self._delimiter))
            self._state = _State.DELIMITER
            yield PART_END
            return True
        # The tail could be the start of a delimiter split across pieces: keep it.
        safe = len(self._buffer) - (len(self._delimiter) - 1)
        if safe > 0:
            yield PartData(self._consume(safe))
        return False


def _part_head(block: bytes, data_offset: int) -> PartHead:
    headers: dict[str, str] = {}
    for raw_line in block.split(b"\r\n"):
        name, colon, value = _decode(raw_line).partition(":")
        if not colon or not name.strip():
            raise malformed()
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise malformed()
    kind, _, parameters = disposition.partition(";")
    if kind.strip().lower() != "form-data":
        raise malformed()
    params = {k.lower(): _unquote(v.strip()) for k, v in _PARAMETER.findall(";" + parameters)}
    if "name" not in params:
        raise malformed()
    return PartHead(
        params["name"], params.get("filename"), headers.get("content-type"), data_offset
    )


def _decode(raw: bytes) -> str:
    """Part headers are UTF-8 as browsers send them (file names); else taken as Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class FormReader:
    """Reads a form part by part from an async byte stream, through a :class:`FormParser`."""

    def __init__(self, source: AsyncIterator[bytes], boundary: bytes, header_bytes_max: int):
        self._source = source
        self._parser = FormParser(boundary, header_bytes_max)
        self._events: deque[Event] = deque()
        self._in_part = False

    async def _next_event(self) -> Event:
        while not self._events:
            piece = await anext(self._source, None)
            if piece is None:
                self._parser.close()
                return FORM_END
            self._events.extend(self._parser.feed(piece))
        return self._events.popleft()

    async def next_part(self) -> PartHead | None:
        """The next part's head (skipping what is left of the current one); None at the end."""
        while True:
            event = await self._next_event()
            if isinstance(event, PartHead):
                self._in_part = True
                return event
            if event is FORM_END:
                self._in_part = False
                return None

    async def read_value(self, limit: int, too_large: S3Error) -> bytes:
        """The current part's whole value; more than ``limit`` bytes raises ``too_large``."""
        pieces: list[bytes] = []
        size = 0
        async for piece in self.data():
            size += len(piece)
            if size > limit:
                raise too_large
            pieces.append(piece)
        return b"".join(pieces)

    async def data(self) -> AsyncIterator[bytes]:
        """The current part's data, piece by piece as it arrives."""
        while self._in_part:
            event = await self._next_event()
            if isinstance(event, PartData):
                yield event.data
            elif event is PART_END:
                self._in_part = False
            else:  # the parser never starts a part or ends the form inside a part
                raise malformed()

    async def finish(self) -> None:
        """Read (and discard) everything up to the closing delimiter; fields after the file
        are ignored, as S3 does, but the body must still be well-formed to the end."""
        while await self.next_part() is not None:
            pass
