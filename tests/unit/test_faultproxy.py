"""The test fault proxy against a loopback echo server: forwarding, cut, restore, delay."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.faultproxy import FaultProxy

IO_TIMEOUT_S = 5.0


class EchoServer:
    """Echoes every byte back, one thread per connection (bounded by the tests' few)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        conn.settimeout(IO_TIMEOUT_S)
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=IO_TIMEOUT_S)
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(echo.port) as running:
        yield running


def connect(port: int, timeout: float = IO_TIMEOUT_S) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = bytearray()
    deadline = time.monotonic() + IO_TIMEOUT_S
    while len(received) < len(payload) and time.monotonic() < deadline:
        piece = sock.recv(65536)
        if not piece:
            break
        received += piece
    return bytes(received)


def is_dead(sock: socket.socket, wait_s: float = 2.0) -> bool:
    """True when the connection is reset or closed by the other side within ``wait_s``."""
    sock.settimeout(wait_s)
    try:
        sock.sendall(b"ping")
        return sock.recv(16) == b""
    except (ConnectionError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def is_refused(port: int) -> bool:
    """A new connection is reset (during or right after the handshake) or closed."""
    try:
        sock = connect(port)
    except ConnectionError:
        return True
    with sock:
        return is_dead(sock)


def test_passes_bytes_through_both_ways(proxy: FaultProxy) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: many chunks, exercises back-pressure
    with connect(proxy.port) as sock:
        assert round_trip(sock, b"hello") == b"hello"
        assert round_trip(sock, payload) == payload
    assert proxy.stats.accepted == 1
    assert proxy.stats.bytes_up >= len(payload) + 5
    assert proxy.stats.bytes_down >= len(payload) + 5


def test_cut_drops_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        assert round_trip(sock, b"before") == b"before"
        proxy.cut()
        assert proxy.is_cut
        assert is_dead(sock)
    assert is_refused(proxy.port)
    assert proxy.stats.dropped == 1
    assert proxy.stats.refused == 1
    assert proxy.open_connections() == 0


def test_blackhole_accepts_but_never_answers(proxy: FaultProxy) -> None:
    proxy.cut(mode="blackhole")
    with connect(proxy.port) as sock:
        assert not is_dead(sock, wait_s=0.3)  # silence, not a reset: the client must time out
        proxy.restore()
        assert is_dead(sock)  # held connections are reset when the link comes back


def test_restore_forwards_again(proxy: FaultProxy) -> None:
    proxy.cut()
    assert is_refused(proxy.port)
    proxy.restore()
    assert not proxy.is_cut
    with connect(proxy.port) as sock:
        assert round_trip(sock, b"after") == b"after"


def test_delay_adds_latency_per_chunk(proxy: FaultProxy) -> None:
    with connect(proxy.port) as sock:
        started = time.monotonic()
        assert round_trip(sock, b"x") == b"x"
        fast = time.monotonic() - started
        proxy.delay(150)
        started = time.monotonic()
        assert round_trip(sock, b"y") == b"y"
        slow = time.monotonic() - started
        proxy.delay(0)
        started = time.monotonic()
        assert round_trip(sock, b"z") == b"z"
        again = time.monotonic() - started
    assert slow >= 0.3  # 150 ms each way
    assert fast < 0.15
    assert again < 0.15


def test_target_down_resets_the_client(echo: EchoServer) -> None:
    port = echo.port
    echo.close()
    with FaultProxy(port) as proxy:
        assert is_refused(proxy.port)


def test_close_stops_listening(echo: EchoServer) -> None:
    proxy = FaultProxy(echo.port).start()
    with connect(proxy.port) as sock:
        assert round_trip(sock, b"a") == b"a"
        proxy.close()
        assert is_dead(sock)
    with pytest.raises(OSError):
        connect(proxy.port, timeout=1).close()
    proxy.close()  # idempotent


def test_refuses_non_loopback_targets() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(80, target_host="10.0.0.1")
