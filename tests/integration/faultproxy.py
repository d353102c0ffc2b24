"""A fault-injecting TCP proxy for tests: cut, restore and slow down one link at will.

``FaultProxy(target_port)`` listens on a free 127.0.0.1 port and forwards every connection to
``target_host:target_port``. It runs its own asyncio loop in a daemon thread; the controls are
called from the test's thread and take effect before they return:

* ``cut()``: every open connection is dropped (reset) and new ones fail: ``mode="refuse"``
  accepts and resets them at once (like a closed port), ``mode="blackhole"`` accepts them and
  then never forwards a byte (like a dead route: the client waits for its own timeout). Held
  blackholed connections are reset by ``restore()`` and ``close()``.
* ``restore()``: forward again (connections cut before stay cut).
* ``delay(ms)``: every chunk read from either side waits ``ms`` before it is forwarded.
* ``close()``: stop listening, reset every connection, stop the loop and its thread.

Memory per connection is bounded: at most one read of ``CHUNK_BYTES`` per direction is held
while the writer's buffer is above ``WRITE_BUFFER_HIGH`` (back-pressure through ``drain``).
Only loopback addresses are accepted, for the listener and the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

CHUNK_BYTES: Final = 64 * 1024
WRITE_BUFFER_HIGH: Final = 256 * 1024
CONNECT_TIMEOUT_S: Final = 5.0
CONTROL_TIMEOUT_S: Final = 10.0

CutMode = Literal["refuse", "blackhole"]
T = TypeVar("T")


@dataclass
class ProxyStats:
    accepted: int = 0  # connections forwarded to the target
    refused: int = 0  # connections reset or blackholed because the link was cut
    dropped: int = 0  # open connections reset by cut() or close()
    bytes_up: int = 0  # client -> target
    bytes_down: int = 0  # target -> client


def _require_loopback(host: str) -> None:
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the fault proxy only works on loopback, not {host!r}")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), so the peer sees a reset rather than a clean EOF."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One proxied connection: two sockets and the two pump tasks between them."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        _reset(self.client)
        if self.upstream is not None:
            _reset(self.upstream)


class FaultProxy:
    def __init__(
        self, target_port: int, target_host: str = "127.0.0.1", listen_host: str = "127.0.0.1"
    ) -> None:
        _require_loopback(target_host)
        _require_loopback(listen_host)
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.port = 0
        self.stats = ProxyStats()
        self._cut: CutMode | None = None
        self._delay_s = 0.0
        self._links: set[_Link] = set()
        self._held: set[asyncio.StreamWriter] = set()  # blackholed connections
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="faultproxy", daemon=True)
        self._closed = False

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start_server())
        return self

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut is not None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CONTROL_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    # ---- controls -----------------------------------------------------------------------

    def cut(self, mode: CutMode = "refuse") -> None:
        """Drop every open connection; new ones are refused (reset) or blackholed."""
        if mode not in ("refuse", "blackhole"):
            raise ValueError(f"unknown cut mode {mode!r}")
        self._call(self._set_cut(mode))

    def restore(self) -> None:
        """Forward new connections again; blackholed ones are reset (clients reconnect)."""
        self._call(self._set_cut(None))

    def delay(self, ms: float) -> None:
        """Added latency for every chunk forwarded, in both directions (0: none)."""
        if ms < 0:
            raise ValueError("delay must be >= 0")
        self._call(self._set_delay(ms / 1000))

    def open_connections(self) -> int:
        return self._call(self._count())

    # ---- inside the loop ----------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed and not self._thread.is_alive():
            coro.close()
            raise RuntimeError("the proxy is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_S)

    async def _start_server(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, 0, limit=CHUNK_BYTES, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _count(self) -> int:
        return len(self._links)

    async def _set_delay(self, seconds: float) -> None:
        self._delay_s = seconds

    async def _set_cut(self, mode: CutMode | None) -> None:
        self._cut = mode
        if mode is not None:
            self.stats.dropped += len(self._links)
            for link in list(self._links):
                link.reset()
            self._links.clear()
        else:
            self._release_held()

    def _release_held(self) -> None:
        for writer in list(self._held):
            _reset(writer)
        self._held.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self.stats.dropped += len(self._links)
        for link in list(self._links):
            link.reset()
        self._links.clear()
        self._release_held()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), CONTROL_TIMEOUT_S)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut == "refuse":
            self.stats.refused += 1
            _reset(writer)
            return
        if self._cut == "blackhole":
            self.stats.refused += 1
            self._held.add(writer)  # never read: the kernel's buffers fill, then stall
            return
        link = _Link(writer)
        self._links.add(link)
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port, limit=CHUNK_BYTES),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError):
            self._links.discard(link)
            _reset(writer)  # target down: the client sees what it would see without us
            return
        if link not in self._links:  # cut while connecting
            _reset(upstream)
            return
        link.upstream = upstream
        self.stats.accepted += 1
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        upstream.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        up = asyncio.create_task(self._pump(reader, upstream, "bytes_up"))
        down = asyncio.create_task(self._pump(up_reader, writer, "bytes_down"))
        link.tasks = [up, down]
        try:
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            if link in self._links:  # both directions ended: close, flushing what is buffered
                self._links.discard(link)
                for side in (writer, upstream):
                    side.close()
                for side in (writer, upstream):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(side.wait_closed(), CONNECT_TIMEOUT_S)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, counter: str
    ) -> None:
        """Copy one direction until EOF; then half-close, so the other direction can finish."""
        try:
            while True:
                data = await reader.read(CHUNK_BYTES)
                if not data:
                    break
                if self._delay_s:
                    await asyncio.sleep(self._delay_s)
                # Counted before it is sent: whoever receives the bytes sees them counted.
                setattr(self.stats, counter, getattr(self.stats, counter) + len(data))
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.transport.abort()
