"""An ASGI application served on a Unix socket inside the node's event loop.

The admin channel (node/admin/server.py) and the workers' internal channel (node/internal.py)
are both such servers: the socket is made private (0600) before it listens, the S3 server of
the process keeps the signals, and a failed start raises what stopped it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger("lakenode.node")

SOCKET_BACKLOG = 64
# sun_path holds 108 bytes: a longer socket path is reached through /proc/self/fd instead.
UNIX_PATH_MAX = 100
_directory_fds: dict[Path, int] = {}


def unix_address(path: Path) -> str:
    """An address for ``path`` that fits a Unix socket address, to bind or to connect: the
    path itself when short, else the same file through a descriptor of its directory (Linux
    resolves /proc/self/fd/N like a symlink to the directory)."""
    if len(str(path).encode()) < UNIX_PATH_MAX:
        return str(path)
    directory = path.parent.resolve()
    fd = _directory_fds.get(directory)
    if fd is None:
        fd = _directory_fds[directory] = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{fd}/{path.name}"


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the process's S3 server (which stops it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen_unix(path: Path) -> socket.socket:
    """A listening socket at ``path``, mode 0600 before it accepts anything."""
    # A socket left by a node that died: this process holds the data dir lock, so it is stale.
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(unix_address(path))
        os.chmod(path, 0o600)  # before listen(): nobody can connect until then
        sock.listen(SOCKET_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class UnixServer:
    """Serves ``app`` on the Unix socket ``path`` until :meth:`stop`."""

    def __init__(self, path: Path, app: ASGIApp, name: str, grace_s: int | None = None):
        self.path = path
        self._app = app
        self._name = name
        self._grace_s = grace_s
        self._server: EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen and serve; OSError if the socket cannot be made."""
        sock = listen_unix(self.path)
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            http="httptools",
            access_log=False,
            log_config=None,
            log_level="warning",
            timeout_graceful_shutdown=self._grace_s,
        )
        self._server = EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=self._name)
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # raises what stopped it

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await self._task
            except Exception:
                log.exception("%s shutdown failed", self._name)
        self.path.unlink(missing_ok=True)
