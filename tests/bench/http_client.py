"""A minimal HTTP/1.1 keep-alive client on ``asyncio.open_connection``.

Why not httpx/aiohttp/boto3: the benchmark shares 2 cores with the server, so every
microsecond the client spends per request is taken from the server under test. This client
does the least possible work: one connection per worker, a request head formatted in one
f-string, small bodies sent in the same write as the head, and response bodies handed out
in caller-sized pieces (64 MiB bodies are never held whole, let alone twice).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Bodies below this are joined to the head: one write, one segment, no Nagle interplay.
COALESCE_LIMIT = 64 * 1024
# StreamReader pauses the socket above 2x this; a MiB keeps 1 MiB reads from stalling.
READ_LIMIT = 1 << 20
NO_BODY_STATUSES = frozenset({204, 304})

BodyPieces = Iterable[bytes | memoryview]


class HttpProtocolError(Exception):
    """The server sent something this client cannot parse."""


@dataclass(slots=True)
class ResponseHead:
    status: int
    headers: dict[str, str]

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None else None


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class BodyReader:
    """Reads one response body, Content-Length or chunked, in pieces the caller sizes."""

    def __init__(self, reader: asyncio.StreamReader, length: int | None, chunked: bool) -> None:
        self._reader = reader
        self._chunked = chunked
        # For chunked bodies this is what is left of the current chunk.
        self._left = 0 if chunked else (length if length is not None else -1)
        self._done = not chunked and length == 0

    @property
    def done(self) -> bool:
        return self._done

    async def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer only when the body ends first."""
        if self._chunked:
            return await self._read_chunked(n)
        if self._left < 0:  # no length, no chunking: body runs to EOF (HTTP/1.0 style)
            data = await self._reader.read(n)
            self._done = not data
            return data
        want = min(n, self._left)
        data = await self._reader.readexactly(want) if want else b""
        self._left -= want
        self._done = self._left == 0
        return data

    async def read_all(self) -> bytes:
        parts = []
        while not self._done:
            parts.append(await self.read(READ_LIMIT))
        return b"".join(parts)

    async def _read_chunked(self, n: int) -> bytes:
        parts: list[bytes] = []
        while n > 0 and not self._done:
            if self._left == 0 and not await self._next_chunk():
                break
            piece = await self._reader.readexactly(min(n, self._left))
            self._left -= len(piece)
            n -= len(piece)
            parts.append(piece)
            if self._left == 0:
                await self._reader.readexactly(2)  # the CRLF closing each chunk
        return b"".join(parts)

    async def _next_chunk(self) -> bool:
        line = await self._reader.readuntil(b"\r\n")
        try:
            self._left = int(line.split(b";", 1)[0], 16)
        except ValueError as exc:
            raise HttpProtocolError(f"bad chunk size line {line!r}") from exc
        if self._left == 0:
            # Trailers (normally none) end with an empty line.
            while await self._reader.readuntil(b"\r\n") != b"\r\n":
                pass
            self._done = True
            return False
        return True


class HttpConnection:
    """One keep-alive connection; reconnects by itself after the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        if self._reader is not None and self._reader.at_eof():
            # The server closed it while idle (keep-alive timeout); don't send into it.
            self.drop()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=READ_LIMIT
            )

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            # The peer may already be gone; closing is best effort.
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def drop(self) -> None:
        """Forget a connection whose state is unknown (error mid-request); no await needed."""
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    async def send(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: BodyPieces = (),
        body_size: int = 0,
    ) -> None:
        await self.connect()
        assert self._writer is not None
        head = f"{method} {target} HTTP/1.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head_bytes = (head + "\r\n").encode("latin-1")
        if body_size <= COALESCE_LIMIT:
            self._writer.write(head_bytes + b"".join(body))
        else:
            self._writer.write(head_bytes)
            for piece in body:
                self._writer.write(piece)
                await self._writer.drain()  # keeps at most one piece queued per connection
        await self._writer.drain()

    async def read_head(self) -> ResponseHead:
        assert self._reader is not None
        try:
            raw = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise HttpProtocolError("response head too large") from exc
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpProtocolError(f"bad status line {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return ResponseHead(int(parts[1]), headers)

    def body(self, method: str, head: ResponseHead) -> BodyReader:
        assert self._reader is not None
        if method == "HEAD" or head.status in NO_BODY_STATUSES:
            return BodyReader(self._reader, 0, chunked=False)
        chunked = "chunked" in head.headers.get("transfer-encoding", "").lower()
        return BodyReader(self._reader, head.content_length, chunked)

    def finish(self, head: ResponseHead) -> None:
        """Call after the body was fully read: honours ``Connection: close``."""
        if head.headers.get("connection", "").lower() == "close":
            self.drop()

    async def request(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Response:
        """Whole request and response, for small bodies only."""
        await self.send(method, target, headers, (body,), len(body))
        head = await self.read_head()
        data = await self.body(method, head).read_all()
        self.finish(head)
        return Response(head.status, head.headers, data)
