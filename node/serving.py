"""Running the node's HTTP servers: S3 on --listen (HTTPS with --tls-cert/--tls-key), and
optionally the metrics and probe endpoints alone on --metrics-listen, in the same event loop.

The S3 server owns the node's lifespan (store, replication) and the process signals; the
metrics server has neither: it serves the same state, answers 503 on /ready and /metrics
until the store is open, and stops when the S3 server stops. It speaks plain HTTP: it is
meant for a private scrape address (docs/ops.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
import uvloop
from starlette.types import ASGIApp

from node.app import NodeApps
from node.config import ServeConfig

log = logging.getLogger("lakenode")


class _FollowerServer(uvicorn.Server):
    """A server that leaves signals to the main one (which stops it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _uvicorn_config(app: ASGIApp, config: ServeConfig, *, main: bool) -> uvicorn.Config:
    tls = main and config.tls_cert is not None
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        lifespan="on" if main else "off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        server_header=False,
        # No proxy is trusted by default: X-Forwarded-* from clients must not be believed.
        proxy_headers=False,
        ssl_certfile=config.tls_cert if tls else None,
        ssl_keyfile=config.tls_key if tls else None,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, reuse_port=False)


async def _serve_both(
    main: uvicorn.Server, follower: uvicorn.Server, sockets: list[socket.socket]
) -> None:
    follower_task = asyncio.create_task(follower.serve(sockets=sockets), name="metrics-server")
    try:
        await main.serve()
    finally:
        follower.should_exit = True
        await follower_task


def run_servers(config: ServeConfig, apps: NodeApps) -> int:
    """Serve until a signal stops the node; 0 after a clean run, 1 if it never started."""
    main = uvicorn.Server(_uvicorn_config(apps.main, config, main=True))
    log.info(
        "lakenode serving %s://%s:%d data=%s",
        config.scheme,
        config.host,
        config.port,
        config.data_dir,
    )
    if config.metrics_listen is None:
        main.run()
        return 0 if main.started else 1
    host, port = config.metrics_listen
    try:
        # Bound here so that a busy address is one clear error before anything starts.
        sock = _bind(host, port)
    except OSError as exc:
        log.error("cannot listen on --metrics-listen %s:%d: %s", host, port, exc.strerror or exc)
        return 1
    follower = _FollowerServer(_uvicorn_config(apps.probes, config, main=False))
    log.info("metrics, health and ready also on http://%s:%d", host, port)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve_both(main, follower, [sock]))
    return 0 if main.started else 1
