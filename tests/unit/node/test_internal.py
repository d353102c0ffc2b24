"""The internal channel hands a forwarded request's client address to the primary, and only
the forwarding worker can set it (node/internal.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from starlette.types import Message, Receive, Scope, Send

from node.internal import CLIENT_HEADER, ForwardToPrimary, InternalServer, internal_app
from node.supervisor import PRIMARY


async def _echo_client(scope: Scope, receive: Receive, send: Send) -> None:
    """What the primary's application sees: the client and any x-lakenode-client headers."""
    forwarded_for = [value.decode() for name, value in scope["headers"] if name == CLIENT_HEADER]
    seen = {"client": scope["client"][0] if scope.get("client") else None, "headers": forwarded_for}
    body = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _forward(data_dir: Path, headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    server = InternalServer(data_dir, PRIMARY, internal_app(lambda: b"", _echo_client))
    await server.start()
    forward = ForwardToPrimary(_echo_client, data_dir)
    scope: Scope = {
        "type": "http", "method": "GET", "path": "/_lakenode/console/", "raw_path": None,
        "query_string": b"", "headers": headers, "client": ("203.0.113.7", 41000),
    }  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await forward(scope, receive, send)
    finally:
        await forward.aclose()
        await server.stop()
    assert sent[0]["status"] == 200
    document = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert isinstance(document, dict)
    return document


def test_the_primary_sees_the_client_of_a_forwarded_request(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    seen = asyncio.run(_forward(tmp_path, [(b"host", b"node.example")]))
    assert seen["client"] == "203.0.113.7"


def test_a_client_cannot_claim_another_address(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    spoofed = [(b"host", b"node.example"), (b"x-lakenode-client", b"198.51.100.1")]
    seen = asyncio.run(_forward(tmp_path, spoofed))
    assert seen["client"] == "203.0.113.7"
    assert seen["headers"] == ["203.0.113.7"]  # the client's own header was dropped
