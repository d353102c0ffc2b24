"""The internal channel between the workers of one node: a Unix socket per worker in DATA/run.

Worker ``i`` listens on ``DATA/run/worker-i.sock`` (mode 0600 in a 0700 directory: only the
node's own user can connect). It answers ``GET /local-metrics`` with the Prometheus text of
what it alone counts (its S3 requests, its fsyncs and commit batches), which the first worker
sums into the node's ``/_lakenode/metrics`` (node/metrics/workers.py).

The first worker (the *primary*) runs everything a node must run once: replication pulls
and pushes, tombstone GC, lifecycle, usage, the admin channel. What depends on that state is
answered by it alone: the others forward ``/_lakenode/metrics`` and every ``/_lakenode/repl/``
request (a peer's push spans several requests that share received chunks) to the primary's
socket, which serves the node's full application besides ``/local-metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.supervisor import PRIMARY, worker_socket
from node.unix_server import UnixServer, unix_address

log = logging.getLogger("lakenode.node")

LOCAL_METRICS_PATH = "/local-metrics"
# Paths the other workers hand to the primary (see the module docstring).
FORWARDED_PREFIXES = ("/_lakenode/repl/", "/_lakenode/repl?", "/_lakenode/console/")
METRICS_PATH = "/_lakenode/metrics"
FORWARDED_PATHS = frozenset((METRICS_PATH, "/_lakenode/repl", "/_lakenode/console"))
# The client's address, which a forwarded request would otherwise lose (the console's sign-in
# throttle counts per address). Only the internal socket reads it: only the node's own user
# can connect there, and the forwarding worker replaces whatever a client sent.
CLIENT_HEADER = b"x-lakenode-client"
FETCH_TIMEOUT_S = 5.0
# A forwarded request may be a bootstrap page or a long push: as long as any client waits.
FORWARD_TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=300.0, pool=5.0)


def forwarded(path: str) -> bool:
    return path in FORWARDED_PATHS or path.startswith(FORWARDED_PREFIXES)


def forwarded_from_probes(path: str) -> bool:
    """The --metrics-listen address serves probes and metrics only: never replication."""
    return path == METRICS_PATH


def internal_app(local_metrics: Callable[[], bytes], fallback: ASGIApp | None) -> ASGIApp:
    """``/local-metrics``, and the rest to ``fallback`` (the primary's full application)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == LOCAL_METRICS_PATH and scope["method"] == "GET":
            await _answer(send, 200, local_metrics())
        elif fallback is not None:
            await fallback(_with_forwarded_client(scope), receive, send)
        else:
            await _answer(send, 404, b"not here: this is not the primary worker\n")

    return app


def _with_forwarded_client(scope: Scope) -> Scope:
    for name, value in scope["headers"]:
        if name == CLIENT_HEADER:
            return {**scope, "client": (value.decode("latin-1"), 0)}
    return scope


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class InternalServer(UnixServer):
    """Serves one worker's internal socket inside its event loop."""

    def __init__(self, data_dir: Path, index: int, app: ASGIApp) -> None:
        super().__init__(worker_socket(data_dir, index), app, "internal")


async def local_metrics_of(data_dir: Path, indexes: range) -> list[bytes]:
    """What each of these workers counts alone; a worker that does not answer (restarting)
    is left out of this scrape and logged."""

    async def fetch(index: int) -> bytes | None:
        transport = httpx.AsyncHTTPTransport(uds=unix_address(worker_socket(data_dir, index)))
        async with httpx.AsyncClient(transport=transport, timeout=FETCH_TIMEOUT_S) as client:
            try:
                answer = await client.get(f"http://worker{LOCAL_METRICS_PATH}")
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("metrics of worker %d unavailable: %s", index, exc)
                return None
            return answer.content

    texts = await asyncio.gather(*(fetch(index) for index in indexes))
    return [text for text in texts if text is not None]


class ForwardToPrimary:
    """ASGI middleware of the non-primary workers: hand :func:`forwarded` paths to the
    primary's socket, streaming both bodies; serve the rest with ``app``."""

    def __init__(
        self, app: ASGIApp, data_dir: Path, forward: Callable[[str], bool] = forwarded
    ) -> None:
        self._app = app
        self._forward_path = forward
        transport = httpx.AsyncHTTPTransport(uds=unix_address(worker_socket(data_dir, PRIMARY)))
        # A jar that keeps nothing: this one client carries every client's requests, and a
        # cookie kept from one answer (a console sign-in's Set-Cookie) would be sent with the
        # next request of anyone who sent none, signed in as someone else.
        self._client = httpx.AsyncClient(
            transport=transport, timeout=FORWARD_TIMEOUT, cookies=_cookies_never_kept()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._forward_path(scope["path"]):
            await self._app(scope, receive, send)
            return
        await self._forward(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        request = self._client.build_request(
            scope["method"],
            "http://primary" + target.decode("latin-1"),
            headers=[*_headers_but_client(scope["headers"]), (CLIENT_HEADER, _client_of(scope))],
            content=_body(receive) if _has_body(scope) else None,
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("forwarding %s to the primary worker failed: %s", scope["path"], exc)
            await _answer(send, 503, b"the primary worker is not answering; retry\n")
            return
        try:
            headers = [(name, value) for name, value in response.headers.raw]
            await send(
                {"type": "http.response.start", "status": response.status_code, "headers": headers}
            )
            async for piece in response.aiter_raw():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


def _cookies_never_kept() -> CookieJar:
    return CookieJar(DefaultCookiePolicy(allowed_domains=[]))  # no domain may set a cookie


def _headers_but_client(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name != CLIENT_HEADER]


def _client_of(scope: Scope) -> bytes:
    client = scope.get("client")
    return (client[0] if client else "unknown").encode("latin-1")


def _has_body(scope: Scope) -> bool:
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
