"""Running the node's HTTP servers: S3 on --listen (HTTPS with --tls-cert/--tls-key), and
optionally the metrics and probe endpoints alone on --metrics-listen, in the same event loop.

The S3 server owns the node's lifespan (store, replication) and the process signals; the
metrics server has neither: it serves the same state, answers 503 on /ready and /metrics
until the store is open, and stops when the S3 server stops. It speaks plain HTTP: it is
meant for a private scrape address (docs/ops.md).
"""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
import uvloop
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.app import new_request_id
from api.errors import render_error_xml
from api.header_limits import HEADER_SECTION_CODE, HEADER_SECTION_MESSAGE
from node.app import NodeApps
from node.config import ServeConfig
from node.listen import bind_all
from node.unix_server import EmbeddedServer

log = logging.getLogger("lakenode")


# A graceful TLS close waits for the client's close_notify, which an idle pooled client (boto3,
# awscli) sends only when it next reads: up to 30 s per stop. Idle TLS connections still open
# this long after shutdown began are aborted instead; requests in progress are not touched.
TLS_CLOSE_GRACE_S = 1.0


# How long requests in progress may run on after SIGTERM (under systemd's TimeoutStopSec=60s in
# docs/lakenode.service, and the supervisor's 30 s before it kills a worker).
GRACEFUL_STOP_S = 25


# What the HTTP parser may buffer of one request's head (request line and headers) before the
# request reaches the application, which refuses more than 8 KiB of headers itself
# (api/header_limits.py): a bound on memory, set above any valid request's head.
REQUEST_HEAD_BYTES_MAX = 64 * 1024


class _BoundedHeadProtocol(HttpToolsProtocol):
    """httptools buffers a request's head without limit: count what arrives until the
    headers are complete and answer S3's 400 RequestHeaderSectionTooLarge past the bound."""

    _head_bytes = 0
    _in_body = False

    def data_received(self, data: bytes) -> None:
        if not self._in_body:
            self._head_bytes += len(data)
        super().data_received(data)
        if not self._in_body and self._head_bytes > REQUEST_HEAD_BYTES_MAX:
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._in_body, self._head_bytes = True, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def _refuse_head(self) -> None:
        if self.transport.is_closing():
            return
        request_id = new_request_id()
        body = render_error_xml(HEADER_SECTION_CODE, HEADER_SECTION_MESSAGE, "", request_id)
        head = (
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/xml\r\n"
            f"content-length: {len(body)}\r\nx-amz-request-id: {request_id}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


class _NodeServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.config.is_ssl:
            asyncio.get_running_loop().call_later(TLS_CLOSE_GRACE_S, self._abort_idle)
        await super().shutdown(sockets)

    def _abort_idle(self) -> None:
        for connection in list(self.server_state.connections):
            if not isinstance(connection, HttpToolsProtocol):  # the only protocol configured
                continue
            cycle = connection.cycle
            if cycle is None or cycle.response_complete:
                connection.transport.abort()


def _uvicorn_config(app: ASGIApp, config: ServeConfig, *, main: bool) -> uvicorn.Config:
    tls = main and config.tls_cert is not None
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http=_BoundedHeadProtocol,
        lifespan="on" if main else "off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        # A request still running this long after SIGTERM is cancelled: a stuck one must not
        # keep the process (and the data dir's lock) alive, above all in a worker whose
        # supervisor is gone and cannot SIGKILL it. Unanswered, so nothing acknowledged is lost.
        timeout_graceful_shutdown=GRACEFUL_STOP_S,
        server_header=False,
        # No proxy is trusted by default: X-Forwarded-* from clients must not be believed.
        proxy_headers=False,
        ssl_certfile=config.tls_cert if tls else None,
        ssl_keyfile=config.tls_key if tls else None,
    )


async def _serve_both(
    main: uvicorn.Server,
    follower: uvicorn.Server,
    sockets: list[socket.socket],
    main_sockets: list[socket.socket] | None = None,
) -> None:
    """The S3 server (on ``main_sockets``, else binding --listen itself) and the metrics one."""
    follower_task = asyncio.create_task(follower.serve(sockets=sockets), name="metrics-server")
    try:
        await main.serve(sockets=main_sockets)
    finally:
        follower.should_exit = True
        await follower_task


def run_servers(
    config: ServeConfig, apps: NodeApps, inherited: list[socket.socket] | None = None
) -> int:
    """Serve until a signal stops the node; 0 after a clean run, 1 if it never started.

    ``inherited``: a worker's listening sockets, bound by its supervisor (node/supervisor.py):
    S3 first, then --metrics-listen's if configured."""
    if inherited is not None:
        return _run_worker(config, apps, inherited)
    sockets: list[socket.socket] = []
    if config.metrics_listen is not None:
        # Bound first so that a busy address is one clear error before anything starts.
        bound = bind_all([(*config.metrics_listen, "--metrics-listen")])
        if bound is None:
            return 1
        sockets = bound
    main = _NodeServer(_uvicorn_config(apps.main, config, main=True))
    where = f"{config.scheme}://{config.host}:{config.port}"
    log.info("lakenode serving %s data=%s", where, config.data_dir)
    if not sockets:
        main.run()
        return 0 if main.started else 1
    follower = EmbeddedServer(_uvicorn_config(apps.probes, config, main=False))
    log.info("metrics, health and ready also on %s", sockets[0].getsockname()[:2])
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_both(main, follower, sockets))
    return 0 if main.started else 1


def _run_worker(config: ServeConfig, apps: NodeApps, inherited: list[socket.socket]) -> int:
    main = _NodeServer(_uvicorn_config(apps.main, config, main=True))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        if len(inherited) > 1:
            follower = EmbeddedServer(_uvicorn_config(apps.probes, config, main=False))
            runner.run(_serve_both(main, follower, inherited[1:], inherited[:1]))
        else:
            runner.run(main.serve(sockets=inherited))
    return 0 if main.started else 1
