"""Binding the node's listening sockets (stdlib only: the lean supervisor start uses it)."""

from __future__ import annotations

import logging
import socket

log = logging.getLogger("lakenode")

# A deep backlog: with several workers, connections wait there while each is busy.
LISTEN_BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server(
        (host, port), family=family, reuse_port=False, backlog=LISTEN_BACKLOG
    )


def bind_all(addresses: list[tuple[str, int, str]]) -> list[socket.socket] | None:
    """One socket per (host, port, flag), in order; None (logged, nothing left open) if an
    address is busy or not ours."""
    listening: list[socket.socket] = []
    for host, port, flag in addresses:
        try:
            listening.append(bind(host, port))
        except OSError as exc:
            log.error("cannot listen on %s %s:%d: %s", flag, host, port, exc.strerror)
            for sock in listening:
                sock.close()
            return None
    return listening
